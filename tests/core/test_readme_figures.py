"""Where README's figures come from: every test and benchmark named in README's headline table and in
docs/benchmarks.md's "Where each figure comes from" exists and is run where the table says; README stays a
landing page (at most 150 lines, every relative link resolves)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: (file, heading of its figures table, least number of rows)
FIGURE_TABLES = (("README.md", "## Headline figures", 8), ("docs/benchmarks.md", "## Where each figure comes from", 20))


def _rows(rel: str, heading: str, least: int) -> list[tuple[str, str, str]]:
    """(figure, source, run by) of the table under ``heading``; the source is the first `code` span of the second
    cell (plain or inside a link)."""
    text = (ROOT / rel).read_text()
    m = re.search(rf"^{re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"{rel} has no {heading!r} section"
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        code = re.match(r"\[?`([^`]+)`", cells[1]) if len(cells) == 3 else None
        if code:
            rows.append((cells[0], code.group(1), cells[2]))
    assert len(rows) >= least, rel
    return rows


def _is_slow(path: Path, name: str | None) -> bool:
    tree = ast.parse(path.read_text())
    module_slow = "pytestmark = pytest.mark.slow" in path.read_text()
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if name is None:  # a whole file: slow when every test in it is
        tests = [f for n, f in funcs.items() if n.startswith("test_")]
        return module_slow or all(any("mark.slow" in ast.unparse(d) for d in f.decorator_list) for f in tests)
    assert name in funcs, f"{path.relative_to(ROOT)} has no {name}"
    return module_slow or any("mark.slow" in ast.unparse(d) for d in funcs[name].decorator_list)


def test_readme_is_a_landing_page_whose_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [u for u in links if not u.startswith(("http://", "https://"))]
    assert local and all((ROOT / u).exists() for u in local), [u for u in local if not (ROOT / u).exists()]
    for doc in ("usage", "pruning", "models", "scaling", "benchmarks", "estimator", "architecture"):
        assert f"docs/{doc}.md" in local, doc


def test_every_figure_names_a_real_test_or_benchmark_run_where_it_says():
    ci = (ROOT / ".ci" / "run").read_text()
    make = (ROOT / "Makefile").read_text()
    rows = [r for table in FIGURE_TABLES for r in _rows(*table)]
    for figure, source, run_by in rows:
        path_s, _, name = source.partition("::")
        path = ROOT / path_s.split()[0]
        assert path.is_file(), (figure, source)
        if path_s.startswith("benchmarks/"):
            assert "make bench" in run_by, figure
            assert "benchmarks/*.py" in make, "make bench must run every benchmark"
            if "--quick" in path_s:
                assert f"{path_s.split()[0]} --quick" in make, figure
            continue
        slow = _is_slow(path, name or None)
        assert ("make test-slow" in run_by) == slow, (figure, "slow" if slow else "default suite")
        assert ("make test" in run_by.replace("make test-slow", "")) == (not slow), figure
        if ".ci/run" in run_by:
            assert path_s in ci or source in ci, (figure, ".ci/run does not run it")

"""README's "Where each figure comes from": every test and benchmark it names exists and is run where it says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rows() -> list[tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^## Where each figure comes from\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no 'Where each figure comes from' section"
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("`"):
            rows.append((cells[0], cells[1].strip("`"), cells[2]))
    assert len(rows) >= 8
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


def test_every_figure_names_a_real_test_or_benchmark_run_where_it_says():
    ci = (ROOT / ".ci" / "run").read_text()
    make = (ROOT / "Makefile").read_text()
    for figure, source, run_by in _rows():
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

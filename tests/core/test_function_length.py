"""Code shape (issue 15): no function or method in ``hapfpga/`` is longer than ~80 lines.

Every module under ``hapfpga/`` is parsed with ``ast``; a function's length runs from its ``def`` line to
its last line (decorators not counted). Declarative tables (a function that only returns a literal table)
may be exempted in ``ALLOWED``, each with a comment saying why; there are none today.
"""

from __future__ import annotations

import ast
from pathlib import Path

import hapfpga

MAX_LINES = 80

#: "path/relative/to/hapfpga.py:qualified.name" -> why it is a declarative table, not logic.
ALLOWED: dict[str, str] = {}

ROOT = Path(hapfpga.__file__).resolve().parent


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def long_functions(root: Path = ROOT, limit: int = MAX_LINES) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for name, node in _functions(ast.parse(path.read_text(), filename=str(path))):
            length = node.end_lineno - node.lineno + 1
            if length > limit and f"{rel}:{name}" not in ALLOWED:
                out.append(f"{rel}:{name} ({length} lines)")
    return out


def test_the_check_finds_a_long_function(tmp_path):
    (tmp_path / "m.py").write_text(
        "class C:\n    def long(self):\n" + "        x = 1\n" * 81 + "\ndef short():\n    return 1\n"
    )
    assert long_functions(tmp_path) == ["m.py:C.long (82 lines)"]


def test_no_function_in_hapfpga_is_longer_than_80_lines():
    assert ROOT.is_dir() and any(ROOT.rglob("*.py"))
    too_long = long_functions()
    assert not too_long, f"functions over {MAX_LINES} lines (split them): " + ", ".join(too_long)


#: the pruning package (issue 23): its functions stay under 60 lines, none allowed over
PRUNING_MAX_LINES = 60


def test_no_function_in_the_pruning_package_is_longer_than_60_lines():
    root = ROOT / "pruning"
    assert any(root.glob("*.py"))
    too_long = long_functions(root, PRUNING_MAX_LINES)
    assert not too_long, f"hapfpga/pruning functions over {PRUNING_MAX_LINES} lines (split them): " + ", ".join(too_long)


def test_allow_list_names_existing_functions():
    names = set()
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        names |= {f"{rel}:{n}" for n, _ in _functions(ast.parse(path.read_text()))}
    assert set(ALLOWED) <= names

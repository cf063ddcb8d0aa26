"""The import map (hapfpga/importmap.py) holds for every module, and docs/architecture.md shows the map as it is.

Imports are read with ``ast`` from the source, so an import inside a function counts as much as one at the
top of a module (importing a module would only see the latter).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from hapfpga.importmap import HEAVY, LAYERS, import_map_block, layer_of, layout_block

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "hapfpga").rglob("*.py"))


def _module_name(path: str) -> str:
    mod = path[: -len(".py")].replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


def _imports(path: str) -> list[tuple[str, bool, int]]:
    """``(absolute module, inside a function, line)`` for every import in ``path``."""
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    package = _module_name(path) if path.endswith("__init__.py") else _module_name(path).rpartition(".")[0]
    out: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, in_func, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level == 0:
                    base = child.module or ""
                else:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                out.append((base, in_func, child.lineno))
                # ``from .pkg import mod``: the submodule itself (resolved to its parent when it is a name)
                out.extend((f"{base}.{a.name}", in_func, child.lineno) for a in child.names if base)
            visit(child, inner)

    visit(tree, False)
    return out


def _type_checking_lines(path: str) -> set[int]:
    """Lines under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    tree = ast.parse((ROOT / path).read_text())
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                lines.update(range(sub.lineno, (sub.end_lineno or sub.lineno) + 1))
    return lines


def _hapfpga_path(module: str) -> str | None:
    if module != "hapfpga" and not module.startswith("hapfpga."):
        return None
    rel = module.replace(".", "/")
    for cand in (f"{rel}.py", f"{rel}/__init__.py"):
        if (ROOT / cand).is_file():
            return cand
    return None


def test_every_module_is_in_the_map():
    assert len(MODULES) > 50
    unmapped = [m for m in MODULES if layer_of(m) is None]
    assert not unmapped, f"add these modules to a layer in hapfpga/importmap.py: {unmapped}"


@pytest.mark.parametrize("path", MODULES)
def test_module_respects_its_layer(path):
    layer = layer_of(path)
    assert layer is not None
    typing_only = _type_checking_lines(path)
    bad = []
    for mod, in_func, line in _imports(path):
        if line in typing_only:
            continue
        top = mod.split(".")[0]
        if top in HEAVY:
            if top not in layer.may_import:
                bad.append(f"line {line}: imports {mod} ({layer.name} may import {sorted(layer.may_import) or 'none'})")
            elif layer.lazy and not in_func:
                bad.append(f"line {line}: imports {mod} at module level ({layer.name}: inside functions only)")
        target = _hapfpga_path(mod)
        if layer.name == "pure core" and target is not None:
            other = layer_of(target)
            if other is not None and other.name != "pure core":
                bad.append(f"line {line}: the pure core imports {mod} ({other.name})")
    assert not bad, f"{path} ({layer.name}):\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The checker itself: an import inside a function and a relative import are both found."""
    me = sys.modules[__name__]
    pkg = tmp_path / "hapfpga" / "folding"
    pkg.mkdir(parents=True)
    (pkg / "bad.py").write_text("from ..finn import graph\n\ndef f():\n    import torch.nn\n    return torch\n")
    monkeypatch.setattr(me, "ROOT", tmp_path)
    found = {(m, f) for m, f, _ in _imports("hapfpga/folding/bad.py")}
    assert ("hapfpga.finn.graph", False) in found
    assert ("torch.nn", True) in found


def test_pure_core_is_declared_pure():
    core = next(layer for layer in LAYERS if layer.name == "pure core")
    assert not core.may_import & {"torch", "onnx", "qonnx", "finn", "brevitas"}
    for m in ("hapfpga/types.py", "hapfpga/estimate/mvau.py", "hapfpga/folding/solver.py", "hapfpga/pruning/plan.py"):
        assert layer_of(m) is core


def test_finn_is_imported_only_by_the_finn_adapter():
    users = {m for m in MODULES for mod, _, _ in _imports(m) if mod.split(".")[0] == "finn"}
    assert users
    assert {layer_of(m).name for m in users} == {"finn adapter"}


def _code_block_after(text: str, heading: str) -> str:
    m = re.search(rf"^{re.escape(heading)}\n+```\n(.*?)\n```", text, re.S | re.M)
    assert m, f"no code block under {heading!r}"
    return m.group(1)


def test_layout_block_is_the_map():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert _code_block_after(doc, "## Layout") == layout_block(), (
        "docs/architecture.md's layout block differs from hapfpga/importmap.py: paste `python -m hapfpga.importmap`"
    )
    for line in layout_block().splitlines():
        first = line.split()[0].rstrip(",")
        assert (ROOT / first).exists(), first


def test_architecture_doc_shows_the_map():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    m = re.search(r"^## Import map\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
    assert m, "docs/architecture.md has no '## Import map' section"
    assert import_map_block() in m.group(1)


def _ancestors(path: str) -> set[str]:
    """The ``__init__.py`` of every package above ``path`` (Python runs them before the module anyway)."""
    parts = path.split("/")[:-1]
    return {"/".join(parts[:i] + ["__init__.py"]) for i in range(1, len(parts) + 1)}


def _import_graph(modules: list[str]) -> dict[str, set[str]]:
    """Module path -> the hapfpga modules it imports (inside functions too; annotations-only imports and its
    own packages' ``__init__`` left out)."""
    graph = {}
    for m in modules:
        typing_only, skip = _type_checking_lines(m), _ancestors(m) | {m}
        graph[m] = {t for mod, _, line in _imports(m) if line not in typing_only
                    for t in [_hapfpga_path(mod)] if t is not None and t not in skip}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_modules():
    """No two modules of hapfpga import each other, directly or through others, imports inside functions
    included (a module's own package ``__init__`` runs before it, so importing that is not a cycle)."""
    cycles = _cycles(_import_graph(MODULES))
    assert not cycles, "import cycles (move the shared code to a module both can import): " + "; ".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_checker_sees_a_cycle_through_a_function(tmp_path, monkeypatch):
    me = sys.modules[__name__]
    pkg = tmp_path / "hapfpga" / "pruning"
    pkg.mkdir(parents=True)
    (tmp_path / "hapfpga" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from .a import f\n\ndef g():\n    return f\n")
    (pkg / "c.py").write_text("from . import a\n")
    monkeypatch.setattr(me, "ROOT", tmp_path)
    mods = ["hapfpga/__init__.py", "hapfpga/pruning/__init__.py", "hapfpga/pruning/a.py", "hapfpga/pruning/b.py",
            "hapfpga/pruning/c.py"]
    assert _cycles(_import_graph(mods)) == [["hapfpga/pruning/a.py", "hapfpga/pruning/b.py"]]


def _private_imports(path: str) -> list[str]:
    """``from hapfpga.x import _name`` of another module's private name (``import`` lines, inside functions too)."""
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    own = _module_name(path)
    package = own if path.endswith("__init__.py") else own.rpartition(".")[0]
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        if _hapfpga_path(base) is None or base == own:
            continue
        bad += [f"line {node.lineno}: {base}.{a.name}" for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")]
    return bad


#: private imports that predate this check (their owners make the names public); none may be added
_PRIVATE_IMPORTS_LEFT = {
    "hapfpga/rtlsim/perf.py": ["line 21: hapfpga.rtlsim.sim._pipeline_cycles"],
    "hapfpga/zoo/conv1d.py": None, "hapfpga/zoo/mlp.py": None, "hapfpga/zoo/separable.py": None,
}


@pytest.mark.parametrize("path", MODULES)
def test_no_module_imports_another_modules_private_names(path):
    bad = _private_imports(path)
    if path in _PRIVATE_IMPORTS_LEFT:  # the zoo's builders share zoo.models' private helpers (None: any of those)
        allowed = _PRIVATE_IMPORTS_LEFT[path]
        bad = [b for b in bad if not (b.split(": ")[1].startswith("hapfpga.zoo.models._") if allowed is None
                                      else b in allowed)]
    assert not bad, f"{path} imports private names of other modules (make them public or move the code): {bad}"

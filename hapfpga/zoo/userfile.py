"""A user's model file as ``python file.py`` would run it: its folder importable, and the content hash of the
file together with every ``.py`` file it imports from that folder (followed through those files' own imports),
so that editing a helper module next to the model re-runs training.

Pure: ``ast`` and ``hashlib`` only; nothing is imported or executed to find the imports.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

__all__ = ["make_folder_importable", "local_sources", "sources_hash"]


def make_folder_importable(path: Path) -> None:
    """Put the folder of ``path`` first on ``sys.path`` (moved there if present), as ``python path`` does for its script, and
    forget the modules this process imported under the names or from the files of the modules ``path`` imports
    there (:func:`local_sources`), so that importing ``path`` reads their current content, not a module of the
    same name from another model's folder (hapfpga's own modules are never forgotten)."""
    folder = str(Path(path).resolve().parent)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    root = Path(folder)
    mine = set(local_sources(Path(path))[1:])
    names = {".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for f in mine}
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        ours = name in names or (file is not None and Path(file).resolve() in mine)
        if ours and not name.startswith("hapfpga"):
            del sys.modules[name]  # this file's neighbour, or a same-named module from another model's folder


def _imported_names(tree: ast.AST) -> set[str]:
    """Top-level module names of every absolute import in ``tree`` (``import a.b``, ``from a.b import c``), and
    ``a.c`` for ``from a import c`` (``c`` may be a submodule of the package ``a``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_file(folder: Path, dotted: str) -> Path | None:
    """The file in ``folder`` that ``import dotted`` would load (``a/b.py`` or ``a/b/__init__.py``), or None."""
    base = folder.joinpath(*dotted.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def local_sources(path: Path) -> list[Path]:
    """``path`` and every ``.py`` file in its folder that it imports, directly or through those files (sorted
    after ``path``; a package's ``__init__.py`` counts when the package or one of its modules is imported)."""
    path = Path(path).resolve()
    folder = path.parent
    found: dict[Path, None] = {path: None}
    todo = [path]
    while todo:
        current = todo.pop()
        try:
            tree = ast.parse(current.read_text(encoding="utf-8", errors="replace"), filename=str(current))
        except SyntaxError:
            continue  # the import itself reports it
        for dotted in sorted(_imported_names(tree)):
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c loads a/__init__.py, a/b/__init__.py, a/b/c.py
                f = _module_file(folder, ".".join(parts[:i]))
                if f is not None and f.resolve() not in found:
                    found[f.resolve()] = None
                    todo.append(f.resolve())
    return [path, *sorted(p for p in found if p != path)]


def sources_hash(path: Path) -> str:
    """sha256 over the relative names and contents of :func:`local_sources` of ``path``; for a file that imports
    nothing from its folder, the sha256 of its content alone (the key runs made before this function had)."""
    path = Path(path).resolve()
    files = local_sources(path)
    if len(files) == 1:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(path.parent).as_posix().encode() + b"\0")
        h.update(f.read_bytes() + b"\0")
    return h.hexdigest()

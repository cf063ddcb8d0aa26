"""Resumable runs: atomic outputs and a manifest of finished stages.

Each stage of ``hapfpga run`` has a key: a hash of the parts of the config it depends on and of the
keys of the stages it reads from. When a stage finishes, its outputs are already in place (written
to a temporary name and renamed) and the manifest records ``{stage: {key, outputs, result}}``.
Re-running the same command skips every stage whose key is unchanged and whose outputs exist, so a
run killed mid-training or mid-build resumes after the last finished stage; a changed config changes
the keys of the stages it affects and of everything downstream.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_path", "atomic_dir", "RunState", "stage_key"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; it is renamed to ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = path.with_name(f".{path.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def stage_key(*parts: Any) -> str:
    """Hash of the JSON form of ``parts`` (config sections, upstream keys)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class RunState:
    """The manifest of one run directory (``DIR/manifest.json``)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError:
            raise ConfigError(
                f"Output directory '{self.run_dir}' is not writable; choose another --out."
            ) from None
        self.path = self.run_dir / "manifest.json"
        self.stages: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                self.stages = json.loads(self.path.read_text()).get("stages", {})
            except (json.JSONDecodeError, AttributeError):
                self.stages = {}  # a damaged manifest means: nothing is known finished

    def done(self, stage: str, key: str) -> dict[str, Any] | None:
        """The recorded result of ``stage`` if it finished with ``key`` and its outputs are intact."""
        rec = self.stages.get(stage)
        if not rec or rec.get("key") != key:
            return None
        for rel, digest in rec.get("outputs", {}).items():
            p = self.run_dir / rel
            if not p.exists():
                return None
            if p.is_file() and digest and _file_digest(p) != digest:
                return None
        return rec.get("result", {})

    def finish(self, stage: str, key: str, outputs: list[str | Path], result: dict[str, Any]) -> None:
        outs = {}
        for o in outputs:
            p = Path(o)
            rel = str(p.relative_to(self.run_dir) if p.is_absolute() else p)
            full = self.run_dir / rel
            outs[rel] = _file_digest(full) if full.is_file() else ""
        self.stages[stage] = {"key": key, "outputs": outs, "result": result}
        self._save()

    def invalidate_from(self, stage: str) -> None:
        self.stages.pop(stage, None)
        self._save()

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps({"stages": self.stages}, indent=2, sort_keys=True) + "\n")

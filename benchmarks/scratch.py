"""Work folders for benchmarks: ``--work DIR`` is kept, the default temporary folder is deleted at exit.

FINN builds leave hundreds of megabytes per design (a SetFolding scan is dozens of them); temporary folders
left behind by earlier runs once filled this machine's disk and failed CI's install, so a benchmark deletes what
it did not promise to keep. Give ``--work`` to keep the builds.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

__all__ = ["work_dir"]


def work_dir(given: str | Path | None, prefix: str) -> Path:
    """``given`` (created if missing, kept), or a new temporary folder removed when the process exits."""
    if given is not None:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path

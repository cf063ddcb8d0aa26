"""The no-Vivado shim for finn-plus 1.6.1 — it lives here and only here.

finn-plus imports Vivado's simulator interface (``finn.xsi``) when ``finn.builder`` is imported
and needs global settings that its own CLI normally creates. Without Vivado we:

1. create FINN's dummy settings (``finn.util.settings.initialize_dummy_settings``), and
2. bind the lazy names of ``finn.xsi`` (``SimEngine``, ``compile_sim_obj``, ...) to a stub that
   raises ``ToolMissingError`` if anything actually tries to simulate through XSI.

When ``XILINX_VIVADO`` is set, nothing is stubbed and finn-plus's own XSI path stays available.
``finn_quiet`` sends FINN's prints and log lines to a file instead of the user's terminal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ToolMissingError

__all__ = ["ensure_finn", "vivado_available", "finn_quiet", "FINN_HW_DOMAIN"]

#: ONNX domain of FINN's HW custom ops; the opset import finn-plus leaves out of its graphs.
FINN_HW_DOMAIN = "finn.custom_op.fpgadataflow"

_READY = False


def vivado_available() -> bool:
    """True when Vivado is set up in this environment (``XILINX_VIVADO`` and ``vivado`` on PATH)."""
    import shutil

    return bool(os.environ.get("XILINX_VIVADO")) and shutil.which("vivado") is not None


class _NoXsi:
    """Stands in for finn_xsi's names; any use means someone tried to simulate through Vivado."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise ToolMissingError(
            "FINN's XSI simulation needs Vivado (XILINX_VIVADO is not set); use hapfpga's Verilator "
            "simulation or install Vivado."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never constructed
        raise ToolMissingError("FINN's XSI simulation needs Vivado, which is not installed.")


def ensure_finn() -> None:
    """Make ``finn.builder`` importable on a machine without Vivado (idempotent)."""
    global _READY
    if _READY:
        return
    try:
        from finn.util import settings
    except ImportError as e:  # pragma: no cover - install problem
        raise ToolMissingError(f"finn-plus is not installed ({e}); run 'make install'.") from None
    if getattr(settings, "_SETTINGS", None) is None:
        settings.initialize_dummy_settings()
    if not vivado_available():
        import finn.xsi as xsi

        for name in xsi._LAZY_NAMES:
            setattr(xsi, name, _NoXsi)
    _READY = True


class _Tee(io.TextIOBase):
    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, s: str) -> int:
        self._fh.write(s)
        return len(s)

    def flush(self) -> None:
        self._fh.flush()


@contextlib.contextmanager
def finn_quiet(log_file: str | Path) -> Iterator[Path]:
    """Send everything FINN prints or logs (stdout, stderr, ``logging``) to ``log_file``."""
    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with open(log_file, "a") as fh:
        handler = logging.StreamHandler(fh)
        saved_handlers = {}
        for lg in [root] + [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]:
            if isinstance(lg, logging.Logger) and lg.handlers:
                saved_handlers[lg] = list(lg.handlers)
                lg.handlers = [handler]
        root.addHandler(handler)
        tee = _Tee(fh)
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = tee, tee
        try:
            yield log_file
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            root.removeHandler(handler)
            for lg, hs in saved_handlers.items():
                lg.handlers = hs

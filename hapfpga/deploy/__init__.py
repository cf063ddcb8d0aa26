"""Deployment: the PYNQ package, the on-board runtime and a simulated backend with the same API.

``open_accelerator(DIR/deploy, backend="auto"|"pynq"|"sim")`` returns an ``Accelerator``
(``run``, ``predict``, ``measure`` -> ``Measurement``). ``make_deployment_package`` builds the package
from a FINN output directory. The board modules (``api``, ``board``) import numpy and pynq only;
``sim`` and ``package`` need finn-plus and are imported lazily.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .api import Accelerator, Measurement, load_manifest

__all__ = [
    "Accelerator",
    "Measurement",
    "load_manifest",
    "open_accelerator",
    "make_deployment_package",
    "DeployPackage",
    "BoardAccelerator",
    "SimulatedAccelerator",
    "EmulatedAccelerator",
]


def open_accelerator(package_dir: str | Path, backend: str = "auto", **kwargs: Any) -> Accelerator:
    """The accelerator of a deployment package.

    ``backend``: ``"pynq"`` (the board; needs pynq, finn-plus-driver and a bitfile in the package),
    ``"sim"`` (FINN's Python execution on this host), ``"emulate"`` (FINN's driver on an emulated board whose
    DMAs stream into the Verilator simulation of the RTL; the package needs ``emulate/``), or ``"auto"``: the board when pynq is importable
    and the package has a bitfile, else the simulation.
    """
    from ..errors import ConfigError

    if backend not in ("auto", "pynq", "sim", "emulate"):
        raise ConfigError(f"Unknown deploy backend '{backend}'; use auto, pynq, sim or emulate.")
    if backend == "auto":
        import importlib.util
        import sys

        has_bit = bool(load_manifest(package_dir).get("bitfile"))
        stand_in = getattr(sys.modules.get("pynq"), "__name__", "") == "hapfpga.deploy.pynq_emu"
        real_pynq = not stand_in and importlib.util.find_spec("pynq") is not None
        backend = "pynq" if has_bit and real_pynq else "sim"
    if backend == "pynq":
        from .board import BoardAccelerator

        return BoardAccelerator(package_dir, **kwargs)
    if backend == "emulate":
        from .emulate import EmulatedAccelerator

        return EmulatedAccelerator(package_dir, **kwargs)
    from .sim import SimulatedAccelerator

    return SimulatedAccelerator(package_dir)


def __getattr__(name: str) -> Any:
    if name in ("make_deployment_package", "DeployPackage"):
        from . import package

        return getattr(package, name)
    if name == "BoardAccelerator":
        from .board import BoardAccelerator

        return BoardAccelerator
    if name == "EmulatedAccelerator":
        from .emulate import EmulatedAccelerator

        return EmulatedAccelerator
    if name == "SimulatedAccelerator":
        from .sim import SimulatedAccelerator

        return SimulatedAccelerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

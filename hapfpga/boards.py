"""Board descriptions: ``boards/*.yaml`` -> typed ``BoardSpec``.

The YAML files cite their primary sources (vendor data sheets) in comments.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

from .config import from_dict, load_yaml
from .errors import ConfigError
from .types import RESOURCE_KEYS, Resources

__all__ = ["BoardSpec", "BOARDS_DIR", "list_boards", "load_board"]

BOARDS_DIR = Path(__file__).resolve().parent.parent / "boards"


@dataclass(frozen=True)
class _Res:
    LUT: float
    FF: float
    BRAM_18K: float
    URAM: float
    DSP: float


@dataclass(frozen=True)
class _BoardFile:
    name: str
    finn_board: str
    part: str
    shell_flow: Literal["vivado_zynq", "vitis_alveo"]
    clock_mhz: float
    capacity: _Res
    limits: _Res
    memory: str = ""


@dataclass(frozen=True)
class BoardSpec:
    """One FPGA board: its part, default clock, capacity and utilisation limits."""

    key: str  # file stem, e.g. "pynq-z2"
    name: str  # human name, e.g. "Pynq-Z2"
    finn_board: str  # FINN's board name (``DataflowBuildConfig.board``)
    part: str
    shell_flow: str
    clock_mhz: float
    capacity: Resources
    limits: Resources  # fractions of capacity, FINN's DEFAULT_RES_LIMITS unless stated
    memory: str = ""

    @cached_property
    def budget(self) -> Resources:
        """Capacity × utilisation limits: what a design may use and still close timing (computed once)."""
        return self.capacity.scaled(self.limits)

    @property
    def clock_period_ns(self) -> float:
        return 1000.0 / self.clock_mhz

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "name": self.name,
            "finn_board": self.finn_board,
            "part": self.part,
            "shell_flow": self.shell_flow,
            "clock_mhz": self.clock_mhz,
            "memory": self.memory,
            "capacity": self.capacity.as_dict(),
            "limits": self.limits.as_dict(),
            "budget": self.budget.as_dict(),
        }


def _board_from_file(path: Path) -> BoardSpec:
    raw = from_dict(_BoardFile, load_yaml(path), "")
    for k in RESOURCE_KEYS:
        lim = getattr(raw.limits, k)
        if not 0.0 <= lim <= 1.0:
            raise ConfigError(f"Board file '{path}' has limits.{k} = {lim}; a limit is a fraction from 0 to 1.")
    return BoardSpec(
        key=path.stem,
        name=raw.name,
        finn_board=raw.finn_board,
        part=raw.part,
        shell_flow=raw.shell_flow,
        clock_mhz=raw.clock_mhz,
        capacity=Resources(**{k: getattr(raw.capacity, k) for k in RESOURCE_KEYS}),
        limits=Resources(**{k: getattr(raw.limits, k) for k in RESOURCE_KEYS}),
        memory=raw.memory,
    )


def list_boards() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


@cache
def load_board(name: str) -> BoardSpec:
    """A board by key (``pynq-z2``), by FINN/human name (``Pynq-Z2``), or by path to a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return _board_from_file(p)
    key = name.strip().lower()
    path = BOARDS_DIR / f"{key}.yaml"
    if path.is_file():
        return _board_from_file(path)
    for k in list_boards():
        b = _board_from_file(BOARDS_DIR / f"{k}.yaml")
        if key in (b.name.lower(), b.finn_board.lower()):
            return b
    raise ConfigError(f"Unknown board '{name}'; choose one of {', '.join(list_boards())} or give a board YAML file.")

"""A safety margin on the folding budget, per resource, from where our whole-design estimate falls *below* synthesis.

A margin protects against under-estimates only: a resource our estimate over-counts on whole designs needs none.
``POINTS`` are every whole-design comparison the project has (Yosys on the open-simulatable designs it builds,
``docs/synthesis.md``; the one published Vivado utilisation point of a FINN design, REFERENCE.md), signed. The
default margin of a resource is the largest shortfall ``1 - ours / synthesis`` over its points (0 where ours is
never below), rounded up to a whole percent; for a device family the points of that family when there are any,
else all of them. The table and its sources are in ``docs/margin.md``.

``folding.margin`` in the run config, ``--margin`` on ``hapfpga fold``/``build``/``estimate`` (or
``optimise(margin=...)``) override it: one fraction for every resource (``0`` turns the margin off) or a
mapping ``{LUT: 0.05, BRAM_18K: 0.1}`` whose resources replace the default's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..types import Resources

__all__ = [
    "MARGIN_KEYS", "SynthPoint", "POINTS", "Margin", "derived_margin", "default_margin", "resolve_margin",
    "with_margin", "parse_margin", "family_of_part", "tdp_bram18", "CNV_W1A1_WEIGHTS",
]

#: the resources a margin can keep free (FF is not in FINN's fit check)
MARGIN_KEYS: tuple[str, ...] = ("LUT", "BRAM_18K", "URAM", "DSP")

_SYNTH = "docs/synthesis.md"
_COMPAT = "docs/synthesis.md, 'What changed in the folding the optimiser picks' (folding_compat_vs_corrected.py)"
_VIVADO = ("Xilinx/finn PR #209 ('optimize_streamer', merged 2020-09-05) comment: cnv-w1a1, finn-examples folding, "
           "post-synthesis, accelerator without the shell (REFERENCE.md)")


@dataclass(frozen=True)
class SynthPoint:
    """One whole design, one resource: our estimate against a synthesis tool's count.

    ``modelled``: our count after modelling a known cause of the gap that does not apply to the designs hapfpga
    builds (the cnv-w1a1 BRAM point: the 2020 memstream's dual-port memories, ``docs/margin.md``); the margin uses
    it instead of ``ours`` when given."""

    design: str
    tool: str
    family: str  # "xc7" | "xcup"
    resource: str
    ours: float
    synth: float
    source: str
    modelled: float | None = None

    @property
    def shortfall(self) -> float:
        """How far below synthesis our (modelled) count is, as a fraction of synthesis; 0 when not below."""
        ours = self.ours if self.modelled is None else self.modelled
        return max(0.0, 1.0 - ours / self.synth) if self.synth > 0 else 0.0


def _p(design: str, tool: str, res: str, ours: float, synth: float, src: str, modelled: float | None = None,
       family: str = "xc7") -> SynthPoint:
    return SynthPoint(design, tool, family, res, ours, synth, src, modelled)


#: RAMB18 aspect ratios (depth, width) in true-dual-port mode (UG473 table 1-11): no 512 x 36, which needs SDP
_TDP_RATIOS = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18))

#: cnv-w1a1's MVAU weight memories with finn-examples' folding: (MW, MH, PE, SIMD), 1-bit weights
CNV_W1A1_WEIGHTS = ((27, 64, 16, 3), (576, 64, 32, 32), (576, 128, 16, 32), (1152, 128, 16, 32),
                    (1152, 256, 4, 32), (2304, 256, 1, 32), (256, 512, 1, 4), (512, 512, 1, 8), (512, 10, 5, 1))


def tdp_bram18(width: int, depth: int) -> int:
    """RAMB18s of a ``width`` x ``depth`` memory read through both ports of a true-dual-port RAM (FINN's memstream
    before Xilinx/finn PR #209, ``ramb18_wf_dualport.v``): the cheapest TDP aspect ratio, at most 18 bits wide."""
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _TDP_RATIOS)


_Y = "Yosys 0.70 (xc7z020)"
_V = "Vivado 2020 (xc7z020)"
#: every whole-design comparison we have (numbers copied from the sources named; docs/margin.md tabulates them)
POINTS: tuple[SynthPoint, ...] = (
    _p("demo CNN, max-fps design (37 RTL layers)", _Y, "LUT", 23_292, 24_634, _SYNTH),
    _p("demo CNN, max-fps design (37 RTL layers)", _Y, "BRAM_18K", 0, 0, _SYNTH),
    _p("demo CNN, max-fps design (37 RTL layers)", _Y, "DSP", 132, 132, _SYNTH),
    _p("demo CNN, FINN-cost design", _Y, "LUT", 18_536, 19_179, _COMPAT),
    _p("demo CNN, FINN-cost design", _Y, "DSP", 99, 99, _COMPAT),
    _p("CNV-w2a2, finn-examples folding (80 RTL layers)", _Y, "LUT", 28_645, 24_819, _SYNTH),
    _p("CNV-w2a2, finn-examples folding (80 RTL layers)", _Y, "BRAM_18K", 195, 195, _SYNTH),
    _p("CNV-w2a2, finn-examples folding (80 RTL layers)", _Y, "DSP", 94, 94, _SYNTH),
    _p("CNV-w2a2, our-cost design (90 RTL layers)", _Y, "LUT", 33_377, 34_287, _COMPAT),
    _p("CNV-w2a2, our-cost design (90 RTL layers)", _Y, "BRAM_18K", 194, 194, _COMPAT),
    _p("CNV-w2a2, our-cost design (90 RTL layers)", _Y, "DSP", 172, 172, _COMPAT),
    _p("CNV-w2a2, FINN-cost design (74 RTL layers)", _Y, "LUT", 108_535, 75_442, _COMPAT),
    _p("CNV-w2a2, FINN-cost design (74 RTL layers)", _Y, "BRAM_18K", 5, 5, _COMPAT),
    _p("CNV-w2a2, FINN-cost design (74 RTL layers)", _Y, "DSP", 147, 147, _COMPAT),
    _p("cnv-w1a1, finn-examples folding (whole accelerator)", _V, "LUT", 24_883, 21_135, _VIVADO),
    # 98 RAMB36 + 9 RAMB18; modelled: the weight memories as the 2020 memstream's true-dual-port RAM packs them
    _p("cnv-w1a1, finn-examples folding (whole accelerator)", _V, "BRAM_18K", 147, 2 * 98 + 9, _VIVADO,
       sum(tdp_bram18(pe * simd, mw * mh // (pe * simd)) for mw, mh, pe, simd in CNV_W1A1_WEIGHTS)),
    _p("cnv-w1a1, finn-examples folding (whole accelerator)", _V, "DSP", 5, 0, _VIVADO),
)


@dataclass(frozen=True)
class Margin:
    """Fractions of each resource's budget kept free."""

    LUT: float = 0.0
    BRAM_18K: float = 0.0
    URAM: float = 0.0
    DSP: float = 0.0

    def __post_init__(self) -> None:
        for k in MARGIN_KEYS:
            m = getattr(self, k)
            if not 0.0 <= m < 1.0:
                raise ConfigError(f"folding margin {m:g} for {k} is not a fraction in [0, 1); use e.g. 0.1 to keep "
                                  f"10% of the {k} budget free.")

    def apply(self, budget: Resources) -> Resources:
        """``budget`` with each resource's margin kept free (FF untouched)."""
        return Resources(LUT=budget.LUT * (1 - self.LUT), FF=budget.FF, BRAM_18K=budget.BRAM_18K * (1 - self.BRAM_18K),
                         URAM=budget.URAM * (1 - self.URAM), DSP=budget.DSP * (1 - self.DSP))

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        parts = [f"{k} {getattr(self, k):.0%}" for k in MARGIN_KEYS if getattr(self, k) > 0]
        return ", ".join(parts) if parts else "none"


def family_of_part(part: str) -> str:
    """``xc7`` for 7-series/Zynq-7000 parts, ``xcup`` for the UltraScale+ ones (xczu*, xck26, ...)."""
    return "xc7" if part.lower().startswith("xc7") else "xcup"


def derived_margin(points: Iterable[SynthPoint]) -> Margin:
    """Per resource, the largest shortfall of ``points`` rounded up to a whole percent (0 without a shortfall)."""
    worst = dict.fromkeys(MARGIN_KEYS, 0.0)
    for p in points:
        if p.resource in worst:
            worst[p.resource] = max(worst[p.resource], p.shortfall)
    return Margin(**{k: math.ceil(round(v * 100, 6)) / 100 for k, v in worst.items()})


def default_margin(part: str = "") -> Margin:
    """The measured default for ``part``'s family: its own points where there are any, else every point."""
    fam = family_of_part(part) if part else None
    own = [p for p in POINTS if p.family == fam]
    return derived_margin(own or POINTS)


def parse_margin(text: str) -> float | dict[str, float]:
    """``--margin`` on the command line: ``0.1`` (every resource) or ``LUT=0.05,BRAM_18K=0.1``."""
    try:
        if "=" not in text:
            return float(text)
        out = {}
        for item in text.split(","):
            k, _, v = item.partition("=")
            out[k.strip()] = float(v)
        return out
    except ValueError:
        raise ConfigError(f"--margin {text!r} is neither a fraction (0.1) nor resource=fraction pairs "
                          "(LUT=0.05,BRAM_18K=0.1).") from None


def resolve_margin(margin: float | Mapping[str, float] | Margin | None, part: str = "") -> Margin:
    """The margin to fold with: the measured default (``None``), one fraction for every resource, or a mapping
    whose resources replace the default's."""
    if isinstance(margin, Margin):
        return margin
    if margin is None:
        return default_margin(part)
    if isinstance(margin, Mapping):
        bad = sorted(set(margin) - set(MARGIN_KEYS))
        if bad:
            raise ConfigError(f"folding margin names {bad[0]!r}; margins are per resource: {', '.join(MARGIN_KEYS)}.")
        base: dict[str, Any] = default_margin(part).as_dict()
        base.update({k: float(v) for k, v in margin.items()})
        return Margin(**base)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise ConfigError(f"folding margin {margin!r} is neither a fraction nor a mapping of resource to fraction.")
    m = float(margin)
    return Margin(**dict.fromkeys(MARGIN_KEYS, m))


def with_margin(budget: Resources, margin: float | Mapping[str, float] | Margin | None, part: str = "") -> Resources:
    """``budget`` with ``margin`` (``resolve_margin``) kept free."""
    return resolve_margin(margin, part).apply(budget)

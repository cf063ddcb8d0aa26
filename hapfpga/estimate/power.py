"""Analytic power estimate: static power of the part + dynamic power per resource at the clock.

THIS IS AN ESTIMATE, not a measurement and not Vivado's report (use ``report_power`` when it exists).
Model: ``P = P_static(part) + f/100MHz * sum_r n_r * p_r`` with per-resource dynamic powers p_r at
100 MHz and the Xilinx Power Estimator's (XPE, UG440) default activity (12.5 % toggle rate,
50 % BRAM enable). The coefficients are round figures of the order XPE gives for 28 nm 7-series
and 16 nm UltraScale+ fabric, logic and routing together; they are not fitted to our own
measurements. Use them to compare designs on the same part, not as absolute numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from ..types import RESOURCE_KEYS, Resources

__all__ = ["POWER_COEFFS", "STATIC_W", "power_w", "dynamic_power_w", "dynamic_powers_w", "static_power_w"]

#: dynamic watts per resource at 100 MHz, XPE-default activity; (7-series, UltraScale+)
POWER_COEFFS: dict[str, tuple[float, float]] = {
    "LUT": (12e-6, 8e-6),  # logic + signals per LUT
    "FF": (1.5e-6, 1.0e-6),
    "BRAM_18K": (1.3e-3, 0.9e-3),
    "URAM": (0.0, 2.0e-3),
    "DSP": (1.0e-3, 0.6e-3),
}

#: PL static power at 25 °C junction, typical process (XPE defaults), by part prefix
STATIC_W: dict[str, float] = {
    "xc7z020": 0.12,
    "xczu3eg": 0.30,
    "xck26": 0.45,
    "xczu7ev": 0.60,
}


def _family(part: str) -> int:
    return 0 if part.lower().startswith("xc7") else 1


@cache
def static_power_w(part: str) -> float:
    """PL static power of ``part`` (0.3 W for parts not in ``STATIC_W``)."""
    p = part.lower()
    for prefix, w in STATIC_W.items():
        if p.startswith(prefix):
            return w
    return 0.3


@cache
def _coeffs(part: str) -> tuple[float, ...]:
    """The part family's coefficients in RESOURCE_KEYS order (LUT, FF, BRAM_18K, URAM, DSP)."""
    fam = _family(part)
    return tuple(POWER_COEFFS[k][fam] for k in RESOURCE_KEYS)


def dynamic_power_w(res: Resources, clock_mhz: float, part: str) -> float:
    """Dynamic power of ``res`` at ``clock_mhz`` (linear in f, XPE default activity)."""
    return dynamic_powers_w((res,), clock_mhz, part)[0]


def dynamic_powers_w(resources: Iterable[Resources], clock_mhz: float, part: str) -> list[float]:
    """``dynamic_power_w`` of each of ``resources``: the sum over RESOURCE_KEYS, left to right."""
    lut, ff, bram, uram, dsp = _coeffs(part)
    scale = clock_mhz / 100.0
    return [scale * (r.LUT * lut + r.FF * ff + r.BRAM_18K * bram + r.URAM * uram + r.DSP * dsp) for r in resources]


def power_w(res: Resources, clock_mhz: float, part: str) -> float:
    """Static + dynamic power estimate of a design using ``res`` (watts)."""
    return static_power_w(part) + dynamic_power_w(res, clock_mhz, part)

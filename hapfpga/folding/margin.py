"""A safety margin on the folding budget: keep a design off the budget's edge by the estimator's measured error.

DSP and BRAM counts are structural and exact against synthesis (``benchmarks/estimator_vs_synth.py``), so they get
no margin. LUTs are estimated: by default the optimiser keeps free the fraction of the LUT budget that our LUT
estimate is off by against open synthesis (the median |relative error| of ``estimator_vs_synth``, see
docs/estimator.md), so a design the optimiser packs to the edge still fits when the estimate is low by that much.
``folding.margin`` in the run config (or ``optimise(margin=...)``) overrides it; 0 turns it off.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from ..types import Resources

__all__ = ["DEFAULT_LUT_MARGIN", "with_margin"]

#: measured: median |ours - Yosys| / Yosys LUT over 112 estimator_vs_synth configurations, 0.158 (docs/estimator.md)
DEFAULT_LUT_MARGIN = 0.16


def with_margin(budget: Resources, margin: float | None) -> Resources:
    """``budget`` with ``margin`` (a fraction; ``None``: the measured default) of its LUTs kept free."""
    m = DEFAULT_LUT_MARGIN if margin is None else float(margin)
    if not 0.0 <= m < 1.0:
        raise ConfigError(f"folding margin {m} is not a fraction in [0, 1); use e.g. 0.1 to keep 10% of LUTs free.")
    return replace(budget, LUT=budget.LUT * (1.0 - m))

"""Hardware-aware allocation of channels: how many channels each layer keeps (pure; the searches get callables).

One import for the searches and their values: :mod:`.results` (``HwPoint``, ``Step``, ``SearchResult``,
``pareto_front``), :mod:`.greedy` (NetAdapt-style greedy search, backtracking, the J objective) and :mod:`.nsga2`
(Optuna's NSGA-II). The hardware side is a callable ``hw(counts) -> HwPoint``
(:class:`hapfpga.pruning.predictor.HwPredictor`: scaled FINN layer specs + the folding optimiser, no FINN run
per candidate).
"""

from __future__ import annotations

from .greedy import backtrack, fps_per_sensitivity, greedy_search, j_objective
from .nsga2 import default_storage, nsga2_search, nsga2_study, trial_objective
from .results import BatchAccuracy, BatchPredictor, HwPoint, SearchResult, Step, pareto_front

__all__ = [
    "HwPoint",
    "Step",
    "SearchResult",
    "BatchPredictor",
    "BatchAccuracy",
    "greedy_search",
    "backtrack",
    "j_objective",
    "fps_per_sensitivity",
    "nsga2_search",
    "nsga2_study",
    "trial_objective",
    "pareto_front",
    "default_storage",
]

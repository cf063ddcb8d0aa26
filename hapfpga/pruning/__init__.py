"""Hardware-aware structured pruning co-optimised with folding.

Pure core: :mod:`.config` (the ``pruning:`` section), :mod:`.plan` (channel counts, fold-aware rounding,
scaling FINN layer specs), :mod:`.bits`, :mod:`.results` (``HwPoint``, ``Step``, ``SearchResult``,
``SearchOutcome``, ``UniformPick``), :mod:`.greedy`, :mod:`.nsga2` (all Optuna code), :mod:`.search` (one import for both),
:mod:`.predictor` (``HwPredictor`` over a ``PredictorSpec``, ``HwTarget``), :mod:`.parallel`, :mod:`.reporting`
(``PruningReport``). Torch/FINN adapters (lazy heavy imports): :mod:`.hwmodel` (the predictor's FINN side),
:mod:`.apply`, :mod:`.importance`, :mod:`.sensitivity`, :mod:`.sparsify`, :mod:`.unstructured`, :mod:`.mixed`,
:mod:`.workers` (the multi-machine search's publish/join); the ``hapfpga run`` / ``hapfpga prune`` stage: :mod:`.stage`.
``docs/architecture.md`` (``## Pruning package``) draws the values between them.
"""

from __future__ import annotations

from typing import Any

from .predictor import HwTarget

__all__ = ["run_pruning_stage", "HwTarget"]


def run_pruning_stage(*args: Any, **kwargs: Any) -> Any:
    """``hapfpga run``'s pruning stage (see :func:`hapfpga.pruning.stage.run_pruning_stage`); torch loads lazily."""
    from .stage import run_pruning_stage as _run

    return _run(*args, **kwargs)

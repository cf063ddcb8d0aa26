"""Hardware-aware structured pruning co-optimised with folding.

Pure core: :mod:`.plan` (channel counts, fold-aware rounding, scaling FINN layer specs), :mod:`.config`.
Torch adapters (lazy heavy imports): :mod:`.apply`, :mod:`.importance`, :mod:`.sensitivity`,
:mod:`.unstructured`; search loops: :mod:`.search`; the ``hapfpga run`` / ``hapfpga prune`` stage: :mod:`.stage`.
"""

from __future__ import annotations

from typing import Any

from .predictor import HwTarget

__all__ = ["run_pruning_stage", "HwTarget"]


def run_pruning_stage(*args: Any, **kwargs: Any) -> Any:
    """``hapfpga run``'s pruning stage (see :func:`hapfpga.pruning.stage.run_pruning_stage`); torch loads lazily."""
    from .stage import run_pruning_stage as _run

    return _run(*args, **kwargs)

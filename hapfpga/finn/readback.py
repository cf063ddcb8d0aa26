"""The folding FINN chose, read back from FINN's own output.

With ``folding.mode: finn`` (and ``hapfpga build --target-fps``) FINN's ``SetFolding`` picks PE/SIMD and the
implementation knobs. ``finn_apply_folding`` runs finn-plus's own ``step_target_fps_parallelization`` (which
applies ``SetFolding`` and writes ``report/auto_folding_config.json``) and ``step_apply_folding_config`` on the
specialised HW model and reads the folded model back; the build then applies FINN's own
``auto_folding_config.json``, so the report, our estimator's comparison and the RTL simulation all describe
the design FINN built. A user's folding file goes the same way (FINN applies it, we read back what it did). ``applied_folding`` reads the folding any FINN
HW model holds (e.g. a build's ``intermediate_models/step_apply_folding_config.onnx``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..boards import BoardSpec
from ..types import FoldingPlan

__all__ = ["finn_apply_folding", "applied_folding", "plan_of_layers"]


def plan_of_layers(layers: Sequence[Any]) -> FoldingPlan:
    """The folding the layers hold (``LayerSpec.default_folding`` is what their FINN nodes carry)."""
    return FoldingPlan(tuple((layer.name, layer.default_folding) for layer in layers))


def applied_folding(model_file: str | Path) -> FoldingPlan:
    """The folding of every HW node of a FINN model file (a dataflow parent's partition is followed)."""
    from .graph import load_layers

    return plan_of_layers(load_layers(model_file))


def finn_apply_folding(
    specialised_model: str | Path,
    out_dir: str | Path,
    board: BoardSpec,
    clock_mhz: float,
    *,
    target_fps: float | None = None,
    folding_file: str | Path | None = None,
) -> tuple[list[Any], Path | None]:
    """Fold ``specialised_model`` (after step_specialize_layers) as a FINN build would, and read it back.

    Runs finn-plus's ``step_target_fps_parallelization`` (SetFolding for ``target_fps``, with the build
    config's defaults for ``mvau_wwidth_max`` and two-pass relaxation) and ``step_apply_folding_config``
    (``folding_file``) with the board and clock a build uses. Returns the folded model's layers (their
    ``default_folding`` is what FINN applied) and FINN's ``auto_folding_config.json`` when SetFolding ran.
    """
    from .build import FOLD_AND_ESTIMATE_STEPS, run_finn_steps
    from .graph import load_layers

    fold_steps = FOLD_AND_ESTIMATE_STEPS[: FOLD_AND_ESTIMATE_STEPS.index("step_apply_folding_config") + 1]
    res = run_finn_steps(
        specialised_model, out_dir, board=board.finn_board, clock_mhz=clock_mhz,
        target_fps=None if target_fps is None else int(target_fps), folding_config_file=folding_file,
        steps=fold_steps,
    )
    auto = res.output_dir / "report" / "auto_folding_config.json"
    return load_layers(res.step_models["step_apply_folding_config"]), auto if auto.is_file() else None

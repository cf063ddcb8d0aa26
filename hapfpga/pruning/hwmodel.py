"""The model side of the hardware predictor: FINN's conversion of the unpruned model, once, as a ``PredictorSpec``.

Torch/FINN adapter (lazy imports): the QONNX export, FINN's layer specs and accumulator contributions of the
unpruned model, and the map from its conv/linear layers to channel groups. The pure predictor that scales and
folds those specs per candidate is :mod:`hapfpga.pruning.predictor`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..folding.options import FoldingOptions
from .predictor import HwPoint, HwPredictor, PredictorSpec, default_cache_dir

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["export_for_finn", "build_predictor"]


def export_for_finn(model: torch.nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """QONNX export for FINN (``hapfpga.export.export_qonnx``), creating the parent directory."""
    from ..export import export_qonnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(export_qonnx(model, tuple(input_shape), path))


def build_predictor(
    model: torch.nn.Module,
    graph: Any,
    input_shape: tuple[int, ...],
    board: Any,
    work_dir: Path,
    options: FoldingOptions,
    *,
    workers: int = 0,
    base_bits: Mapping[str, int] | None = None,
    variants: str = "auto",
) -> tuple[HwPredictor, list[Any], Path]:
    """``HwPredictor`` for this model (FINN conversion of the unpruned model once, then scaling); returns it, the
    unpruned model's FINN layer specs and the specialised model they were read from.

    ``options`` is how each candidate is folded: the fold stage's ``FoldingOptions`` through
    ``for_predictor(pruning.folding_time_limit, pruning.predictor_space)``. ``space="full"`` is the fold stage's
    design space (its knobs and width converters, the layers FINN makes with ``open_simulatable``), so the FPS the
    search targets is the FPS the fold stage reaches; ``"fast"`` (PE/SIMD only) is a quicker, conservative
    approximation. ``options.margin`` must be the fold stage's ``folding.margin`` (``None``: its measured
    default): the LUTs kept free bind most pruned designs, so a predictor at another margin than the fold's is off
    by 15-35% (``0`` for a fold at the board's whole budget, as ``benchmarks/pruning_vs_finn.py``'s). Each solve
    only needs the fastest max cycles (``fps_only``) and is proven optimal (``predictor._solve_proven``); pruned
    MVAUs get the narrower accumulators FINN gives them (``plan.pruned_acc_dt``, from the unpruned weights).
    Answers are cached on disk by a hash of the scaled specs (``predictor.default_cache_dir``:
    ``~/.cache/hapfpga/predictor``, ``HAPFPGA_PREDICTOR_CACHE`` another folder or ``off``).

    ``variants`` is the graph choice of the fold that will be made (``folding.variants``, ``stages/variant.py``;
    ``embedded`` where open tools take the design): under ``auto`` the spec also carries the mixed RTL/HLS-MVAU
    graph (FINN's conversion with standalone thresholds, ``work_dir/finn_rtl``) as its ``variant`` and a
    prediction is the faster fold, as the fold stage keeps it; under ``mixed`` only that graph is folded. Without
    an RTL MVAU in that graph, or where FINN cannot convert it, ``auto`` folds the embedded graph alone, as the
    fold stage does; and also where the fold keeps the embedded graph for the unpruned model (:func:`_gate`:
    a pruned candidate's mixed fold can then still be faster, which the fold stage finds and the prediction
    misses: never an over-prediction).
    """
    from ..finn.graph import accumulator_contributions, hw_layers_from_qonnx
    from .apply import hw_layer_shapes

    onnx = export_for_finn(model, input_shape, work_dir / "unpruned_for_hw.qonnx.onnx")
    layers, spec_path = hw_layers_from_qonnx(onnx, work_dir / "finn", board, options.clock_mhz,
                                             rtl=options.open_simulatable)
    order = graph.layers_in_order()
    mods = dict(model.named_modules())
    before = {n: (mods[n].out_features if hasattr(mods[n], "out_features") else mods[n].out_channels) for n in order}
    spec = PredictorSpec(
        layers=tuple(layers), order=tuple(order), before=before, board=board, options=options,
        layer_to_group={p: g.name for g in graph.groups.values() for p in g.producers},
        model_layers=tuple(hw_layer_shapes(model, order)), base_bits={k: int(v) for k, v in (base_bits or {}).items()},
        acc_contributions=dict(accumulator_contributions(spec_path)), dag_bits=_is_dag(model),
    )
    spec, unpruned = _graphs(spec, onnx, work_dir, variants)
    hw = HwPredictor(spec, workers=workers, cache_dir=default_cache_dir())
    if unpruned is not None:
        hw.remember({}, unpruned)
    return hw, layers, spec_path


def _graphs(spec: PredictorSpec, onnx: Path, work_dir: Path, variants: str) -> tuple[PredictorSpec, HwPoint | None]:
    """(the spec the predictor folds for ``variants``, its unpruned fold where :func:`_gate` made it, else None)."""
    if variants == "embedded" or spec.options.open_simulatable:
        return spec, None
    mixed = _mixed_variant(onnx, work_dir, spec.board, spec, spec.options, strict=variants == "mixed")
    if mixed is None:
        return spec, None
    return (mixed, None) if variants == "mixed" else _gate(spec, mixed)


def _gate(spec: PredictorSpec, mixed: PredictorSpec) -> tuple[PredictorSpec, HwPoint]:
    """(the spec the predictor folds, its prediction of the unpruned model). The spec carries the mixed graph only
    where the fold stage keeps that graph for the unpruned model (``predictor.fold_candidate``'s rule). Folding
    both graphs for every candidate cost ``examples/prune_cnv_digits.yaml`` 449 -> ~770 CPU-s for the same
    trajectory and design (CNV-w2a2 on the Pynq-Z2, where LUTs bind and the mixed graph is never faster). The
    unpruned point is the first thing a search asks: the predictor is handed it, not folded again."""
    from ..folding.optimise import optimise
    from .predictor import candidate_layers, choose_graph, fold_point

    both = replace(spec, variant=mixed)
    layers, variant = candidate_layers(both, {})
    b = fold_point(mixed, variant, optimise)
    chosen = choose_graph(fold_point(spec, layers, optimise), b)
    return (both if chosen is b else spec), chosen


def _mixed_variant(onnx: Path, work_dir: Path, board: Any, spec: PredictorSpec, options: FoldingOptions, *,
                   strict: bool) -> PredictorSpec | None:
    """The mixed graph's spec (``stages.variant._rtl_layers``' conversion, folded with ``impl_knob``; its bits
    knobs followed along FINN's streams, standalone thresholds included), or None where it has no knob."""
    from ..errors import HapError
    from ..finn.graph import accumulator_contributions, hw_layers_from_qonnx
    from ..folding.variants import rtl_mvaus

    try:
        rtl, rtl_path = hw_layers_from_qonnx(onnx, work_dir / "finn_rtl", board, options.clock_mhz, rtl=True,
                                             strict=False)
    except HapError:
        if strict:
            raise
        return None
    if not rtl_mvaus(rtl):
        return None
    return replace(spec, layers=tuple(rtl), options=replace(options, impl_knob=True), dag_bits=True,
                   acc_contributions=dict(accumulator_contributions(rtl_path)))


def _is_dag(model: torch.nn.Module) -> bool:
    """Whether the model's bits knobs are activation quantisers on a DAG (``bits.DAG_BITS_MODELS``)."""
    from .bits import is_dag_bits_model

    spec = getattr(model, "hap_spec", None)
    return spec is not None and is_dag_bits_model(spec["name"])

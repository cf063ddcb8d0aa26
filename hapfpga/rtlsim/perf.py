"""Measured performance: every layer simulated alone (one build), and the stitched design end to end.

Per layer, the isolated design (``build_design(isolate=True)``) feeds each node the tensors FINN's Python
execution computes at its inputs, with outputs never back-pressured, so the measured steady-state cycles per
frame are the layer's own initiation interval — what FINN's ``get_exp_cycles`` and our estimator predict
(FINN-R, Blott et al. 2018, §4: a layer's cycles per frame are its folding factors times its output
pixels). The same run checks each node's outputs bit-exactly against FINN's Python execution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VerificationError
from . import backend
from .design import build_design
from .sim import (
    _pipeline_cycles,
    expected_words,
    frame_timing,
    reference,
    run_design,
    to_hw_order,
    unpack_stream,
)

__all__ = ["LayerMeasurement", "measure_layers", "estimated_cycles", "matches_estimate"]

#: A layer's measured cycles match an estimate when within 5% (issue 7) or within this many cycles: tiny
#: layers (a 2x2 SWG of 20 cycles) carry a per-frame start-up in FINN's formula that overlaps with the
#: previous frame in a steady stream, a few cycles that are a large fraction of nothing.
ABS_TOLERANCE_CYCLES = 8


@dataclass(frozen=True)
class LayerMeasurement:
    """One layer simulated alone."""

    name: str
    op_type: str
    cycles_per_frame: float
    latency_cycles: int
    exact: bool
    max_abs_diff: float
    finn_cycles: int | None  # FINN's get_exp_cycles for the node
    estimate_cycles: int | None  # hapfpga.estimate for the node (None where it does not model it)

    def as_dict(self) -> dict[str, Any]:
        return {
            "op_type": self.op_type,
            "cycles_per_frame": self.cycles_per_frame,
            "latency_cycles": self.latency_cycles,
            "exact": self.exact,
            "max_abs_diff": self.max_abs_diff,
            "finn_cycles": self.finn_cycles,
            "estimate_cycles": self.estimate_cycles,
        }


def matches_estimate(measured: float, estimate: int, rel: float = 0.05) -> bool:
    """``measured`` within ``rel`` of ``estimate`` or within ``ABS_TOLERANCE_CYCLES`` cycles of it.

    A layer without an estimate is not a match: callers list those apart (``not_estimated``)."""
    if estimate is None:
        raise TypeError("matches_estimate needs an estimate; list layers without one apart")
    return abs(measured - estimate) <= max(rel * estimate, ABS_TOLERANCE_CYCLES)


def estimated_cycles(model: Any) -> dict[str, int]:
    """hapfpga's estimator (``hapfpga.estimate``) cycles per frame for every layer it models.

    ``model``: a FINN HW model file or ``ModelWrapper`` (the simulated one, with its width converters, or
    the folded one before FINN inserted them). A graph the estimator cannot read gives no estimates.
    """
    from ..errors import HapError
    from ..estimate import estimate_layer
    from ..finn.graph import layers_from_model, load_layers

    try:
        layers = load_layers(model) if isinstance(model, str | Path) else layers_from_model(model)
    except HapError:
        return {}
    out: dict[str, int] = {}
    for layer in layers:
        try:
            out[layer.name] = int(estimate_layer(layer).cycles)
        except HapError:
            continue
    return out


def measure_layers(
    model: Any,
    x: np.ndarray,
    *,
    model_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
    nodes: list[str] | None = None,
    timeout_s: float | None = None,
) -> list[LayerMeasurement]:
    """Simulate every simulatable node of ``model`` alone on ``x`` (N >= 2 frames) in one build."""
    from finn.util.basic import getHWCustomOp

    from ..finn.shim import ensure_finn

    ensure_finn()
    design = build_design(model, isolate=True, only=nodes)
    binary = backend.build(
        design.sources, design.top, n_in=len(design.inputs), n_out=len(design.outputs), cache_dir=cache_dir
    )
    tensors = sorted({s.tensor for s in design.inputs} | {s.tensor for s in design.outputs})
    ref = reference(model, x, tensors)
    n = int(x.shape[0])
    expect = expected_words(design, n)
    res = run_design(
        binary,
        design,
        ref,
        n,
        timeout_s=timeout_s,
        idle_limit=100_000 + 2 * _pipeline_cycles(model, design.nodes),
    )
    if res.rc != 0:
        raise VerificationError(
            f"an isolated layer stopped producing output after {res.cycles} cycles "
            f"({[len(w) for w in res.outputs]} of {expect} words); a layer's stream widths or data are wrong."
        )
    est = estimated_cycles(model)  # width converters included (FINN inserted them after folding)
    if model_path is not None:
        est.update(estimated_cycles(model_path))
    in_cyc = {s.node: res.in_cycles[k] for k, s in enumerate(design.inputs)}
    out: list[LayerMeasurement] = []
    for k, s in enumerate(design.outputs):
        node = model.get_node_from_name(s.node)
        got = unpack_stream(res.outputs[k], s, n)
        want = ref[s.tensor]
        if s.pool_k2:  # a depthwise SWG streams channel folds outer: compare in that order
            want = to_hw_order(want, s.pool_k2, s.folded_shape[-1])
        want = want.reshape(got.shape)
        diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        lat, cpf = frame_timing(res.out_cycles[k], in_cyc.get(s.node, []), n)
        try:
            finn_cycles = int(getHWCustomOp(node).get_exp_cycles())
        except Exception:
            finn_cycles = None
        out.append(
            LayerMeasurement(
                s.node,
                node.op_type,
                cpf,
                lat,
                bool(np.array_equal(got, want)),
                diff,
                finn_cycles,
                est.get(s.node),
            )
        )
    return out

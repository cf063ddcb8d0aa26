"""Simulate a prepared FINN dataflow partition with Verilator and compare with FINN's Python execution.

Inputs and outputs are packed and unpacked with FINN's own helpers (``finn.util.data_packing``:
``npy_to_rtlsim_input`` / ``rtlsim_output_to_npy``), exactly as finn-plus's XSI path does. The reference
is FINN's Python execution of the same graph: every ``*_rtl``/``*_hls`` node executed by the ``execute_node``
of its generic FINN op (``MVAU``, ``Thresholding``, ``Pool``, ...), which is what FINN's
``exec_mode="cppsim"`` does for RTL layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VerificationError
from . import backend
from .design import Design, build_design

__all__ = [
    "SimResult",
    "simulate",
    "python_model",
    "run_python",
    "frame_timing",
    "run_design",
    "expected_words",
]


@dataclass
class SimResult:
    """Outputs and measured timing of one simulation of N frames."""

    design: Design
    outputs: dict[str, np.ndarray]  # graph outputs after the software tail, shape (N, ...)
    segment_inputs: dict[str, np.ndarray]
    segment_outputs: dict[str, np.ndarray]  # simulated tensors at the segment's output, (N, ...)
    frames: int
    cycles: int  # total simulated cycles after reset
    latency_cycles: int  # first input word accepted -> last output word of frame 0
    cycles_per_frame: float  # steady state: spacing of the last output word of consecutive frames
    build_seconds: float
    cached_build: bool
    run_seconds: float
    monitors: dict[str, int] = field(default_factory=dict)  # FIFO node -> max fill (gauge builds)

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.run_seconds if self.run_seconds > 0 else float("nan")


def python_model(model: Any) -> Any:
    """A copy of ``model`` whose specialised nodes (``X_rtl``/``X_hls``) are FINN's generic ``X`` ops."""
    from finn.custom_op.fpgadataflow import custom_op
    from qonnx.core.modelwrapper import ModelWrapper

    m = ModelWrapper(model.model.__deepcopy__())
    for n in m.graph.node:
        for suffix in ("_rtl", "_hls"):
            if n.op_type.endswith(suffix) and n.op_type[: -len(suffix)] in custom_op:
                n.op_type = n.op_type[: -len(suffix)]
                n.domain = "finn.custom_op.fpgadataflow"
    return m


def run_python(model: Any, nodes: list[str] | None, context: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute ``nodes`` (names, graph order; None = all) of a python model on one sample's ``context``."""
    from qonnx.core.onnx_exec import execute_node
    from qonnx.util.basic import get_preferred_onnx_opset

    ctx = dict(context)
    for init in model.graph.initializer:
        if init.name not in ctx:
            ctx[init.name] = model.get_initializer(init.name)
    want = None if nodes is None else set(nodes)
    opset = get_preferred_onnx_opset()
    for n in model.graph.node:
        if want is not None and n.name not in want:
            continue
        for o in n.output:
            shape = model.get_tensor_shape(o)
            if o not in ctx and shape is not None:
                ctx[o] = np.zeros(shape, dtype=np.float32)
        execute_node(n, ctx, model.graph, opset)
    return ctx


def _pipeline_cycles(model: Any, nodes: list[str]) -> int:
    """Sum of FINN's expected cycles per frame over ``nodes`` (an upper bound of a frame's fill latency)."""
    from finn.util.basic import getHWCustomOp

    total = 0
    for name in nodes:
        try:
            total += int(getHWCustomOp(model.get_node_from_name(name)).get_exp_cycles())
        except Exception:
            continue
    return total


def frame_timing(out_cycles: list[int], in_cycles: list[int], frames: int) -> tuple[int, float]:
    """(latency of frame 0, steady-state cycles per frame) from accepted-word cycles of one stream pair."""
    wpf = len(out_cycles) // frames
    ends = [out_cycles[(i + 1) * wpf - 1] for i in range(frames)]
    start = in_cycles[0] if in_cycles else 0
    latency = ends[0] - start + 1
    cpf = (ends[-1] - ends[0]) / (frames - 1) if frames > 1 else float(latency)
    return latency, cpf


def to_hw_order(x: np.ndarray, k2: int, pe: int) -> np.ndarray:
    """FINN's Python im2col layout ``[..., k2, C]`` -> the depthwise hardware stream order (channel fold
    outer, kernel position inner, PE lanes innermost; finn-hlslib ``Pool_batch``, depthwise SWG)."""
    n, lead = x.shape[0], x.shape[1:-1]
    cf = x.shape[-1] // (k2 * pe)
    y = np.swapaxes(x.reshape((n, *lead, k2, cf, pe)), -3, -2)
    return y.reshape(x.shape)


def pack_stream(x: np.ndarray, spec: Any) -> list[int]:
    from finn.util.data_packing import npy_to_rtlsim_input

    n = x.shape[0]
    if spec.pool_k2:
        x = to_hw_order(x, spec.pool_k2, spec.folded_shape[-1])
    folded = x.reshape((n, *spec.folded_shape[1:])).astype(np.float32)
    return npy_to_rtlsim_input(folded, spec.dtype, spec.bits)


def unpack_stream(words: list[int], spec: Any, n: int) -> np.ndarray:
    from finn.util.data_packing import rtlsim_output_to_npy

    arr = rtlsim_output_to_npy(
        words, None, spec.dtype, (n, *spec.folded_shape[1:]), spec.bits, spec.dtype.bitwidth()
    )
    return np.asarray(arr, dtype=np.float32).reshape((n, *spec.normal_shape[1:]))


def expected_words(design: Design, n: int) -> list[int]:
    """Output words per segment output stream for ``n`` frames."""
    return [n * int(np.prod(s.folded_shape[:-1])) for s in design.outputs]


def run_design(
    binary: Any, design: Design, seg_in: dict[str, np.ndarray], n: int, **run_kw: Any
) -> backend.RunResult:
    """Pack the segment inputs (tensor -> (N, ...) array) with FINN's helpers and run ``binary`` on them."""
    words = [pack_stream(seg_in[s.tensor], s) for s in design.inputs]
    return backend.run(binary, words, expected_words(design, n), [s.width for s in design.inputs], **run_kw)


def _head_contexts(model: Any, pymodel: Any, design: Design, x: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Per sample, the execution context after the software head (the graph input alone if none)."""
    gin = model.graph.input[0].name
    ctxs = []
    for i in range(int(x.shape[0])):
        ctx = {gin: x[i : i + 1]}
        if design.head:
            ctx = run_python(pymodel, design.head, ctx)
        ctxs.append(ctx)
    return ctxs


def _check_finished(res: Any, expect: list[int]) -> None:
    """A simulation that deadlocked or hit its cycle limit is a verification failure (one sentence)."""
    if res.rc != 0:
        got = [len(w) for w in res.outputs]
        why = "stopped making progress (deadlock)" if res.rc == 3 else "hit the cycle limit"
        raise VerificationError(
            f"the RTL simulation {why} after {res.cycles} cycles with {got} of {expect} output words; "
            "check FIFO depths and the design's stream widths."
        )


def _tail_outputs(
    model: Any,
    pymodel: Any,
    design: Design,
    ctxs: list[dict[str, np.ndarray]],
    seg_out: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Graph outputs (N, ...): the segment outputs per sample, through the software tail (if any)."""
    n = len(ctxs)
    outputs: dict[str, np.ndarray] = {}
    gouts = [o.name for o in model.graph.output]
    per_sample = []
    for i in range(n):
        ctx = dict(ctxs[i])
        for t, arr in seg_out.items():
            ctx[t] = arr[i : i + 1]
        if design.tail:
            ctx = run_python(pymodel, design.tail, ctx)
        per_sample.append(ctx)
    for g in gouts:
        outputs[g] = np.concatenate([c[g] for c in per_sample])
    return outputs


def simulate(
    model: Any,
    x: np.ndarray,
    *,
    cache_dir: str | Path | None = None,
    stall_in: float = 0.0,
    stall_out: float = 0.0,
    seed: int = 1,
    gauges: bool = False,
    only: list[str] | None = None,
    idle_limit: int | None = None,
    max_cycles: int = 10**10,
    timeout_s: float | None = None,
    work_dir: str | Path | None = None,
) -> SimResult:
    """Simulate ``x`` (N samples with the graph input's shape minus the batch dim) through ``model``.

    ``model``: a prepared FINN ``ModelWrapper`` (``hapfpga.rtlsim.prepare``). The software head (if any)
    computes the segment inputs, Verilator simulates the segment with all N frames streamed back to back,
    the software tail turns the segment outputs into graph outputs. ``gauges=True`` builds with finn-rtllib's
    ``fifo_gauge`` FIFOs (``FINN_SIMULATION``) and reports each FIFO's maximum fill. ``only``: simulate just
    these nodes (per-layer timing), the rest in software.
    """
    from ..finn.shim import ensure_finn

    ensure_finn()
    design = build_design(model, gauges=gauges, only=only)
    defines = ("FINN_SIMULATION",) if gauges else ()
    binary = backend.build(
        design.sources,
        design.top,
        n_in=len(design.inputs),
        n_out=len(design.outputs),
        monitors=tuple(design.monitors),
        defines=defines,
        cache_dir=cache_dir,
    )
    pymodel = python_model(model)
    n = int(x.shape[0])
    x = np.asarray(x, dtype=np.float32).reshape((n, *model.get_tensor_shape(model.graph.input[0].name)[1:]))
    if idle_limit is None:  # the first output may take the whole pipeline's fill time with the input done
        idle_limit = 100_000 + 2 * _pipeline_cycles(model, design.nodes)
    ctxs = _head_contexts(model, pymodel, design, x)
    seg_in = {s.tensor: np.concatenate([c[s.tensor] for c in ctxs]) for s in design.inputs}
    expect = expected_words(design, n)
    res = run_design(
        binary,
        design,
        seg_in,
        n,
        stall_in=stall_in,
        stall_out=stall_out,
        seed=seed,
        max_cycles=max_cycles,
        idle_limit=idle_limit,
        timeout_s=timeout_s,
        work_dir=work_dir,
    )
    _check_finished(res, expect)
    seg_out = {s.tensor: unpack_stream(w, s, n) for s, w in zip(design.outputs, res.outputs, strict=True)}
    outputs = _tail_outputs(model, pymodel, design, ctxs, seg_out)
    latency, cpf = frame_timing(res.out_cycles[0], res.in_cycles[0] if res.in_cycles else [], n)
    return SimResult(
        design=design,
        outputs=outputs,
        segment_inputs=seg_in,
        segment_outputs=seg_out,
        frames=n,
        cycles=res.cycles,
        latency_cycles=latency,
        cycles_per_frame=cpf,
        build_seconds=binary.build_seconds,
        cached_build=binary.cached,
        run_seconds=res.wall_seconds,
        monitors={design.monitors[k]: v for k, v in res.monitors.items()},
    )


def reference(model: Any, x: np.ndarray, tensors: list[str] | None = None) -> dict[str, np.ndarray]:
    """FINN's Python execution of ``model`` on N samples: graph outputs (and ``tensors``), shape (N, ...)."""
    pymodel = python_model(model)
    gin = model.graph.input[0].name
    gshape = model.get_tensor_shape(gin)
    n = int(x.shape[0])
    x = np.asarray(x, dtype=np.float32).reshape((n, *gshape[1:]))
    want = [o.name for o in model.graph.output] + list(tensors or [])
    ctxs = [run_python(pymodel, None, {gin: x[i : i + 1]}) for i in range(n)]
    return {t: np.concatenate([c[t] for c in ctxs]) for t in want}

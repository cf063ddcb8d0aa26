"""Batched execution of a QONNX/FINN graph for verification: many samples per node call, same per-sample values.

:class:`hapfpga.verify.GraphRunner` executes a graph one sample at a time, as FINN's HW nodes expect (their
attributes carry batch size 1 and their Python ``execute_node`` reshapes to it). Doing that for every node costs
~0.3 CPU-s per CNV image, mostly in per-call overhead of small nodes (a MaxPoolNHWC builds an ONNX model and an
onnxruntime session on every call). Here each node of the graph runs in one of these modes, decided once per
graph from the node and the declared shapes (``batch_mode``):

- ``ort``: a standard ONNX op whose result for each sample depends only on that sample, with the batch on axis 0
  (``_STD_PER_SAMPLE`` and the axis rules of ``_std_batchable``): one onnxruntime session whose dynamic tensors
  have a symbolic first dimension, run on the whole batch;
- ``reshape``: a ``Reshape`` by a constant shape: ONNX's reshape of one sample's shape by that constant (0 and
  -1 resolved as ONNX does), applied to each sample, i.e. ``x.reshape((N,) + per_sample[1:])``;
- ``custom``: a QONNX or FINN op whose Python execution reads every shape from its input arrays and computes each
  sample on its own, given the whole batch: MultiThreshold, Quant, BipolarQuant, Trunc (``_CUSTOM_BATCHED``),
  finn-plus's ElementwiseBinary ops (ElementwiseAdd, ElementwiseMul, ...) and Thresholding (:func:`_hw_mode`);
- ``custom_out``: FINN's Pool: its own execution on the batch, the output's context entry (whose shape it
  reshapes its result to) batch-sized;
- ``duplicate``: FINN's DuplicateStreams (the input in its normal shape on every output), sample axis first;
- ``maxpool_nhwc``: QONNX's MaxPoolNHWC (which builds a model per call) as the same onnxruntime MaxPool between
  the same transposes, with a symbolic batch, built once;
- ``im2col`` / ``swg``: QONNX's Im2Col and FINN's ConvolutionInputGenerator (an Im2Col without padding): the
  same gather indices as qonnx's ``im2col_indices_nchw``, with the sample axis kept apart (qonnx's own Im2Col
  mixes the samples of a batch);
- ``per_sample``: anything else (the other FINN HW ops: MVAU, VVAU, FMPadding, StreamingMaxPool, LabelSelect,
  AddStreams, ChannelwiseOp, StreamingDataWidthConverter, ...; their Python execution reshapes to the batch-1
  shapes of their attributes; MVAU on the batch measured slower): the node's own execution, exactly as in the
  per-sample path, once per sample of the batch, outputs stacked.

Accumulating standard ops (Conv, Gemm, MatMul) round differently in float32 with another batch size (onnxruntime's
GEMM blocks by it); they run on the whole batch only where every partial sum is provably an exact integer in
float32 (integer operands, max|x|·max Σ|W| + |bias| ≤ 2^24: the integer graphs), else sample by sample through
the same session.

A graph runs batched only where every tensor computed from the input is declared with a batch dimension of 1
first (so axis 0 is the sample axis throughout); otherwise :func:`plan_batch` says why and the caller runs it one
sample at a time. tests/ml/test_verify_batched.py checks batched == per-sample on every tensor, bit for bit, of
real CNV/TFC/ResNet-8 graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BatchStep", "BatchExecutor", "plan_batch", "batch_mode"]

#: standard ops computed per sample along axis 0 (elementwise with broadcasting constants, or convolution/pooling/
#: matmul on an N-first tensor); ops with an axis attribute are further checked by :func:`_std_batchable`
_STD_PER_SAMPLE = frozenset({
    "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Ceil", "Clip", "Concat", "Conv", "ConvTranspose",
    "Div", "Elu", "Equal", "Exp", "Flatten", "Floor", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Greater",
    "HardSigmoid", "Identity", "LeakyRelu", "Less", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Min", "Mul",
    "Neg", "PRelu", "Relu", "Round", "Sigmoid", "Sign", "Softmax", "Sqrt", "Sub", "Tanh", "Transpose",
    "Upsample", "Where",
})
#: QONNX ops whose Python execution works on any batch (shapes read from the input array, per-sample arithmetic)
_CUSTOM_BATCHED = frozenset({"MultiThreshold", "Quant", "BipolarQuant", "Trunc"})
#: accumulating ops: float32 rounding depends on the kernel's blocking, which depends on the batch size
_FLOAT_ACC = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_FINN_HW = "finn.custom_op.fpgadataflow"
_QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
_AXIS_OPS = {"Concat": 1, "Softmax": -1, "LogSoftmax": -1, "Flatten": 1}  # ONNX default axis
_MAX_ELEMS = 2 ** 24  # per dynamic tensor of a chunk (64 MiB of float32; x thresholds): bounds memory


@dataclass(frozen=True)
class BatchStep:
    """One node of the graph's plan and how it runs on a batch."""

    index: int
    node: Any
    how: str  # "ort" / "custom" / "unknown" as GraphRunner decides (the per-sample execution)
    mode: str  # "ort", "reshape", "custom", "maxpool_nhwc", "per_sample"


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _std_batchable(node: Any, rank: int) -> bool:
    """Whether a standard op in ``_STD_PER_SAMPLE`` keeps axis 0 as the sample axis."""
    if node.op_type == "Transpose":
        perm = list(_attr(node, "perm", range(rank)[::-1]))
        return bool(perm) and perm[0] == 0
    if node.op_type in _AXIS_OPS:
        axis = int(_attr(node, "axis", _AXIS_OPS[node.op_type]))
        return (axis % max(rank, 1)) != 0 if node.op_type != "Flatten" else axis >= 1
    return True


def batch_mode(model: Any, node: Any, how: str, dynamic: set[str]) -> str:
    """How ``node`` runs on a batch (see the module docstring)."""
    shape = model.get_tensor_shape(node.input[0]) if node.input and node.input[0] in dynamic else None
    rank = len(shape) if shape is not None else 0
    if how == "ort" and node.op_type == "Reshape":
        return "reshape" if len(node.input) > 1 and node.input[1] not in dynamic else "per_sample"
    if node.op_type in _FLOAT_ACC and (any(t in dynamic for t in node.input[1:]) or _attr(node, "transA", 0)):
        return "per_sample"  # the sample axis must be the first operand's first axis
    if how == "ort" and node.op_type in _STD_PER_SAMPLE and _std_batchable(node, rank):
        return "ort"
    if how == "custom" and node.domain in _QONNX_DOMAINS:
        if node.op_type in _CUSTOM_BATCHED:
            return "custom"
        if node.op_type == "MaxPoolNHWC":
            return "maxpool_nhwc"
        if node.op_type == "Im2Col":
            return "im2col"
    if how == "custom" and node.domain == _FINN_HW:
        return _hw_mode(node)
    return "per_sample"


def _hw_mode(node: Any) -> str:
    """How a FINN HW node runs on a batch: by finn-plus's own Python execution where it is batch-generic
    (ElementwiseBinary ops, Thresholding: ``custom``; Pool reads its output shape from the context: ``custom_out``),
    by the same arithmetic with the sample axis kept apart (DuplicateStreams, ConvolutionInputGenerator),
    else per sample. Only where the class's ``execute_node`` is the one read here (a subclass that overrides it
    runs per sample)."""
    from finn.custom_op.fpgadataflow.convolutioninputgenerator import ConvolutionInputGenerator
    from finn.custom_op.fpgadataflow.duplicatestreams import DuplicateStreams
    from finn.custom_op.fpgadataflow.elementwise_binary import ElementwiseBinaryOperation
    from finn.custom_op.fpgadataflow.pool import Pool
    from finn.custom_op.fpgadataflow.thresholding import Thresholding
    from qonnx.custom_op.registry import getCustomOp

    try:
        op = getCustomOp(node)
    except Exception:  # noqa: BLE001 - not registered: the per-sample path names it
        return "per_sample"
    run = type(op).execute_node
    if run in (ElementwiseBinaryOperation.execute_node, Thresholding.execute_node):
        return "custom"
    if run is Pool.execute_node:
        return "custom_out"
    if run is ConvolutionInputGenerator.execute_node:
        return "swg"
    if run is DuplicateStreams.execute_node and op.get_normal_input_shape()[0] == 1:
        return "duplicate"
    # MVAU stays per sample: the same matmul + multithreshold on the whole batch measured 2x slower (0.5 vs 1.0
    # CPU-s for 128 CNV images; the thresholds' N×...×C×T comparison falls out of cache)
    return "per_sample"


def plan_batch(model: Any, plan: list[tuple[int, Any, str]], input_name: str) -> tuple[list[BatchStep] | None, str]:
    """The batch plan of a graph's non-constant nodes, or (None, why it cannot run batched)."""
    dynamic = {input_name}
    steps = []
    for i, node, how in plan:
        if how == "unknown":
            return None, f"node {node.name} ({node.op_type}) has no execution"
        steps.append(BatchStep(i, node, how, batch_mode(model, node, how, dynamic)))
        dynamic.update(o for o in node.output if o)
    for name in sorted(dynamic):
        shape = model.get_tensor_shape(name)
        if shape is None or len(shape) == 0 or shape[0] != 1:
            return None, f"tensor {name} is not declared with a batch dimension of 1 first (shape {shape})"
    return steps, ""


def chunk_size(model: Any, dynamic: list[str], n: int, fan: dict[str, int] | None = None) -> int:
    """Samples per chunk: every dynamic tensor of a chunk, times its ``fan`` (a thresholding's number of thresholds:
    its comparison holds one boolean per value and threshold), stays under ``_MAX_ELEMS`` elements."""
    fan = fan or {}
    largest = max((int(np.prod(model.get_tensor_shape(t))) * fan.get(t, 1) for t in dynamic), default=1)
    return int(max(1, min(n, _MAX_ELEMS // max(largest, 1))))


class BatchExecutor:
    """Runs a graph on a batch along its :func:`plan_batch` plan.

    ``template``: the execution context of one sample with the constant nodes already run (GraphRunner's);
    ``exec_one(i, node, how, ctx)``: the per-sample execution of one node (GraphRunner's ``_exec``)."""

    def __init__(self, model: Any, steps: list[BatchStep], template: dict[str, np.ndarray],
                 exec_one: Callable[[int, Any, str, dict[str, np.ndarray]], None]):
        self.model = model
        self.steps = steps
        self.template = template
        self.exec_one = exec_one
        self.dynamic = {model.graph.input[0].name} | {o for s in steps for o in s.node.output if o}
        self._sessions: dict[int, Any] = {}
        self._bounds: dict[int, tuple[float, float] | None] = {}

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The execution context of the batch ``x`` (N, ...) (shaped like the graph input, batch first)."""
        ctx = dict(self.template)
        ctx[self.model.graph.input[0].name] = x
        for step in self.steps:
            _RUN[step.mode](self, step, ctx, len(x))
        return ctx

    def fan(self) -> dict[str, int]:
        """Per output of a batched thresholding (MultiThreshold, Thresholding), its number of thresholds."""
        got: dict[str, int] = {}
        for s in self.steps:
            thr = s.node.input[1] if len(s.node.input) > 1 else ""
            if s.node.op_type in ("MultiThreshold", "Thresholding") and s.mode != "per_sample" and thr in self.template:
                got[s.node.output[0]] = int(np.shape(self.template[thr])[-1])
        return got

    def describe(self) -> str:
        """Which nodes run sample by sample inside the batch (for the verification log)."""
        from collections import Counter

        def words(c: Counter) -> str:
            return ", ".join(f"{op} x{k}" for op, k in sorted(c.items()))

        each = Counter(s.node.op_type for s in self.steps if s.mode == "per_sample")
        acc = Counter(s.node.op_type for s in self.steps if s.mode == "ort" and s.node.op_type in _FLOAT_ACC)
        said = [f"sample by sample inside the batch: {words(each)}"] if each else []
        if acc:
            said.append(f"{words(acc)} on the whole batch where their sums are exact in float32, else sample by sample")
        return "; ".join(said) or "every node on the whole batch"

    def per_sample(self, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
        """The node's own execution once per sample (the per-sample path's), outputs stacked on axis 0."""
        ins = [t for t in step.node.input if t in self.dynamic]
        outs = [o for o in step.node.output if o]
        got: dict[str, list[np.ndarray]] = {o: [] for o in outs}
        for s in range(n):
            sub = dict(self.template)
            for t in ins:
                sub[t] = ctx[t][s:s + 1]
            self.exec_one(step.index, step.node, step.how, sub)
            for o in outs:
                got[o].append(np.asarray(sub[o]))
        for o in outs:
            ctx[o] = np.concatenate(got[o], axis=0)


def _batched_session(model: Any, node: Any, dynamic: set[str], ctx: dict[str, np.ndarray]) -> Any:
    """An onnxruntime session of one standard node whose dynamic inputs and outputs have a symbolic batch dim."""
    import onnxruntime as rt
    from onnx import helper
    from qonnx.util.basic import qonnx_make_model

    g = model.graph
    declared = {v.name: v for coll in (g.input, g.output, g.value_info) for v in coll}

    def vi(name: str) -> Any:
        if name in dynamic:
            v = type(declared[name])()
            v.CopyFrom(declared[name])
            v.type.tensor_type.shape.dim[0].dim_param = "N"
            return v
        arr = np.asarray(ctx[name])
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape))

    inputs = [vi(n) for n in dict.fromkeys(t for t in node.input if t)]
    outputs = [vi(o) for o in node.output if o]
    m = qonnx_make_model(helper.make_graph([node], "single-node-batch-exec", inputs, outputs))
    m.opset_import[0].version = model.get_opset_imports().get(node.domain, model.get_opset_imports().get("", 11))
    return rt.InferenceSession(m.SerializeToString())


def _run_ort(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """The node's batched session on the whole batch; an accumulating op (``_FLOAT_ACC``) whose sums are not
    provably exact in float32 runs it sample by sample (its rounding depends on the batch size)."""
    sess = ex._sessions.get(step.index)
    if sess is None:
        sess = ex._sessions[step.index] = _batched_session(ex.model, step.node, ex.dynamic, ctx)
    ins = list(dict.fromkeys(t for t in step.node.input if t))
    if step.node.op_type not in _FLOAT_ACC or _exact(ex, step, [ctx[t] for t in ins], ins):
        outs = sess.run(None, {t: ctx[t] for t in ins})
    else:
        each = [sess.run(None, {t: ctx[t][s:s + 1] if t in ex.dynamic else ctx[t] for t in ins}) for s in range(n)]
        outs = [np.concatenate(o, axis=0) for o in zip(*each, strict=True)]
    for name, val in zip([o for o in step.node.output if o], outs, strict=True):
        ctx[name] = val


def _exact_in_float32(node: Any, arrays: list[np.ndarray]) -> bool:
    """Whether every partial sum of this MatMul/Gemm/Conv is an integer of magnitude ≤ 2^24 (exact in float32,
    so any summation order, i.e. any batch size, gives the same result): all operands integer-valued and
    max|x| · (the largest Σ|W| over one output) + max|bias| ≤ 2^24. Checked on the values, not the annotations."""
    return len(arrays) >= 2 and _exact_with_bound(arrays[0], _weight_bound(node, arrays[1:]))


def _exact_with_bound(x: np.ndarray, bound: tuple[float, float] | None) -> bool:
    """:func:`_exact_in_float32` given the weights' :func:`_weight_bound` (None: not integer-valued)."""
    if bound is None or not np.array_equal(x, np.round(x)):
        return False
    return float(np.abs(x).max(initial=0.0)) * bound[0] + bound[1] <= 2.0 ** 24


def _weight_bound(node: Any, consts: list[np.ndarray]) -> tuple[float, float] | None:
    """(largest Σ|W| over one output, max|bias|) of integer-valued operands; None where not integer (or a Gemm
    with alpha/beta ≠ 1)."""
    if not all(np.array_equal(a, np.round(a)) for a in consts):
        return None
    if node.op_type == "Gemm" and (float(_attr(node, "alpha", 1.0)) != 1.0 or float(_attr(node, "beta", 1.0)) != 1.0):
        return None
    w = np.abs(consts[0]).astype(np.float64)
    if node.op_type in ("Conv", "ConvTranspose"):
        per_out = w.reshape(w.shape[0], -1).sum(1) if node.op_type == "Conv" else w.sum(axis=(0, *range(2, w.ndim)))
    elif node.op_type == "Gemm" and int(_attr(node, "transB", 0)):
        per_out = w.reshape(w.shape[0], -1).sum(1)
    else:  # MatMul / Gemm: W (..., K, M)
        per_out = w.sum(axis=-2) if w.ndim >= 2 else w
    bias = float(np.abs(consts[1]).max()) if len(consts) > 1 and consts[1].size else 0.0
    return float(np.max(per_out, initial=0.0)), bias


def _exact(ex: BatchExecutor, step: BatchStep, arrays: list[np.ndarray], names: list[str]) -> bool:
    """:func:`_exact_in_float32` with the weights' bound computed once per node where the weights are constants."""
    if any(t in ex.dynamic for t in names[1:]):
        return _exact_in_float32(step.node, arrays)
    if step.index not in ex._bounds:
        ex._bounds[step.index] = _weight_bound(step.node, arrays[1:])
    return _exact_with_bound(arrays[0], ex._bounds[step.index])


def _run_reshape(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """ONNX Reshape of each sample by the constant shape (0 copies the input's dim unless allowzero, -1 infers);
    a target that does not keep a batch dim of 1 first cannot be batched (raises: the caller runs per sample)."""
    x = np.asarray(ctx[step.node.input[0]])
    target = [int(d) for d in np.asarray(ctx[step.node.input[1]]).reshape(-1)]
    one = (1, *x.shape[1:])
    if not int(_attr(step.node, "allowzero", 0)):
        target = [one[j] if d == 0 and j < len(one) else d for j, d in enumerate(target)]
    per_sample = np.empty(one, dtype=np.uint8).reshape(target).shape
    if not per_sample or per_sample[0] != 1:
        raise ValueError(f"Reshape {step.node.name} to {target} does not keep the batch dim")
    ctx[step.node.output[0]] = x.reshape((n, *per_sample[1:]))


def _run_im2col(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """QONNX's Im2Col.execute_node on each sample (its im2col mixes samples when given a batch): the same
    checks, padding and gather indices (qonnx's ``get_im2col_indices_nchw``), the sample axis kept apart."""
    from qonnx.custom_op.registry import getCustomOp

    op = getCustomOp(step.node)
    pad, pad_val = list(op.get_nodeattr("pad_amount")), op.get_nodeattr("pad_value")
    if any(pad) and not ex.model.get_tensor_datatype(step.node.input[0]).allowed(pad_val):
        raise ValueError(f"Im2Col {step.node.name}: pad value {pad_val} outside the input's datatype")
    ctx[step.node.output[0]] = _im2col(np.asarray(ctx[step.node.input[0]]), op.get_nodeattr("kernel_size"),
                                       op.get_nodeattr("stride"), pad, op.get_nodeattr("dilations"), pad_val)


def _run_swg(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """finn's ConvolutionInputGenerator.execute_node: an Im2Col of its kernel, stride and dilation, no padding."""
    from qonnx.custom_op.registry import getCustomOp

    op = getCustomOp(step.node)
    ctx[step.node.output[0]] = _im2col(np.asarray(ctx[step.node.input[0]]), op.get_nodeattr("ConvKernelDim"),
                                       op.get_nodeattr("Stride"), [0, 0, 0, 0], op.get_nodeattr("Dilation"), 0)


def _im2col(x: np.ndarray, kernel: Any, stride: Any, pad: list[int], dilation: Any, pad_val: Any) -> np.ndarray:
    """qonnx's Im2Col (NHWC in, (N, oh, ow, kh·kw·C) out, inner order kh, kw, C) with the sample axis kept."""
    from qonnx.custom_op.general.im2col import compute_conv_output_dim, get_im2col_indices_nchw

    (k_h, k_w), (s_h, s_w), (d_h, d_w) = kernel, stride, dilation
    dummy_h, dummy_w = x.ndim == 4 and x.shape[1] == 1, x.ndim == 4 and x.shape[2] == 1
    if x.ndim != 4 or (dummy_h and (k_h != 1 or pad[0] + pad[2])) or (dummy_w and (k_w != 1 or pad[1] + pad[3])):
        raise ValueError(f"Im2Col: input {x.shape} is not the NHWC image it expects")
    n, h, w, c = x.shape
    oh = compute_conv_output_dim(h, k_h, s_h, pad[0] + pad[2], d_h)
    ow = compute_conv_output_dim(w, k_w, s_w, pad[1] + pad[3], d_w)
    xp = np.pad(x.transpose(0, 3, 1, 2), ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])),
                mode="constant", constant_values=pad_val)
    ki, ii, jj = get_im2col_indices_nchw((n, c, h, w), k_h, k_w, pad, s_h, s_w, d_h, d_w)
    cols = xp[:, ki, ii, jj]  # (N, C·kh·kw, oh·ow)
    return cols.reshape(n, c, k_h, k_w, oh, ow).transpose(0, 4, 5, 2, 3, 1).reshape(n, oh, ow, k_h * k_w * c)


def _run_custom(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    ex.exec_one(step.index, step.node, step.how, ctx)


def _run_custom_out(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """The node's own execution on the batch, its outputs' context entries (whose shape it reshapes to) batch-sized."""
    for o in step.node.output:
        ctx[o] = np.zeros((n, *np.shape(ex.template[o])[1:]), dtype=np.float32)
    ex.exec_one(step.index, step.node, step.how, ctx)


def _run_duplicate(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """finn's DuplicateStreams.execute_node: the input as float32 in its normal shape, on every output."""
    from qonnx.custom_op.registry import getCustomOp

    shape = getCustomOp(step.node).get_normal_input_shape()
    out = np.asarray(ctx[step.node.input[0]], dtype=np.float32).reshape((n, *shape[1:]))
    for o in step.node.output:
        ctx[o] = out


def _run_maxpool_nhwc(ex: BatchExecutor, step: BatchStep, ctx: dict[str, np.ndarray], n: int) -> None:
    """QONNX's MaxPoolNHWC.execute_node: NHWC -> NCHW, ONNX MaxPool with the node's attributes, back to NHWC."""
    sess = ex._sessions.get(step.index)
    if sess is None:
        sess = ex._sessions[step.index] = _maxpool_session(ex.model, step.node)
    x = np.transpose(ctx[step.node.input[0]], (0, 3, 1, 2))
    ctx[step.node.output[0]] = np.transpose(sess.run(None, {"x": x})[0], (0, 2, 3, 1))


def _maxpool_session(model: Any, node: Any) -> Any:
    import onnxruntime as rt
    from onnx import TensorProto, helper
    from qonnx.util.basic import qonnx_make_model

    pool = helper.make_node("MaxPool", ["x"], ["y"])
    pool.attribute.extend(node.attribute)
    c = model.get_tensor_shape(node.input[0])[3]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, None, None])
    m = qonnx_make_model(helper.make_graph([pool], "maxpool-nhwc-batch", [x], [y]))
    return rt.InferenceSession(m.SerializeToString())


_RUN: dict[str, Callable[[BatchExecutor, BatchStep, dict[str, np.ndarray], int], None]] = {
    "ort": _run_ort,
    "reshape": _run_reshape,
    "custom": _run_custom,
    "maxpool_nhwc": _run_maxpool_nhwc,
    "im2col": _run_im2col,
    "swg": _run_swg,
    "custom_out": _run_custom_out,
    "duplicate": _run_duplicate,
    "per_sample": BatchExecutor.per_sample,
}

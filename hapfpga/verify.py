"""Verification chain: Brevitas model ↔ QONNX execution ↔ FINN streamlined graph ↔ FINN HW graph.

All four run on the same test inputs as the hardware receives them, UINT8 pixels ``k = round(255 x)``: the
Brevitas model gets ``k · 1/255`` (float32, exactly what the exported graph's first ``Mul`` computes), the graphs
get ``k``. Graphs are executed node by node with qonnx's own node executors (``qonnx.core.onnx_exec.execute_node``
semantics: onnxruntime for standard ONNX ops, the custom ops' Python ``execute_node`` for QONNX/FINN ops); the
onnxruntime session of each standard node is built once and reused. FINN's HW nodes carry the batch size 1 in
their attributes, so the reference execution is one sample at a time (``GraphRunner.run``); the chain runs each
graph on the whole batch per node call where that gives every sample the same values bit for bit
(:mod:`hapfpga.finn.batchexec`: batch-safe ops on the batch, every other node sample by sample inside it, a graph
without a leading batch dim of 1 or a batched run that raises entirely per sample), ~5x faster on CNV.

Units. FINN's graphs end in an integer tensor (the last MVAU's accumulator) followed by a float "tail" of
``Mul``/``Add`` by constants (the last layer's scales). We read that tail from the streamlined graph as an
affine map ``y = t·M + A`` and report every difference in **integer units of that tensor** ``t``: for the float
stages (Brevitas, QONNX) ``(y - A) / M``; for the FINN graphs the integer tensor itself. The streamlined and
HW graphs are integer end to end and must agree **exactly** (difference 0); the float stages may differ by
float rounding, within ``float_tol`` integer units plus float32 resolution: 2^-20 (8 ulps) of what the last
layer accumulates, Σ|a·W| (a deep network's logits reach tens of thousands of units, where one float32 ulp is
already 0.004 of a unit; the allowance stays below one unit while that sum is under 2^20, so any upstream
integer difference is still caught).

No stage is ever skipped: if a node cannot execute, the stage fails and its note names the node and op type.
finn-plus 1.6.1 leaves the opset import of its HW domain (``finn.custom_op.fpgadataflow``) out of the HW graph,
which makes qonnx execute its standard nodes with a wrong opset; we add it (version 1) before executing. Such
fixes to make a FINN graph executable here are ours, not the user's: they go to the ``hapfpga.verify`` logger,
and into a stage's note only when that stage then cannot execute (where they help a bug report).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import INPUT_SCALE, to_uint8
from .errors import VerificationError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .finn.build import FinnBuildResult

_LOG = logging.getLogger(__name__)

__all__ = ["StageResult", "VerificationReport", "verify_chain", "GraphRunner", "STREAMLINE_STEP", "HW_STEP"]

STREAMLINE_STEP = "step_streamline"
HW_STEP = "step_convert_to_hw"
_TAIL_OPS = {"Mul": "mul", "Add": "add", "ElementwiseMul": "mul", "ElementwiseAdd": "add"}


@dataclass(frozen=True)
class StageResult:
    """One stage compared with the stage before it (``reference``)."""

    name: str
    reference: str | None
    max_abs_diff: float | None  # integer units of the output tensor (see module docstring); None: did not run
    argmax_agreement: float | None  # fraction of samples whose argmax equals the reference's
    integer: bool  # both sides are integer graphs: exact agreement required
    exact: bool  # max_abs_diff == 0
    passed: bool
    note: str = ""
    accuracy: float | None = None  # on the labels, when given

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reference": self.reference,
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "integer": self.integer,
            "exact": self.exact,
            "passed": self.passed,
            "note": self.note,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class VerificationReport:
    n_samples: int
    stages: tuple[StageResult, ...]
    units: str
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(s.passed for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_samples": self.n_samples,
            "units": self.units,
            "stages": [s.as_dict() for s in self.stages],
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            **self.extra,
        }

    def raise_if_failed(self) -> None:
        if not self.passed:
            bad = [s for s in self.stages if not s.passed]
            raise VerificationError(
                f"Verification failed at {', '.join(s.name for s in bad)} ({bad[0].note or 'outputs differ'}); "
                "the exported or converted graph does not compute what the trained model computes."
            )


class NodeExecutionError(RuntimeError):
    def __init__(self, node: Any, cause: Exception):
        super().__init__(f"node {node.name or '?'} ({node.op_type}) failed: {type(cause).__name__}: {cause}")
        self.node = node
        self.cause = cause


class GraphRunner:
    """Executes a QONNX/FINN graph node by node, caching one onnxruntime session per standard node."""

    def __init__(self, model: Any, label: str = ""):
        from qonnx.core.modelwrapper import ModelWrapper

        self.label = label  # the stage's name, for the log

        self.model: ModelWrapper = model if isinstance(model, ModelWrapper) else ModelWrapper(str(model))
        self.graph = self.model.graph
        self.opsets = self.model.get_opset_imports()
        self._template = self.model.make_empty_exec_context()
        self._sessions: dict[int, Any] = {}
        self.input_name = self.graph.input[0].name
        self.output_name = self.graph.output[0].name
        #: the graph's input shape: FINN's graphs of 1D networks take N×C×L×1 (step_hap_1d_to_4d) where the
        #: data and the QONNX export are N×C×L; an input of the same size is reshaped to it
        self.input_shape = tuple(int(d) for d in self.model.get_tensor_shape(self.input_name))

    def _session(self, i: int, node: Any, ctx: dict[str, np.ndarray]):
        sess = self._sessions.get(i)
        if sess is None:
            import onnxruntime as rt
            from onnx import helper
            from qonnx.util.basic import qonnx_make_model

            g = self.graph
            ins = [v for coll in (g.input, g.output, g.value_info) for v in coll if v.name in node.input]
            seen, inputs = set(), []
            for v in ins:
                if v.name not in seen:
                    seen.add(v.name)
                    inputs.append(v)
            outputs = [v for coll in (g.output, g.value_info) for v in coll if v.name in node.output]
            # initializers feed the node as inputs with their value (as qonnx's execute_node does via context)
            for name in node.input:
                if name and name not in seen:
                    arr = ctx[name]
                    inputs.append(helper.make_tensor_value_info(name, _np_to_onnx_type(arr), list(arr.shape)))
                    seen.add(name)
            m = qonnx_make_model(helper.make_graph([node], "single-node-exec", inputs, outputs))
            m.opset_import[0].version = self.opsets.get(node.domain, self.opsets.get("", 11))
            sess = rt.InferenceSession(m.SerializeToString())
            self._sessions[i] = (sess, [o.name for o in outputs], [n for n in node.input if n])
            sess = self._sessions[i]
        return sess

    def _prepare(self) -> None:
        """Decide once per node how it runs, and run the nodes that depend only on constants (weight ``Quant``
        nodes of a QONNX graph) once, into the template context."""
        from qonnx.custom_op.registry import is_custom_op

        const = {t.name for t in self.graph.initializer}
        self._plan: list[tuple[int, Any, str]] = []
        for i, node in enumerate(self.graph.node):
            if is_custom_op(node.domain, node.op_type):
                how = "custom"
            elif node.domain not in ("", "ai.onnx"):
                how = "unknown"
            else:
                how = "ort"
            if how != "unknown" and all(n in const for n in node.input if n):
                self._exec(i, node, how, self._template)
                const.update(o for o in node.output if o)
            else:
                self._plan.append((i, node, how))

    def _exec(self, i: int, node: Any, how: str, ctx: dict[str, np.ndarray]) -> None:
        from qonnx.core.execute_custom_node import execute_custom_node

        try:
            if how == "custom":
                execute_custom_node(node, ctx, self.graph, onnx_opset_version=self.opsets.get(node.domain, 1))
            elif how == "unknown":
                raise NotImplementedError(
                    f"op {node.op_type} of domain {node.domain} has no Python execution registered"
                )
            else:
                sess, out_names, in_names = self._session(i, node, ctx)
                outs = sess.run(None, {n: ctx[n] for n in in_names})
                for name, val in zip(out_names, outs, strict=True):
                    ctx[name] = val
        except Exception as e:
            raise NodeExecutionError(node, e) from e

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Full execution context for one input ``x`` (with its batch dim of 1)."""
        if not hasattr(self, "_plan"):
            self._prepare()
        ctx = dict(self._template)
        ctx[self.input_name] = x.reshape(self.input_shape) if x.size == np.prod(self.input_shape) else x
        for i, node, how in self._plan:
            self._exec(i, node, how, ctx)
        return ctx

    def run_batch(self, xs: np.ndarray, tensors: Sequence[str], batched: bool = True) -> dict[str, np.ndarray]:
        """Run every sample of ``xs`` (N, ...) and stack the named tensors (each sample's flattened).

        ``batched``: many samples per node call where the graph allows it (:mod:`hapfpga.finn.batchexec`: same
        per-sample values; a graph it cannot batch, or a batched run that raises, runs one sample at a time, so a
        node that cannot execute is named as in the per-sample path)."""
        if batched and len(xs) > 1:
            got = self._run_batched(xs, tensors)
            if got is not None:
                return got
        return self._run_each(xs, tensors)

    def _run_each(self, xs: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray]:
        got: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
        for x in xs:
            ctx = self.run(x[None].astype(np.float32))
            for t in tensors:
                got[t].append(np.asarray(ctx[t]).reshape(-1))
        return {t: np.stack(v) for t, v in got.items()}

    def batch_plan(self) -> tuple[Any, str]:
        """(the :class:`~hapfpga.finn.batchexec.BatchExecutor` of this graph or None, why not batched)."""
        if not hasattr(self, "_batch"):
            from .finn.batchexec import BatchExecutor, plan_batch

            if not hasattr(self, "_plan"):
                self._prepare()
            steps, why = plan_batch(self.model, self._plan, self.input_name)
            ex = BatchExecutor(self.model, steps, self._template, self._exec) if steps is not None else None
            self._batch = (ex, why)
            if ex is None:
                _LOG.info("verification runs the %s graph one sample at a time: %s", self.label or self.graph.name, why)
            else:
                _LOG.info("verification runs the %s graph batched; %s", self.label or self.graph.name, ex.describe())
        return self._batch

    def _run_batched(self, xs: np.ndarray, tensors: Sequence[str]) -> dict[str, np.ndarray] | None:
        """The batched run in chunks, or None where this graph runs one sample at a time."""
        from .finn.batchexec import chunk_size

        ex, _ = self.batch_plan()
        if ex is None:
            return None
        if np.asarray(xs[0]).size != int(np.prod(self.input_shape[1:])):
            return None  # not the graph's input size: the per-sample path runs it as given (and names what fails)
        k = np.asarray(xs, dtype=np.float32).reshape((len(xs), *self.input_shape[1:]))
        step = chunk_size(self.model, sorted(ex.dynamic), len(k), ex.fan())
        got: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
        try:
            for s in range(0, len(k), step):
                ctx = ex.run(k[s:s + step])
                for t in tensors:
                    got[t].append(np.asarray(ctx[t]).reshape(len(k[s:s + step]), -1))
        except Exception as e:  # noqa: BLE001 - the per-sample path then names the failing node or runs
            _LOG.info("verification: batched run of the %s graph failed (%s: %s); running one sample at a time",
                      self.label or self.graph.name, type(e).__name__, e)
            return None
        return {t: np.concatenate(v, axis=0) for t, v in got.items()}


def _np_to_onnx_type(arr: np.ndarray) -> int:
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.asarray(arr).dtype)


@dataclass(frozen=True)
class _Tail:
    """``output = t · mul + add`` where ``t`` (named ``tensor``) is the last integer tensor of the graph."""

    tensor: str
    mul: np.ndarray
    add: np.ndarray
    ops: tuple[str, ...]
    acc_input: str | None = None  # when t = MatMul(acc_input, W) with constant integer W: its input ...
    acc_weight_abs: np.ndarray | None = None  # ... and |W|

    def to_int_units(self, y: np.ndarray) -> np.ndarray:
        return (y - self.add) / self.mul

    def float_scale(self, acc_in: np.ndarray) -> np.ndarray:
        """Per sample and output, the magnitude a float graph accumulates to compute it, in integer units:
        Σ|a_i·W_ij| + |A/M| (the float error of the last layer is a few ulps of this; see ``FLOAT_REL_TOL``)."""
        assert self.acc_weight_abs is not None
        a = np.abs(acc_in.reshape(len(acc_in), -1).astype(np.float64))
        return a @ self.acc_weight_abs + np.abs(self.add / self.mul).reshape(1, -1)


def _float_tail(model: Any) -> _Tail:
    """Walk back from the graph output through Mul/Add by constants to the last integer-typed tensor."""
    name = model.graph.output[0].name
    chain = []
    while True:
        dt = model.get_tensor_datatype(name)
        if dt.is_integer():
            break
        node = model.find_producer(name)
        if node is None or node.op_type not in _TAIL_OPS:
            raise ValueError(
                f"the graph output is not an integer tensor followed by constant Mul/Add (found "
                f"{node.op_type if node is not None else 'the graph input'})"
            )
        consts = [model.get_initializer(i) for i in node.input]
        var = [i for i, c in zip(node.input, consts, strict=True) if c is None]
        const = [c for c in consts if c is not None]
        if len(var) != 1 or len(const) != 1:
            raise ValueError(
                f"{node.op_type} node {node.name} of the output tail has no single constant operand"
            )
        chain.append((_TAIL_OPS[node.op_type], np.asarray(const[0], dtype=np.float64)))
        name = var[0]
    mul, add = np.ones(1), np.zeros(1)
    for op, c in reversed(chain):  # forward order
        if op == "mul":
            mul, add = mul * c, add * c
        else:
            add = add + c
    acc_input, w_abs = _accumulation(model, name)
    return _Tail(
        name,
        mul.reshape(1, -1) if mul.size > 1 else mul,
        add.reshape(1, -1) if add.size > 1 else add,
        tuple(op for op, _ in reversed(chain)),
        acc_input,
        w_abs,
    )


def _accumulation(model: Any, tensor: str) -> tuple[str | None, np.ndarray | None]:
    """(input, |W|) when ``tensor`` is a MatMul of a 2D input by a constant 2D W (the last FC); else (None, None)."""
    node = model.find_producer(tensor)
    if node is None or node.op_type != "MatMul":
        return None, None
    w = model.get_initializer(node.input[1])
    shape = model.get_tensor_shape(node.input[0])
    if w is None or np.ndim(w) != 2 or shape is None or len(shape) != 2:
        return None, None
    return node.input[0], np.abs(np.asarray(w, dtype=np.float64))


def _fix_hw_opset(model: Any) -> bool:
    """Add finn-plus's HW domain to the opset imports when it is missing; True if added."""
    from onnx import helper

    from .finn.shim import FINN_HW_DOMAIN

    uses = any(n.domain == FINN_HW_DOMAIN for n in model.graph.node)
    have = any(o.domain == FINN_HW_DOMAIN for o in model.model.opset_import)
    if uses and not have:
        model.model.opset_import.append(helper.make_opsetid(FINN_HW_DOMAIN, 1))
        return True
    return False


def _register_hw_ops(model: Any) -> list[str]:
    """Import the finn-plus modules of HW ops that its registry has not imported (finn-plus 1.6.1 defines the HW
    ``Reshape`` in ``finn.custom_op.fpgadataflow.reshape`` but never imports it, so qonnx cannot find its Python
    execution). Returns the op types registered this way."""
    import importlib

    from qonnx.custom_op.registry import is_custom_op

    from .finn.shim import FINN_HW_DOMAIN

    done = []
    for op in sorted({n.op_type for n in model.graph.node if n.domain == FINN_HW_DOMAIN}):
        if is_custom_op(FINN_HW_DOMAIN, op):
            continue
        try:
            importlib.import_module(f"{FINN_HW_DOMAIN}.{op.lower()}")
        except ImportError:
            continue
        if is_custom_op(FINN_HW_DOMAIN, op):
            done.append(op)
    return done


def _compare(a: np.ndarray, b: np.ndarray, integer_units: bool = True) -> tuple[float, float]:
    """Max abs difference and argmax agreement. In integer units, argmax is taken on values rounded to integers,
    so that equal accumulators (ties) break the same way on both sides instead of by float noise."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    diff = float(np.max(np.abs(a2 - b2))) if a2.size else 0.0
    if integer_units:
        a2, b2 = np.round(a2), np.round(b2)
    agree = float(np.mean(a2.argmax(1) == b2.argmax(1))) if a2.size else 1.0
    return diff, agree


# Float stages carry float32 rounding that grows with the magnitude a float graph accumulates, not with the output:
# the last layer's float32 matmul errs by a few ulps of Σ|a_i·W_ij| (plus the tail's |A/M|). Measured on random
# last layers (1-8-bit activations, signed weights, 8-2048 inputs, 2,000 draws): at most 1.7 ulps of that sum.
# ResNet-18 4w4a's logits reach ~31,000 integer units (one ulp 0.004): a logit of 841 came out 0.0028 off. The
# allowance is 8 ulps of the sum on top of ``float_tol``: below one integer unit while the sum stays under 2^20,
# so a quantisation step that differs anywhere upstream (an integer change of t) is still caught. Where the last
# integer tensor is not a MatMul by constant weights, the sample's largest |value| stands in for the sum.
FLOAT_REL_TOL = 2.0 ** -20


def _within_float_tol(a: np.ndarray, b: np.ndarray, float_tol: float, scale: np.ndarray | None = None) -> bool:
    """Whether two float stages agree within ``float_tol`` plus ``FLOAT_REL_TOL`` times ``scale`` (per sample and
    output, see :meth:`_Tail.float_scale`; without it, each sample's largest |value|)."""
    return not _float_bad_samples(a, b, float_tol, scale).any()


def _float_bad_samples(a: np.ndarray, b: np.ndarray, float_tol: float, scale: np.ndarray | None = None) -> np.ndarray:
    """Per sample, whether it differs by more than the allowance of :func:`_within_float_tol`."""
    a2 = a.reshape(len(a), -1).astype(np.float64)
    b2 = b.reshape(len(b), -1).astype(np.float64)
    if not a2.size:
        return np.zeros(len(a2), dtype=bool)
    if scale is None:
        scale = np.maximum(np.abs(a2).max(1, keepdims=True), np.abs(b2).max(1, keepdims=True))
    return np.any(np.abs(a2 - b2) > float_tol + FLOAT_REL_TOL * scale, axis=1)


def _which_samples(bad: np.ndarray) -> str:
    """'sample(s) i, j, ... (k of N)' for a failing stage's note: which test inputs differ."""
    idx = np.flatnonzero(bad)
    shown = ", ".join(str(int(i)) for i in idx[:8]) + (", ..." if len(idx) > 8 else "")
    return f"differs on sample{'s' if len(idx) > 1 else ''} {shown} ({len(idx)} of {len(bad)})"


@dataclass(frozen=True)
class _FloatTol:
    """The float stages' tolerance: ``tol`` integer units plus float32 resolution of ``scale``."""

    tol: float
    scale: np.ndarray | None = None

    def agree(self, a: np.ndarray, b: np.ndarray) -> bool:
        return _within_float_tol(a, b, self.tol, self.scale)

    def bad_samples(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _float_bad_samples(a, b, self.tol, self.scale)

    def words(self) -> str:
        of = "Σ|a·W| of the last layer" if self.scale is not None else "the sample's largest |value|"
        return f"float_tol={self.tol} + 2^-20·{of}"


def _acc(out: np.ndarray | None, y: np.ndarray | None) -> float | None:
    """Accuracy of outputs (in integer units where known: ties break as on the integer graphs)."""
    if out is None or y is None:
        return None
    return float(np.mean(out.reshape(len(out), -1).argmax(1) == y))


def _load_tail(step_paths: dict[str, Any]) -> tuple[Any, _Tail | None, str]:
    """The streamlined graph (or None), its float tail (or None) and a note when the tail cannot be split off."""
    from qonnx.core.modelwrapper import ModelWrapper

    stream_mw = ModelWrapper(str(step_paths[STREAMLINE_STEP])) if STREAMLINE_STEP in step_paths else None
    tail: _Tail | None = None
    tail_note = ""
    if stream_mw is not None:
        try:
            tail = _float_tail(stream_mw)
        except ValueError as e:
            tail_note = f"differences in output units, not integer units: {e}"
    return stream_mw, tail, tail_note


def _to_units(tail: _Tail | None, yf: np.ndarray) -> np.ndarray:
    return tail.to_int_units(yf.astype(np.float64)) if tail is not None else yf.astype(np.float64)


def _rounded(tail: _Tail | None, u: np.ndarray) -> np.ndarray:
    return np.round(u) if tail is not None else u


def _qonnx_stage(
    qonnx_path: str | Path, k: np.ndarray, tail: _Tail | None, tail_note: str, prev_name: str,
    prev_units: np.ndarray, ftol: _FloatTol, y: np.ndarray | None,
) -> tuple[StageResult, np.ndarray | None]:
    """The QONNX stage's result and, when it ran, its output in comparison units."""
    try:
        qr = GraphRunner(qonnx_path, "qonnx")
        y_q = qr.run_batch(k, [qr.output_name])[qr.output_name]
        d, agree = _compare(_to_units(tail, y_q), prev_units, tail is not None)
        ok = ftol.agree(_to_units(tail, y_q), prev_units)
        note = "float vs float" + (f"; {tail_note}" if tail_note else "")
        if not ok:
            bad = ftol.bad_samples(_to_units(tail, y_q), prev_units)
            note += f"; differs by more than {ftol.words()}; {_which_samples(bad)}"
        res = StageResult("qonnx", prev_name, d, agree, False, d == 0.0, ok, note,
                          _acc(_rounded(tail, _to_units(tail, y_q)), y))
        return res, _to_units(tail, y_q.astype(np.float64))
    except NodeExecutionError as e:
        return StageResult("qonnx", prev_name, None, None, False, False, False, f"could not execute: {e}"), None


def _hw_fixes(mw: Any, step: str) -> list[str]:
    """Make a FINN step graph executable here; returns what was done (for the log, not the user's report)."""
    notes = []
    if step == HW_STEP and _fix_hw_opset(mw):
        notes.append(
            "added the missing opset import finn.custom_op.fpgadataflow v1 to execute the HW graph"
        )
    registered = _register_hw_ops(mw)
    if registered:
        notes.append(
            f"imported finn-plus's Python execution of HW op(s) {', '.join(registered)} "
            "(defined in finn.custom_op.fpgadataflow but not imported by its registry)"
        )
    return notes


def _compare_finn(
    step: str, t_int: np.ndarray, out: np.ndarray, tail: _Tail | None, prev_units: np.ndarray,
    prev_int: np.ndarray | None, prev_out: np.ndarray | None, ftol: _FloatTol, notes: list[str],
) -> tuple[float | None, float | None, bool, bool]:
    """(max difference, agreement, integer comparison, passed) of a FINN stage; adds to ``notes``."""
    if step == STREAMLINE_STEP:
        d, agree = _compare(t_int.astype(np.float64), prev_units, tail is not None)
        integer = False  # compared with a float graph
        ok = ftol.agree(t_int, prev_units) and not any("not integer" in s for s in notes)
        notes.insert(0, "integer graph vs float QONNX")
    else:
        d, agree = _compare(t_int, prev_int) if prev_int is not None else (None, None)
        integer = True
        ok = d == 0.0 and not any("not integer" in s for s in notes)
        if prev_int is None:
            ok = False
            notes.append("no streamlined result to compare with")
        else:
            od, _ = _compare(out, prev_out)
            notes.insert(0, "integer vs integer: must agree exactly")
            if od != 0.0:
                ok = False
                notes.append(f"float outputs after the tail differ by {od:g}")
    if not ok and d is not None:
        notes.append(
            f"max difference {d:g} exceeds {'0 (exact)' if integer else ftol.words()}"
        )
        bad = _finn_bad_samples(step, t_int, out, prev_units, prev_int, prev_out, ftol)
        if bad.any():
            notes.append(_which_samples(bad))
    return d, agree, integer, ok


def _finn_bad_samples(
    step: str, t_int: np.ndarray, out: np.ndarray, prev_units: np.ndarray, prev_int: np.ndarray | None,
    prev_out: np.ndarray | None, ftol: _FloatTol,
) -> np.ndarray:
    """Per sample, whether a FINN stage's result differs from its reference beyond what its comparison allows."""
    if step == STREAMLINE_STEP or prev_int is None or prev_out is None:
        return ftol.bad_samples(t_int, prev_units)
    n = len(t_int)
    return (np.any(t_int.reshape(n, -1) != prev_int.reshape(n, -1), axis=1)
            | np.any(out.reshape(n, -1) != prev_out.reshape(n, -1), axis=1))


@dataclass
class _Ran:
    """A FINN graph run on the test inputs: what we fixed to run it, and its tensors (``error``: why it could not)."""

    fixes: list[str]
    got: dict[str, np.ndarray] = field(default_factory=dict)
    output: str = ""
    error: str | None = None


def _run_finn_graph(stage: str, step: str, mw: Any, k: np.ndarray, tail: _Tail | None,
                    extra: Sequence[str] = ()) -> _Ran:
    """Run a FINN step graph once for its output, the tail's integer tensor and ``extra`` tensors."""
    fixes = _hw_fixes(mw, step)
    for fix in fixes:
        _LOG.info("verification, %s graph: %s", stage, fix)
    try:
        runner = GraphRunner(mw, stage)
        want = [runner.output_name] + ([tail.tensor] if tail is not None else []) + list(extra)
        return _Ran(fixes, runner.run_batch(k, want), runner.output_name)
    except (NodeExecutionError, KeyError) as e:
        why = (f"could not execute: {e}" if isinstance(e, NodeExecutionError)
               else f"integer tensor {e} not found in this graph")
        return _Ran(fixes, error=why)


def _run_streamlined(stream_mw: Any, tail: _Tail | None, k: np.ndarray) -> tuple[_Ran | None, np.ndarray | None]:
    """The streamlined graph's one run (None: no such graph) and, from its last FC's input, the float stages'
    accumulation scale (:meth:`_Tail.float_scale`; None where there is no such FC or the graph did not run)."""
    if stream_mw is None:
        return None, None
    acc_in = [tail.acc_input] if tail is not None and tail.acc_input is not None else []
    ran = _run_finn_graph("finn_streamlined", STREAMLINE_STEP, stream_mw, k, tail, acc_in)
    if tail is None or not acc_in or ran.error is not None:
        return ran, None
    return ran, tail.float_scale(ran.got[acc_in[0]])


def _finn_stage(
    stage: str, step: str, ran: _Ran, tail: _Tail | None, prev_name: str, prev_units: np.ndarray,
    prev_int: np.ndarray | None, prev_out: np.ndarray | None, ftol: _FloatTol, y: np.ndarray | None,
) -> tuple[StageResult, tuple[np.ndarray, np.ndarray] | None]:
    """A FINN graph's stage result from its run and, when it ran, its (integer tensor, output)."""
    fixes = ran.fixes
    if ran.error is not None:
        return StageResult(stage, prev_name, None, None, step == HW_STEP, False, False,
                           "; ".join([ran.error, *fixes])), None
    notes: list[str] = []
    out = ran.got[ran.output]
    t_int = ran.got[tail.tensor] if tail is not None else out
    if tail is not None and not np.array_equal(t_int, np.round(t_int)):  # the tensor must hold integers
        notes.append(f"tensor {tail.tensor} is not integer-valued")
    d, agree, integer, ok = _compare_finn(step, t_int, out, tail, prev_units, prev_int, prev_out, ftol, notes)
    if not ok:  # a failing stage: what we changed to run it is part of the evidence
        notes += fixes
    res = StageResult(stage, prev_name, d, agree, integer, d == 0.0, ok, "; ".join(notes), _acc(t_int, y))
    return res, (t_int, out)


def verify_chain(
    model: torch.nn.Module,
    qonnx_path: str | Path,
    finn_result: FinnBuildResult,
    x: np.ndarray,
    *,
    y: np.ndarray | None = None,
    float_tol: float = 1e-3,
) -> VerificationReport:
    """Compare Brevitas ↔ QONNX ↔ FINN streamlined ↔ FINN HW graph on inputs ``x`` (float in [0, 1]).

    ``finn_result.step_models`` must hold ``step_streamline`` and ``step_convert_to_hw``. Returns a report with
    one :class:`StageResult` per stage; ``.passed`` is False if any stage fails (integer stages must agree
    exactly, float stages within ``float_tol`` integer units plus float32 resolution), and a stage that cannot
    run fails with the node named in its note. ``y`` (labels) adds each stage's accuracy.
    """
    import time

    from qonnx.core.modelwrapper import ModelWrapper

    from .finn.shim import ensure_finn
    from .train import predict

    t0 = time.perf_counter()
    ensure_finn()
    k = to_uint8(x).astype(np.float32)
    n = len(k)
    y = None if y is None else np.asarray(y)[:n]
    stages: list[StageResult] = []

    # -- the integer tail, from the streamlined graph --------------------------------------------------
    step_paths = dict(finn_result.step_models)
    missing = [s for s in (STREAMLINE_STEP, HW_STEP) if s not in step_paths]
    stream_mw, tail, tail_note = _load_tail(step_paths)
    units = (
        f"integer units of tensor '{tail.tensor}' (output = t·M + A, tail {'/'.join(tail.ops) or 'none'})"
        if tail is not None
        else "output units"
    )

    # -- Brevitas (reference) -----------------------------------------------------------------------------
    xb = k * INPUT_SCALE
    y_brev = predict(model, xb)
    stages.append(
        StageResult("brevitas", None, 0.0, 1.0, False, True, True,
                    "reference: Brevitas/PyTorch float forward on k·(1/255)", _acc(_rounded(tail, _to_units(tail, y_brev)), y))
    )

    # -- QONNX --------------------------------------------------------------------------------------------
    prev_name, prev_units = "brevitas", _to_units(tail, y_brev.astype(np.float64))
    ran_stream, scale = _run_streamlined(stream_mw, tail, k)
    ftol = _FloatTol(float_tol, scale)
    res, q_units = _qonnx_stage(qonnx_path, k, tail, tail_note, prev_name, prev_units, ftol, y)
    stages.append(res)
    if q_units is not None:
        prev_name, prev_units = "qonnx", q_units

    # -- FINN streamlined and HW graphs -----------------------------------------------------------------
    prev_int: np.ndarray | None = None
    prev_out: np.ndarray | None = None
    for stage, step in (("finn_streamlined", STREAMLINE_STEP), ("finn_hw", HW_STEP)):
        if step not in step_paths:
            stages.append(StageResult(stage, prev_name, None, None, True, False, False,
                                      f"FINN build has no {step} model (missing: {', '.join(missing)})"))
            continue
        run = (ran_stream if step == STREAMLINE_STEP and ran_stream is not None
               else _run_finn_graph(stage, step, ModelWrapper(str(step_paths[step])), k, tail))
        res, ran = _finn_stage(stage, step, run, tail, prev_name, prev_units, prev_int, prev_out, ftol, y)
        stages.append(res)
        if ran is None:
            continue
        t_int, out = ran
        prev_name, prev_int, prev_out = stage, t_int, out
        prev_units = t_int.astype(np.float64)

    return VerificationReport(
        n_samples=n, stages=tuple(stages), units=units, seconds=time.perf_counter() - t0
    )

"""Early checks of a (user) model before minutes of training: its input shape and outputs, and
FINN's conversion of the untrained model to its HW graph.

FINN builds dataflow hardware for a fixed set of quantised layers; a model with anything else would train fine
and fail late in the FINN conversion. FINN alone decides what is buildable: :func:`check_model` only runs one
forward pass on the dataset's input shape (milliseconds); :func:`check_finn_conversion` exports the untrained
model and runs finn-plus's steps up to ``step_specialize_layers`` (seconds: weights do not change which layers
FINN can build). Whatever FINN or Brevitas' exporter refuses stops the run with one sentence naming the user's
layer by its attribute path and class (class names only word the message: TensorNorm, QuantHardTanh, bipolar
quantisers, any per-channel affine layer pass whenever FINN builds them), the reason and what to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnsupportedLayerError

__all__ = ["check_model", "check_finn_conversion", "check_before_training", "FIXES"]

def check_model(model: Any, input_shape: Sequence[int], num_classes: int, name: str = "the model") -> None:
    """Raise a one-sentence user error if ``model`` rejects the input shape or outputs the wrong number of values
    (which layers FINN can build is :func:`check_finn_conversion`'s question, answered by FINN)."""
    import torch

    shape = (1, *tuple(int(s) for s in input_shape))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _ModuleStack(model) as stack:
            out = model(torch.zeros(shape))
    except Exception as e:  # the user's forward rejects the data's shape (or adds differently scaled tensors)
        where = stack.innermost()
        if _is_scale_mismatch(e):
            _refuse_forward_error(e, where, name, model)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        at = f"in layer '{where[0]}' ({type(where[1]).__name__}{_user_line(e, where[1])}): " if where else ""
        raise ConfigError(
            f"{name[0].upper()}{name[1:]} does not accept inputs of shape {list(shape)} from the dataset "
            f"({at}{first.rstrip('.')}); make the model's input layer match the data."
        ) from None
    finally:
        model.train(was_training)
    out = getattr(out, "value", out)
    if tuple(out.shape) != (1, num_classes):
        raise ConfigError(
            f"{name[0].upper()}{name[1:]} outputs shape {list(out.shape)} for one input but the dataset has "
            f"{num_classes} classes; its last layer must output {num_classes} values."
        )


_ACT_FIX = ("replace it by a quantised activation (brevitas.nn.QuantReLU, QuantHardTanh or QuantIdentity), which "
            "FINN builds as thresholds")

#: What to change when FINN leaves an ONNX op of this type unconverted (keyed by op type; the default below).
FIXES: dict[str, str] = {
    "AveragePool": "use brevitas.nn.TruncAvgPool2d(trunc_quant=TruncTo8bit) after an activation with "
    "return_quant_tensor=True, or MaxPool2d",
    "GlobalAveragePool": "use brevitas.nn.TruncAvgPool2d(trunc_quant=TruncTo8bit) over the whole map instead",
    "ReduceMean": "use brevitas.nn.TruncAvgPool2d(trunc_quant=TruncTo8bit) over the whole map after an activation "
    "with return_quant_tensor=True instead of a mean",
    "MatMul": "put a quantised activation (QuantReLU or QuantIdentity) between consecutive QuantConv/QuantLinear "
    "layers and quantise every layer's weights",
    "Im2Col": "put a quantised activation (QuantReLU or QuantIdentity) before every QuantConv and quantise its "
    "weights",
    "Transpose": "put a quantised activation (QuantReLU or QuantIdentity) before every QuantConv and after every "
    "pooling layer",
    "Add": "quantise both inputs of the addition with one shared QuantIdentity",
    "Sigmoid": _ACT_FIX,
    "Tanh": _ACT_FIX,
    "Gelu": _ACT_FIX,
    "Erf": _ACT_FIX,
    "PWPolyF": _ACT_FIX,
    "Mul": "quantise the output of every layer that scales its input (BatchNorm needs a quantised activation "
    "after it)",
}
_DEFAULT_FIX = "build the model only from quantised layers FINN maps to hardware (see docs/models.md, 'Your own model')"


_QUANT_SCOPES = ("weight_quant", "act_quant", "input_quant", "output_quant", "bias_quant", "trunc_quant")


def _layer_of(node: Any) -> str | None:
    """The torch module path the exporter recorded for an ONNX node (``pkg.torch.onnx.name_scopes``; FINN
    keeps a node's metadata while it only renames it), without our export wrapper's ``inner.``; ``""`` for an op
    of the model's own ``forward`` (``x.mean(...)`` at its top level)."""
    import ast

    for p in node.metadata_props:
        if p.key != "pkg.torch.onnx.name_scopes":
            continue
        try:
            scopes = [s for s in ast.literal_eval(p.value) if s]
        except (ValueError, SyntaxError):
            return None
        if len(scopes) < 2:
            return None
        parts = []
        for seg in scopes[-2].split("."):
            if seg in _QUANT_SCOPES:
                break
            parts.append(seg)
        if parts and parts[0] == "inner":
            return ".".join(parts[1:])
        return ".".join(parts) or None
    return None


#: FINN HW op types that replace ONNX ops without keeping the exporter's metadata, with the ops they come from
#: (finn-plus 1.6.1 ``build_dataflow_steps.step_convert_to_hw``: ``InferPWPolyFLayer`` on these op types).
_HW_SOURCES: dict[str, tuple[str, ...]] = {"PWPolyF": ("Sigmoid", "Tanh", "Gelu", "Erf", "PWPolyFunction")}


class _Layers:
    """The user's module paths and class names, to word messages about ONNX nodes of its export."""

    def __init__(self, model: Any, export: Path | None = None):
        self.classes = {path: type(m).__name__ for path, m in model.named_modules() if path}
        self.root = type(model).__name__
        self.export = export

    def phrase(self, node: Any) -> str:
        """``layer 'body.0' (QuantConv2d, ONNX Conv)``, or the node's name when no layer is recorded."""
        layer, op = _layer_of(node), node.op_type
        if layer is None and op in _HW_SOURCES and self.export is not None:
            layer, op = self._source_of(node)
        if layer is None:
            return f"the {node.op_type} node {node.name}"
        if not layer:
            return f"the {op} in {self.root}.forward (ONNX node {node.name})"
        kind = self.classes.get(layer)
        return f"layer '{layer}' ({kind}, ONNX {op})" if kind and kind != op else f"layer '{layer}' ({op})"

    def _source_of(self, node: Any) -> tuple[str | None, str]:
        """(layer, ONNX op) of the ``k``-th export node a HW node ``<Op>_<k>`` was made from (FINN numbers
        nodes of one op type in graph order)."""
        from qonnx.core.modelwrapper import ModelWrapper

        sources = [n for n in ModelWrapper(str(self.export)).graph.node if n.op_type in _HW_SOURCES[node.op_type]]
        k = int(node.name.rsplit("_", 1)[-1]) if node.name.rsplit("_", 1)[-1].isdigit() else 0
        if k >= len(sources):
            return None, node.op_type
        return _layer_of(sources[k]), sources[k].op_type


def _unmapped(model: Any) -> list[Any]:
    """Nodes of a FINN graph after step_convert_to_hw that are not HW layers."""
    return [n for n in model.graph.node if not n.domain.startswith("finn.custom_op.fpgadataflow")]


def _describe(nodes: list[Any], layers: _Layers) -> tuple[str, str]:
    """(which layer, what to change) for the first node FINN left unconverted."""
    first = nodes[0]
    return layers.phrase(first), FIXES.get(first.op_type, _DEFAULT_FIX)


def check_finn_conversion(
    model: Any, input_shape: Sequence[int], name: str, work_dir: str | Path, board: Any,
    clock_mhz: float | None = None, *, rtl: bool = False,
) -> Path:
    """Export a copy of the (untrained) ``model`` and run finn-plus up to ``step_specialize_layers``; raise one
    sentence naming the layer, the FINN step and what to change if FINN cannot build it. Returns the QONNX file.

    Nodes FINN leaves as software in the middle of the graph make ``step_create_dataflow_partition`` fail;
    a node left at either end is reported too (except the input ``Transpose``/``Reshape`` and the float
    ``Mul``/``Add`` output tail FINN's driver runs), since the accelerator would not compute it. An error
    raised in the user's code or Brevitas while calibrating or exporting names the module it was raised in
    (:func:`_export_untrained`).
    """
    from .finn.build import FinnStepError, run_finn_steps
    from .finn.graph import SPECIALIZE_STEPS, load_layers

    work = Path(work_dir)
    onnx_path = _export_untrained(model, input_shape, name, work / "untrained.qonnx.onnx")
    layers = _Layers(model, onnx_path)
    out = work / "finn"
    extra = {}
    if rtl:
        from .finn.build import rtl_build_kwargs

        extra = rtl_build_kwargs(out)
    try:
        res = run_finn_steps(onnx_path, out, board=board.finn_board, clock_mhz=float(clock_mhz or board.clock_mhz),
                             steps=SPECIALIZE_STEPS, **extra)
    except FinnStepError as e:
        _raise_for_step(e, out, name, layers)
    except UnsupportedLayerError as e:
        msg = _with_layer(e.message.rstrip("."), out, layers)
        raise UnsupportedLayerError(f"{msg} (checked before training on {name}).") from None
    _check_ends(res.step_models["step_convert_to_hw"], name, layers)
    try:
        load_layers(res.step_models["step_specialize_layers"])
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(
            f"{name[0].upper()}{name[1:]} converts to a FINN layer hapfpga cannot estimate or fold "
            f"({e.message.rstrip('.')}), checked before training; use the layers of the zoo's models."
        ) from None
    return onnx_path


def _export_untrained(model: Any, input_shape: Sequence[int], name: str, path: Path) -> Path:
    """Calibrate a copy of ``model`` (:func:`_with_calibrated_scales`) and export it to QONNX at ``path``; an
    exception raised inside the model's forward becomes one sentence naming the innermost module that raised it
    (:func:`_refuse_forward_error`)."""
    import copy

    from .export import export_qonnx

    work = copy.deepcopy(model)
    with _ModuleStack(work) as stack:
        try:
            return export_qonnx(_with_calibrated_scales(work, input_shape), input_shape, path)
        except Exception as e:
            _refuse_forward_error(e, stack.innermost(), name, work)
            raise


class _ModuleStack:
    """Forward pre/post hooks on every module of ``model`` tracking which modules are running: after an
    exception escapes a forward, :meth:`innermost` is the deepest module that had started and not finished."""

    def __init__(self, model: Any):
        self.model, self.running, self.hooks = model, [], []

    def __enter__(self) -> _ModuleStack:
        for path, m in self.model.named_modules():
            if path:
                self.hooks.append(m.register_forward_pre_hook(lambda _m, _i, p=path: self._start(p)))
                self.hooks.append(m.register_forward_hook(lambda _m, _i, _o, p=path: self._end(p)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.hooks:
            h.remove()

    def _start(self, path: str) -> None:
        self.running.append(path)

    def _end(self, path: str) -> None:
        while self.running and self.running.pop() != path:
            pass

    def innermost(self) -> tuple[str, Any] | None:
        """(path, module) of the innermost unfinished module (the user's own, not a Brevitas quantiser
        submodule), or None when the error came from outside every module's forward."""
        mods = dict(self.model.named_modules())
        for path in reversed(self.running):
            if not any(part in _QUANT_SCOPES for part in path.split(".")):
                return path, mods[path]
        return None


def _refuse_forward_error(e: Exception, where: tuple[str, Any] | None, name: str, model: Any) -> None:
    """Raise the one-sentence refusal for an exception from the user's forward during export, if one fits:
    Brevitas' ``Scaling factors are different`` (a residual add of two differently scaled QuantTensors) or any
    error raised inside one of the model's modules, or in ``model``'s own forward (an add written there, outside
    every submodule: ``where`` is None and the traceback passes through the model's file)."""
    import traceback

    from .errors import HapError

    if isinstance(e, HapError):
        return
    if where is None:
        if not _user_line(e, model):  # not from the user's code: a hapfpga bug stays an internal error
            return
        where = ("", model)
    path, module = where
    line = _user_line(e, module)
    msg = " ".join(str(e).split()).rstrip(".") or "no message"
    what = f"Layer '{path}' ({type(module).__name__})" if path else f"The forward of {type(module).__name__}"
    if _is_scale_mismatch(e):
        cat = any(f.name == "cat" for f in traceback.extract_tb(e.__traceback__))
        verb, op, alt = ("concatenates", "concatenation", "QuantCat") if cat else ("adds", "add", "QuantEltwiseAdd")
        raise UnsupportedLayerError(
            f"{what} of {name} {verb} quantised tensors with different scales"
            f"{line} (Brevitas: {msg}), which FINN cannot build as an integer {op}; quantise all inputs of the "
            f"{op} with one shared quantiser module (as Brevitas' QuantBasicBlock passes its shortcut's QuantReLU "
            f"as shared_quant_act), or a {alt} with one input quantiser."
        ) from None
    raise UnsupportedLayerError(
        f"{what} of {name} cannot be exported to QONNX for FINN "
        f"({type(e).__name__}{line}: {msg}); build that layer from brevitas.nn quantised layers that export."
    ) from None


#: Brevitas' QuantTensor messages (``brevitas.quant_tensor``) when an add or a cat joins tensors it cannot join.
_JOIN_MISMATCHES = frozenset(f"{what} are different" for what in (
    "Scaling factors", "Zero points", "Bit widths", "Signs", "Floating point representations"))


def _is_scale_mismatch(e: Exception) -> bool:
    """Brevitas' refusal to add (or concatenate) QuantTensors of different scales or zero points."""
    return isinstance(e, RuntimeError) and str(e) in _JOIN_MISMATCHES


def _user_line(e: Exception, module: Any) -> str:
    """`` at file.py:N``: the last traceback line in the file that defines ``module``'s class, or ''."""
    import inspect
    import traceback

    try:
        file = Path(inspect.getsourcefile(type(module)) or "").resolve()
    except TypeError:
        return ""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename).resolve() == file]
    return f" at {file.name}:{frames[-1].lineno}" if frames else ""


def _with_calibrated_scales(model: Any, input_shape: Sequence[int]) -> Any:
    """``model`` (a copy) after a few training-mode forward passes on random inputs, so that its activation
    quantisers take scales from their own statistics, as training gives them: untrained, every quantiser has the
    same initial scale, and a residual add of two unshared quantisers would convert here and fail after training
    (``hapfpga.finn.streamline.check_joins_integer``)."""
    import torch

    model.train()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand((8, *[int(d) for d in input_shape]), generator=gen))
    return model.eval()


def _raise_for_step(e: Any, out: Path, name: str, layers: _Layers) -> None:
    from qonnx.core.modelwrapper import ModelWrapper

    saved = sorted((out / "intermediate_models").glob("*.onnx"), key=lambda p: p.stat().st_mtime)
    last = ModelWrapper(str(saved[-1])) if saved else None
    cause = f"{type(e.cause).__name__}, log {e.log_file}"
    known = _known_cause(last, layers, e) if last is not None else None
    if known:
        where, reason, fix = known
        raise UnsupportedLayerError(f"FINN cannot build {where} of {name}: {reason} (step {e.step}, {cause}); {fix}.")
    nodes: list[Any] = []
    if last is not None and ("convert_to_hw" in saved[-1].stem or "partition" in e.step):
        nodes = _unmapped(last)
    if nodes:
        where, fix = _describe([n for n in nodes if n.op_type not in ("Transpose",)] or nodes, layers)
        reason = "step_convert_to_hw maps it to no hardware layer, so "
    else:
        where, fix, reason = "a layer", _DEFAULT_FIX, _finn_says(e, out, layers)
    raise UnsupportedLayerError(
        f"FINN cannot build {where} of {name}: {reason}step {e.step} failed on the untrained model ({cause}); "
        f"{fix}."
    )


def _finn_says(e: Any, out: Path, layers: _Layers) -> str:
    """FINN's own reason for a failed step, quoted with the user's layer beside the node it names (``FINN says
    "MultiThreshold_4 of layer 'b1' (...): out_scale must be equal to 1.0 for HLS conversion"; ``), or ''."""
    said = " ".join(str(getattr(e, "cause", None) or "").split()).rstrip(".")
    return f'FINN says "{_with_layer(said, out, layers)}"; ' if said else ""


def _with_layer(msg: str, out: Path, layers: _Layers) -> str:
    """``msg`` (one of our FINN steps' refusals, naming a graph node such as ``Add_0``) with the user's layer
    of that node added after its first mention, when the exporter recorded one."""
    import re

    from qonnx.core.modelwrapper import ModelWrapper

    saved = sorted((out / "intermediate_models").glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    for token in re.findall(r"\b[A-Za-z]+_\d+\b", msg):
        for f in saved[:1]:
            node = next((n for n in ModelWrapper(str(f)).graph.node if n.name == token), None)
            if node is not None and _layer_of(node) is not None:
                return msg.replace(token, f"{token} of {layers.phrase(node)}", 1)
    return msg


def _known_cause(graph: Any, layers: _Layers, e: Any) -> tuple[str, str, str] | None:
    """(layer, reason, fix) for a FINN step failure whose cause the graph before the step shows, or None.

    Checked in order: a ``Conv`` with ``1 < group`` that is not depthwise (qonnx 0.x ``LowerConvsToMatMul``, run
    by step_streamline, lowers only dense and depthwise convolutions and fails on a reshape otherwise); a FINN
    user error naming a node (e.g. a ``PWPolyF`` activation on a non-Versal part), quoted."""
    import re

    for node in graph.graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        w = graph.get_initializer(node.input[1])
        shape = graph.get_tensor_shape(node.input[1]) if w is None else list(w.shape)
        out_ch, in_per_group = int(shape[0]), int(shape[1])
        if group > 1 and not (in_per_group == 1 and out_ch == group):
            return (layers.phrase(node),
                    f"it is a grouped convolution (groups={group}) that is not depthwise, and qonnx's "
                    "LowerConvsToMatMul lowers only dense (groups=1) and depthwise convolutions",
                    "replace it by a depthwise convolution (groups=in_channels=out_channels) followed by a 1x1 "
                    "pointwise convolution, or use groups=1")
    bipolar = _bipolar_cause(layers, e)
    if bipolar is not None:
        return bipolar
    m = re.search(r"node (\S+)", str(e.cause)) if type(e.cause).__name__ == "FINNUserError" else None
    node = next((n for n in graph.graph.node if m and n.name == m.group(1)), None)
    if node is not None:
        first = re.split(r"\.\s", " ".join(str(e.cause).split()))[0].rstrip(".")
        return layers.phrase(node), f"FINN says: {first}", FIXES.get(node.op_type, _DEFAULT_FIX)
    return None


#: FINN's refusals of a MultiThreshold with out_scale != 1 (a bipolar output: out_scale 2, out_bias -1), by the
#: converter that refuses it (finn-plus 1.6.1 ``convert_to_hw/vector_vector_activation.py`` and ``thresholding.py``)
_OUT_SCALE_REFUSALS = {"out_scale must be equal to 1.0": "vvau", "MultiThreshold out_scale must be 1": "thresholds"}
#: Ops between a layer and its activation quantiser in a Brevitas export (BatchNorm, a bias, a scale)
_PASS_THROUGH = frozenset({"BatchNormalization", "Mul", "Div", "Add", "Sub", "Relu", "Identity"})


def _bipolar_feeder(g: Any, quant: Any) -> tuple[str, Any]:
    """(kind, node) of what feeds a bipolar activation quantiser in the export: ``"dense"`` (a groups=1 Conv, a
    Gemm/MatMul: FINN fuses the activation into its MVAU), ``"vvau"`` (a depthwise Conv), ``"thresholds"``
    (anything else: a residual add, a pool, the graph input), skipping BatchNorm and scalar affine nodes."""
    node = g.find_producer(quant.input[0])
    while node is not None and node.op_type in _PASS_THROUGH and (
            node.op_type != "Add" or any(g.get_initializer(t) is not None for t in node.input)):
        node = g.find_producer(node.input[0])
    if node is None:
        return "thresholds", None
    if node.op_type in ("Gemm", "MatMul"):
        return "dense", node
    if node.op_type == "Conv":
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        return ("vvau" if group > 1 else "dense"), node
    return "thresholds", node


def _bipolar_cause(layers: _Layers, e: Any) -> tuple[str, str, str] | None:
    """(layer, reason, fix) when FINN refuses a bipolar activation it cannot build: finn-plus 1.6.1 fuses a
    bipolar (1-bit signed, {-1, +1}) activation only into the MVAU of the dense conv/linear layer before it
    (``convert_to_hw/quantized_matrix_vector_activation.py`` accepts "out_scale=1 or bipolar output"); after a
    depthwise convolution (a VVAU) or as standalone thresholds (after a residual add, a pool, the input) the
    converter requires out_scale 1. The user's activation is found in the export: the first bipolar
    activation quantiser fed by the kind of layer the refusing converter builds."""
    said = " ".join(str(getattr(e, "cause", "")).split())
    kind = next((k for msg, k in _OUT_SCALE_REFUSALS.items() if msg in said), None)
    if type(getattr(e, "cause", None)).__name__ != "FINNUserError" or kind is None or layers.export is None:
        return None
    from qonnx.core.modelwrapper import ModelWrapper

    g = ModelWrapper(str(layers.export))
    for quant in g.get_nodes_by_op_type("BipolarQuant"):
        if g.get_initializer(quant.input[0]) is not None:
            continue  # a weight quantiser
        feeder, src = _bipolar_feeder(g, quant)
        if feeder != kind:
            continue
        after = (f"after {layers.phrase(src)}" if src is not None else "on the model's input")
        what = "a depthwise convolution's VVAU" if kind == "vvau" else "a standalone thresholding layer"
        return (layers.phrase(quant),
                f"it is a bipolar (1-bit signed) activation {after}, which FINN would build as {what}, and FINN "
                "builds bipolar outputs only fused into a dense convolution or linear layer (FINN says "
                f"\"{said.rstrip('.')}\")",
                "give that activation 2 or more bits (QuantReLU(bit_width=2) or QuantIdentity(bit_width=2)), or "
                "put the bipolar activation right after a dense (groups=1) QuantConv or a QuantLinear")
    return None


#: Non-HW nodes FINN may leave at the graph's ends without losing any computation to software.
_ENDS_OK = {"Transpose", "Reshape", "Mul", "Add", "TopK", "ArgMax"}


def _check_ends(hw_model: Path, name: str, layers: _Layers) -> None:
    from qonnx.core.modelwrapper import ModelWrapper

    left = [n for n in _unmapped(ModelWrapper(str(hw_model))) if n.op_type not in _ENDS_OK]
    if left:
        where, fix = _describe(left, layers)
        raise UnsupportedLayerError(
            f"FINN leaves {where} of {name} in software after step_convert_to_hw (checked before training), "
            f"so the accelerator would not compute it; {fix}."
        )


def check_before_training(
    model: Any, model_name: str, input_shape: Sequence[int], num_classes: int, work_dir: str | Path, board: Any,
    clock_mhz: float | None = None, *, rtl: bool = False,
) -> None:
    """Everything the train stage checks before it trains: :func:`check_model` always, and for a user's model
    (``path/to/file.py:factory``) also :func:`check_finn_conversion`. The zoo's models skip it: the test suite
    builds each of them through FINN (tests/ml/test_zoo_flow.py for the newer ones, tests/pipeline and
    tests/estimate for digits_cnn, tfc and cnv, the residual tests for resnet8)."""
    from .zoo import MODELS

    name = f"model '{model_name}'"
    check_model(model, input_shape, num_classes, name=name)
    if model_name not in MODELS:
        check_finn_conversion(model, input_shape, name, work_dir, board, clock_mhz, rtl=rtl)

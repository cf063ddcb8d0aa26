"""Early checks of a (user) model before minutes of training: supported layers, input shape, outputs, and
FINN's conversion of the untrained model to its HW graph.

FINN builds dataflow hardware for a fixed set of quantised layers; a model with anything else would train fine
and fail late in the FINN conversion. :func:`check_model` checks the layer types against the set the flow
supports and runs one forward pass on the dataset's input shape (milliseconds); :func:`check_finn_conversion`
exports the untrained model and runs finn-plus's steps up to ``step_specialize_layers`` (seconds: weights do
not change which layers FINN can build), so that anything FINN cannot build stops the run with one sentence
naming the layer, the FINN step and what to change.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnsupportedLayerError

__all__ = ["SUPPORTED_LAYERS", "check_model", "check_finn_conversion", "check_before_training", "FIXES"]

#: Module types the Brevitas -> QONNX -> FINN flow converts (leaf modules; Brevitas quant layers are leaves).
SUPPORTED_LAYERS: tuple[str, ...] = (
    "QuantConv1d", "QuantConv2d", "QuantLinear", "QuantReLU", "QuantIdentity", "QuantHardTanh",
    "BatchNorm1d", "BatchNorm2d", "MaxPool1d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "Identity",
    "TruncAvgPool2d", "QuantEltwiseAdd", "QuantCat",
)
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def _walk(module: Any, prefix: str = ""):
    """Yield (name, leaf module); Brevitas quant layers count as leaves (their children are quantisers)."""
    from brevitas.nn.mixin.base import QuantLayerMixin

    children = list(module.named_children())
    if not children or isinstance(module, QuantLayerMixin):
        yield prefix or type(module).__name__, module
        return
    for name, child in children:
        yield from _walk(child, f"{prefix}.{name}" if prefix else name)


def check_model(model: Any, input_shape: Sequence[int], num_classes: int, name: str = "the model") -> None:
    """Raise a one-sentence user error if ``model`` has a layer FINN cannot build or rejects the input shape."""
    import torch

    for path, leaf in _walk(model):
        kind = type(leaf).__name__
        if kind in _CONTAINERS:
            continue
        if kind not in SUPPORTED_LAYERS:
            raise UnsupportedLayerError(
                f"Layer '{path}' of {name} is a {kind}, which the Brevitas-to-FINN flow cannot build; "
                f"use only {', '.join(SUPPORTED_LAYERS)}."
            )
    shape = (1, *tuple(int(s) for s in input_shape))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except Exception as e:  # the user's forward rejects the data's shape
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            f"{name[0].upper()}{name[1:]} does not accept inputs of shape {list(shape)} from the dataset "
            f"({first.rstrip('.')}); make the model's input layer match the data."
        ) from None
    finally:
        model.train(was_training)
    out = getattr(out, "value", out)
    if tuple(out.shape) != (1, num_classes):
        raise ConfigError(
            f"{name[0].upper()}{name[1:]} outputs shape {list(out.shape)} for one input but the dataset has "
            f"{num_classes} classes; its last layer must output {num_classes} values."
        )


#: What to change when FINN leaves an ONNX op of this type unconverted (keyed by op type; the default below).
FIXES: dict[str, str] = {
    "AveragePool": "use brevitas.nn.TruncAvgPool2d(trunc_quant=TruncTo8bit) after an activation with "
    "return_quant_tensor=True, or MaxPool2d",
    "GlobalAveragePool": "use brevitas.nn.TruncAvgPool2d(trunc_quant=TruncTo8bit) over the whole map instead",
    "MatMul": "put a quantised activation (QuantReLU or QuantIdentity) between consecutive QuantConv/QuantLinear "
    "layers and quantise every layer's weights",
    "Im2Col": "put a quantised activation (QuantReLU or QuantIdentity) before every QuantConv and quantise its "
    "weights",
    "Transpose": "put a quantised activation (QuantReLU or QuantIdentity) before every QuantConv and after every "
    "pooling layer",
    "Add": "quantise both inputs of the addition with one shared QuantIdentity",
    "Mul": "quantise the output of every layer that scales its input (BatchNorm needs a quantised activation "
    "after it)",
}
_DEFAULT_FIX = "build the model only from quantised layers FINN maps to hardware (see docs/models.md, 'Your own model')"


_QUANT_SCOPES = ("weight_quant", "act_quant", "input_quant", "output_quant", "bias_quant", "trunc_quant")


def _layer_of(node: Any) -> str | None:
    """The torch module path the exporter recorded for an ONNX node (``pkg.torch.onnx.name_scopes``; FINN
    keeps a node's metadata while it only renames it), without our export wrapper's ``inner.``."""
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
            parts = parts[1:]
        return ".".join(parts) or None
    return None


def _unmapped(model: Any) -> list[Any]:
    """Nodes of a FINN graph after step_convert_to_hw that are not HW layers."""
    return [n for n in model.graph.node if not n.domain.startswith("finn.custom_op.fpgadataflow")]


def _describe(nodes: list[Any]) -> tuple[str, str]:
    """(which layer, what to change) for the first node FINN left unconverted."""
    first = nodes[0]
    layer = _layer_of(first)
    where = f"layer '{layer}' ({first.op_type})" if layer else f"the {first.op_type} node {first.name}"
    return where, FIXES.get(first.op_type, _DEFAULT_FIX)


def check_finn_conversion(
    model: Any, input_shape: Sequence[int], name: str, work_dir: str | Path, board: Any,
    clock_mhz: float | None = None, *, rtl: bool = False,
) -> Path:
    """Export a copy of the (untrained) ``model`` and run finn-plus up to ``step_specialize_layers``; raise one
    sentence naming the layer, the FINN step and what to change if FINN cannot build it. Returns the QONNX file.

    Nodes FINN leaves as software in the middle of the graph make ``step_create_dataflow_partition`` fail;
    a node left at either end is reported too (except the input ``Transpose``/``Reshape`` and the float
    ``Mul``/``Add`` output tail FINN's driver runs), since the accelerator would not compute it.
    """
    import copy

    from .export import export_qonnx
    from .finn.build import FinnStepError, run_finn_steps
    from .finn.graph import SPECIALIZE_STEPS, load_layers

    work = Path(work_dir)
    onnx_path = export_qonnx(_with_calibrated_scales(copy.deepcopy(model), input_shape), input_shape,
                             work / "untrained.qonnx.onnx")
    out = work / "finn"
    extra = {}
    if rtl:
        from .finn.build import rtl_build_kwargs

        extra = rtl_build_kwargs(out)
    try:
        res = run_finn_steps(onnx_path, out, board=board.finn_board, clock_mhz=float(clock_mhz or board.clock_mhz),
                             steps=SPECIALIZE_STEPS, **extra)
    except FinnStepError as e:
        _raise_for_step(e, out, name)
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(f"{e.message.rstrip('.')} (checked before training on {name}).") from None
    _check_ends(res.step_models["step_convert_to_hw"], name)
    try:
        load_layers(res.step_models["step_specialize_layers"])
    except UnsupportedLayerError as e:
        raise UnsupportedLayerError(
            f"{name[0].upper()}{name[1:]} converts to a FINN layer hapfpga cannot estimate or fold "
            f"({e.message.rstrip('.')}), checked before training; use the layers of the zoo's models."
        ) from None
    return onnx_path


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


def _raise_for_step(e: Any, out: Path, name: str) -> None:
    from qonnx.core.modelwrapper import ModelWrapper

    saved = sorted((out / "intermediate_models").glob("*.onnx"), key=lambda p: p.stat().st_mtime)
    nodes: list[Any] = []
    if saved:
        last = ModelWrapper(str(saved[-1]))
        nodes = _unmapped(last) if "convert_to_hw" in saved[-1].stem or "partition" in e.step else []
    if nodes:
        where, fix = _describe([n for n in nodes if n.op_type not in ("Transpose",)] or nodes)
    else:
        where, fix = "a layer", _DEFAULT_FIX
    raise UnsupportedLayerError(
        f"FINN cannot build {where} of {name}: step {e.step} failed on the untrained model "
        f"({type(e.cause).__name__}, log {e.log_file}); {fix}."
    )


#: Non-HW nodes FINN may leave at the graph's ends without losing any computation to software.
_ENDS_OK = {"Transpose", "Reshape", "Mul", "Add", "TopK", "ArgMax"}


def _check_ends(hw_model: Path, name: str) -> None:
    from qonnx.core.modelwrapper import ModelWrapper

    left = [n for n in _unmapped(ModelWrapper(str(hw_model))) if n.op_type not in _ENDS_OK]
    if left:
        where, fix = _describe(left)
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

"""Early checks of a (user) model before minutes of training: supported layers, input shape, outputs.

FINN builds dataflow hardware for a fixed set of quantised layers; a model with anything else would
train fine and fail late in the FINN conversion. We check the layer types against the set the flow
supports and run one forward pass on the dataset's input shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, UnsupportedLayerError

__all__ = ["SUPPORTED_LAYERS", "check_model"]

#: Module types the Brevitas -> QONNX -> FINN flow converts (leaf modules; Brevitas quant layers are leaves).
SUPPORTED_LAYERS: tuple[str, ...] = (
    "QuantConv2d", "QuantLinear", "QuantReLU", "QuantIdentity", "QuantHardTanh",
    "BatchNorm1d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "Flatten", "Dropout", "Identity",
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

"""Size of a model: parameters, multiply-accumulates per inference and output channels per layer.

MACs follow the usual convention (e.g. Sze et al., "Efficient Processing of Deep Neural Networks", 2017):
a convolution costs ``H_out · W_out · C_out · (C_in / groups) · K_h · K_w`` MACs, a linear layer
``in_features · out_features``; BatchNorm, activations and pooling are not counted (FINN folds BN into
thresholds). Shapes are taken from one forward pass of a zero input with hooks, so any layout works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["model_summary"]


def model_summary(model: torch.nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """``{"params": int, "macs": int, "channels": {layer_name: out_channels}}`` for conv/linear layers
    (Brevitas ``QuantConv2d``/``QuantLinear`` included), names as in ``model.named_modules()``."""
    import torch

    layers: dict[str, Any] = {}
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
            layers[name] = m
    macs: dict[str, int] = {}
    hooks = []

    def hook(name: str):
        def fn(mod: Any, inp: Any, out: Any) -> None:
            o = getattr(out, "value", out)
            if isinstance(mod, torch.nn.Linear):
                n_vec = o.numel() // mod.out_features
                macs[name] = macs.get(name, 0) + n_vec * mod.in_features * mod.out_features
            else:
                k = 1
                for d in mod.kernel_size:
                    k *= int(d)
                macs[name] = macs.get(name, 0) + o.numel() * (mod.in_channels // mod.groups) * k

        return fn

    for name, m in layers.items():
        hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *[int(d) for d in input_shape])))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    channels = {
        name: int(m.out_features if isinstance(m, torch.nn.Linear) else m.out_channels)
        for name, m in layers.items()
    }
    params = sum(int(p.numel()) for p in model.parameters())
    return {"params": params, "macs": int(sum(macs.values())), "channels": channels}

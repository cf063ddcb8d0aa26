"""``cnn1d``: a VGG10-1D-like stack of QuantConv1d layers for N×C×L signals (radio I/Q, audio, sensors).

Topology (finn-examples' VGG10 for RadioML 2018, O'Shea et al., "Over-the-Air Deep Learning Based Radio Signal
Classification", 2018; ``build/vgg10`` in finn-examples): ``convI`` QuantConv1d (kernel 3, padding 1) → ``bnI``
BatchNorm1d → ``actI`` → ``poolI`` MaxPool1d(2), then FC layers. VGG10 is ``channels=[64]*7, fc=[128, 128]`` on
2×1024 inputs with 24 classes; the defaults are small (8-16-16, FC 32) so tests stay fast.

FINN builds it through its 1D sliding-window path: qonnx's ``Change3DTo4DTensors`` turns N×C×L tensors into
N×C×L×1 (``hapfpga.finn.build.step_hap_1d_to_4d``), after which the convs lower to ``ConvolutionInputGenerator``
+ MVAU with a (k, 1) window, as in finn-examples' VGG10 build.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from ..quant import layer_quantisers
from ..types import QuantSpec
from .models import QuantCNN, _act, _fc_classifier, _ints

__all__ = ["cnn1d"]


def cnn1d(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    channels: Sequence[int] = (8, 16, 16),
    kernel: int = 3,
    padding: int = 1,
    pool_after: Sequence[int] | None = None,
    fc: Sequence[int] = (32,),
    per_channel: bool = False,
):
    """QuantConv1d (``kernel``, ``padding``) → BN → act [→ max-pool 2] per entry of ``channels`` (pool after every
    conv unless ``pool_after`` lists the conv indices), flatten, FC ``fc`` → classes."""
    import brevitas.nn as qnn

    channels, fc = _ints("channels", channels), _ints("fc", fc)
    if len(input_shape) != 2:
        raise ConfigError(
            f"Model 'cnn1d' takes signals C×L but the dataset gives inputs of shape {tuple(input_shape)}; "
            "use a 1D dataset (N×C×L, e.g. data.name: signals) or a 2D model."
        )
    pool = tuple(range(len(channels))) if pool_after is None else tuple(pool_after)
    c, length = (int(v) for v in input_shape)
    layers: OrderedDict[str, Any] = OrderedDict()
    for i, out_ch in enumerate(channels):
        q = layer_quantisers(quant, i, per_channel=per_channel)
        length = length + 2 * padding - kernel + 1
        if length < 1:
            raise ConfigError(
                f"Model 'cnn1d' shrinks the length-{input_shape[1]} signal to nothing at conv {i}; "
                "use longer signals (data.size) or fewer conv layers."
            )
        layers[f"conv{i}"] = qnn.QuantConv1d(c, out_ch, kernel, padding=padding, bias=False, **q.weight)
        layers[f"bn{i}"] = torch.nn.BatchNorm1d(out_ch, eps=1e-4)
        layers[f"act{i}"] = _act(q)
        if i in pool:
            if length < 2:
                raise ConfigError(
                    f"Model 'cnn1d' cannot max-pool a length-{length} signal after conv {i}; use longer signals."
                )
            layers[f"pool{i}"] = torch.nn.MaxPool1d(2)
            length //= 2
        c = out_ch
    features = torch.nn.Sequential(layers)
    classifier = _fc_classifier(c * length, fc, num_classes, quant, len(channels), per_channel)
    return QuantCNN(features, classifier, input_shape, "cnn1d")

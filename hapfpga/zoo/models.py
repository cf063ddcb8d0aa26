"""The zoo's Brevitas models, built so that FINN converts every layer and a structured pruner can walk them.

Every model is ``features`` (an ``nn.Sequential`` of named ``convI → bnI → actI [→ poolI]`` blocks) followed by
``classifier`` (``fcI → bnI → actI`` blocks and a last ``QuantLinear``), with ``x.flatten(1)`` between the two.
Inputs are float32 in [0, 1] on the k/255 grid; :func:`hapfpga.export.export_qonnx` puts the ``× 1/255`` in front
so the hardware takes UINT8 pixels (as FINN's end-to-end examples do with ``ToTensor``).

Topologies:

* ``digits_cnn`` — our small demo CNN for 8×8 digits: conv 16-32 (3×3, no padding), max-pool 2, FC 64, classes.
* ``tfc`` — FINN's TFC: FC 64-64-64 → classes (``brevitas_examples.bnn_pynq.models.FC``; Umuroglu et al.,
  "FINN", FPGA'17).
* ``cnv`` — FINN's CNV: conv 64-64-pool-128-128-pool-256-256 (3×3, no padding), FC 512-512 → classes
  (``brevitas_examples.bnn_pynq.models.CNV``; ``CNV_OUT_CH_POOL`` and ``INTERMEDIATE_FC_FEATURES`` there).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError
from ..quant import layer_quantisers
from ..types import QuantSpec

__all__ = ["QuantCNN", "digits_cnn", "tfc", "cnv", "CNV_CHANNELS", "CNV_POOL_AFTER", "CNV_FC"]

#: FINN's CNV conv channels and the convs followed by a 2×2 max-pool (brevitas_examples CNV_OUT_CH_POOL).
CNV_CHANNELS: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
CNV_POOL_AFTER: tuple[int, ...] = (1, 3)
CNV_FC: tuple[int, ...] = (512, 512)


def _torch():
    import torch

    return torch


def _ints(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) or not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(f"Model option '{name}' is {value!r}; give a list of positive integers.")
    out = tuple(value)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in out):
        raise ConfigError(f"Model option '{name}' is {list(value)!r}; give a list of positive integers.")
    return out


class QuantCNN(torch.nn.Module):
    """``features`` → flatten → ``classifier``; the common shape of every zoo model (picklable: module level)."""

    def __init__(
        self, features: torch.nn.Sequential, classifier: torch.nn.Sequential, input_shape, name: str
    ):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.input_shape = tuple(int(d) for d in input_shape)
        self.zoo_name = name

    def forward(self, x):
        x = self.features(x)
        x = x.flatten(1)
        return self.classifier(x)

    def __reduce__(self):
        """Pickle as (rebuild spec, state_dict): Brevitas quantisers hold injector classes made at run time, which
        pickle cannot name, so ``torch.save(model)`` would fail. The spec reads the widths from the modules, so a
        channel-pruned model comes back at its pruned widths (``hapfpga.zoo.model_spec``), and with the Brevitas
        runtime-statistics state ``state_dict`` leaves out (``hapfpga.train.runtime_state``)."""
        from ..train import full_state_dict, runtime_state
        from . import model_spec

        return (_rebuild, (model_spec(self), full_state_dict(self), self.training, runtime_state(self)))

    def __deepcopy__(self, memo):
        """Plain deep copy of the attributes (not the pickle path above, which would rebuild the model)."""
        import copy

        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new


def _rebuild(spec: dict, state_dict: dict, training: bool, runtime: dict | None = None) -> torch.nn.Module:
    """Inverse of ``QuantCNN.__reduce__`` (``runtime``: absent from pickles made before it was saved)."""
    from ..train import load_runtime_state
    from . import model_from_spec

    model = model_from_spec(spec)
    model.load_state_dict(state_dict)
    load_runtime_state(model, runtime or {})
    return model.train(training)


def _act(q):
    import brevitas.nn as qnn

    if q.bipolar_act:
        return qnn.QuantIdentity(**q.act)
    return qnn.QuantReLU(**q.act)


def _conv_features(
    in_shape: Sequence[int],
    channels: Sequence[int],
    pool_after: Sequence[int],
    quant: QuantSpec,
    kernel: int,
    per_channel: bool,
    model: str,
):
    """conv → BN → act [→ max-pool] blocks; returns (Sequential, output shape, number of quantised layers)."""
    import brevitas.nn as qnn

    torch = _torch()
    if len(in_shape) != 3:
        raise ConfigError(
            f"Model '{model}' takes images C×H×W but the dataset gives inputs of shape {tuple(in_shape)}; "
            "use an image dataset (NCHW) or the 'tfc' model."
        )
    c, h, w = (int(v) for v in in_shape)
    layers: OrderedDict[str, Any] = OrderedDict()
    for i, out_ch in enumerate(channels):
        q = layer_quantisers(quant, i, per_channel=per_channel)
        h, w = h - kernel + 1, w - kernel + 1
        if h < 1 or w < 1:
            raise ConfigError(
                f"Model '{model}' shrinks the {in_shape[1]}×{in_shape[2]} input to nothing at conv {i}; "
                "use larger inputs (e.g. data.size: 32) or fewer conv layers."
            )
        layers[f"conv{i}"] = qnn.QuantConv2d(c, out_ch, kernel, bias=False, **q.weight)
        layers[f"bn{i}"] = torch.nn.BatchNorm2d(out_ch, eps=1e-4)
        layers[f"act{i}"] = _act(q)
        if i in pool_after:
            if h < 2 or w < 2:
                raise ConfigError(
                    f"Model '{model}' cannot max-pool a {h}×{w} map after conv {i}; use larger inputs."
                )
            layers[f"pool{i}"] = torch.nn.MaxPool2d(2)
            h, w = h // 2, w // 2
        c = out_ch
    return torch.nn.Sequential(layers), (c, h, w), len(channels)


def _fc_classifier(
    in_features: int, hidden: Sequence[int], num_classes: int, quant: QuantSpec, first: int, per_channel: bool
):
    """fc → BN → act blocks and a last QuantLinear (no bias, no activation: its float scale is FINN's tail)."""
    import brevitas.nn as qnn

    torch = _torch()
    layers: OrderedDict[str, Any] = OrderedDict()
    n = in_features
    for j, out_f in enumerate(hidden):
        q = layer_quantisers(quant, first + j, per_channel=per_channel)
        layers[f"fc{j}"] = qnn.QuantLinear(n, out_f, bias=False, **q.weight)
        layers[f"bn{j}"] = torch.nn.BatchNorm1d(out_f, eps=1e-4)
        layers[f"act{j}"] = _act(q)
        n = out_f
    q = layer_quantisers(quant, first + len(hidden), per_channel=per_channel)
    layers[f"fc{len(hidden)}"] = qnn.QuantLinear(n, num_classes, bias=False, **q.weight)
    return torch.nn.Sequential(layers)


def _prod(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def digits_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    channels: Sequence[int] = (16, 32),
    pool_after: Sequence[int] | None = None,
    fc: Sequence[int] = (64,),
    per_channel: bool = False,
):
    """Small CNN for 8×8 digits: conv 16-32 (3×3, no padding), 2×2 max-pool after the last conv, FC 64."""
    channels, fc = _ints("channels", channels), _ints("fc", fc)
    pool = (len(channels) - 1,) if pool_after is None else tuple(pool_after)
    features, out_shape, nq = _conv_features(input_shape, channels, pool, quant, 3, per_channel, "digits_cnn")
    classifier = _fc_classifier(_prod(out_shape), fc, num_classes, quant, nq, per_channel)
    return QuantCNN(features, classifier, input_shape, "digits_cnn")


def tfc(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    fc: Sequence[int] = (64, 64, 64),
    per_channel: bool = False,
):
    """FINN's TFC: the input flattened, FC 64-64-64 (BN + quantised activation each) → classes."""
    torch = _torch()
    fc = _ints("fc", fc)
    classifier = _fc_classifier(_prod(input_shape), fc, num_classes, quant, 0, per_channel)
    return QuantCNN(torch.nn.Sequential(), classifier, input_shape, "tfc")


def cnv(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    channels: Sequence[int] = CNV_CHANNELS,
    pool_after: Sequence[int] = CNV_POOL_AFTER,
    fc: Sequence[int] = CNV_FC,
    per_channel: bool = False,
):
    """FINN's CNV: conv 64-64-pool-128-128-pool-256-256 (3×3, no padding, BN + quantised act), FC 512-512.

    Same topology as ``brevitas_examples.bnn_pynq.models.CNV`` (whose input is 3×32×32, giving 256×1×1 before
    the FC layers); ``channels`` / ``fc`` change the widths, ``input_shape`` the input.
    """
    channels, fc = _ints("channels", channels), _ints("fc", fc)
    features, out_shape, nq = _conv_features(
        input_shape, channels, tuple(pool_after), quant, 3, per_channel, "cnv"
    )
    classifier = _fc_classifier(_prod(out_shape), fc, num_classes, quant, nq, per_channel)
    return QuantCNN(features, classifier, input_shape, "cnv")

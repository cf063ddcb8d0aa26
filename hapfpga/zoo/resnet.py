"""``resnet8``: the MLPerf Tiny image-classification ResNet-8, built so that FINN streamlines its forks and joins.

Topology (MLPerf Tiny IC reference, ``resnet_v1_eembc``; Banbury et al., "MLPerf Tiny Benchmark", NeurIPS 2021):
stem conv 3×3 16 → three stages of one residual block each (16, 32, 64 channels; two 3×3 convs per block; the
second and third stage start with stride 2 and take a 1×1 conv shortcut where the shape changes) → average pool
over the whole map → FC to the classes.

What makes the joins integer in FINN is the quantiser sharing of Brevitas' own FINN-ready ResNet
(``brevitas_examples.bnn_pynq.models.resnet.QuantBasicBlock``): both inputs of every add leave the *same*
``QuantReLU`` module (one learned scale), so after FINN's ``MoveLinearPastEltwiseAdd`` the add sums two
unsigned integer streams and the scale moves on to the ``MultiThreshold`` after it:

* identity shortcut: the block's input comes out of a ``QuantReLU`` (the stem's or the previous block's
  output activation), and the long branch ends in that same module;
* 1×1 conv shortcut: the shortcut ends in a ``QuantReLU`` (conv → BN → act) and the long branch ends in that
  same module;
* after the add a fresh ``QuantReLU`` (the block's output, ``act_out``) requantises the sum.

The average pool is Brevitas' ``TruncAvgPool2d`` over the whole map (as in that ResNet), truncated to the last
block's activation width: FINN's QONNX conversion turns ``AveragePool`` + ``Trunc`` into ``QuantAvgPool2d``, an
integer ``Pool`` layer (sum, then a right shift). ``pool: max`` takes a max-pool instead, which the RTL simulation
models (an open-simulatable design). Inputs are float32 in [0, 1] on the k/255 grid
(:func:`hapfpga.export.export_qonnx` puts the ``× 1/255`` in front).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from ..quant import layer_quantisers
from ..types import QuantSpec

__all__ = ["ResNet", "ResidualBlock", "resnet8", "RESNET8_STAGES"]

#: MLPerf Tiny IC ResNet-8: output channels of the three stages (one residual block each) and their strides.
RESNET8_STAGES: tuple[int, ...] = (16, 32, 64)
RESNET8_STRIDES: tuple[int, ...] = (1, 2, 2)


def _qrelu(q):
    import brevitas.nn as qnn

    return qnn.QuantReLU(**q.act)


def _conv(cin: int, cout: int, k: int, stride: int, q):
    import brevitas.nn as qnn

    return qnn.QuantConv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, **q.weight)


class ResidualBlock(torch.nn.Module):
    """conv3×3(stride) → BN → act → conv3×3 → BN → ``join_act`` ; shortcut → ``join_act`` ; add → ``act_out``.

    ``join_act`` is the quantiser both add inputs leave (module docstring): for an identity shortcut it is the
    module the block's input came out of (passed in), otherwise the shortcut's own activation."""

    def __init__(self, cin: int, cout: int, stride: int, in_act: torch.nn.Module, quant: QuantSpec,
                 first: int, per_channel: bool, mid: int | None = None):
        super().__init__()
        mid = cout if mid is None else int(mid)  # the inner width (conv1's outputs), pruned on its own
        q1 = layer_quantisers(quant, first, per_channel=per_channel)
        q2 = layer_quantisers(quant, first + 1, per_channel=per_channel)
        self.conv1 = _conv(cin, mid, 3, stride, q1)
        self.bn1 = torch.nn.BatchNorm2d(mid, eps=1e-4)
        self.act1 = _qrelu(q1)
        self.conv2 = _conv(mid, cout, 3, 1, q2)
        self.bn2 = torch.nn.BatchNorm2d(cout, eps=1e-4)
        self.n_quant = 2
        if stride != 1 or cin != cout:
            qs = layer_quantisers(quant, first + 2, per_channel=per_channel)
            self.shortcut = torch.nn.Sequential()
            self.shortcut.add_module("conv", _conv(cin, cout, 1, stride, qs))
            self.shortcut.add_module("bn", torch.nn.BatchNorm2d(cout, eps=1e-4))
            self.shortcut.add_module("act", _qrelu(qs))
            self.join_act = self.shortcut.act
            self.n_quant = 3
        else:
            self.shortcut = None
            self.join_act = in_act
        self.act_out = _qrelu(q2)

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.join_act(self.bn2(self.conv2(y)))
        s = x if self.shortcut is None else self.shortcut(x)
        return self.act_out(y + s)


class ResNet(torch.nn.Module):
    """stem (conv → BN → act) → residual blocks → average pool over the map → flatten → FC."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, quant: QuantSpec, stages: Sequence[int],
                 strides: Sequence[int], stem: int, per_channel: bool, pool: str, name: str,
                 mid: Sequence[int] | None = None):
        super().__init__()
        import brevitas.nn as qnn

        c, h, w = (int(v) for v in input_shape)
        q0 = layer_quantisers(quant, 0, per_channel=per_channel)
        self.conv0 = _conv(c, stem, 3, 1, q0)
        self.bn0 = torch.nn.BatchNorm2d(stem, eps=1e-4)
        self.act0 = _qrelu(q0)
        blocks, cin, act, nq = [], stem, self.act0, 1
        mids = list(mid) if mid is not None else [None] * len(stages)
        for cout, s, m in zip(stages, strides, mids, strict=True):
            blk = ResidualBlock(cin, cout, s, act, quant, nq, per_channel, m)
            blocks.append(blk)
            nq += blk.n_quant
            h, w = (h + s - 1) // s, (w + s - 1) // s
            cin, act = cout, blk.act_out
        self.blocks = torch.nn.ModuleList(blocks)
        if pool == "avg":
            from brevitas.quant import TruncTo8bit

            # FINN's QONNX conversion turns AveragePool + Trunc into QuantAvgPool2d (an integer Pool layer);
            # it needs the quantised input, so the last block hands on a QuantTensor
            act.return_quant_tensor = True
            # the average of b-bit values keeps b bits: truncate the sum to the block output's width (a wider
            # target would make FINN's QuantAvgPool2d shift by a negative amount)
            self.pool = qnn.TruncAvgPool2d((h, w), trunc_quant=TruncTo8bit, float_to_int_impl_type="FLOOR",
                                           bit_width=quant.act_bits_of(nq - 1))
        else:
            self.pool = torch.nn.MaxPool2d((h, w))
        qf = layer_quantisers(quant, nq, per_channel=per_channel)
        self.fc = qnn.QuantLinear(cin, num_classes, bias=False, **qf.weight)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.zoo_name = name

    def forward(self, x):
        x = self.act0(self.bn0(self.conv0(x)))
        for blk in self.blocks:
            x = blk(x)
        x = self.pool(x)
        return self.fc(x.flatten(1))


def resnet8(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    stages: Sequence[int] = RESNET8_STAGES,
    strides: Sequence[int] = RESNET8_STRIDES,
    stem: int | None = None,
    width: float = 1.0,
    pool: str = "avg",
    per_channel: bool = False,
    mid: Sequence[int] | None = None,
) -> ResNet:
    """MLPerf Tiny's ResNet-8 (module docstring): stem 16 → stages 16/32/64 → average pool → FC.

    ``width`` scales every channel count (0.25 gives 4/4/8/16, for fast tests); ``stages``/``strides`` set the
    blocks; ``pool: max`` takes the maximum over the map instead of the average; ``mid`` gives each block's
    inner width (its first conv's outputs; default: the stage width), which pruning changes on its own."""
    stages = tuple(stages)
    if len(input_shape) != 3:
        raise ConfigError(
            f"Model 'resnet8' takes images C×H×W but the dataset gives inputs of shape {tuple(input_shape)}; "
            "use an image dataset (NCHW)."
        )
    if pool not in ("avg", "max"):
        raise ConfigError(f"Model option 'pool' is {pool!r}; use 'avg' or 'max'.")
    if not isinstance(width, (int, float)) or width <= 0:
        raise ConfigError(f"Model option 'width' is {width!r}; give a positive number such as 0.5.")
    if len(tuple(strides)) != len(stages):
        raise ConfigError(f"Model options 'stages' and 'strides' differ in length ({list(stages)} vs {list(strides)}).")
    if any(quant.act_bits_of(i) == 1 for i in range(1 + 3 * len(stages))):
        raise ConfigError(
            "Model 'resnet8' needs unsigned activations of 2 or more bits (its residual adds join two ReLU "
            "outputs); set model.act_bits to 2 or more."
        )

    def scaled(c: int) -> int:
        return max(1, int(round(c * width)))

    chans = tuple(scaled(int(c)) for c in stages)
    stem_ch = scaled(stem if stem is not None else chans[0] if width == 1.0 else int(stages[0]))
    if mid is not None and len(tuple(mid)) != len(stages):
        raise ConfigError(f"Model options 'mid' and 'stages' differ in length ({list(mid)} vs {list(stages)}).")
    return ResNet(input_shape, num_classes, quant, chans, tuple(int(s) for s in strides), stem_ch,
                  per_channel, pool, "resnet8", mid=None if mid is None else tuple(int(m) for m in mid))

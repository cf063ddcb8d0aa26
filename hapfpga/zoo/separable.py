"""Depthwise-separable CNNs: ``mobilenet_v1`` and the keyword-spotting ``ds_cnn``.

Both are a full ``conv0`` stem followed by depthwise-separable blocks, each a depthwise 3×3 QuantConv2d
(``groups = channels``, padding 1) → BN → act and a pointwise 1×1 QuantConv2d → BN → act, then a pool over the
whole map (``pool``: ``max`` by default, ``avg`` Brevitas ``TruncAvgPool2d`` as MLPerf Tiny's models, or ``none`` =
flatten) and a last FC layer. ``avg`` needs the pooled sum to be at least 8 bits wide (see ``_check_avg_pool``).
FINN lowers the depthwise convs to ``VVAU`` (vector-vector activation units, ``InferVectorVectorActivation``)
fed by a depthwise ``ConvolutionInputGenerator``; the pointwise and stem convs become MVAUs.

Layer names in ``features``: ``conv0/bn0/act0`` (stem), then per block ``b`` ``conv{2b+1}`` (depthwise),
``conv{2b+2}`` (pointwise) with their ``bn``/``act``; the quantised-layer index of a conv is its number.

* ``mobilenet_v1`` — Howard et al., "MobileNets", 2017, Table 1: stem 32 (3×3, stride 2) and 13 blocks of
  pointwise widths 64, 128, 128, 256, 256, 512×6, 1024 with strides 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, all
  times the width multiplier ``width``. MLPerf Tiny's visual wake words model is ``width=0.25, blocks=13`` on
  3×96×96 with 2 classes; the default here is ``width=0.25`` with the first 4 blocks (small and fast).
* ``ds_cnn`` — Zhang et al., "Hello Edge: Keyword Spotting on Microcontrollers", 2017, as in MLPerf Tiny KWS: a
  stem conv (64 channels, 10×4, stride 2 on a 49×10 feature map), four depthwise-separable blocks of 64, average
  pool, FC 12: ``channels=[64]*5, stem_kernel=[10, 4], stem_stride=2, stem_padding=[5, 1]``. Defaults are small
  (16 channels, 3×3 stem, 2 blocks) for 8×8 inputs.
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

__all__ = ["mobilenet_v1", "ds_cnn", "MOBILENET_V1_CHANNELS", "MOBILENET_V1_STRIDES"]

#: MobileNet-v1 (Howard et al. 2017, Table 1): stem channels, then the pointwise width of each of the 13 blocks.
MOBILENET_V1_CHANNELS: tuple[int, ...] = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
#: stride of the stem, then of each block's depthwise conv
MOBILENET_V1_STRIDES: tuple[int, ...] = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
_POOLS = ("avg", "max", "none")


def _pair(name: str, v: Any) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(_ints(name, v)) if v is not None else None
    if t is None or len(t) != 2:
        raise ConfigError(f"Model option '{name}' is {v!r}; give one integer or a list of two.")
    return int(t[0]), int(t[1])


def _out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _separable(
    input_shape: Sequence[int], num_classes: int, quant: QuantSpec, channels: Sequence[int],
    strides: Sequence[int], stem_kernel: Any, stem_padding: Any, pool: str, per_channel: bool, model: str,
):
    """Stem + depthwise-separable blocks + pool + FC; ``channels[0]``/``strides[0]`` are the stem's."""
    import brevitas.nn as qnn

    if len(input_shape) != 3:
        raise ConfigError(
            f"Model '{model}' takes C×H×W inputs but the dataset gives inputs of shape {tuple(input_shape)}; "
            "use an image or 2D feature-map dataset (N×C×H×W)."
        )
    if pool not in _POOLS:
        raise ConfigError(f"Model option 'pool' is {pool!r}; use one of {', '.join(_POOLS)}.")
    channels, strides = _ints("channels", channels), _ints("strides", strides)
    if len(strides) != len(channels):
        raise ConfigError(
            f"Model '{model}' has {len(channels)} channel entries but {len(strides)} strides; give one stride "
            "per entry of channels (the stem's first)."
        )
    kh, kw = _pair("stem_kernel", stem_kernel)
    ph, pw = _pair("stem_padding", stem_padding) if stem_padding is not None else (kh // 2, kw // 2)
    c, h, w = (int(v) for v in input_shape)
    layers: OrderedDict[str, Any] = OrderedDict()

    def block(i: int, conv: Any, out_ch: int, hw: tuple[int, int]) -> None:
        if hw[0] < 1 or hw[1] < 1:
            raise ConfigError(
                f"Model '{model}' shrinks the {input_shape[1]}×{input_shape[2]} input to nothing at conv {i}; "
                "use larger inputs or fewer blocks / smaller strides."
            )
        q = layer_quantisers(quant, i, per_channel=per_channel)
        layers[f"conv{i}"] = conv(**q.weight)
        layers[f"bn{i}"] = torch.nn.BatchNorm2d(out_ch, eps=1e-4)
        layers[f"act{i}"] = _act(q)

    s0 = strides[0]
    h, w = _out(h, kh, s0, ph), _out(w, kw, s0, pw)
    block(0, lambda **kw_: qnn.QuantConv2d(c, channels[0], (kh, kw), s0, (ph, pw), bias=False, **kw_),
          channels[0], (h, w))
    c = channels[0]
    for b, (out_ch, s) in enumerate(zip(channels[1:], strides[1:], strict=True)):
        h, w = _out(h, 3, s, 1), _out(w, 3, s, 1)
        ch = c
        block(2 * b + 1, lambda ch=ch, s=s, **kw_: qnn.QuantConv2d(ch, ch, 3, s, 1, groups=ch, bias=False, **kw_),
              c, (h, w))
        block(2 * b + 2, lambda ch=ch, o=out_ch, **kw_: qnn.QuantConv2d(ch, o, 1, bias=False, **kw_), out_ch, (h, w))
        c = out_ch
    n_conv = 2 * (len(channels) - 1) + 1
    if pool == "avg":
        _check_avg_pool(model, quant.act_bits_of(n_conv - 1), h * w)
        layers[f"act{n_conv - 1}"].return_quant_tensor = True  # TruncAvgPool2d needs a QuantTensor
        from brevitas.quant import TruncTo8bit  # floor rounding: FINN's QuantAvgPool2d truncates

        layers["pool"] = qnn.TruncAvgPool2d((h, w), trunc_quant=TruncTo8bit, return_quant_tensor=False)
        h = w = 1
    elif pool == "max":
        layers["pool"] = torch.nn.MaxPool2d((h, w))
        h = w = 1
    classifier = _fc_classifier(c * h * w, (), num_classes, quant, n_conv, per_channel)
    return QuantCNN(torch.nn.Sequential(layers), classifier, input_shape, model)


#: TruncAvgPool2d's output width (Brevitas TruncTo8bit)
_AVG_BITS = 8


def _check_avg_pool(model: str, act_bits: int, window: int) -> None:
    """Refuse an average pool whose sum is narrower than its 8-bit output: Brevitas' ``TruncAvgPool2d`` then
    shifts the sum left (output scale / 2^(8 - sum bits)), finn-plus 1.6.1's ``QuantAvgPool2d`` clamps that
    negative shift to 0 (``get_shifts``), and FINN's graph computes outputs 2^(8 - sum bits) times too small
    (measured: a factor 4 with 4-bit activations and a 2×2 window, caught by verification)."""
    sum_bits = act_bits + (window - 1).bit_length()
    if sum_bits < _AVG_BITS:
        raise ConfigError(
            f"Model '{model}' would average {window} {act_bits}-bit values into {sum_bits} bits, fewer than the "
            f"pool's {_AVG_BITS}-bit output, where Brevitas and FINN disagree by a power of two; use model.options "
            "pool: max, wider activations or a larger final map."
        )


def mobilenet_v1(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    width: float = 0.25,
    blocks: int = 4,
    channels: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    pool: str = "max",
    per_channel: bool = False,
):
    """MobileNet-v1 with width multiplier ``width`` and its first ``blocks`` (1..13) depthwise-separable blocks;
    ``channels``/``strides`` (stem first) replace the schedule (absolute widths: ``width`` is then ignored)."""
    if not 1 <= int(blocks) <= 13:
        raise ConfigError(f"Model option 'blocks' is {blocks!r}; MobileNet-v1 has 1 to 13 blocks.")
    if not 0 < float(width) <= 4:
        raise ConfigError(f"Model option 'width' is {width!r}; use a width multiplier in (0, 4], e.g. 0.25.")
    n = int(blocks) + 1
    if channels is None:
        channels = [max(1, round(c * float(width))) for c in MOBILENET_V1_CHANNELS[:n]]
    if strides is None:
        strides = MOBILENET_V1_STRIDES[: len(_ints("channels", channels))]
    return _separable(input_shape, num_classes, quant, channels, strides, 3, 1, pool, per_channel, "mobilenet_v1")


def ds_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    channels: Sequence[int] = (16, 16, 16),
    stem_kernel: Any = 3,
    stem_stride: int = 1,
    stem_padding: Any = None,
    pool: str = "max",
    per_channel: bool = False,
):
    """DS-CNN: stem conv (``stem_kernel``, ``stem_stride``, ``stem_padding``: default half the kernel) of
    ``channels[0]``, then one depthwise-separable block (stride 1) per further entry of ``channels``."""
    strides = (int(stem_stride),) + (1,) * (len(_ints("channels", channels)) - 1)
    return _separable(input_shape, num_classes, quant, channels, strides, stem_kernel, stem_padding, pool,
                      per_channel, "ds_cnn")

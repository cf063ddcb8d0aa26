"""One mapping from our typed :class:`~hapfpga.types.QuantSpec` to Brevitas quantisers.

Every quantised layer of the zoo asks :func:`layer_quantisers` for its keyword arguments, so the choice of
quantiser lives in one place. The choices are the ones FINN's flow converts to integer hardware
(FINN's ``step_qonnx_to_finn`` / ``step_streamline``; Umuroglu et al., "Streamlined Deployment for Quantized
Neural Networks", 2017):

* weights: narrow-range signed integers with one float scale per tensor (or per output channel),
  scale = max|w| / (2^(b-1) - 1) (Brevitas ``Int8WeightPerTensorFloat``: ``NarrowIntQuant`` +
  ``MaxStatsScaling``), bit width overridden per layer; 1-bit weights are bipolar {-1, +1} with a constant
  scale (Brevitas ``SignedBinaryWeightPerTensorConst``), which FINN turns into XNOR-popcount;
* activations: unsigned integers with a learned per-tensor float scale after ReLU (Brevitas
  ``Uint8ActPerTensorFloat`` with the bit width overridden), exported as a QONNX ``Quant`` node that FINN
  converts to a ``MultiThreshold`` and absorbs the preceding BatchNorm into (streamlining);
* no bias in conv/linear layers (BatchNorm between, which streamlining folds into the thresholds).

Brevitas is imported lazily, inside the function (STYLE.md: adapters keep heavy imports at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .types import QuantSpec

__all__ = ["LayerQuantisers", "layer_quantisers", "MAX_BITS"]

#: Widest weight / activation we hand to FINN from the zoo (FINN's MVAU supports more, but thresholds grow as 2^b).
MAX_BITS = 8


@dataclass(frozen=True)
class LayerQuantisers:
    """Keyword arguments for one quantised layer: ``weight`` for QuantConv2d/QuantLinear, ``act`` for
    the QuantReLU / QuantIdentity that follows it."""

    index: int
    weight_bits: int
    act_bits: int
    weight: dict[str, Any]
    act: dict[str, Any]
    #: True when the activation is bipolar (1 bit): use ``QuantIdentity(**act)`` instead of ``QuantReLU``.
    bipolar_act: bool


def _check_bits(kind: str, bits: int, index: int) -> None:
    if not 1 <= bits <= MAX_BITS:
        raise ConfigError(
            f"Layer {index} asks for {bits}-bit {kind}; the zoo supports 1 to {MAX_BITS} bits, set model.{kind}_bits "
            f"or model.layer_{kind}_bits accordingly."
        )


def layer_quantisers(spec: QuantSpec, index: int, *, per_channel: bool = False) -> LayerQuantisers:
    """Brevitas quantiser kwargs for quantised layer ``index`` (0-based, in definition order) of ``spec``.

    ``per_channel`` gives each output channel its own weight scale (per-channel float scaling); the default is
    one scale per tensor, as FINN's CNV/TFC examples use.
    """
    from brevitas.quant import (
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFloat,
        SignedBinaryActPerTensorConst,
        SignedBinaryWeightPerTensorConst,
        Uint8ActPerTensorFloat,
    )

    wb, ab = spec.weight_bits_of(index), spec.act_bits_of(index)
    _check_bits("weight", wb, index)
    _check_bits("act", ab, index)
    if wb == 1:
        weight: dict[str, Any] = {"weight_quant": SignedBinaryWeightPerTensorConst, "weight_bit_width": 1}
    else:
        wq = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
        weight = {"weight_quant": wq, "weight_bit_width": wb}
    if ab == 1:
        act: dict[str, Any] = {"act_quant": SignedBinaryActPerTensorConst, "bit_width": 1}
    else:
        act = {"act_quant": Uint8ActPerTensorFloat, "bit_width": ab}
    return LayerQuantisers(
        index=index, weight_bits=wb, act_bits=ab, weight=weight, act=act, bipolar_act=ab == 1
    )

"""Mixed precision's pure part: knob names, candidate widths, FINN data types of a bit width, and
:func:`apply_operand_bits`, which rewrites the estimator's FINN layer specs so the FPS prediction costs the changed
bits (no torch: the searches in :mod:`hapfpga.pruning.search` are pure core). The torch side, and why a bits knob
is one MVAU's operand precision, are in :mod:`hapfpga.pruning.mixed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError

__all__ = [
    "BITS_PREFIX",
    "bits_key",
    "is_bits_key",
    "split_knobs",
    "bit_candidates",
    "act_dtype",
    "weight_dtype",
    "apply_operand_bits",
    "BITS_MODELS",
    "check_bits_model",
]

#: prefix of a bits knob in the search's knob mapping ("bits:features.conv3")
BITS_PREFIX = "bits:"
#: FINN-legal bit widths of the zoo's quantisers (hapfpga.quant.MAX_BITS)
MIN_BITS, MAX_BITS = 1, 8
#: zoo models whose quantised conv/linear layers form a chain (layer i's input is layer i-1's activation, one
#: MVAU each), which is what an operand-bits knob assumes; residual, depthwise and 1D models are not searched yet
BITS_MODELS = ("digits_cnn", "tfc", "cnv")


def check_bits_model(name: str) -> None:
    """``pruning.bits`` needs a chain model of the zoo: a one-sentence ``ConfigError`` otherwise."""
    if name not in BITS_MODELS:
        raise ConfigError(
            f"pruning.bits (mixed precision) supports the zoo's chain models {', '.join(BITS_MODELS)}, not "
            f"'{name}'; remove pruning.bits for this model."
        )


def bits_key(layer: str) -> str:
    """The knob name of ``layer``'s operand precision."""
    return BITS_PREFIX + layer


def is_bits_key(key: str) -> bool:
    return key.startswith(BITS_PREFIX)


def split_knobs(knobs: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``(channel counts, operand bits by layer name)`` of one point of the search."""
    counts = {k: int(v) for k, v in knobs.items() if not is_bits_key(k)}
    bits = {k[len(BITS_PREFIX):]: int(v) for k, v in knobs.items() if is_bits_key(k)}
    return counts, bits


def bit_candidates(current: int, allowed: Sequence[int]) -> list[int]:
    """Descending bit widths a layer may take: ``current`` and every allowed width below it."""
    bad = [b for b in allowed if not MIN_BITS <= int(b) <= MAX_BITS]
    if bad:
        raise ConfigError(f"pruning.bits has {bad}; FINN-legal bit widths are {MIN_BITS} to {MAX_BITS}.")
    return sorted({int(current), *(int(b) for b in allowed if b < current)}, reverse=True)


def act_dtype(bits: int) -> str:
    """FINN data type of a quantised activation: ``UINT<b>`` after a ReLU, ``BINARY`` for a bipolar one (FINN
    stores bipolar streams as binary after ``ConvertBipolarMatMulToXnorPopcount``)."""
    return "BINARY" if bits == 1 else f"UINT{bits}"


def weight_dtype(w_bits: int, in_bits: int | None) -> str:
    """FINN weight data type: ``BINARY`` in XNOR mode (both 1 bit), ``INT2`` for bipolar weights on an integer
    input (what ``MinimizeWeightBitWidth`` picks for {-1, +1}), else ``INT<w>``."""
    if w_bits == 1:
        return "BINARY" if in_bits == 1 else "INT2"
    return f"INT{w_bits}"


def _stream_dtype_fields(layer: Any) -> list[str]:
    fields = getattr(type(layer), "__dataclass_fields__", {})
    return [f for f in ("idt", "odt") if f in fields]


def apply_operand_bits(layers: Sequence[Any], bits: Mapping[int, int]) -> list[Any]:
    """FINN layer specs with MVAU ``k``'s operands at ``bits[k]`` (weights and the activation stream feeding it).

    ``layers`` is a chain of FINN layer specs (the estimator's dataclasses) with MVAUs in model order; for each
    ``k`` in ``bits``: MVAU ``k`` gets ``wdt``/``idt`` (and ``binary_xnor`` when both are 1 bit), MVAU ``k-1``'s
    fused activation output ``odt`` and every layer on the stream between the two (sliding window, pool) carry
    ``act_dtype(bits[k])``; each capped at its current width (a knob never widens the narrower operand). MVAU 0's input is the data and cannot change (a ``bits[0]`` is an error).
    """
    from ..estimate.dtypes import bits as dt_bits
    from .plan import replaced

    if 0 in bits:
        raise ConfigError("The first layer's input is the data stream; its operand bits cannot be searched.")
    n_mvau = sum(1 for lay in layers if getattr(lay, "kind", "") == "MVAU")
    for k, b in bits.items():
        if not 0 < k < n_mvau:
            raise ConfigError(f"Operand bits given for MVAU {k}, but the graph has MVAUs 0..{n_mvau - 1}.")
        if not MIN_BITS <= b <= MAX_BITS:
            raise ConfigError(f"Operand bits {b} for MVAU {k}; FINN-legal bit widths are {MIN_BITS} to {MAX_BITS}.")
    out: list[Any] = []
    k = -1
    for lay in layers:
        if getattr(lay, "kind", "") == "MVAU":
            k += 1
            ch: dict[str, Any] = {}
            if k in bits:  # a knob caps both operands (it never raises the narrower one)
                a_b, w_b = min(bits[k], dt_bits(lay.idt)), min(bits[k], dt_bits(lay.wdt))
                ch.update(idt=act_dtype(a_b), wdt=weight_dtype(w_b, a_b), binary_xnor=a_b == w_b == 1)
            if (k + 1) in bits and not lay.no_activation:
                ch["odt"] = act_dtype(min(bits[k + 1], dt_bits(lay.odt)))
            out.append(replaced(lay, **{f: v for f, v in ch.items() if getattr(lay, f) != v}))
            continue
        ch = {}
        if (k + 1) in bits and k >= 0:
            ch = {f: act_dtype(min(bits[k + 1], dt_bits(getattr(lay, f)))) for f in _stream_dtype_fields(lay)
                  if "FLOAT" not in getattr(lay, f)}
        out.append(replaced(lay, **{f: v for f, v in ch.items() if getattr(lay, f) != v}))
    return out

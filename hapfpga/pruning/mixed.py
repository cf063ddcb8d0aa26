"""Hardware-aware mixed precision: per-layer bit widths as search knobs beside the channel counts.

The searches in :mod:`hapfpga.pruning.search` work on one mapping of integer knobs with descending candidate
lists; channel groups are keyed by their layer name, bit widths by ``"bits:<layer>"``. A bits knob is the
**operand precision of one MVAU** (as in HAQ, Wang et al., "HAQ: Hardware-Aware Automated Quantization with Mixed
Precision", CVPR 2019, which searches each layer's weight and activation bits): the layer's weight bits and the
bits of the activation that feeds it (the quantised activation after the previous layer), lowered together.
Lowering both is what FINN turns into cheaper hardware:

* FINN's ``MinimizeWeightBitWidth`` gives 1-bit ({-1, +1}) weights on an integer input the type ``INT2`` (measured
  on finn-plus 1.6.1: CNV with one 1-bit-weight FC layer keeps ``weightDataType INT2``), so 1-bit weights alone buy
  nothing; 1-bit weights *and* a bipolar input become an XNOR-popcount MVAU (``binaryXnorMode``,
  ``ConvertBipolarMatMulToXnorPopcount``; Umuroglu et al., "FINN", FPGA'17), with ``BINARY`` input and weights;
* the MVAU's LUTs grow with ``W + A`` per PE·SIMD lane (FINN-R, ``MVAU_hls.lut_estimation``) and its weight memory
  with ``W`` (``bram_estimation``), so the folding optimiser fits more parallelism in the same budget.

The first layer's input is the 8-bit pixel stream (fixed by the data), so it has no bits knob. Bit widths are
FINN-legal 1–8 (``hapfpga.quant.MAX_BITS``; 1 bit = bipolar, FINN's XNOR path).

Pure part (no torch): knob names, candidates, the FINN data types of a bit width and :func:`apply_operand_bits`,
which rewrites the estimator's FINN layer specs so the FPS prediction costs the changed bits. Torch part (lazy
imports): :func:`operand_bits` / :func:`layer_bits` read a zoo model's bits, :func:`with_operand_bits` rebuilds
the model at new bits keeping its trained weights and learned activation ranges (QAT then fine-tunes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "BITS_PREFIX",
    "bits_key",
    "is_bits_key",
    "split_knobs",
    "bit_candidates",
    "act_dtype",
    "weight_dtype",
    "apply_operand_bits",
    "quant_layer_names",
    "layer_bits",
    "operand_bits",
    "with_operand_bits",
    "bits_knobs",
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
    from .plan import _replaced

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
            out.append(_replaced(lay, **{f: v for f, v in ch.items() if getattr(lay, f) != v}))
            continue
        ch = {}
        if (k + 1) in bits and k >= 0:
            ch = {f: act_dtype(min(bits[k + 1], dt_bits(getattr(lay, f)))) for f in _stream_dtype_fields(lay)
                  if "FLOAT" not in getattr(lay, f)}
        out.append(_replaced(lay, **{f: v for f, v in ch.items() if getattr(lay, f) != v}))
    return out


# --------------------------------------------------------------------------------------------- torch side


def quant_layer_names(model: torch.nn.Module) -> list[str]:
    """Names of the model's quantised conv/linear layers in definition order (QuantSpec's layer index)."""
    import brevitas.nn as qnn

    return [n for n, m in model.named_modules() if isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear))]


def _model_config(model: torch.nn.Module) -> dict[str, Any]:
    spec = getattr(model, "hap_spec", None)
    if spec is None:
        raise ConfigError(
            f"pruning.bits needs a model built by hapfpga's zoo ({', '.join(BITS_MODELS)}); remove pruning.bits "
            "for this model."
        )
    check_bits_model(spec["name"])
    return spec["model_config"]


def layer_bits(model: torch.nn.Module) -> dict[str, dict[str, int | None]]:
    """``{layer: {"weight": w, "act": a}}`` for every quantised layer (``act`` None for the last, unactivated
    one) — the per-layer bits the report and the exported QONNX carry."""
    mc = _model_config(model)
    lw = {int(k): int(v) for k, v in mc.get("layer_weight_bits", {}).items()}
    la = {int(k): int(v) for k, v in mc.get("layer_act_bits", {}).items()}
    names = quant_layer_names(model)
    return {
        n: {"weight": lw.get(i, int(mc["weight_bits"])),
            "act": la.get(i, int(mc["act_bits"])) if i < len(names) - 1 else None}
        for i, n in enumerate(names)
    }


def operand_bits(model: torch.nn.Module) -> dict[str, int]:
    """Current operand precision of every layer but the first: ``max(weight bits, bits of its input)``."""
    lb = layer_bits(model)
    names = list(lb)
    return {n: max(int(lb[n]["weight"] or 0), int(lb[names[i - 1]]["act"] or 0))
            for i, n in enumerate(names) if i > 0}


def with_operand_bits(model: torch.nn.Module, bits: Mapping[str, int]) -> torch.nn.Module:
    """A copy of ``model`` whose layers in ``bits`` have weights and input activations at most that many bits.

    The model is rebuilt from its zoo spec (pruned widths included) with new per-layer overrides, and the trained
    state is loaded: weights, BatchNorm statistics and the learned activation ranges (Brevitas' scale is
    range / (2^b − 1), so a range learned at 2 bits is a valid start at 1 bit); only the quantisers that do not
    exist at the new width (a 1-bit activation has a constant scale) are left out. Unchanged bits: ``model`` itself.
    """
    names = quant_layer_names(model)
    cur = operand_bits(model)
    todo = {n: int(b) for n, b in bits.items() if cur.get(n) != int(b)}
    unknown = [n for n in bits if n not in cur]
    if unknown:
        raise ConfigError(f"No operand bits can be set for {unknown}; use layers among {sorted(cur)}.")
    if not todo:
        return model
    from ..zoo import _from_spec, model_spec

    spec = model_spec(model)
    mc = dict(spec["model_config"])
    lw = {int(k): int(v) for k, v in mc.get("layer_weight_bits", {}).items()}
    la = {int(k): int(v) for k, v in mc.get("layer_act_bits", {}).items()}
    lb = layer_bits(model)
    for n, b in todo.items():
        if not MIN_BITS <= b <= MAX_BITS:
            raise ConfigError(f"Operand bits {b} for '{n}'; FINN-legal bit widths are {MIN_BITS} to {MAX_BITS}.")
        i = names.index(n)  # cap both operands at b (never widen the narrower one)
        lw[i] = min(b, int(lb[n]["weight"] or b))
        la[i - 1] = min(b, int(lb[names[i - 1]]["act"] or b))
    spec = {**spec, "model_config": {**mc, "layer_weight_bits": lw, "layer_act_bits": la}}
    new = _from_spec(spec)
    result = new.load_state_dict(model.state_dict(), strict=False)
    stray = [k for k in (*result.missing_keys, *result.unexpected_keys) if "_quant" not in k]
    if stray:  # pragma: no cover - the zoo's models only differ in quantiser state
        raise RuntimeError(f"rebuilding at new bits changed non-quantiser state: {stray[:4]}")
    return new.train(model.training)


def bits_knobs(model: torch.nn.Module, allowed: Sequence[int]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """The search's bits knobs for ``model``: ``(start value, descending candidates)`` per ``bits:<layer>``,
    for every layer (but the first) that can go lower within ``allowed``."""
    ob = operand_bits(model)
    cands = {bits_key(n): bit_candidates(b, allowed) for n, b in ob.items()}
    cands = {k: c for k, c in cands.items() if len(c) > 1}
    return {k: int(ob[k[len(BITS_PREFIX):]]) for k in cands}, cands

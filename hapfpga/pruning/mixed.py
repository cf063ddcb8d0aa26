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

Pure part (no torch; in :mod:`hapfpga.pruning.bits`, re-exported here): knob names, candidates, the FINN data types of a bit width and :func:`apply_operand_bits`,
which rewrites the estimator's FINN layer specs so the FPS prediction costs the changed bits. Torch part (lazy
imports): :func:`operand_bits` / :func:`layer_bits` read a zoo model's bits, :func:`with_operand_bits` rebuilds
the model at new bits keeping its trained weights and learned activation ranges (QAT then fine-tunes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .bits import (
    BITS_MODELS,
    BITS_PREFIX,
    DAG_BITS_MODELS,
    DAG_MIN_BITS,
    MAX_BITS,
    MIN_BITS,
    act_dtype,
    apply_dag_bits,
    apply_operand_bits,
    bit_candidates,
    bits_key,
    check_bits_model,
    is_bits_key,
    is_dag_bits_model,
    split_knobs,
    weight_dtype,
)

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
    "DAG_BITS_MODELS",
    "check_bits_model",
    "apply_dag_bits",
    "input_acts",
    "act_indices",
]


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
    """Current operand precision of every layer but the first: ``max(weight bits, bits of its input)``; on a DAG
    model (:func:`_dag_operand_bits`) one entry per activation quantiser, keyed by the first layer it feeds."""
    if is_dag_bits_model(model.hap_spec["name"]):
        return _dag_operand_bits(model)
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
    from ..zoo import model_from_spec, model_spec

    spec = model_spec(model)
    mc = dict(spec["model_config"])
    lw = {int(k): int(v) for k, v in mc.get("layer_weight_bits", {}).items()}
    la = {int(k): int(v) for k, v in mc.get("layer_act_bits", {}).items()}
    lb = layer_bits(model)
    dag = is_dag_bits_model(spec["name"])
    for n, b in todo.items():
        if not (DAG_MIN_BITS if dag else MIN_BITS) <= b <= MAX_BITS:
            raise ConfigError(f"Operand bits {b} for '{n}'; FINN-legal bit widths are {MIN_BITS} to {MAX_BITS}"
                              f"{f' ({DAG_MIN_BITS} to {MAX_BITS} on this model)' if dag else ''}.")
        if dag:
            _cap_dag_knob(model, n, b, lw, la)
            continue
        i = names.index(n)  # cap both operands at b (never widen the narrower one)
        lw[i] = min(b, int(lb[n]["weight"] or b))
        la[i - 1] = min(b, int(lb[names[i - 1]]["act"] or b))
    spec = {**spec, "model_config": {**mc, "layer_weight_bits": lw, "layer_act_bits": la}}
    new = model_from_spec(spec)
    result = new.load_state_dict(model.state_dict(), strict=False)
    stray = [k for k in (*result.missing_keys, *result.unexpected_keys) if "_quant" not in k]
    if stray:  # pragma: no cover - the zoo's models only differ in quantiser state
        raise RuntimeError(f"rebuilding at new bits changed non-quantiser state: {stray[:4]}")
    return new.train(model.training)


def bits_knobs(model: torch.nn.Module, allowed: Sequence[int]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """The search's bits knobs for ``model``: ``(start value, descending candidates)`` per ``bits:<layer>``,
    for every layer (but the first) that can go lower within ``allowed`` (on a DAG model: every activation
    quantiser that feeds a layer, widths down to ``DAG_MIN_BITS``)."""
    ob = operand_bits(model)
    low = DAG_MIN_BITS if is_dag_bits_model(model.hap_spec["name"]) else MIN_BITS
    cands = {bits_key(n): [c for c in bit_candidates(b, allowed) if c >= low] for n, b in ob.items()}
    cands = {k: c for k, c in cands.items() if len(c) > 1}
    return {k: int(ob[k[len(BITS_PREFIX):]]) for k in cands}, cands


# ------------------------------------------------------------------------------- DAG models (torch side)


def _probe_config(spec: Mapping[str, Any], idx: int | None) -> Any:
    """The spec's model config with every per-layer override removed and, for ``idx``, its activation at a width
    that differs from the default (so the quantiser module of index ``idx`` can be told apart)."""
    from ..runconfig import ModelConfig

    mc = {k: v for k, v in spec["model_config"].items() if k not in ("layer_weight_bits", "layer_act_bits")}
    probe = 3 if int(mc["act_bits"]) != 3 else 2
    return ModelConfig(name=spec["name"], options=dict(spec["options"]), **mc,
                       layer_act_bits={idx: probe} if idx is not None else {})


def _act_bit_widths(model: torch.nn.Module) -> dict[str, int]:
    import brevitas.nn as qnn

    return {n: int(m.act_quant.bit_width()) for n, m in model.named_modules() if isinstance(m, qnn.QuantReLU)}


_ACT_INDICES: dict[str, dict[str, int]] = {}


def act_indices(model: torch.nn.Module) -> dict[str, int]:
    """``{QuantReLU module name: its index in model.layer_act_bits}`` of a zoo model, found by rebuilding the
    unpruned architecture with one index's width changed at a time (cached per architecture): the zoo's
    factories share quantisers between modules (a residual join's two inputs leave one ``QuantReLU``), so the
    index of a module is not its position."""
    import json

    from ..zoo import build_model

    spec = model.hap_spec
    key = json.dumps([spec["name"], spec["options"], spec["input_shape"], spec["num_classes"],
                      len(quant_layer_names(model))], sort_keys=True, default=str)
    if key not in _ACT_INDICES:
        shape, n_cls = tuple(spec["input_shape"]), int(spec["num_classes"])
        base = _act_bit_widths(build_model(_probe_config(spec, None), shape, n_cls))
        out: dict[str, int] = {}
        for i in range(len(quant_layer_names(model))):
            probed = _act_bit_widths(build_model(_probe_config(spec, i), shape, n_cls))
            out.update({n: i for n, b in probed.items() if b != base[n]})
        _ACT_INDICES[key] = out
    return dict(_ACT_INDICES[key])


def _trace_inputs(model: torch.nn.Module) -> dict[str, str]:
    """``{conv/linear layer: QuantReLU module whose output it reads}`` from one forward pass: the module that
    produced the very tensor the layer reads, else (a max pool or flatten between them) the last one run before
    it; a layer behind an average pool (``TruncAvgPool2d`` requantises to its own width) reads none."""
    import brevitas.nn as qnn
    import torch

    made: dict[int, str] = {}
    last: list[str] = []
    keep: list[Any] = []  # the outputs stay alive, so no later tensor reuses their id
    feeds: dict[str, str] = {}

    def after_act(name: str) -> Any:
        def hook(mod: Any, inp: Any, out: Any) -> None:
            made[id(out)] = made[id(getattr(out, "value", out))] = name
            keep.append(out)
            last.append(name)
        return hook

    def before_layer(name: str) -> Any:
        def hook(mod: Any, inp: Any) -> None:
            x = inp[0]
            src = made.get(id(x), made.get(id(getattr(x, "value", x))))
            src = src if src is not None else (last[-1] if last else None)
            if src:
                feeds[name] = src
        return hook

    def after_requant(mod: Any, inp: Any, out: Any) -> None:
        last.append("")  # an average pool requantises: what reads it has no activation knob

    handles = []
    for n, m in model.named_modules():
        if isinstance(m, qnn.QuantReLU):
            handles.append(m.register_forward_hook(after_act(n)))
        elif isinstance(m, qnn.TruncAvgPool2d):
            handles.append(m.register_forward_hook(after_requant))
        elif isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear)):
            handles.append(m.register_forward_pre_hook(before_layer(n)))
    was = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros((1, *model.hap_spec["input_shape"])))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return feeds


def input_acts(model: torch.nn.Module) -> dict[str, int]:
    """``{layer: index (in layer_act_bits) of the activation quantiser feeding it}`` for every quantised layer but
    those that read the data input (a DAG model's operand-bits map: a residual block's convs and its shortcut
    read the same quantiser)."""
    idx = act_indices(model)
    return {layer: idx[act] for layer, act in _trace_inputs(model).items() if act in idx}


def _dag_operand_bits(model: torch.nn.Module) -> dict[str, int]:
    """Per activation quantiser feeding a layer, keyed by the first layer (in definition order) it feeds:
    ``max(its bits, the weight bits of every layer it feeds)``."""
    mc = model.hap_spec["model_config"]
    la = {int(k): int(v) for k, v in mc.get("layer_act_bits", {}).items()}
    lb = layer_bits(model)
    out: dict[str, int] = {}
    acts = input_acts(model)
    for layer in quant_layer_names(model):
        if layer in acts:
            a = acts[layer]
            users = [n for n, x in acts.items() if x == a]
            key = min(users, key=list(lb).index)
            w = max(int(lb[n]["weight"] or 0) for n in users)
            out[key] = max(w, la.get(a, int(mc["act_bits"])))
    return out


def _cap_dag_knob(model: torch.nn.Module, layer: str, b: int, lw: dict[int, int], la: dict[int, int]) -> None:
    """Cap (in place) the activation quantiser feeding ``layer`` and the weights of every layer it feeds at ``b``."""
    mc = model.hap_spec["model_config"]
    names = quant_layer_names(model)
    acts = input_acts(model)
    a = acts[layer]
    la[a] = min(b, la.get(a, int(mc["act_bits"])))
    for n, x in acts.items():
        if x == a:
            i = names.index(n)
            lw[i] = min(b, lw.get(i, int(mc["weight_bits"])))

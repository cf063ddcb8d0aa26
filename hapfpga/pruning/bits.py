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
    "DAG_BITS_MODELS",
    "DAG_MIN_BITS",
    "check_bits_model",
    "is_dag_bits_model",
    "apply_dag_bits",
]

#: prefix of a bits knob in the search's knob mapping ("bits:features.conv3")
BITS_PREFIX = "bits:"
#: FINN-legal bit widths of the zoo's quantisers (hapfpga.quant.MAX_BITS)
MIN_BITS, MAX_BITS = 1, 8
#: zoo models whose quantised conv/linear layers form a chain (layer i's input is layer i-1's activation, one
#: MVAU each): an operand-bits knob is one layer's weights and the activation before it
CHAIN_BITS_MODELS = ("digits_cnn", "tfc", "cnv")
#: zoo models with residual joins or depthwise layers: a knob is one activation quantiser and every layer it feeds
#: (the torch side traces which quantiser feeds which layer, ``mixed.input_acts``; the FINN side follows the
#: streams, :func:`apply_dag_bits`), so both inputs of a join (which leave one quantiser) move together
DAG_BITS_MODELS = ("resnet8", "mobilenet_v1", "ds_cnn")
#: every zoo model mixed precision searches
BITS_MODELS = CHAIN_BITS_MODELS + DAG_BITS_MODELS
#: the narrowest width on a DAG model: a residual add joins two unsigned ReLU outputs (1 bit is bipolar, refused
#: by ``zoo.resnet8``) and FINN's VVAU has no XNOR mode
DAG_MIN_BITS = 2


def check_bits_model(name: str) -> None:
    """``pruning.bits`` needs a zoo model whose quantisers it knows: a one-sentence ``ConfigError`` otherwise."""
    if name not in BITS_MODELS:
        raise ConfigError(
            f"pruning.bits (mixed precision) supports the zoo's models {', '.join(BITS_MODELS)}, not "
            f"'{name}'; remove pruning.bits for this model."
        )


def is_dag_bits_model(name: str) -> bool:
    """Whether ``name``'s bits knobs are per activation quantiser (:data:`DAG_BITS_MODELS`)."""
    return name in DAG_BITS_MODELS


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


# ------------------------------------------------------------------------------------- DAG graphs (FINN side)

#: FINN nodes that pass a stream on unchanged in value (their data type is their input's)
_CARRIERS = ("FMPadding", "ConvolutionInputGenerator", "DuplicateStreams", "StreamingMaxPool", "Pool", "Reshape")
#: FINN nodes that produce a quantised activation (a fused or standalone threshold stage)
_SOURCES = ("MVAU", "VVAU", "Thresholding")


def _sources_of(by_name: Mapping[str, Any], start: str) -> list[str]:
    """The activation producers (:data:`_SOURCES`) behind the stream that leaves node ``start``, walking back
    through carriers; a join's input or the graph input on the way is an error (no quantiser to lower)."""
    lay = by_name.get(start)
    if lay is None:
        raise ConfigError("Operand bits reach the data input of the graph, which cannot change; lower another layer.")
    if lay.kind in _SOURCES and not getattr(lay, "no_activation", False):
        return [start]
    if lay.kind not in _CARRIERS:
        raise ConfigError(f"Operand bits cannot be followed through FINN node '{start}' ({lay.kind}).")
    return [s for p in lay.producers for s in _sources_of(by_name, p)]


def _is_join(lay: Any) -> bool:
    return lay.kind in ("ElementwiseAdd", "ElementwiseBinary") and len(getattr(lay, "producers", ())) == 2 and \
        not (getattr(lay, "lhs_const", False) or getattr(lay, "rhs_const", False))


def _act_closure(layers: Sequence[Any], node: str) -> dict[str, set[str]]:
    """``{role: node names}`` of the activation feeding compute node ``node``: its ``source``s (behind its
    input), the ``carrier``s, ``compute`` nodes and ``sink``s (an average pool: it requantises) its streams
    reach, and the ``join``s they reach — whose other inputs' sources join the closure too, since both inputs of
    a join must have one data type."""
    by_name = {lay.name: lay for lay in layers}
    users: dict[str, list[str]] = {}
    for lay in layers:
        for p in lay.producers:
            users.setdefault(p, []).append(lay.name)
    todo = [s for p in by_name[node].producers for s in _sources_of(by_name, p)]
    if not todo:
        raise ConfigError(f"FINN node '{node}' reads the data input, which cannot change; lower another layer.")
    roles: dict[str, set[str]] = {r: set() for r in ("source", "carrier", "compute", "join", "sink")}
    sources, carriers, compute, joins = roles["source"], roles["carrier"], roles["compute"], roles["join"]
    while todo:
        x = todo.pop()
        if x in sources or x in carriers:
            continue
        (sources if x not in carriers and by_name[x].kind in _SOURCES else carriers).add(x)
        for u in users.get(x, []):
            lay = by_name[u]
            if _is_join(lay):
                if u not in joins:
                    joins.add(u)
                    todo += [s for p in lay.producers for s in _sources_of(by_name, p)]
            elif lay.kind == "Pool" and getattr(lay, "function", "MaxPool") != "MaxPool":
                roles["sink"].add(u)
            elif lay.kind in _CARRIERS:
                todo.append(u)
            elif lay.kind in ("MVAU", "VVAU"):
                compute.add(u)
            else:
                raise ConfigError(f"Operand bits cannot be followed into FINN node '{u}' ({lay.kind}).")
    return roles


def _cap(dt: str, b: int) -> str:
    from ..estimate.dtypes import bits as dt_bits

    return act_dtype(min(b, dt_bits(dt))) if "FLOAT" not in dt else dt


def _dag_changes(lay: Any, role: str, b: int) -> dict[str, Any]:
    """The data-type fields of one node of an activation's closure (``role``: its part in :func:`_act_closure`)
    at ``b`` bits: a source's output, a carrier's stream, a consumer's input and weights (capped, as a chain
    knob), a join's inputs and its sum (``UINT<b+1>`` for two unsigned ``b``-bit inputs)."""
    from ..estimate.dtypes import bits as dt_bits

    if role == "source":
        odt = _cap(lay.odt, b)
        steps = {"num_steps": 2 ** dt_bits(odt) - 1} if lay.kind == "Thresholding" else {}
        return {"odt": odt, **steps}
    if role == "sink":
        return {"idt": _cap(lay.idt, b)}
    if role == "carrier":
        return {f: _cap(getattr(lay, f), b) for f in (*_stream_dtype_fields(lay), "dt") if hasattr(lay, f)}
    if role == "compute":
        a_b, w_b = min(b, dt_bits(lay.idt)), min(b, dt_bits(lay.wdt))
        return {"idt": act_dtype(a_b), "wdt": f"INT{w_b}"}
    lhs, rhs = _cap(lay.lhs_dt, b), _cap(lay.rhs_dt, b)
    return {"lhs_dt": lhs, "rhs_dt": rhs, "odt": f"UINT{max(dt_bits(lhs), dt_bits(rhs)) + 1}"}


def apply_dag_bits(layers: Sequence[Any], owner: Mapping[str, int], bits: Mapping[int, int]) -> list[Any]:
    """FINN layer specs with the activation feeding model layer ``k`` at ``bits[k]``, on any graph (forks, joins,
    depthwise VVAUs): the knob's closure (:func:`_act_closure`: its quantiser's producers, the streams to every
    layer it feeds, the joins it reaches and their other inputs' producers) gets the narrower types; a join's sum
    narrows and the ``Thresholding`` after it reads it. ``owner`` maps FINN compute nodes to model layer indices
    (``plan.match_hw_layers``). Widths are capped at the current ones, never widened; on a DAG the narrowest is
    :data:`DAG_MIN_BITS`."""
    from .plan import replaced

    node_of = {k: n for n, k in owner.items()}
    changes: dict[str, dict[str, Any]] = {}
    for k, b in sorted(bits.items()):
        if k not in node_of:
            raise ConfigError(f"Operand bits given for layer {k}, which has no FINN compute node.")
        if not DAG_MIN_BITS <= b <= MAX_BITS:
            raise ConfigError(f"Operand bits {b} for layer {k}; on this model use {DAG_MIN_BITS} to {MAX_BITS}.")
        cur = {lay.name: lay for lay in layers}
        cur = {n: replaced(lay, **changes.get(n, {})) for n, lay in cur.items()}
        roles = _act_closure(layers, node_of[k])
        for role, names in roles.items():
            for n in names:
                changes.setdefault(n, {}).update(_dag_changes(cur[n], role, b))
        for j in roles["join"]:  # the threshold stage after a join reads its (narrower) sum
            for lay in layers:
                if j in lay.producers and lay.kind == "Thresholding":
                    changes.setdefault(lay.name, {})["idt"] = changes[j]["odt"]
    out = []
    for lay in layers:
        ch = changes.get(lay.name, {})
        out.append(replaced(lay, **{f: v for f, v in ch.items() if getattr(lay, f) != v}))
    return out

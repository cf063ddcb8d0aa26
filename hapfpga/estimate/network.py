"""Whole-network estimate: per-layer costs, infrastructure (FIFOs, DWCs), totals, FPS and power."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from ..boards import BoardSpec
from ..errors import ConfigError
from ..types import RESOURCE_KEYS, FoldingPlan, LayerCost, LayerFolding, Resources
from .context import Ctx, FoldingError
from .core import compute_cost, ctx_for, merge_folding
from .infra import fifo_cost, infrastructure_costs
from .joins import is_join, join_input_width, skip_fifo_depths, skip_fifo_fractions
from .layers import LayerSpec
from .power import dynamic_power_w, dynamic_powers_w, static_power_w
from .streams import compute_stream_io

__all__ = ["NetworkEstimate", "estimate_network"]


@dataclass(frozen=True)
class NetworkEstimate:
    """Estimate of one FINN dataflow design (one folding) on one board.

    ``layers`` are FINN's nodes (their names), ``infrastructure`` the FIFOs and width converters
    FINN's own estimate leaves out; ``total`` = both. ``fps`` = clock / ``max_cycles`` (FINN's
    ``estimate_network_performance``), ``power_w`` an analytic estimate (see ``power.py``).
    """

    layers: dict[str, LayerCost]
    infrastructure: dict[str, LayerCost]
    total: Resources
    layer_total: Resources
    max_cycles: int
    bottleneck: str
    critical_path_cycles: int
    fps: float
    clock_mhz: float
    power_w: float
    static_power_w: float
    layer_power_w: dict[str, float]
    fits: bool
    over: tuple[str, ...]
    board: str
    #: skip-branch FIFOs in front of joins: FIFO name -> depth in words (``joins.py``), counted in ``infrastructure``
    skip_fifos: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The dict ``hapfpga estimate --json`` prints."""

        def res(r: Resources) -> dict[str, float]:
            return {k: _num(getattr(r, k)) for k in RESOURCE_KEYS}

        return {
            "layers": {n: {**res(c.resources), "cycles": c.cycles} for n, c in self.layers.items()},
            "order": list(self.layers),  # graph order (report.json sorts its keys; this list keeps the pipeline)
            "infrastructure": {n: {**res(c.resources), "cycles": c.cycles}
                               for n, c in self.infrastructure.items()},
            "total": res(self.total),
            "layer_total": res(self.layer_total),
            "fps": self.fps,
            "clock_mhz": self.clock_mhz,
            "power_w": round(self.power_w, 4),
            "power": {"static_w": round(self.static_power_w, 4),
                      "dynamic_w": {n: round(w, 5) for n, w in self.layer_power_w.items()}},
            "power_note": "analytic estimate (static + XPE-class dynamic coefficients), not Vivado",
            "ff_modelled": False,
            "max_cycles": self.max_cycles,
            "bottleneck": self.bottleneck,
            "critical_path_cycles": self.critical_path_cycles,
            "fits": self.fits,
            "over_budget": list(self.over),
            "board": self.board,
            "skip_fifos": dict(self.skip_fifos),
        }


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def _sum(items) -> Resources:  # noqa: ANN001  (fast path of sum(Resources))
    lut = ff = bram = uram = dsp = 0.0
    for r in items:
        lut += r.LUT
        ff += r.FF
        bram += r.BRAM_18K
        uram += r.URAM
        dsp += r.DSP
    return Resources(lut, ff, bram, uram, dsp)


def _layer_totals(costs: list[LayerCost]) -> tuple[Resources, LayerCost | None]:
    """``_sum`` of the layers' resources and the first layer with the most cycles (the bottleneck), in one pass."""
    lut = ff = bram = uram = dsp = 0.0
    worst = None
    for c in costs:
        r = c.resources
        lut += r.LUT
        ff += r.FF
        bram += r.BRAM_18K
        uram += r.URAM
        dsp += r.DSP
        if worst is None or c.cycles > worst.cycles:
            worst = c
    return Resources(lut, ff, bram, uram, dsp), worst


@dataclass(frozen=True)
class _Topology:
    """What ``estimate_network`` needs of a layer list besides the foldings: its graph, independent of any folding.

    ``edges``: ``(producer index or -1 for the graph input, consumer index or -1 for the output, consumer is a
    join)`` in the order FINN's ``InsertFIFO`` visits them; ``preds``: per layer the indices of its producers
    that come before it, ``None`` for a layer without neighbours (a chain: it follows everything before it);
    ``skip``: ``joins.skip_fifo_fractions``.
    """

    refs: tuple[weakref.ref, ...]
    names: frozenset[str]
    edges: tuple[tuple[int, int, bool], ...]
    preds: tuple[tuple[int, ...] | None, ...]
    skip: dict[tuple[str, str], float]
    #: ``preds`` is ``((), (0,), (1,), ...)``
    chain: bool


#: layer-list topologies by the ids of the layers (the last 64 lists); an entry holds weak references to its
#: layers (no memo outlives its layers) and is used only while they resolve to the very objects passed
_TOPOLOGIES: dict[tuple[int, ...], _Topology] = {}


def _topology(layers: Sequence[LayerSpec]) -> _Topology:
    key = tuple(map(id, layers))
    t = _TOPOLOGIES.get(key)
    if t is None or not all(r() is layer for r, layer in zip(t.refs, layers, strict=True)):
        if len(_TOPOLOGIES) >= 64:
            del _TOPOLOGIES[next(iter(_TOPOLOGIES))]
        t = _TOPOLOGIES[key] = _build_topology(layers)
    return t


def _build_topology(layers: Sequence[LayerSpec]) -> _Topology:
    idx = {layer.name: i for i, layer in enumerate(layers)}
    chain = all(not layer.producers and not layer.consumers for layer in layers)
    edges: list[tuple[int, int, bool]] = []
    preds: list[tuple[int, ...] | None] = []
    for i, layer in enumerate(layers):
        prods = [idx[p] for p in layer.producers if p in idx]
        if chain:
            prods = [i - 1] if i else []
        if not prods:
            edges.append((-1, i, False))
        join = is_join(layer)
        edges.extend((j, i, join) for j in prods)
        cons = [c for c in layer.consumers if c in idx]
        if (chain and i == len(layers) - 1) or (not chain and not cons):
            edges.append((i, -1, False))
        lone = not layer.producers and not layer.consumers
        preds.append(None if lone else tuple(idx[p] for p in layer.producers if p in idx and idx[p] < i))
    chain_preds = all(p == ((i - 1,) if i else ()) for i, p in enumerate(preds))
    return _Topology(tuple(map(weakref.ref, layers)), frozenset(idx), tuple(edges), tuple(preds),
                     skip_fifo_fractions(layers), chain_preds)


def _evaluate(layer: LayerSpec, folding: LayerFolding | None, ctx: Ctx) -> tuple[LayerFolding, LayerCost, tuple]:
    """The effective folding, cost and stream widths of one layer, memoised per layer by (given folding, ctx)."""
    memo = layer.memo(ctx.memo_table)  # one table per context, keyed by the folding: no key tuple to hash
    r = memo.get(folding)
    if r is None:
        f = merge_folding(layer, folding)
        r = memo[folding] = (f, compute_cost(layer, f, ctx), compute_stream_io(layer, f))
    return r


def _edges(net: _Topology, layers: Sequence[LayerSpec], evals: list[tuple]) -> list[tuple]:
    edges = []
    for j, i, join in net.edges:
        if j < 0:
            _, c, io = evals[i]
            edges.append(("", layers[i].name, io[0], io[0], io[1], 0, c.cycles))
            continue
        _, cp, iop = evals[j]
        if i < 0:
            edges.append((layers[j].name, "", iop[2], iop[2], iop[3], cp.cycles, 0))
            continue
        f, c, io = evals[i]
        # a join's inputs may differ in data type: each stream has its own width (PE * bits(lhs/rhs))
        w_in = join_input_width(layers[i], layers[j].name, int(f.pe or 1)) if join else io[0]  # type: ignore[arg-type]
        edges.append((layers[j].name, layers[i].name, iop[2], w_in, iop[3], cp.cycles, c.cycles))
    return edges


def _critical_path(net: _Topology, costs: list[LayerCost]) -> int:
    """FINN's dataflow_performance: the sum of cycles along the longest producer chain."""
    if net.chain:  # every layer's only producer is the one before it: the longest prefix sum
        return max(accumulate((c.cycles for c in costs), initial=0))
    lat: list[int] = []
    longest = 0
    for pred, c in zip(net.preds, costs, strict=True):
        before = longest if pred is None else max((lat[j] for j in pred), default=0)
        v = c.cycles + before
        lat.append(v)
        longest = max(longest, v)
    return longest


def estimate_network(
    layers: Sequence[LayerSpec],
    plan: FoldingPlan | None = None,
    board: BoardSpec | None = None,
    clock_mhz: float | None = None,
    *,
    finn_compat: bool = False,
    infrastructure: bool = True,
    fifo_depths: str = "minimal",
) -> NetworkEstimate:
    """Estimate a FINN dataflow design: ``layers`` in graph order, ``plan`` (``None``: the layers'
    current folding; nodes missing from it keep theirs), ``board`` (``None``: Pynq-Z2).

    Raises ``FoldingError`` when ``plan`` names a node that is not in ``layers`` or a PE/SIMD that
    does not divide its dimension, ``UnsupportedLayerError`` for a layer kind not modelled.
    """
    if fifo_depths not in ("minimal", "rate"):
        raise ConfigError(f"fifo_depths '{fifo_depths}' is not a FIFO depth model; use 'minimal' or 'rate'.")
    if board is None:
        from ..boards import load_board

        board = load_board("pynq-z2")
    clock = float(clock_mhz or board.clock_mhz)
    ctx = ctx_for(board, finn_compat)
    net = _topology(layers)
    given = {}
    if plan is not None:
        given = dict(plan.layers)
        if not net.names.issuperset(given):
            n = next(n for n in plan.names if n not in net.names)
            raise FoldingError(f"The folding names node '{n}', which is not in the model; "
                               f"use FINN's node names ({', '.join(sorted(net.names)[:4])}, ...).")
    evals = [_evaluate(layer, given.get(layer.name), ctx) for layer in layers]
    costs = [e[1] for e in evals]
    layer_costs = {c.name: c for c in costs}
    infra: dict[str, LayerCost] = {}
    skip: dict[str, int] = {}
    if infrastructure and layers:
        infra = infrastructure_costs(_edges(net, layers, evals), fifo_depths=fifo_depths, has_uram=ctx.has_uram)
        if net.skip:
            skip = _skip_fifos(layers, net.skip, [e[0] for e in evals], infra, ctx.has_uram)
    layer_total, worst = _layer_totals(costs)
    infra_total = _sum([c.resources for c in infra.values()])
    total = _sum((layer_total, infra_total))
    max_cycles, bottleneck = (worst.cycles, worst.name) if worst else (0, "")
    fps = clock * 1e6 / max_cycles if max_cycles else 0.0
    over = tuple(total.over(board.budget))
    dyn = dict(zip(layer_costs, dynamic_powers_w([c.resources for c in layer_costs.values()], clock, board.part),
                   strict=True))
    if infra:
        dyn["infrastructure"] = dynamic_power_w(infra_total, clock, board.part)
    static = static_power_w(board.part)
    return NetworkEstimate(
        layers=layer_costs,
        infrastructure=infra,
        total=total,
        layer_total=layer_total,
        max_cycles=max_cycles,
        bottleneck=bottleneck,
        critical_path_cycles=_critical_path(net, costs),
        fps=fps,
        clock_mhz=clock,
        power_w=static + sum(dyn.values()),
        static_power_w=static,
        layer_power_w=dyn,
        fits=not over,
        over=over,
        board=board.key,
        skip_fifos=skip,
    )


def _skip_fifos(layers: Sequence[LayerSpec], fractions: dict[tuple[str, str], float], folds: list[LayerFolding],
                infra: dict[str, LayerCost], has_uram: bool) -> dict[str, int]:
    """Replace the minimal FIFO on the short input of every join by the skip-branch FIFO (``joins.py``)."""
    pes = {layer.name: int(f.pe or 1) for layer, f in zip(layers, folds, strict=True)}
    given = {layer.name: (layer, f.in_fifo_depths) for layer, f in zip(layers, folds, strict=True)
             if f.in_fifo_depths}
    out = {}
    for (p, j), (depth, width) in skip_fifo_depths(layers, pes, fractions).items():
        if j in given:  # the folding sets FINN's inFIFODepths: InsertFIFO builds that depth
            join, depths = given[j]
            depth = int(depths[join.producers.index(p)])
        name = f"FIFO_{p}__{j}"
        infra[name] = LayerCost(name, "StreamingFIFO", fifo_cost(depth, width, "auto", has_uram), 0)
        out[name] = depth
    return out

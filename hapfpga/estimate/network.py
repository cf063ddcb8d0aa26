"""Whole-network estimate: per-layer costs, infrastructure (FIFOs, DWCs), totals, FPS and power."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..boards import BoardSpec
from ..errors import ConfigError
from ..types import RESOURCE_KEYS, FoldingPlan, LayerCost, LayerFolding, Resources
from .context import FoldingError
from .core import cost_of, ctx_for, effective_folding
from .infra import fifo_cost, infrastructure_costs
from .joins import is_join, join_input_width, skip_fifo_depths
from .layers import LayerSpec
from .power import dynamic_power_w, static_power_w
from .streams import stream_io

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


def _foldings(layers: Sequence[LayerSpec], plan: FoldingPlan | None) -> list[LayerFolding]:
    if plan is None:
        return [layer.default_folding for layer in layers]
    names = {layer.name for layer in layers}
    for n in plan.names:
        if n not in names:
            raise FoldingError(f"The folding names node '{n}', which is not in the model; "
                               f"use FINN's node names ({', '.join(sorted(names)[:4])}, ...).")
    given = dict(plan.layers)
    return [effective_folding(layer, given.get(layer.name)) for layer in layers]


def _edges(layers: Sequence[LayerSpec], folds: list[LayerFolding], costs: list[LayerCost]) -> list[tuple]:
    idx = {layer.name: i for i, layer in enumerate(layers)}
    chain = all(not layer.producers and not layer.consumers for layer in layers)
    io = [stream_io(layer, f) for layer, f in zip(layers, folds, strict=True)]
    edges = []
    for i, layer in enumerate(layers):
        prods = [p for p in layer.producers if p in idx]
        if chain:
            prods = [layers[i - 1].name] if i else []
        if not prods:
            edges.append(("", layer.name, io[i][0], io[i][0], io[i][1], 0, costs[i].cycles))
        join = is_join(layer)
        for p in prods:
            j = idx[p]
            # a join's inputs may differ in data type: each stream has its own width (PE * bits(lhs/rhs))
            w_in = join_input_width(layer, p, int(folds[i].pe or 1)) if join else io[i][0]  # type: ignore[arg-type]
            edges.append((p, layer.name, io[j][2], w_in, io[j][3], costs[j].cycles, costs[i].cycles))
        cons = [c for c in layer.consumers if c in idx]
        if (chain and i == len(layers) - 1) or (not chain and not cons):
            edges.append((layer.name, "", io[i][2], io[i][2], io[i][3], costs[i].cycles, 0))
    return edges


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
    folds = _foldings(layers, plan)
    costs = [cost_of(layer, f, ctx) for layer, f in zip(layers, folds, strict=True)]
    layer_costs = {c.name: c for c in costs}
    infra: dict[str, LayerCost] = {}
    if infrastructure and layers:
        infra = infrastructure_costs(_edges(layers, folds, costs), fifo_depths=fifo_depths,
                                     has_uram=ctx.has_uram)
    skip: dict[str, int] = {}
    if infrastructure and layers:
        skip = _skip_fifos(layers, folds, infra, ctx.has_uram)
    layer_total = _sum(c.resources for c in costs)
    total = layer_total + _sum(c.resources for c in infra.values())
    if costs:
        worst = max(costs, key=lambda c: c.cycles)
        max_cycles, bottleneck = worst.cycles, worst.name
    else:
        max_cycles, bottleneck = 0, ""
    fps = clock * 1e6 / max_cycles if max_cycles else 0.0
    # FINN's dataflow_performance: sum of cycles along the longest producer chain
    lat: dict[str, int] = {}
    for layer, c in zip(layers, costs, strict=True):
        preds = [lat[p] for p in layer.producers if p in lat]
        if not layer.producers and not layer.consumers and lat:
            preds = [max(lat.values())]
        lat[layer.name] = c.cycles + max(preds, default=0)
    over = tuple(total.over(board.budget))
    dyn = {n: dynamic_power_w(c.resources, clock, board.part) for n, c in layer_costs.items()}
    if infra:
        dyn["infrastructure"] = dynamic_power_w(_sum(c.resources for c in infra.values()), clock, board.part)
    static = static_power_w(board.part)
    return NetworkEstimate(
        layers=layer_costs,
        infrastructure=infra,
        total=total,
        layer_total=layer_total,
        max_cycles=max_cycles,
        bottleneck=bottleneck,
        critical_path_cycles=max(lat.values(), default=0),
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


def _skip_fifos(layers: Sequence[LayerSpec], folds: list[LayerFolding], infra: dict[str, LayerCost],
                has_uram: bool) -> dict[str, int]:
    """Replace the minimal FIFO on the short input of every join by the skip-branch FIFO (``joins.py``)."""
    pes = {layer.name: int(f.pe or 1) for layer, f in zip(layers, folds, strict=True)}
    given = {layer.name: (layer, f.in_fifo_depths) for layer, f in zip(layers, folds, strict=True)
             if f.in_fifo_depths}
    out = {}
    for (p, j), (depth, width) in skip_fifo_depths(layers, pes).items():
        if j in given:  # the folding sets FINN's inFIFODepths: InsertFIFO builds that depth
            join, depths = given[j]
            depth = int(depths[join.producers.index(p)])
        name = f"FIFO_{p}__{j}"
        infra[name] = LayerCost(name, "StreamingFIFO", fifo_cost(depth, width, "auto", has_uram), 0)
        out[name] = depth
    return out

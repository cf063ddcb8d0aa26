"""An upper bound on the FPS the folding optimiser can reach for a set of FINN layer specs, in milliseconds (pure).

The optimiser (``hapfpga.folding.optimise.optimise``, ``solver.solve_max_fps``) solves a MILP: one candidate
folding per layer, ``t >= cycles`` of each, the summed resources (plus the stream FIFOs folded into each
candidate's cost and the width converters on edges, both never negative) within the budget, minimise ``t``. Its
relaxation here drops the coupling between resources, the ties and the edges: at a cycle level ``L`` every layer
may take, for each resource separately, its cheapest legal folding with at most ``L`` cycles. The smallest ``L``
at which those per-resource sums fit is a lower bound on the optimum's max cycles, so ``clock / L`` bounds its
FPS from above (the same formula as the optimiser's FPS, so ``bound >= fps`` holds in floats too). When no
level fits, no folding fits at all (the exact answer, no solve needed).

With ``options.impl_knob`` (the mixed RTL/HLS-MVAU graph, ``folding/variants.py``) an RTL MVAU's table holds its
RTL foldings (costed as ``optimise`` costs them, DSPs judged twice) and its HLS twin's, as ``mixed_impl_problem``
offers both. The layers' candidate tables (legal foldings and their cost, the same ``legal_foldings`` and cost
model as the optimiser) are memoised by the layer's description, so a greedy step's trials, which differ in one or two layers,
cost only those layers' enumerations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..folding.optimise import default_cost_fn
from ..types import Resources

__all__ = ["FpsBound", "Relaxation"]


@dataclass(frozen=True)
class FpsBound:
    """``fps``: an upper bound on the optimiser's FPS (0 when ``fits`` is False: no folding fits the budget,
    exactly); ``cycles``: the lower bound on max cycles it comes from."""

    fps: float
    fits: bool
    cycles: int


def _fps(clock_mhz: float, cycles: float) -> float:
    """The optimiser's own formula (``folding.optimise._fps``)."""
    return clock_mhz * 1e6 / cycles if cycles > 0 else float("inf")


@dataclass
class Relaxation:
    """The relaxation for one board and ``FoldingOptions`` (as ``optimise`` resolves them: the margin-applied
    budget, the knob space, the cost model); ``bound(layers)`` is the bound for one candidate's layer specs."""

    board: Any
    options: Any
    _tables: dict[tuple[str, str | None], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..folding.legal import board_space
        from ..folding.margin import Margin, resolve_margin

        o, board = self.options, self.board
        self.clock = float(o.clock_mhz or board.clock_mhz)
        # optimise's margin on the board's own budget (``folding.optimise._margin``): none for finn_compat alone
        kept = resolve_margin(o.margin, board.part) if o.margin is not None or not o.finn_compat else Margin()
        budget = kept.apply(board.budget)
        self.keys = tuple(o.keys)
        self.budget = np.array([float(getattr(budget, k)) for k in self.keys])
        self.space = o.space if o.space is not None else board_space(board)
        self.cost_fn = o.cost_fn or default_cost_fn(self.clock, board, o.finn_compat, o.finn_cycles)
        self.rtl_cost = None
        if o.impl_knob:  # the costs optimise gives the two implementations (folding.optimise._problem_for)
            from ..folding.variants import impl_cost

            self.rtl_cost = impl_cost(board, self.clock, self.cost_fn)
        self.weights = _weights(self.budget)
        self.stream_cost = None
        if o.edge_cost == "default" and o.infrastructure:  # FINN's minimal FIFO on every stream (build_problem)
            from ..estimate.infra import fifo_cost

            uram = board.capacity.URAM > 0
            self.stream_cost = lambda width: fifo_cost(2, width, "auto", uram)

    def _table(self, layer: Any, where: tuple[str | None, int, bool]) -> tuple[np.ndarray, np.ndarray]:
        """(cycles ascending, prefix minimum of each weighted cost) of ``layer``'s legal foldings; ``where``:
        the kind of a depthwise SWG's consumer, the number of input streams, whether it is a graph output."""
        key = (repr(layer), *where)
        if key not in self._tables:
            from ..folding.legal import legal_foldings, stream_widths

            rows = []
            knob = self.rtl_cost is not None and layer.kind == "MVAU" and getattr(layer, "impl", "") == "rtl"
            variants = [(layer, self.rtl_cost), (replace(layer, impl="hls"), self.cost_fn)] if knob else \
                [(layer, self.cost_fn)]
            for lay, cost_fn, f in [(x, c, f) for x, c in variants
                                    for f in legal_foldings(x, self.space, depthwise_consumer=where[0])]:
                res, cyc = cost_fn(lay, f)
                if self.stream_cost is not None:  # as build_problem adds it to each candidate
                    i, o = stream_widths(layer, f)
                    res = res + self.stream_cost(i) * where[1] + (self.stream_cost(o) if where[2] else Resources())
                rows.append((int(cyc), [float(getattr(res, k)) for k in self.keys]))
            rows.sort(key=lambda r: r[0])
            cyc = np.array([r[0] for r in rows], dtype=np.int64)
            cost = np.array([r[1] for r in rows], dtype=float).reshape(len(rows), -1) @ self.weights
            cost = np.minimum.accumulate(cost, axis=0)
            self._tables[key] = (cyc, cost)
        return self._tables[key]

    def bound(self, layers: Sequence[Any]) -> FpsBound:
        """The relaxation's bound for ``layers`` (FINN layer specs in graph order, as ``optimise`` takes them)."""
        tables = [self._table(lay, _where(lay, layers)) for lay in layers]
        if not tables or any(len(c) == 0 for c, _ in tables):
            return FpsBound(0.0, False, 0)
        levels = np.unique(np.concatenate([c for c, _ in tables]))
        levels = levels[levels >= max(int(c[0]) for c, _ in tables)]
        total = np.zeros((len(levels), self.weights.shape[1]))
        for cyc, cost in tables:
            total += cost[np.searchsorted(cyc, levels, side="right") - 1]
        ok = np.all(total <= 1.0 + 1e-9, axis=1)
        if not ok.any():
            return FpsBound(0.0, False, 0)
        cycles = int(levels[int(np.argmax(ok))])
        return FpsBound(_fps(self.clock, cycles), True, cycles)


def _where(layer: Any, layers: Sequence[Any]) -> tuple[str | None, int, bool]:
    """What ``build_problem`` reads of a layer's neighbours: the kind of the node a depthwise SWG feeds (its
    parallel window), the number of input streams (one per producer in the graph), whether it is an output."""
    by_name = {lay.name: lay for lay in layers}
    cons = [by_name[c] for c in layer.consumers if c in by_name]
    dw = getattr(layer, "kind", "") == "ConvolutionInputGenerator" and getattr(layer, "depthwise", False)
    n_in = max(1, sum(p in by_name for p in layer.producers))
    return (cons[0].kind if dw and cons else None), n_in, not cons


def _weights(budget: np.ndarray, grid: int = 8) -> np.ndarray:
    """Columns of nonnegative weights ``w`` over the resources with ``w @ budget = 1`` (or, for a resource with
    no budget, ``w = 1`` on it alone, whose use must then be 0): each resource alone and every pair mixed at
    ``grid - 1`` ratios. Any folding that fits has ``w @ use <= 1`` for every column, so the level test
    "the cheapest per column fits" is necessary; the mixes catch one resource traded for another (LUTRAM for
    block RAM) that the single resources miss."""
    n = len(budget)
    cols = []
    for k in range(n):
        w = np.zeros(n)
        w[k] = 1.0 / budget[k] if budget[k] > 0 else 1e12
        cols.append(w)
    live = [k for k in range(n) if budget[k] > 0]
    for a in live:
        for b in live:
            if a < b:
                for j in range(1, grid):
                    w = np.zeros(n)
                    w[a], w[b] = j / grid / budget[a], (grid - j) / grid / budget[b]
                    cols.append(w)
    return np.stack(cols, axis=1)

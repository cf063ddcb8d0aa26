"""``optimise``: the fastest (or, for an FPS target, the cheapest) legal FINN folding within a board budget.

Builds a :class:`~hapfpga.folding.solver.Problem` from the layer list — every legal folding of every
layer (``legal.legal_foldings``) costed by the estimator, ties between sliding-window generators and
their consumers, and width-converter costs on the other edges — and solves it exactly.

FPS = clock / max cycles (FINN's ``dataflow_performance``: the slowest node sets the throughput of a
dataflow pipeline). The bound reported is the solver's proof: no legal folding within the budget has
fewer max cycles than ``bound_cycles``, hence none reaches more than ``clock / bound_cycles`` FPS.
:func:`least_loaded` answers the converse on the same problem: what the cheapest design reaching a given FPS
needs, as a share of the budget (above 1: proved out of reach).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InfeasibleError
from ..types import FoldingPlan, LayerFolding, Resources
from .legal import DEFAULT_SPACE, KnobSpace, board_space, legal_foldings, stream_widths
from .options import FoldingOptions
from .solver import (
    DEFAULT_KEYS,
    Candidate,
    Edge,
    Problem,
    Solution,
    Tie,
    Unit,
    cycle_levels,
    solve_max_fps,
    solve_min_cost,
    solve_min_max_utilisation,
)

__all__ = ["FoldingResult", "Ceiling", "least_loaded", "CostFn", "default_cost_fn", "build_problem", "optimise", "optimise_problem", "with_skip_fifos"]

#: (layer, folding) -> (resources, cycles per frame)
CostFn = Callable[[Any, LayerFolding], tuple[Resources, int]]
#: (producer layer, consumer layer, producer out width, consumer in width) -> resources of what sits between
EdgeCostFn = Callable[[Any, Any, int, int], Resources]

_RES_NAMES = {"LUT": "LUTs", "FF": "FFs", "BRAM_18K": "BRAM18s", "URAM": "URAMs", "DSP": "DSPs"}


@dataclass(frozen=True)
class FoldingResult:
    """What ``optimise`` found. ``estimate`` is the estimator's ``NetworkEstimate`` when available."""

    plan: FoldingPlan
    mode: str  # "max-fps" | "fps"
    fps: float
    max_cycles: int
    bottleneck: str
    bound_fps: float  # no legal folding within the budget exceeds this (proved by the solver)
    binding_resource: str  # what stops a faster design
    total: Resources  # chosen design, layers + width converters (our estimator)
    layer_costs: dict[str, tuple[Resources, int]]
    edge_costs: dict[str, Resources]
    budget: Resources
    clock_mhz: float
    optimal: bool
    solve_seconds: float
    n_candidates: int
    target_fps: float | None = None
    estimate: Any = None
    notes: tuple[str, ...] = field(default=())
    #: the fractions of each resource kept free (``folding/margin.py``) and the budget before them
    margin: Mapping[str, float] = field(default_factory=dict)
    board_budget: Resources | None = None

    def utilisation(self) -> dict[str, float]:
        """The design's share of the budget it was folded for (after the margin), per resource with a budget."""
        return {k: getattr(self.total, k) / getattr(self.budget, k) for k in ("LUT", "BRAM_18K", "URAM", "DSP")
                if getattr(self.budget, k) > 0}

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "target_fps": self.target_fps,
            "predicted_fps": self.fps,
            "max_cycles": self.max_cycles,
            "bottleneck": self.bottleneck,
            "bound_fps": self.bound_fps,
            "binding_resource": self.binding_resource,
            "optimal": self.optimal,
            "clock_mhz": self.clock_mhz,
            "budget": self.budget.as_dict(),
            "board_budget": (self.board_budget or self.budget).as_dict(),
            "margin": dict(self.margin),
            "utilisation": self.utilisation(),
            "total": self.total.as_dict(),
            "solve_seconds": round(self.solve_seconds, 3),
            "n_candidates": self.n_candidates,
            "layers": {
                name: {**self.plan[name].to_finn(), **res.as_dict(), "cycles": cyc}
                for name, (res, cyc) in self.layer_costs.items()
            },
            "width_converters": {k: v.as_dict() for k, v in self.edge_costs.items()},
            "notes": list(self.notes),
        }


def _kind(layer: Any) -> str:
    return layer.kind


def build_problem(
    layers: Sequence[Any],
    budget: Resources,
    cost_fn: CostFn,
    *,
    space: KnobSpace = DEFAULT_SPACE,
    keys: Sequence[str] = DEFAULT_KEYS,
    edge_cost: EdgeCostFn | None = None,
    stream_cost: Callable[[int], Resources] | None = None,
    tie_conv_swg: bool = False,
) -> Problem:
    """Candidate tables, ties and edges for ``layers`` (``LayerSpec``s in graph order).

    ``stream_cost(width)`` is a cost per stream that depends only on its width (FINN's minimal FIFOs):
    it is added to each candidate for its input stream, and for its output stream at the graph output,
    so it needs no pairwise variables. ``edge_cost`` is the pairwise rest (width converters).
    A depthwise SWG is always tied to its VVAU/Pool (FINN's rule); a convolution's SWG is tied to its
    MVAU's input width only with ``tie_conv_swg`` — otherwise, as in FINN's SetFolding, they fold
    independently and FINN's ``InsertDWC`` puts a width converter between them, which ``edge_cost``
    charges."""
    by_name = {layer.name: layer for layer in layers}
    units = []
    for layer in layers:
        dw_consumer = None
        if _kind(layer) == "ConvolutionInputGenerator" and getattr(layer, "depthwise", False):
            cons = [by_name[c] for c in layer.consumers if c in by_name]
            dw_consumer = _kind(cons[0]) if cons else None
        cands = []
        is_out = not any(c in by_name for c in layer.consumers)
        n_in = max(1, sum(p in by_name for p in layer.producers))  # a join takes one stream per producer
        for f in legal_foldings(layer, space, depthwise_consumer=dw_consumer):
            res, cyc = cost_fn(layer, f)
            i, o = stream_widths(layer, f)
            if stream_cost is not None:
                res = res + stream_cost(i) * n_in + (stream_cost(o) if is_out else Resources())
            cands.append(Candidate(f, int(cyc), res, in_width=i, out_width=o))
        units.append(Unit(layer.name, _kind(layer), tuple(cands)))
    ties, edges = [], []
    for layer in layers:
        for cname in layer.consumers:
            if cname not in by_name:
                continue
            cons = by_name[cname]
            # depthwise SWG -> VVAU/Pool: FINN's rule; SWG -> MVAU: only with tie_conv_swg, otherwise a
            # width converter (an edge cost) may sit between them
            if (
                _kind(layer) == "ConvolutionInputGenerator"
                and _kind(cons) in ("MVAU", "VVAU", "Pool")
                and (getattr(layer, "depthwise", False) or _kind(cons) != "MVAU" or tie_conv_swg)
            ):
                ties.append(Tie(layer.name, cname, "out_width", "in_width"))
            if edge_cost is not None:
                edges.append(Edge(layer.name, cname, _edge_fn(edge_cost, layer, cons)))
    return Problem(tuple(units), budget, tuple(ties), tuple(edges), tuple(keys))


def _edge_fn(edge_cost: EdgeCostFn, p: Any, c: Any) -> Callable[[int, int], Resources]:
    cache: dict[tuple[int, int], Resources] = {}

    def f(o: int, i: int) -> Resources:
        if (o, i) not in cache:
            cache[(o, i)] = edge_cost(p, c, o, i)
        return cache[(o, i)]

    return f


def _fps(clock_mhz: float, cycles: float) -> float:
    return clock_mhz * 1e6 / cycles if cycles > 0 else math.inf


def _fmt(r: Resources, keys: Sequence[str]) -> str:
    return ", ".join(f"{getattr(r, k):,.0f} {_RES_NAMES[k]}" for k in keys)


def _binding(problem: Problem, sol: Solution, time_limit: float) -> str:
    """The resource that stops the next faster design: the most over-budget resource of the least
    over-budget design one cycle level faster (``solve_min_max_utilisation``)."""
    faster = [lv for lv in cycle_levels(problem) if lv < sol.max_cycles]
    if not faster:
        return "none (every layer is at its fastest legal folding)"
    try:  # without width converters (small; they would make this label cost a slow solve)
        relaxed = replace(problem, edges=())
        _, _, key = solve_min_max_utilisation(relaxed, faster[-1], time_limit=time_limit)
    except InfeasibleError:
        return "none"
    return key


def optimise_problem(
    problem: Problem,
    clock_mhz: float,
    *,
    target_fps: float | None = None,
    time_limit: float = 60.0,
    fps_only: bool = False,
) -> tuple[Solution, str, float, float]:
    """Solve; returns (solution, binding resource, bound FPS, optimal max-fps cycles).

    ``fps_only``: only the fastest max cycles matter (the pruning search's FPS predictor): the max-fps solve
    skips the least-utilisation tie-break and the binding resource is not solved for."""
    best = solve_max_fps(problem, time_limit=time_limit, cheapest=not fps_only)
    if best is None:
        sol, frac, key = solve_min_max_utilisation(problem, time_limit=time_limit)
        raise InfeasibleError(
            f"No legal folding fits the budget, even the cheapest: the binding resource is {_RES_NAMES[key]}; the cheapest "
            f"design needs {_fmt(sol.total, problem.keys)} against a budget of {_fmt(problem.budget, problem.keys)} "
            f"({frac:.0%} of the {_RES_NAMES[key]} budget); choose a larger board, raise its utilisation limits, "
            "or prune/quantise the model."
        )
    bound_fps = _fps(clock_mhz, best.bound_cycles)
    binding = "not solved for (fps_only)" if fps_only else _binding(problem, best, time_limit)
    if target_fps is None:
        return best, binding, bound_fps, best.max_cycles
    limit = math.floor(clock_mhz * 1e6 / target_fps)
    if best.max_cycles > limit:
        faster = [lv for lv in cycle_levels(problem) if lv <= limit]
        detail = ""
        if faster:
            sol, frac, key = solve_min_max_utilisation(problem, faster[-1], time_limit=time_limit)
            detail = (
                f"; the binding resource is {_RES_NAMES[key]}: the least-loaded design reaching "
                f"{target_fps:,.0f} FPS needs "
                f"{_fmt(sol.total, problem.keys)} against a budget of {_fmt(problem.budget, problem.keys)}"
            )
        else:
            detail = "; no legal folding is that fast even without a budget"
        raise InfeasibleError(
            f"Target {target_fps:,.0f} FPS cannot be met on this board: the fastest design that fits reaches "
            f"{_fps(clock_mhz, best.max_cycles):,.0f} FPS{detail}; lower --fps or use --max-fps."
        )
    sol = solve_min_cost(problem, limit, time_limit=time_limit)
    assert sol is not None  # best meets the limit, so a cheapest design exists
    return sol, binding, bound_fps, best.max_cycles


def default_cost_fn(clock_mhz: float, board: Any, finn_compat: bool, finn_cycles: bool = False) -> CostFn:
    """The estimator's resources and cycles; with ``finn_cycles`` the cycles are the larger of ours and FINN's
    ``get_exp_cycles`` wherever a documented deviation touches cycles (D10, ``swg-rtl-cycles``: FINN's formula
    adds the buffer fill per frame and a depthwise stall that finn-rtllib's SWG does not spend)."""
    from ..estimate import estimate_layer
    from ..estimate.deviations import DEVIATIONS, deviations_for

    def cost(layer: Any, f: LayerFolding) -> tuple[Resources, int]:
        c = estimate_layer(layer, f, clock_mhz, board=board, finn_compat=finn_compat)
        cycles = int(c.cycles)
        if finn_cycles and not finn_compat and any(
            "cycles" in DEVIATIONS[d][1] for d in deviations_for(layer, f, board)
        ):
            cycles = max(cycles, int(estimate_layer(layer, f, clock_mhz, board=board, finn_compat=True).cycles))
        return c.resources, cycles

    return cost


def _default_edge_cost(board: Any, layers: Sequence[Any] = ()) -> tuple[EdgeCostFn, Callable[[int], Resources]]:
    """Width converters (with the FIFO in front of each) where the widths differ, and FINN's minimal
    depth-2 FIFO on every stream (graph input and output included), as the estimator's
    ``infrastructure_costs`` counts them (``hapfpga.estimate.infra.dwc_luts`` / ``fifo_cost``); on the short
    input of a join, the skip-branch FIFO instead of the minimal one (``hapfpga.estimate.joins``: its depth
    in words follows the join's input width, ``frame bits / width``)."""
    from ..estimate.dtypes import bits
    from ..estimate.infra import dwc_luts, fifo_cost
    from ..estimate.joins import is_join, join_input_width, skip_fifo_depth, skip_fifo_fractions

    has_uram = board.capacity.URAM > 0
    skip = skip_fifo_fractions(layers) if layers else {}

    def skip_extra(p: Any, c: Any, i: int) -> Resources:
        frac = skip.get((p.name, c.name))
        if frac is None:
            return Resources()
        dt = c.lhs_dt if c.producers[0] == p.name else c.rhs_dt
        words = math.prod(c.out_shape) * bits(dt) // max(1, i)
        return fifo_cost(skip_fifo_depth(frac, words), i, "auto", has_uram) - fifo_cost(2, i, "auto", has_uram)

    def dwc(p: Any, c: Any, o: int, i: int) -> Resources:
        # FINN: InsertDWC, then InsertFIFO puts a FIFO on each side of the converter (the consumer-side
        # one is the per-stream FIFO below)
        if is_join(c):  # the candidate's in_width is the lhs stream's; each input has its own data type
            i = join_input_width(c, p.name, i // bits(c.lhs_dt))
        extra = skip_extra(p, c, i) if skip else Resources()
        if o == i:
            return extra
        return Resources(LUT=float(dwc_luts(o, i))) + fifo_cost(2, o, "auto", has_uram) + extra

    def fifo(width: int) -> Resources:
        return fifo_cost(2, width, "auto", has_uram)

    return dwc, fifo


def _solve_checked(
    problem: Problem,
    layers: Sequence[Any],
    board: Any,
    clock: float,
    full_budget: Resources,
    keys: Sequence[str],
    *,
    target_fps: float | None,
    time_limit: float,
    estimate: bool,
    finn_compat: bool,
    infrastructure: bool,
    max_tightenings: int,
    fps_only: bool = False,
) -> tuple[Solution, str, float, FoldingPlan, Any, Resources, list[str]]:
    """Solve, check with ``estimate_network``, tighten the violated resources and re-solve until it fits.

    Returns (solution, binding resource, bound FPS, plan, network estimate or None, budget solved for, notes).
    """
    notes: list[str] = []
    cur = full_budget
    for _ in range(max_tightenings + 1):
        problem = replace(problem, budget=cur)
        sol, binding, bound_fps, _ = optimise_problem(
            problem, clock, target_fps=target_fps, time_limit=time_limit, fps_only=fps_only
        )
        plan = with_skip_fifos(FoldingPlan(tuple((u.name, sol.choice[u.name].folding) for u in problem.units)),
                               layers)
        est = None
        if not estimate:
            break
        from ..estimate import estimate_network
        from .variants import as_built

        est = estimate_network(
            *as_built(layers, plan), board, clock_mhz=clock, finn_compat=finn_compat, infrastructure=infrastructure
        )
        over = est.total.over(full_budget, keys)
        if not over:
            break
        new = tightened(cur, sol.total, est.total, keys, full_budget)
        notes.append(
            f"estimate_network exceeds {', '.join(over)} ; budget tightened to "
            + ", ".join(f"{k} {getattr(new, k):g}" for k in over)
        )
        cur = new
    else:
        raise InfeasibleError(
            f"No folding found whose full network estimate fits after {max_tightenings} tightenings of "
            f"{', '.join(over)}; lower the utilisation or use a larger board."
        )
    return sol, binding, bound_fps, plan, est, cur, notes


def optimise(
    layers: Sequence[Any],
    board: Any,
    options: FoldingOptions | None = None,
    *,
    target_fps: float | None = None,
    budget: Resources | None = None,
) -> FoldingResult:
    """The fastest legal folding of ``layers`` within ``board.budget`` (or the cheapest reaching ``target_fps``).

    ``options`` (:class:`~hapfpga.folding.options.FoldingOptions`, default: all defaults) says how: the clock,
    the cost model (``cost_fn`` defaults to ``hapfpga.estimate.estimate_layer``; ``finn_compat`` selects FINN's
    own per-node numbers), whether width converters and FIFOs between layers count against the budget
    (``infrastructure``; ``edge_cost`` overrides their cost, ``None`` ignores them), the knob space and the
    solver's time limit. ``budget`` overrides ``board.budget``. With ``options.estimate`` the design is then
    checked with ``estimate_network`` (which also counts the graph's input/output FIFOs); if that says it does
    not fit, the violated resources are tightened and the problem re-solved (at most ``max_tightenings`` times,
    recorded in ``notes``). ``margin``: fractions of the budget kept free (``folding/margin.py``: one for every
    resource, a per-resource ``Margin``, or ``None``: the measured default, where our whole-design estimate fell
    below synthesis). The default applies to ``board.budget`` only: an explicit ``budget`` is taken as given
    unless ``margin`` is set too; ``finn_compat`` (FINN's own choices) takes no default. ``fps_only`` (the pruning
    predictor): one of the fastest designs, not the least used, and no ``binding_resource`` (both cost solver
    time). ``finn_cycles`` (default on, docs/margin.md "Cycles"): also fold for the FPS FINN's report says
    (``default_cost_fn``). Raises ``InfeasibleError`` naming the binding resource.
    """
    o = options or FoldingOptions()
    problem, clock, kept, board_budget = _problem_for(layers, board, o, budget)
    full_budget = problem.budget
    sol, binding, bound_fps, plan, est, cur, notes = _solve_checked(
        problem, layers, board, clock, full_budget, o.keys, target_fps=target_fps, time_limit=o.time_limit,
        estimate=o.estimate, finn_compat=o.finn_compat, infrastructure=o.infrastructure,
        max_tightenings=o.max_tightenings, fps_only=o.fps_only,
    )
    if not sol.optimal:
        notes.append("solver stopped at its time limit; bound_fps is the solver's proven bound")
    return FoldingResult(
        plan=plan,
        mode="max-fps" if target_fps is None else "fps",
        fps=_fps(clock, sol.max_cycles),
        max_cycles=sol.max_cycles,
        bottleneck=sol.bottleneck,
        bound_fps=bound_fps,
        binding_resource=binding,
        total=sol.total,
        layer_costs={n: (c.resources, c.cycles) for n, c in sol.choice.items()},
        edge_costs={f"{p}->{c}": r for (p, c), r in sol.edge_costs.items() if any(r.as_dict().values())},
        budget=cur,
        clock_mhz=clock,
        optimal=sol.optimal,
        solve_seconds=sol.seconds,
        n_candidates=sol.n_candidates,
        target_fps=target_fps,
        estimate=est,
        notes=tuple(notes),
        margin=kept.as_dict(),
        board_budget=board_budget,
    )


def _problem_for(
    layers: Sequence[Any], board: Any, o: FoldingOptions, budget: Resources | None
) -> tuple[Problem, float, Any, Resources]:
    """The problem ``optimise`` solves for ``options`` ``o``: (problem at the budget after the margin, clock, the
    margin kept free, the budget before it)."""
    clock = float(o.clock_mhz or board.clock_mhz)
    board_budget = budget or board.budget
    kept = _margin(board, budget, o.margin, o.finn_compat)
    space = o.space if o.space is not None else board_space(board)
    cost_fn = o.cost_fn or default_cost_fn(clock, board, o.finn_compat, o.finn_cycles)
    edge_cost, stream_cost = o.edge_cost, None
    if edge_cost == "default":
        edge_cost, stream_cost = _default_edge_cost(board, layers) if o.infrastructure else (None, None)
    kw = {"space": space, "keys": o.keys, "stream_cost": stream_cost, "edge_cost": edge_cost,
          "tie_conv_swg": o.tie_conv_swg}
    if o.impl_knob:
        from .variants import impl_cost, mixed_impl_problem

        problem = mixed_impl_problem(layers, board, kept.apply(board_budget), build=build_problem,
                                     rtl_cost=impl_cost(board, clock, cost_fn), hls_cost=cost_fn, **kw)
    else:
        problem = build_problem(layers, kept.apply(board_budget), cost_fn, **kw)  # type: ignore[arg-type]
    return problem, clock, kept, board_budget


@dataclass(frozen=True)
class Ceiling:
    """What reaching ``target_fps`` takes: the legal design at most ``cycle_limit`` cycles per frame whose most-used
    resource is least used, ignoring the budget (:func:`least_loaded`). ``utilisation`` is that resource's share of
    ``budget`` (the budget after the margin); above 1, no legal folding in the knob space reaches ``target_fps``
    within the budget, a proof when ``optimal``."""

    target_fps: float
    cycle_limit: int
    utilisation: float
    binding: str  # the most-used resource of that design
    total: Resources  # layers + width converters + FIFOs, as the optimiser counts them
    budget: Resources
    plan: FoldingPlan
    optimal: bool

    @property
    def reachable(self) -> bool:
        return self.utilisation <= 1.0 + 1e-9

    def as_json(self) -> dict[str, Any]:
        return {"target_fps": self.target_fps, "cycle_limit": self.cycle_limit, "utilisation": self.utilisation,
                "binding": self.binding, "reachable": self.reachable, "optimal": self.optimal,
                "total": self.total.as_dict(), "budget": self.budget.as_dict()}


def least_loaded(
    layers: Sequence[Any],
    board: Any,
    target_fps: float,
    options: FoldingOptions | None = None,
    *,
    budget: Resources | None = None,
) -> Ceiling:
    """How far ``target_fps`` is out of (or within) reach on ``board`` with ``options``: the :class:`Ceiling` of the
    same problem ``optimise`` solves (knob space, costs, width converters and FIFOs, margin), by
    ``solve_min_max_utilisation``. ``optimise(..., target_fps=target_fps)`` with ``estimate=False`` succeeds exactly
    when ``Ceiling.reachable``; with the network-estimate check it may still have to tighten."""
    o = options or FoldingOptions()
    problem, clock, _, _ = _problem_for(layers, board, o, budget)
    limit = math.floor(clock * 1e6 / target_fps)
    faster = [lv for lv in cycle_levels(problem) if lv <= limit]
    if not faster:
        raise InfeasibleError(f"No legal folding reaches {target_fps:,.0f} FPS even without a budget: the fastest "
                              f"needs {cycle_levels(problem)[0]:,} cycles per frame at {clock:g} MHz.")
    sol, frac, key = solve_min_max_utilisation(problem, faster[-1], time_limit=o.time_limit)
    plan = FoldingPlan(tuple((u.name, sol.choice[u.name].folding) for u in problem.units))
    return Ceiling(float(target_fps), limit, float(frac), key, sol.total, problem.budget, plan, sol.optimal)


def _margin(board: Any, budget: Resources | None, margin: Any, finn_compat: bool) -> Any:
    """The margin ``optimise`` keeps free: the given one, else the measured default on the board's own budget
    (none on an explicit ``budget`` or for ``finn_compat``, FINN's own choices)."""
    from .margin import Margin, resolve_margin

    if margin is not None or (budget is None and not finn_compat):
        return resolve_margin(margin, getattr(board, "part", ""))
    return Margin()


def with_skip_fifos(plan: FoldingPlan, layers: Sequence[Any]) -> FoldingPlan:
    """``plan`` with FINN's ``inFIFODepths`` on every join: the skip-branch FIFO depth of its short input
    (``hapfpga.estimate.joins``), 2 on the other, so that FINN's ``InsertFIFO`` builds the FIFO the estimate
    costs and the design does not deadlock with minimal FIFOs."""
    from ..estimate.joins import skip_fifo_depths

    pes = {n: int(f.pe or 1) for n, f in plan}
    skip = skip_fifo_depths(layers, pes)
    if not skip:
        return plan
    by_name = {layer.name: layer for layer in layers}
    depths: dict[str, list[int]] = {}
    for (p, j), (d, _) in skip.items():
        prods = by_name[j].producers
        depths.setdefault(j, [2] * len(prods))[prods.index(p)] = d
    return FoldingPlan(tuple((n, f.with_(in_fifo_depths=tuple(depths[n])) if n in depths else f) for n, f in plan),
                       plan.meta)


def tightened(
    budget: Resources, used: Resources, actual: Resources, keys: Sequence[str], limit: Resources | None = None
) -> Resources:
    """A smaller budget for each resource where ``actual`` (FINN's report, or the full network
    estimate) exceeds ``limit`` (default ``budget``): take off what ``used`` (the solver's total)
    under-counted, at least one unit."""
    limit = limit or budget
    changes = {}
    for k in keys:
        b, ours, theirs = getattr(budget, k), getattr(used, k), getattr(actual, k)
        if theirs > getattr(limit, k) + 1e-9:
            changes[k] = max(0.0, math.floor(b - max(1.0, theirs - ours)))
    return replace(budget, **changes)

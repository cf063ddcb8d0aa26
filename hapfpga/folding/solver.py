"""Exact folding solver on abstract per-layer candidate tables (pure: numpy + scipy's HiGHS MILP).

The problem, independent of FINN: every unit (a FINN node) must pick exactly one candidate (a folding
with its cycles per frame and its resources). Minimise the slowest unit's cycles (``solve_max_fps``),
or the resources for a cycle target (``solve_min_cost``), subject to

* the sum of the chosen candidates' resources, plus the cost of every edge between neighbours, within
  the budget for each resource key;
* ties: an attribute of one unit's folding (or its stream width) equals another's (FINN's rule that a
  depthwise sliding-window generator has ``SIMD`` = its consumer's ``PE``; optionally a convolution's
  SWG output width = its MVAU's input width, so that no width converter sits between them);
* edge costs: a function of the producer's output stream width and the consumer's input stream width
  (width converters and the FIFO in front of them), paid for the pair of widths chosen.

The formulation is a multiple-choice integer program: binary ``x[u, c]`` per candidate; for each edge
continuous ``z[i, j] >= 0`` per (out width, in width) pair with marginals ``sum_j z[i, j] = A_i`` and
``sum_i z[i, j] = B_j`` (``A_i``/``B_j``: the producer's/consumer's candidates of that width), which
with one-hot ``x`` forces ``z`` onto the chosen pair — an exact linearisation whose LP relaxation is
much tighter than ``w >= A_i + B_j - 1``. ``solve_max_fps`` is one MILP ``min t + eps * utilisation``
with ``t >= sum_c cycles[c] x[u, c]`` per unit: cycles are integers and the utilisation term stays
below one cycle, so it is lexicographic (fastest, then least sum of used/budget). HiGHS
(``scipy.optimize.milp``) runs with a zero relative gap, so an answer flagged ``optimal`` is provably
optimal and ``bound_cycles`` is a proven lower bound on the max cycles of any feasible choice.

Dominated candidates (no faster and no cheaper in every resource than another candidate with the same
tie values and stream widths) are removed first; this never changes the optimum.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InfeasibleError, SolverTimeLimitError
from ..types import RESOURCE_KEYS, LayerFolding, Resources

__all__ = [
    "Candidate",
    "Unit",
    "Tie",
    "Edge",
    "Problem",
    "Solution",
    "prune_dominated",
    "solve_max_fps",
    "solve_min_cost",
    "solve_min_max_utilisation",
    "evaluate_choice",
]

#: Resource keys a budget constrains by default (FF is optional, see ``Problem.keys``).
DEFAULT_KEYS: tuple[str, ...] = ("LUT", "BRAM_18K", "URAM", "DSP")


@dataclass(frozen=True)
class Candidate:
    """One legal folding of one unit with its cost; widths are stream widths in bits (0 = unknown)."""

    folding: LayerFolding
    cycles: int
    resources: Resources
    in_width: int = 0
    out_width: int = 0


@dataclass(frozen=True)
class Unit:
    """A node that must choose exactly one of ``candidates``."""

    name: str
    kind: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True)
class Tie:
    """``getattr(folding_of(a), a_attr) == getattr(folding_of(b), b_attr)`` must hold."""

    a: str
    b: str
    a_attr: str = "simd"
    b_attr: str = "simd"


@dataclass(frozen=True)
class Edge:
    """A stream from ``producer`` to ``consumer``; ``cost(out_width, in_width)`` is what it adds."""

    producer: str
    consumer: str
    cost: Callable[[int, int], Resources] = field(compare=False)


@dataclass(frozen=True)
class Problem:
    units: tuple[Unit, ...]
    budget: Resources
    ties: tuple[Tie, ...] = ()
    edges: tuple[Edge, ...] = ()
    keys: tuple[str, ...] = DEFAULT_KEYS

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(name)


@dataclass(frozen=True)
class Solution:
    """A chosen candidate per unit, its totals, and what the solver proved."""

    choice: Mapping[str, Candidate]
    max_cycles: int
    bottleneck: str
    total: Resources  # units + edges
    edge_costs: Mapping[tuple[str, str], Resources]
    optimal: bool
    bound_cycles: float  # proven lower bound on max cycles (max-fps mode); = max_cycles when optimal
    seconds: float
    n_candidates: int  # after dominance pruning


# ----------------------------------------------------------------------------------------------
# helpers


def _res_vec(r: Resources, keys: Sequence[str]) -> np.ndarray:
    return np.array([getattr(r, k) for k in keys], dtype=float)


def _attr(c: Candidate, attr: str) -> object:
    """A folding attribute, or the candidate's ``in_width``/``out_width``/``cycles``."""
    if attr in ("in_width", "out_width", "cycles"):
        return getattr(c, attr)
    return getattr(c.folding, attr)


def _signature(problem: Problem, unit: Unit) -> Callable[[Candidate], tuple]:
    """What a candidate must share with another for one to dominate the other."""
    attrs = sorted(
        {t.a_attr for t in problem.ties if t.a == unit.name}
        | {t.b_attr for t in problem.ties if t.b == unit.name}
    )
    has_in = any(e.consumer == unit.name for e in problem.edges)
    has_out = any(e.producer == unit.name for e in problem.edges)

    def sig(c: Candidate) -> tuple:
        return (
            tuple(_attr(c, a) for a in attrs),
            c.in_width if has_in else None,
            c.out_width if has_out else None,
        )

    return sig


def prune_dominated(problem: Problem, keys: Sequence[str] | None = None) -> Problem:
    """Drop candidates that another candidate with the same signature beats or equals in everything."""
    keys = tuple(keys or RESOURCE_KEYS)
    units = []
    for u in problem.units:
        sig = _signature(problem, u)
        groups: dict[tuple, list[Candidate]] = defaultdict(list)
        for c in u.candidates:
            groups[sig(c)].append(c)
        kept: list[Candidate] = []
        for cands in groups.values():
            m = np.array([[c.cycles, *_res_vec(c.resources, keys)] for c in cands], dtype=float)
            order = np.lexsort(m.T[::-1])  # sort by cycles, then resources
            keep_rows: list[int] = []
            for i in order:
                row = m[i]
                if keep_rows and np.any(np.all(m[keep_rows] <= row + 1e-9, axis=1)):
                    continue
                keep_rows.append(int(i))
            kept.extend(cands[i] for i in sorted(keep_rows))
        units.append(Unit(u.name, u.kind, tuple(kept)))
    return Problem(tuple(units), problem.budget, problem.ties, problem.edges, problem.keys)


def evaluate_choice(problem: Problem, choice: Mapping[str, Candidate]) -> tuple[int, Resources, dict]:
    """Max cycles, total resources (units + edges) and per-edge costs of a full choice."""
    total = sum((choice[u.name].resources for u in problem.units), Resources())
    edge_costs = {}
    for e in problem.edges:
        c = e.cost(choice[e.producer].out_width, choice[e.consumer].in_width)
        edge_costs[(e.producer, e.consumer)] = c
        total = total + c
    return max(choice[u.name].cycles for u in problem.units), total, edge_costs


def ties_hold(problem: Problem, choice: Mapping[str, Candidate]) -> bool:
    return all(_attr(choice[t.a], t.a_attr) == _attr(choice[t.b], t.b_attr) for t in problem.ties)


# ----------------------------------------------------------------------------------------------
# the integer program


@dataclass
class _Model:
    n: int
    offsets: dict[str, int]
    a: Any  # scipy.sparse matrix of the structural rows (one-hot, ties, edge marginals)
    lb: np.ndarray
    ub: np.ndarray
    res_rows: np.ndarray  # (n_keys, n) resource coefficients
    cycles: np.ndarray  # (n,) cycles per variable (0 for edge variables and t)
    integrality: np.ndarray
    upper: np.ndarray

    def with_t(self) -> _Model:
        """The same model with one more continuous variable ``t`` (last column)."""
        from scipy.sparse import csr_matrix, hstack

        a = hstack([self.a, csr_matrix((self.a.shape[0], 1))]).tocsr()
        return _Model(
            self.n + 1,
            self.offsets,
            a,
            self.lb,
            self.ub,
            np.hstack([self.res_rows, np.zeros((self.res_rows.shape[0], 1))]),
            np.append(self.cycles, 0.0),
            np.append(self.integrality, 0),
            np.append(self.upper, np.inf),
        )


@dataclass
class _Rows:
    """The constraint matrix in COO form, built one row at a time (with its lower/upper bounds)."""

    ri: list[int] = field(default_factory=list)
    ci: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    lb: list[float] = field(default_factory=list)
    ub: list[float] = field(default_factory=list)
    row: int = 0

    def put(self, col: int, v: float) -> None:
        self.ri.append(self.row)
        self.ci.append(col)
        self.vals.append(v)

    def close(self, lo: float, hi: float) -> None:
        self.lb.append(lo)
        self.ub.append(hi)
        self.row += 1


def _layout(
    problem: Problem,
) -> tuple[dict[str, int], int, list[tuple[Edge, list[int], list[int], int]], int]:
    """Column offsets of every unit's candidates, then every edge's (out width, in width) pair block."""
    offsets: dict[str, int] = {}
    n = 0
    for u in problem.units:
        offsets[u.name] = n
        n += len(u.candidates)
    n_x = n
    # edge pair variables: every (out width, in width) pair of every edge
    edge_blocks: list[tuple[Edge, list[int], list[int], int]] = []
    for e in problem.edges:
        outs = sorted({c.out_width for c in problem.unit(e.producer).candidates})
        ins = sorted({c.in_width for c in problem.unit(e.consumer).candidates})
        edge_blocks.append((e, outs, ins, n))
        n += len(outs) * len(ins)
    return offsets, n_x, edge_blocks, n


def _unit_rows(
    problem: Problem,
    offsets: dict[str, int],
    rows: _Rows,
    cols: tuple[np.ndarray, np.ndarray, np.ndarray],
    cycle_limit: float | None,
) -> None:
    """One-hot row per unit; fills the candidates' cycles, resources and upper bounds."""
    upper, cyc, res = cols
    for u in problem.units:
        o = offsets[u.name]
        for k, c in enumerate(u.candidates):
            rows.put(o + k, 1.0)
            cyc[o + k] = c.cycles
            res[:, o + k] = _res_vec(c.resources, problem.keys)
            if cycle_limit is not None and c.cycles > cycle_limit:
                upper[o + k] = 0
        rows.close(1, 1)


def _tie_rows(problem: Problem, offsets: dict[str, int], rows: _Rows) -> None:
    """Per tie and value: (#a with value) - (#b with value) = 0."""
    for t in problem.ties:
        ua, ub_ = problem.unit(t.a), problem.unit(t.b)
        values = {_attr(c, t.a_attr) for c in ua.candidates} | {_attr(c, t.b_attr) for c in ub_.candidates}
        for v in values:
            for k, c in enumerate(ua.candidates):
                if _attr(c, t.a_attr) == v:
                    rows.put(offsets[t.a] + k, 1.0)
            for k, c in enumerate(ub_.candidates):
                if _attr(c, t.b_attr) == v:
                    rows.put(offsets[t.b] + k, -1.0)
            rows.close(0, 0)


def _edge_rows(
    problem: Problem,
    offsets: dict[str, int],
    rows: _Rows,
    res: np.ndarray,
    edge_blocks: list[tuple[Edge, list[int], list[int], int]],
) -> None:
    """Per edge the pair costs and the marginals sum_j z[i, j] = A_i, sum_i z[i, j] = B_j."""
    for e, outs, ins, base in edge_blocks:
        nin = len(ins)
        for a_i, i in enumerate(outs):
            for b_j, j in enumerate(ins):
                res[:, base + a_i * nin + b_j] = _res_vec(e.cost(i, j), problem.keys)
        pc = problem.unit(e.producer).candidates
        cc = problem.unit(e.consumer).candidates
        for a_i, i in enumerate(outs):  # sum_j z[i, j] - A_i = 0
            for b_j in range(nin):
                rows.put(base + a_i * nin + b_j, 1.0)
            for k, c in enumerate(pc):
                if c.out_width == i:
                    rows.put(offsets[e.producer] + k, -1.0)
            rows.close(0, 0)
        for b_j, j in enumerate(ins):  # sum_i z[i, j] - B_j = 0
            for a_i in range(len(outs)):
                rows.put(base + a_i * nin + b_j, 1.0)
            for k, c in enumerate(cc):
                if c.in_width == j:
                    rows.put(offsets[e.consumer] + k, -1.0)
            rows.close(0, 0)


def _build(problem: Problem, cycle_limit: float | None) -> _Model:
    """Variables: candidates of every unit (binary), then per edge the joint width-pair variables.

    Rows: one-hot per unit; per tie and value, (#a with value) - (#b with value) = 0; per edge the
    marginals of the width-pair variables z[i, j] >= 0: sum_j z[i, j] = A_i and sum_i z[i, j] = B_j
    (A_i, B_j: the producer's/consumer's candidates of out width i / in width j). With one-hot A and B
    this forces z to the single chosen pair — an exact and tight linearisation of the pair cost.
    """
    from scipy.sparse import coo_matrix

    offsets, n_x, edge_blocks, n_total = _layout(problem)
    rows = _Rows()
    upper = np.ones(n_total)
    cyc = np.zeros(n_total)
    res = np.zeros((len(problem.keys), n_total))
    _unit_rows(problem, offsets, rows, (upper, cyc, res), cycle_limit)
    _tie_rows(problem, offsets, rows)
    _edge_rows(problem, offsets, rows, res, edge_blocks)
    a = coo_matrix((rows.vals, (rows.ri, rows.ci)), shape=(rows.row, n_total)).tocsr()
    integrality = np.zeros(n_total)
    integrality[:n_x] = 1
    return _Model(
        n_total, offsets, a, np.array(rows.lb, float), np.array(rows.ub, float), res, cyc, integrality, upper
    )


def _milp(
    c: np.ndarray,
    model: _Model,
    extra_rows: list[tuple[np.ndarray, float, float]],
    time_limit: float,
    rel_gap: float = 0.0,
    node_limit: int | None = None,
):
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, vstack

    a = model.a
    lo, hi = model.lb, model.ub
    if extra_rows:
        a = vstack([a, csr_matrix(np.vstack([r for r, _, _ in extra_rows]))]).tocsr()
        lo = np.concatenate([lo, [x for _, x, _ in extra_rows]])
        hi = np.concatenate([hi, [x for _, _, x in extra_rows]])
    return milp(
        c,
        integrality=model.integrality,
        bounds=Bounds(np.zeros(len(c)), model.upper),
        constraints=LinearConstraint(a, lo, hi),
        options={
            "mip_rel_gap": rel_gap,
            "time_limit": time_limit,
            "presolve": True,
            **({"node_limit": node_limit} if node_limit is not None else {}),
        },
    )


def _solution(
    problem: Problem, model: _Model, xval: np.ndarray, optimal: bool, bound: float, t0: float, n_cand: int
) -> Solution:
    choice = {}
    for u in problem.units:
        o = model.offsets[u.name]
        k = int(np.argmax(xval[o : o + len(u.candidates)]))
        choice[u.name] = u.candidates[k]
    max_cycles, total, edge_costs = evaluate_choice(problem, choice)
    bottleneck = max(problem.units, key=lambda u: choice[u.name].cycles).name
    return Solution(
        choice, max_cycles, bottleneck, total, edge_costs, optimal, bound, time.perf_counter() - t0, n_cand
    )


def _check_nonempty(problem: Problem) -> None:
    for u in problem.units:
        if not u.candidates:
            raise InfeasibleError(
                f"Layer {u.name} ({u.kind}) has no legal folding; check its shape and datatypes."
            )


#: weight of the secondary objective (total utilisation, at most ~len(keys)) against max cycles: any
#: whole cycle saved outweighs it, so one MILP is an exact lexicographic (fastest, then cheapest) solve
_EPS = 0.2


def _min_t(p: Problem, time_limit: float, cheapest: bool = True) -> tuple[float | None, bool, float, Any]:
    """MILP ``min t (+ eps * utilisation)`` s.t. ``t >= cycles`` of every unit, within the budget.

    Returns (t*, optimal, proven lower bound on t, the MILP's x without t)."""
    model = _build(p, None).with_t()
    budget = _res_vec(p.budget, p.keys)
    n = model.n
    c = np.zeros(n)
    c[-1] = 1.0
    w = _weights(p)
    if cheapest:
        c[:-1] += _EPS * (w @ model.res_rows[:, :-1])
    extra = []
    for k in range(len(p.keys)):
        extra.append((model.res_rows[k], -np.inf, budget[k]))
    for u in p.units:
        o = model.offsets[u.name]
        row = np.zeros(n)
        row[o : o + len(u.candidates)] = -model.cycles[o : o + len(u.candidates)]
        row[-1] = 1.0
        extra.append((row, 0.0, np.inf))  # t >= cycles of u
    res = _milp(c, model, extra, time_limit)
    if res.x is None:
        if res.status == 2 or "infeasible" in str(res.message).lower():
            return None, True, math.inf, None
        raise SolverTimeLimitError(
            f"The folding solver stopped without a design ({res.message}); raise its time limit."
        )
    t = float(res.x[-1])
    bound = getattr(res, "mip_dual_bound", None)
    max_secondary = _EPS * float(np.sum(np.where(budget > 0, 1.0, 0.0))) if cheapest else 0.0
    lower = float(res.fun if bound is None else bound) - max_secondary
    return math.ceil(t - 1e-6), res.status == 0, lower, (model, res.x[:-1])


def _feasible(p: Problem, cycle_limit: float, time_limit: float) -> bool | None:
    """Does a choice with every unit at most ``cycle_limit`` cycles fit? ``None``: time limit hit."""
    return _feasible_solution(p, cycle_limit, time_limit)[0]


def _feasible_solution(
    p: Problem, cycle_limit: float, time_limit: float, rel_gap: float | None = None
) -> tuple[bool | None, Solution | None]:
    """Feasibility at a cycle limit; with ``rel_gap`` the returned design is also within that relative
    gap of the least total utilisation (so a feasible level needs no separate polishing solve)."""
    t0 = time.perf_counter()
    model = _build(p, cycle_limit)
    budget = _res_vec(p.budget, p.keys)
    extra = [(model.res_rows[k], -np.inf, budget[k]) for k in range(len(p.keys))]
    c = np.zeros(model.n) if rel_gap is None else _weights(p) @ model.res_rows
    res = _milp(c, model, extra, time_limit, 0.0 if rel_gap is None else rel_gap)
    if res.x is not None:
        n_cand = sum(len(u.candidates) for u in p.units)
        return True, _solution(p, model, res.x, True, float("nan"), t0, n_cand)
    if res.status == 2 or "infeasible" in str(res.message).lower():
        return False, None
    return None, None


def solve_max_fps(
    problem: Problem, *, time_limit: float = 60.0, prune: bool = True, cheapest: bool = True
) -> Solution | None:
    """Minimise the maximum cycles within the budget, then the total utilisation of the budget (sum
    over keys of used/budget — headroom for estimator error); ``None`` when no choice fits.

    One MILP: ``min t + eps * utilisation`` with ``t >= cycles[u]`` for every unit. Cycles are integers
    and the utilisation term is below one cycle, so this is exactly lexicographic. With the tight
    edge-marginal formulation of ``_build`` HiGHS solves CNV-w2a2 with width converters in seconds.
    ``cheapest=False`` drops the utilisation term: the max cycles are the same (proved optimal), the
    design is one of the fastest, not the least used; HiGHS proves it 1.5-7x sooner on pruned CNVs.
    """
    t0 = time.perf_counter()
    _check_nonempty(problem)
    p = prune_dominated(problem, problem.keys) if prune else problem
    n_cand = sum(len(u.candidates) for u in p.units)
    t_star, optimal, lower, mx = _min_t(p, time_limit, cheapest)
    if t_star is None:
        return None
    model, x = mx
    sol = _solution(p, model, x, optimal, float("nan"), t0, n_cand)
    return Solution(
        sol.choice,
        sol.max_cycles,
        sol.bottleneck,
        sol.total,
        sol.edge_costs,
        optimal,
        float(sol.max_cycles) if optimal else max(lower, 1.0),
        time.perf_counter() - t0,
        n_cand,
    )


def _weights(p: Problem) -> np.ndarray:
    budget = _res_vec(p.budget, p.keys)
    return np.where(budget > 0, 1.0 / np.maximum(budget, 1e-12), 1e6)


def solve_min_cost(
    problem: Problem,
    cycle_limit: float,
    *,
    time_limit: float = 60.0,
    prune: bool = True,
    within_budget: bool = True,
    rel_gap: float = 0.0,
    node_limit: int | None = None,
) -> Solution | None:
    """Least total utilisation (sum over keys of used/budget) with every unit at most ``cycle_limit`` cycles.

    ``None`` when no choice meets the cycle limit (within the budget when ``within_budget``).
    """
    t0 = time.perf_counter()
    _check_nonempty(problem)
    p = prune_dominated(problem, problem.keys) if prune else problem
    n_cand = sum(len(u.candidates) for u in p.units)
    model = _build(p, cycle_limit)
    w = _weights(p)
    c = w @ model.res_rows
    extra = []
    if within_budget:
        budget = _res_vec(p.budget, p.keys)
        extra = [(model.res_rows[k], -np.inf, budget[k]) for k in range(len(p.keys))]
    res = _milp(c, model, extra, time_limit, rel_gap, node_limit)
    if res.x is None:
        return None
    sol = _solution(p, model, res.x, res.status == 0, float("nan"), t0, n_cand)
    return sol


def solve_min_max_utilisation(
    problem: Problem, cycle_limit: float | None = None, *, time_limit: float = 60.0, prune: bool = True
) -> tuple[Solution, float, str]:
    """The design (cycles at most ``cycle_limit``) whose most-used resource is least used, ignoring the budget.

    Returns ``(solution, max fraction of the budget used, that resource's key)``; this is what tells a
    user which resource binds and by how much when nothing fits.
    """
    t0 = time.perf_counter()
    _check_nonempty(problem)
    p = prune_dominated(problem, problem.keys) if prune else problem
    n_cand = sum(len(u.candidates) for u in p.units)
    model = _build(p, cycle_limit).with_t()
    budget = _res_vec(p.budget, p.keys)
    n = model.n
    c = np.zeros(n)
    c[-1] = 1.0
    extra = []
    for k in range(len(p.keys)):
        row = model.res_rows[k].copy()
        if budget[k] > 0:
            row = row / budget[k]
            row[-1] = -1.0
            extra.append((row, -np.inf, 0.0))  # use/budget <= u
        else:
            extra.append((row, -np.inf, 0.0))  # no budget: must not use any
    res = _milp(c, model, extra, time_limit)
    if res.x is None:
        raise InfeasibleError(
            "No legal folding exists for this model even ignoring the budget; this is a bug."
        )
    sol = _solution(p, model, res.x[:-1], res.status == 0, float("nan"), t0, n_cand)
    fracs = {
        k: (
            getattr(sol.total, k) / getattr(p.budget, k)
            if getattr(p.budget, k) > 0
            else (math.inf if getattr(sol.total, k) > 0 else 0.0)
        )
        for k in p.keys
    }
    key = max(fracs, key=lambda k: fracs[k])
    return sol, fracs[key], key


def cycle_levels(problem: Problem) -> list[int]:
    """Distinct achievable max-cycle values, ascending (a design's max cycles is one of them)."""
    lo = max(min(c.cycles for c in u.candidates) for u in problem.units)
    return sorted({c.cycles for u in problem.units for c in u.candidates if c.cycles >= lo})


def brute_force(problem: Problem, cycle_limit: float | None = None) -> tuple[int, Resources] | None:
    """Exhaustive reference for tests: least max cycles of any fitting, tie-respecting choice."""
    import itertools

    best: tuple[int, Resources] | None = None
    names = [u.name for u in problem.units]
    for combo in itertools.product(*(u.candidates for u in problem.units)):
        choice = dict(zip(names, combo, strict=True))
        if not ties_hold(problem, choice):
            continue
        mc, total, _ = evaluate_choice(problem, choice)
        if cycle_limit is not None and mc > cycle_limit:
            continue
        if not total.fits_in(problem.budget, problem.keys):
            continue
        if best is None or mc < best[0]:
            best = (mc, total)
    return best


def units_from(items: Iterable[tuple[str, str, Iterable[Candidate]]]) -> tuple[Unit, ...]:
    return tuple(Unit(n, k, tuple(c)) for n, k, c in items)

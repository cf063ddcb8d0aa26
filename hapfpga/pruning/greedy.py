"""NetAdapt-style greedy allocation of channels (and operand bits) and its backtracking (pure).

:func:`greedy_search` — NetAdapt-style (Yang et al., "NetAdapt: Platform-Aware Neural Network Adaptation for
Mobile Applications", ECCV 2018): each step tries, for every group, its next smaller fold-friendly count, scores
the trial by *gain in predicted FPS-within-budget per unit of accuracy lost* (accuracy measured without
fine-tuning, like NetAdapt's short-term evaluation), commits the best one, then lets the caller fine-tune
briefly. With ``objective="j"`` the score is the classic hardware-aware objective
``J = α·accuracy + (1−α)·FPS/FPS_ref`` (e.g. Marculescu et al., "Hardware-Aware Machine Learning", ICCAD 2018)
and the search stops when no step raises J. :func:`backtrack` picks the fastest step of the trajectory that
meets the accuracy rule after its final fine-tune.

Greedy search (:func:`greedy_search`): ``start``/``candidates`` are integer knobs with descending candidate lists: channel counts per group and,
for mixed precision, operand bits per layer (``hapfpga.pruning.bits.bits_key``); a step lowers one knob to
its next smaller candidate. ``try_accuracy(counts)`` is the accuracy of the current (committed) model pruned to ``counts`` without
fine-tuning; ``commit(counts)`` prunes the current model to ``counts``, fine-tunes briefly and returns its
accuracy. Targets: ``fps`` stops at the first step reaching ``target_fps``; ``budget`` (alias ``max_fps``) keeps
going while the accuracy drop after a step's fine-tune stays within ``step_tolerance`` (default
``max_accuracy_drop``; a looser one lets the search walk past steps a longer final fine-tune recovers, see
:func:`backtrack`) and returns the fastest committed step within ``max_accuracy_drop``. A step beyond that
tolerance ends the search, unless ``reject(counts)`` is given: it restores the caller's model to the last
accepted ``counts``, the step is recorded in ``SearchResult.rejected``, its knob is frozen (never lowered
again) and the search goes on with the other knobs (a rejected step still counts toward ``max_steps``: it cost
a fine-tune). One layer that cannot lose more (e.g. a first convolution at 8 channels) then no longer ends the
search for every other layer. ``rescue(counts)`` (with ``reject``) first gives such a step a longer fine-tune
and returns its accuracy; only a step still beyond is rejected (short fine-tunes understate recovery).
``objective="fps_per_sensitivity"``: accuracy is only measured for trials that raise the predicted FPS;
when none does (a plateau, e.g. two layers share the bottleneck), the least sensitive trial that keeps FPS
is taken so that a later step can move the bottleneck.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from ..errors import ConfigError
from .results import BatchAccuracy, BatchPredictor, HwPoint, SearchResult, Step
from .selection import over_drop, within_drop

__all__ = ["greedy_search", "backtrack", "fps_levels", "j_objective", "fps_per_sensitivity"]


def j_objective(accuracy: float, fps: float, fps_ref: float, alpha: float) -> float:
    """``J = α·accuracy + (1−α)·fps/fps_ref`` (accuracy as a fraction, FPS normalised by a reference FPS)."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"pruning.alpha is {alpha}; give a weight between 0 and 1.")
    return alpha * accuracy + (1.0 - alpha) * (fps / fps_ref if fps_ref > 0 else 0.0)


def fps_per_sensitivity(fps: float, cur_fps: float, fps_ref: float, acc: float, cur_acc: float, eps: float) -> float:
    """NetAdapt's step score: predicted FPS gain (normalised by ``fps_ref``) per unit of accuracy lost (at least
    ``eps``). The same score ranks a channel step and a bit-lowering step, so the greedy search takes whichever buys
    more FPS per unit of sensitivity."""
    return ((fps - cur_fps) / fps_ref) / max(eps, cur_acc - acc)


def _next_smaller(cands: Sequence[int], current: int) -> int | None:
    smaller = [c for c in cands if c < current]
    return max(smaller) if smaller else None


_Choice = tuple[float, int, str, dict[str, int], HwPoint, float]


def _check_greedy_args(target: str, target_fps: float | None, objective: str) -> None:
    if target not in ("fps", "budget", "max_fps"):
        raise ConfigError(f"Greedy search target '{target}' is unknown; use 'fps', 'budget' or 'max_fps'.")
    if target == "fps" and not target_fps:
        raise ConfigError("pruning.target is 'fps' but no pruning.target_fps is given; set it.")
    if objective not in ("fps_per_sensitivity", "j"):
        raise ConfigError(f"pruning.objective '{objective}' is unknown; use 'fps_per_sensitivity' or 'j'.")


def _greedy_trials(
    candidates: Mapping[str, Sequence[int]], counts: dict[str, int], frozen: frozenset[str] = frozenset(),
) -> list[tuple[int, str, dict[str, int]]]:
    """Each knob not ``frozen`` lowered by one candidate step: (order, knob, trial counts)."""
    pending = []
    for i, g in enumerate(candidates):
        nxt = None if g in frozen else _next_smaller(candidates[g], counts[g])
        if nxt is not None:
            pending.append((i, g, {**counts, g: nxt}))
    return pending


class _Trials:
    """A step's trials and their predicted hardware, folded on demand (in batches when ``hw`` is a
    :class:`BatchPredictor`); ``bound(k)`` is an FPS trial ``k``'s prediction never exceeds (the predictor's
    ``upper_bound`` when it has one, else its prediction)."""

    def __init__(self, pending: list[tuple[int, str, dict[str, int]]], hw: Callable[[Mapping[str, int]], HwPoint],
                 say: Callable[[str], None] = lambda s: None):
        self.pending, self.hw, self.say = pending, hw, say
        self.points: dict[int, HwPoint] = {}
        ub = getattr(hw, "upper_bound", None)
        self.bounded = callable(ub)
        t0 = time.perf_counter()
        self.ub = [float(ub(t)) for _, _, t in pending] if callable(ub) else []
        self.seconds = {"bound": time.perf_counter() - t0, "fold": 0.0}
        self.batch = max(1, int(getattr(hw, "workers", 0) or 0))

    def solve(self, ks: Sequence[int]) -> None:
        ks = [k for k in ks if k not in self.points]
        batch = [self.pending[k][2] for k in ks]
        t0 = time.perf_counter()
        pts = self.hw.predict_many(batch) if isinstance(self.hw, BatchPredictor) else [self.hw(t) for t in batch]
        self.seconds["fold"] += time.perf_counter() - t0
        self.points.update(zip(ks, pts, strict=True))

    def report(self) -> None:
        """One log line: how many trials were folded (the rest bounded out) and the seconds it took."""
        if self.pending:
            self.say(f"trials: {len(self.points)} of {len(self.pending)} folded in {self.seconds['fold']:.1f} s"
                     + (f" (bounds {self.seconds['bound']:.1f} s)" if self.bounded else ""))

    def bound(self, k: int) -> float:
        return self.ub[k] if self.bounded else self.points[k].fps

    def rows(self, ks: Sequence[int]) -> list[tuple[int, str, dict[str, int], HwPoint]]:
        self.solve(ks)
        return [(*self.pending[k], self.points[k]) for k in ks]


def _gaining_bounded(tr: _Trials, cur: Step, try_accuracy: Callable[[Mapping[str, int]], float], fps_ref: float,
                     eps: float) -> tuple[list[int], dict[int, float]]:
    """The trials that may be the step NetAdapt takes, folded best bound first: a trial whose FPS bound cannot
    beat the current FPS is never folded, nor one whose score at its bound (:func:`fps_per_sensitivity` of the
    bound and its accuracy) is below the best score a folded trial reached. Returns the folded trials that raise
    FPS (in order) and the accuracies measured: the choice among them is the choice among all of them."""
    maybe = [k for k in range(len(tr.pending)) if tr.bound(k) > cur.hw.fps]
    accs = dict(zip(maybe, _accuracies(try_accuracy, [tr.pending[k][2] for k in maybe]), strict=True))
    ub_score = {k: fps_per_sensitivity(tr.bound(k), cur.hw.fps, fps_ref, accs[k], cur.accuracy, eps) for k in maybe}
    queue = sorted(maybe, key=lambda k: (-ub_score[k], k))
    best = -float("inf")
    while queue:
        head, queue = queue[: tr.batch], queue[tr.batch :]
        tr.solve(head)
        for k in head:
            h = tr.points[k]
            if h.fits and h.fps > cur.hw.fps:
                best = max(best, fps_per_sensitivity(h.fps, cur.hw.fps, fps_ref, accs[k], cur.accuracy, eps))
        queue = [k for k in queue if ub_score[k] >= best - 1e-9]
    gaining = [k for k in sorted(tr.points) if tr.points[k].fits and tr.points[k].fps > cur.hw.fps]
    return gaining, accs


def _best_trial(
    tr: _Trials, cur: Step, try_accuracy: Callable[[Mapping[str, int]], float], objective: str, fps_ref: float,
    alpha: float, eps: float,
) -> _Choice | None:
    """The step to take as (score, tie-break order, group, trial counts, hw, accuracy), or None to stop; logs
    how many trials were folded (``_Trials.report``)."""
    choice = _choose_trial(tr, cur, try_accuracy, objective, fps_ref, alpha, eps)
    tr.report()
    return choice


def _choose_trial(
    tr: _Trials, cur: Step, try_accuracy: Callable[[Mapping[str, int]], float], objective: str, fps_ref: float,
    alpha: float, eps: float,
) -> _Choice | None:
    """``_best_trial``'s choice."""
    # (score, tie-break order, group, trial counts, hw, accuracy); "freed" is the fallback score on a plateau
    best_gain: _Choice | None = None
    best_freed: _Choice | None = None
    n = len(tr.pending)
    known: dict[int, float] = {}
    if objective == "j" or not tr.bounded:  # every trial folded; in FPS mode accuracy only where FPS rises
        tr.solve(range(n))
        measured = list(range(n)) if objective == "j" else [
            k for k in range(n) if tr.points[k].fits and tr.points[k].fps > cur.hw.fps]
    else:  # FPS mode with bounds: fold only the trials that may be chosen (same choice)
        measured, known = _gaining_bounded(tr, cur, try_accuracy, fps_ref, eps)
    accs = [known[k] for k in measured] if known else _accuracies(try_accuracy, [tr.pending[k][2] for k in measured])
    for (i, g, trial, h), a in zip(tr.rows(measured), accs, strict=True):
        if objective == "j":
            score = j_objective(a, h.fps, fps_ref, alpha) - j_objective(cur.accuracy, cur.hw.fps, fps_ref, alpha)
        else:
            score = fps_per_sensitivity(h.fps, cur.hw.fps, fps_ref, a, cur.accuracy, eps)
        if best_gain is None or score > best_gain[0] + 1e-12:
            best_gain = (score, i, g, trial, h, a)
    if objective != "j" and best_gain is None:
        # plateau: no single step raises FPS; take the least sensitive step that keeps FPS and fits
        maybe = [k for k in range(n) if tr.bound(k) >= cur.hw.fps]
        keep = [row for row in tr.rows(maybe) if row[3].fits and row[3].fps >= cur.hw.fps]
        for (i, g, trial, h), a in zip(keep, _accuracies(try_accuracy, [t[2] for t in keep]), strict=True):
            if best_freed is None or a > best_freed[0] + 1e-12:
                best_freed = (a, i, g, trial, h, a)
        if best_freed is None:
            return None
        best_gain = (0.0, *best_freed[1:])
    if best_gain is None or (objective == "j" and best_gain[0] <= 0):
        return None  # nothing raises J (or nothing left to prune)
    return best_gain


def _choose_step(
    history: list[Step], start_accuracy: float, target: str, target_fps: float | None, objective: str,
    max_accuracy_drop: float, fps_ref: float, alpha: float,
) -> Step:
    ok = [s for s in history if within_drop(start_accuracy, s.accuracy, max_accuracy_drop) and s.hw.fits]
    if target == "fps":
        # the FPS target is the goal here; max_accuracy_drop is not a constraint (the report shows the drop)
        hit = [s for s in history if s.hw.fits and s.hw.fps >= float(target_fps or 0)]
        return max(hit, key=lambda s: s.accuracy) if hit else max(history, key=lambda s: s.hw.fps)
    if objective == "j":
        return max(history, key=lambda s: j_objective(s.accuracy, s.hw.fps, fps_ref, alpha))
    return max(ok or history[:1], key=lambda s: (s.hw.fps, s.accuracy))


def _commit_step(
    g: str, trial: dict[str, int], h: HwPoint, commit: Callable[[Mapping[str, int]], float],
    rescue: Callable[[Mapping[str, int]], float] | None, start_accuracy: float, tol: float | None,
    say: Callable[[str], None],
) -> tuple[Step, bool]:
    """Commit the chosen trial (and, when its drop is beyond ``tol`` and there is a ``rescue``, fine-tune it
    longer); returns the step and whether its drop is beyond ``tol`` (None: no tolerance, the FPS target)."""
    step = Step(dict(trial), h, commit(trial), changed=g)
    if tol is None:
        return step, False
    over = over_drop(start_accuracy, step.accuracy, tol)
    if over and rescue is not None:
        say(f"step {g} -> {trial[g]}: acc {step.accuracy:.4f} beyond the tolerance; longer fine-tune")
        step = Step(dict(trial), h, rescue(trial), changed=g)
        over = over_drop(start_accuracy, step.accuracy, tol)
    return step, over


def _tell(progress: Callable[[Step, int, bool, frozenset[str]], None] | None, say: Callable[[str], None],
          step: Step, index: int, rejected: bool, frozen: set[str], line: str) -> None:
    """A step to ``progress`` when there is one, else its ``line`` to the log."""
    if progress is not None:
        progress(step, index, rejected, frozenset(frozen))
    else:
        say(line)


def greedy_search(
    start: Mapping[str, int],
    candidates: Mapping[str, Sequence[int]],
    hw: Callable[[Mapping[str, int]], HwPoint],
    try_accuracy: Callable[[Mapping[str, int]], float],
    commit: Callable[[Mapping[str, int]], float],
    *,
    start_accuracy: float,
    target: str = "budget",
    target_fps: float | None = None,
    max_accuracy_drop: float = 0.01,
    objective: str = "fps_per_sensitivity",
    alpha: float = 0.5,
    max_steps: int = 100,
    eps: float = 1e-3,
    step_tolerance: float | None = None,
    reject: Callable[[Mapping[str, int]], None] | None = None,
    rescue: Callable[[Mapping[str, int]], float] | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[Step, int, bool, frozenset[str]], None] | None = None,
) -> SearchResult:
    """NetAdapt-style greedy channel (and bit-width) allocation; the contract is the module docstring's "Greedy
    search" paragraph; ``progress(step, index in history, rejected, frozen knobs)`` replaces each step's log line.
    Deterministic for deterministic callables (ties broken by group order)."""
    _check_greedy_args(target, target_fps, objective)
    counts = dict(start)
    hw0 = hw(counts)
    fps_ref = hw0.fps if hw0.fps > 0 else 1.0
    acc = start_accuracy
    history = [Step(dict(counts), hw0, acc)]
    rejected: list[Step] = []
    frozen: set[str] = set()
    say = log or (lambda s: None)
    tol = max_accuracy_drop if step_tolerance is None else max(step_tolerance, max_accuracy_drop)
    for _ in range(max_steps):
        if target == "fps" and history[-1].hw.fps >= float(target_fps or 0):
            break
        trials = _Trials(_greedy_trials(candidates, counts, frozenset(frozen)), hw, say)
        best_gain = _best_trial(trials, history[-1], try_accuracy, objective, fps_ref, alpha, eps)
        if best_gain is None:
            break
        _, _, g, trial, h, _ = best_gain
        step, over = _commit_step(g, trial, h, commit, rescue if reject is not None else None, start_accuracy,
                                  tol if target != "fps" else None, say)
        if over and reject is not None:
            reject(dict(counts))
            rejected.append(step)
            frozen.add(g)
            _tell(progress, say, step, len(history), True, frozen,
                  f"step rejected: {g} -> {trial[g]} ch, fps {h.fps:.0f}, acc {step.accuracy:.4f} "
                  f"(drop beyond {tol:g}); {g} frozen at {counts[g]}")
            continue
        counts = trial
        history.append(step)
        _tell(progress, say, step, len(history) - 1, False, frozen,
              f"step {len(history) - 1}: {g} -> {trial[g]} ch, fps {h.fps:.0f}, acc {step.accuracy:.4f}")
        if over:
            break
    chosen = _choose_step(history, start_accuracy, target, target_fps, objective, max_accuracy_drop, fps_ref, alpha)
    return SearchResult(best=chosen, history=tuple(history), rejected=tuple(rejected))


def fps_levels(points: Sequence[HwPoint]) -> list[int]:
    """The backtracking's candidates among designs in trajectory order: index 0 (the start), then each design that
    fits and is faster than the last one kept (a slower or equal one is never the fastest design meeting a rule)."""
    levels: list[int] = []
    for i, p in enumerate(points):
        if i == 0 or (p.fits and p.fps > points[levels[-1]].fps + 1e-9):
            levels.append(i)
    return levels


def backtrack(
    history: Sequence[Step],
    final: Callable[[int], float],
    *,
    start_accuracy: float,
    max_accuracy_drop: float,
    log: Callable[[str], None] | None = None,
    accept: Callable[[int, float], bool] | None = None,
) -> tuple[int, dict[int, float]]:
    """The fastest step of a greedy trajectory whose accuracy *after the final fine-tune* is within
    ``max_accuracy_drop`` of ``start_accuracy``; returns (its index in ``history``, {index: final accuracy} of every
    step tried).

    ``final(i)`` fine-tunes step ``i``'s model and returns its accuracy (the expensive part). Only the first
    (least pruned) step of each predicted-FPS level that fits is a candidate; the fastest is tried first, then
    a bisection over the candidates (final accuracy falls as pruning goes on, so O(log n) fine-tunes). Step 0
    (the unpruned start) is taken to meet the rule without a fine-tune; it is the answer when nothing else does.
    ``accept(i, final accuracy)`` replaces the point rule (drop within ``max_accuracy_drop``) when given: the
    prune stage's paired test (``pruning.selection``, :mod:`hapfpga.pruning.selection`).
    """
    say = log or (lambda s: None)
    levels = fps_levels([s.hw for s in history])
    tried: dict[int, float] = {}

    def ok(k: int) -> bool:
        i = levels[k]
        if i not in tried:
            tried[i] = final(i)
            say(f"backtrack: step {i} ({history[i].hw.fps:,.0f} FPS) final accuracy {tried[i]:.4f}")
        if accept is not None:
            return accept(i, tried[i])
        return within_drop(start_accuracy, tried[i], max_accuracy_drop)

    lo, hi = 0, len(levels) - 1
    if hi == 0 or ok(hi):
        return levels[hi], tried
    while hi - lo > 1:  # invariant: levels[lo] meets the rule (or is the start), levels[hi] does not
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return levels[lo], tried


def _accuracies(try_accuracy: Callable[[Mapping[str, int]], float], batch: list[dict[str, int]]) -> list[float]:
    """``try_accuracy`` of each trial, in order; in one batch (parallel workers) when it is a :class:`BatchAccuracy`."""
    if isinstance(try_accuracy, BatchAccuracy):
        return list(try_accuracy.accuracy_many(batch))
    return [try_accuracy(t) for t in batch]

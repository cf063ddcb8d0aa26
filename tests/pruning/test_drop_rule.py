"""The point accuracy rule, one helper for every search (hapfpga/pruning/selection.py: ``within_drop``,
``over_drop``), against the inline expression it replaced and against integer arithmetic on real accuracies.

Accuracies are ``correct / n`` on a validation split (202, 450 and 1,000 samples here), so a candidate that loses
exactly ``j`` samples at ``max_drop = j / n`` sits on the rule's boundary, where float subtraction can land a few
ulps above ``max_drop``: the rule must still accept it. The truth on those cases is integer: ``k`` samples lost
meet the rule iff ``k ≤ j``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hapfpga.pruning.greedy import _choose_step
from hapfpga.pruning.search import HwPoint, Step, backtrack, default_storage, greedy_search, nsga2_search
from hapfpga.pruning.selection import DROP_TOL, Paired, meets_rule, over_drop, within_drop
from hapfpga.types import Resources

SPLITS = (202, 450, 1000)


def _old_within(start: float, acc: float, max_drop: float) -> bool:
    """The inline expression the searches used before ``within_drop`` (greedy, backtrack, NSGA-II, the stage)."""
    return start - acc <= max_drop + 1e-12


def _old_over(start: float, acc: float, max_drop: float) -> bool:
    """The inline expression of a greedy step beyond its tolerance before ``over_drop``."""
    return start - acc > max_drop + 1e-12


def _boundary_cases(seed: int = 0):
    """``(n, correct of the start, k lost, j allowed, start, acc as start − k/n, acc as (c0 − k)/n)`` for many
    start accuracies on each split."""
    rng = np.random.default_rng(seed)
    for n in SPLITS:
        for c0 in sorted({n, n - 1, *rng.integers(n // 2, n, 30).tolist()}):
            for k in range(9):
                for j in range(9):
                    start = c0 / n
                    yield n, c0, k, j, start, start - k / n, (c0 - k) / n


def test_within_and_over_match_integer_truth_the_old_expression_and_meets_rule_at_05():
    rng = np.random.default_rng(1)
    cases = above = 0
    for n, _c0, k, j, start, acc_a, acc_b in _boundary_cases():
        max_drop = j / n
        for acc in (acc_a, acc_b):
            cases += 1
            above += k == j and start - acc > max_drop  # on the boundary, yet float says "beyond"
            assert within_drop(start, acc, max_drop) is (k <= j) is _old_within(start, acc, max_drop)
            assert over_drop(start, acc, max_drop) is (k > j) is _old_over(start, acc, max_drop)
        gained = int(rng.integers(0, 4))
        assert meets_rule(Paired(n, k + gained, gained), max_drop, 0.5) is (k <= j)
        assert meets_rule(Paired(n, k + gained, gained), max_drop, 0.4) is (k <= j)
    assert cases > 10_000
    assert above > 0  # the slack is exercised: without it these boundary candidates would fail the rule


def test_within_and_over_agree_with_the_old_expression_on_random_and_near_edge_triples():
    rng = np.random.default_rng(2)
    start = rng.uniform(0.0, 1.0, 20_000)
    max_drop = rng.uniform(0.0, 0.1, 20_000)
    far = rng.uniform(0.0, 1.0, 20_000)
    # near the edge: the drop within a few DROP_TOL (and a few ulps) of max_drop + DROP_TOL
    offsets = rng.choice([-3, -2, -1, -0.5, 0.0, 0.5, 1, 2, 3], 20_000) * DROP_TOL + rng.integers(-4, 5, 20_000) * 1e-17
    near = start - max_drop - offsets
    triples = [*zip(start, far, max_drop, strict=True), *zip(start, near, max_drop, strict=True),
               (0.9, math.nan, 0.01), (math.nan, 0.9, 0.01), (0.9, 0.89, math.nan), (0.9, math.inf, 0.01)]
    both = {True: 0, False: 0}
    for s, a, d in triples:
        s, a, d = float(s), float(a), float(d)
        assert within_drop(s, a, d) is _old_within(s, a, d), (s, a, d)
        assert over_drop(s, a, d) is _old_over(s, a, d), (s, a, d)
        both[within_drop(s, a, d)] += 1
    assert min(both.values()) > 5_000  # both decisions well represented
    assert not within_drop(0.9, math.nan, 0.01) and not over_drop(0.9, math.nan, 0.01)  # NaN: neither, as before


@pytest.mark.parametrize("max_drop", [0.0, 0.005, 0.01, 1 / 202, 2 / 450, 3 / 1000, 0.05])
def test_a_drop_of_exactly_max_drop_plus_the_slack_meets_the_rule(max_drop):
    """``≤``, not ``<``: the largest float drop the rule accepts is ``max_drop + DROP_TOL`` itself."""
    edge = max_drop + DROP_TOL
    assert within_drop(edge, 0.0, max_drop) and not over_drop(edge, 0.0, max_drop)
    beyond = math.nextafter(edge, 1.0)
    assert not within_drop(beyond, 0.0, max_drop) and over_drop(beyond, 0.0, max_drop)


def test_meets_rule_at_05_accepts_a_paired_drop_that_lands_on_the_slack_edge():
    """``meets_rule(…, 0.5)`` is the same ``≤``: a paired drop ``k/n`` equal in float to ``max_drop + DROP_TOL``."""
    edges = []
    for n in SPLITS:
        for k in range(1, 20):
            d = k / n - DROP_TOL
            if d + DROP_TOL == k / n:
                edges.append((n, k, d))
    assert len(edges) > 10
    for n, k, d in edges:
        assert meets_rule(Paired(n, k, 0), d, 0.5)
        assert not meets_rule(Paired(n, k + 1, 0), d, 0.5)


def _history(n: int, c0: int, lost: list[int], fps: list[float], fits: list[bool]) -> list[Step]:
    """A greedy trajectory as test_search.py builds them: one knob lowered per step, FPS from the analytic model."""
    return [Step({"a": 64 - i}, HwPoint(fps=f, resources=Resources(LUT=10.0 * (64 - i)), fits=ok), (c0 - k) / n)
            for i, (k, f, ok) in enumerate(zip(lost, fps, fits, strict=True))]


def _choose_old(history: list[Step], start: float, max_drop: float) -> Step:
    """``_choose_step``'s budget choice with the old inline expression."""
    ok = [s for s in history if _old_within(start, s.accuracy, max_drop) and s.hw.fits]
    return max(ok or history[:1], key=lambda s: (s.hw.fps, s.accuracy))


def test_greedy_history_selection_is_the_integer_rule_and_the_old_choice():
    rng = np.random.default_rng(3)
    for trial in range(600):
        n = SPLITS[trial % 3]
        c0 = int(rng.integers(n // 2, n + 1))
        m = int(rng.integers(2, 12))
        lost = [0, *np.sort(rng.integers(0, 8, m - 1)).tolist()]  # samples lost fall (mostly) as pruning goes on
        fps = np.cumsum(rng.choice([0.0, 10.0, 25.0], m)) + 100.0
        fits = [True, *(rng.uniform(size=m - 1) < 0.85).tolist()]
        hist = _history(n, c0, lost, fps.tolist(), fits)
        j = int(rng.integers(0, 8))
        start = c0 / n
        got = _choose_step(hist, start, "budget", None, "fps_per_sensitivity", j / n, 100.0, 0.5)
        ok = [s for s, k in zip(hist, lost, strict=True) if k <= j and s.hw.fits]
        want = max(ok or hist[:1], key=lambda s: (s.hw.fps, s.accuracy))
        assert got == want == _choose_old(hist, start, j / n)


CANDS = {"a": [64, 56, 48, 40, 32, 24, 16, 8]}


def _hw(counts):
    a = counts["a"]
    return HwPoint(fps=1e5 / a, resources=Resources(LUT=10.0 * a))


@pytest.mark.parametrize("n", SPLITS)
@pytest.mark.parametrize("j", [1, 2, 3])
def test_greedy_walks_to_the_boundary_step_and_keeps_it(n, j):
    """Each step loses one more sample; the step that loses exactly ``j`` meets the rule (the search goes on and
    chooses it), the next one is beyond it and ends the search; for every start accuracy tried."""
    for c0 in (n, n - 1, round(0.98 * n), round(0.9 * n), n // 2 + 1):

        def accuracy(counts, c0=c0):
            return (c0 - (64 - counts["a"]) // 8) / n

        r = greedy_search({"a": 64}, CANDS, _hw, accuracy, accuracy, start_accuracy=c0 / n, target="budget",
                          max_accuracy_drop=j / n)
        assert [s.counts["a"] for s in r.history] == [64 - 8 * i for i in range(j + 2)], c0
        assert r.best.counts["a"] == 64 - 8 * j, c0


@pytest.mark.parametrize("n", SPLITS)
def test_greedy_rescue_back_to_the_boundary_is_accepted_and_a_step_still_beyond_is_rejected(n):
    """``over_drop`` on a greedy step: a rescue that recovers to exactly ``j`` samples lost is kept; a step still
    one sample beyond after its rescue is rejected and its knob frozen."""
    j = 2
    for c0 in (n, n - 1, round(0.97 * n)):

        def commit(counts, c0=c0):
            return (c0 - (64 - counts["a"]) // 8) / n

        def rescue(counts, c0=c0):
            k = (64 - counts["a"]) // 8
            return (c0 - (j if k == j + 1 else k)) / n

        rejected = []
        r = greedy_search({"a": 64}, CANDS, _hw, commit, commit, start_accuracy=c0 / n, target="budget",
                          max_accuracy_drop=j / n, reject=rejected.append, rescue=rescue)
        assert [s.counts["a"] for s in r.history] == [64 - 8 * i for i in range(j + 2)]
        assert r.history[-1].accuracy == (c0 - j) / n and r.best == r.history[-1]
        assert [s.counts["a"] for s in r.rejected] == [64 - 8 * (j + 2)] and rejected == [{"a": 64 - 8 * (j + 1)}]


@pytest.mark.parametrize("n", SPLITS)
@pytest.mark.parametrize("j", [0, 1, 3, 6])
def test_backtrack_picks_the_fastest_step_that_loses_at_most_j_samples(n, j):
    fps = [100, 120, 150, 180, 180, 220, 260, 300, 340, 400]
    levels = [0, 1, 2, 3, 5, 6, 7, 8, 9]  # step 4 shares step 3's FPS level
    for c0 in (n, n - 1, round(0.95 * n)):
        hist = _history(n, c0, [0] * len(fps), fps, [True] * len(fps))
        lost = {i: levels.index(i) for i in levels}  # the final fine-tune of level L loses L samples

        def final(i, c0=c0, lost=lost):
            return (c0 - lost[i]) / n

        i, tried = backtrack(hist, final, start_accuracy=c0 / n, max_accuracy_drop=j / n)
        assert i == levels[j]
        assert all(lost[t] > j for t in tried if fps[t] > fps[i])  # every faster step tried loses more
        old = [t for t in tried if not _old_within(c0 / n, tried[t], j / n)]
        assert all(fps[t] > fps[i] for t in old)  # the old expression rejects exactly the faster ones


@pytest.mark.parametrize("n", [202, 1000])
def test_nsga2_choice_is_the_fastest_front_point_within_j_samples(tmp_path, n):
    """Five designs, all on the front (accuracy ↓, FPS ↑, LUT ↓ together); the chosen one loses exactly ``j``
    samples (the boundary) and the next faster one loses more."""
    lost = {64: 0, 48: 1, 32: 2, 16: 3, 8: 5}
    cands = {"a": [64, 48, 32, 16, 8]}
    c0 = n - 3
    for j, want in ((1, 48), (2, 32), (3, 16), (4, 16)):
        res = nsga2_search(
            cands, lambda c: ((c0 - lost[c["a"]]) / n, _hw(c)), storage=default_storage(tmp_path / f"j{j}"),
            n_trials=5, seed=0, population=5, baseline_accuracy=c0 / n, max_accuracy_drop=j / n,
            enqueue=[{"a": a} for a in cands["a"]],
        )
        assert sorted(s.counts["a"] for s in res.pareto) == sorted(cands["a"])
        assert res.best.counts["a"] == want, j
        ok = [s for s in res.pareto if s.hw.fits and _old_within(c0 / n, s.accuracy, j / n)]
        assert res.best == max(ok, key=lambda s: (s.hw.fps, s.accuracy))  # the old expression's choice

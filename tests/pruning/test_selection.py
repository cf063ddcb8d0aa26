"""The backtracking's accuracy rule as a paired non-inferiority test (hapfpga/pruning/selection.py).

The property that matters: a candidate whose true drop is at (or beyond) the rule is accepted at most as often as
the stated error rate (1 − confidence). Checked two ways: the exact acceptance probability over many random true
paired outcomes (the test's acceptance region is {Z ≤ z*}, found through ``meets_rule`` itself), and a simulation
that draws validation splits and calls ``meets_rule`` on each.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hapfpga.errors import ConfigError
from hapfpga.pruning.config import parse_pruning_config
from hapfpga.pruning.search import HwPoint, Step, backtrack
from hapfpga.pruning.selection import (
    Paired,
    drop_bound,
    meets_rule,
    p_value,
    smallest_certifiable_drop,
    tango_z,
)
from hapfpga.types import Resources


def _cells(n: int) -> tuple[np.ndarray, np.ndarray]:
    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = b + c <= n
    return b[keep], c[keep]


def _accept_threshold(n: int, margin: float, confidence: float) -> float:
    """The largest Z (Tango) of a cell ``meets_rule`` accepts (-inf: none): bisection over the sorted cells
    (``meets_rule`` is monotone in Z: the exact p-value is a supremum of P(Z ≤ z))."""
    b, c = _cells(n)
    z = tango_z(n, b, c, margin)
    order = np.argsort(z, kind="stable")
    lo, hi = -1, len(order)  # cells[order[:lo+1]] accepted, order[hi] rejected
    while hi - lo > 1:
        mid = (lo + hi) // 2
        k = order[mid]
        if meets_rule(Paired(n, int(b[k]), int(c[k])), margin, confidence):
            lo = mid
        else:
            hi = mid
    return -math.inf if lo < 0 else float(z[order[lo]])


def _prob_accept(n: int, lost_rate: float, gained_rate: float, margin: float, z_star: float) -> float:
    """Exact probability that a split of ``n`` samples from the given true rates lands in {Z ≤ z_star}."""
    b, c = _cells(n)
    inside = tango_z(n, b, c, margin) <= z_star
    b, c = b[inside], c[inside]
    lg = np.array([math.lgamma(k + 1) for k in range(n + 1)])
    rest = 1 - lost_rate - gained_rate
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (lg[n] - lg[b] - lg[c] - lg[n - b - c] + np.where(b > 0, b * np.log(lost_rate), 0.0)
              + np.where(c > 0, c * np.log(max(gained_rate, 1e-300)), 0.0)
              + np.where(n - b - c > 0, (n - b - c) * np.log(rest), 0.0))
    return float(np.sum(np.exp(np.nan_to_num(lp, nan=-np.inf))))


@pytest.mark.parametrize("confidence", [0.8, 0.9])
def test_exact_type_one_error_never_exceeds_the_stated_rate_over_random_true_outcomes(confidence):
    """Over 60 random true paired outcomes per confidence (split size, rule, how often the candidate loses and
    gains a sample, true drop at or beyond the rule), a candidate is accepted at most 1 − confidence of the time."""
    rng = np.random.default_rng(24)
    alpha, worst = 1 - confidence, 0.0
    thresholds: dict[tuple[int, float], float] = {}
    for _ in range(60):
        n = int(rng.choice([40, 101, 202, 350]))
        margin = float(rng.choice([0.005, 0.01, 0.02, 0.05]))
        gained = float(rng.choice([0.0, 0.001, 0.005, 0.02, 0.08]) * rng.uniform(0.5, 1.5))
        drop = margin + float(rng.choice([0.0, 0.0, 0.005, 0.02]))
        key = (n, margin)
        if key not in thresholds:
            thresholds[key] = _accept_threshold(n, margin, confidence)
        pa = _prob_accept(n, gained + drop, gained, margin, thresholds[key])
        worst = max(worst, pa)
        assert pa <= alpha + 1e-6, (n, margin, gained, drop, pa)
    assert worst > alpha / 3, "the test is valid but should not be uselessly conservative"


def test_the_point_rule_and_the_normal_approximation_exceed_the_rate_the_exact_test_keeps():
    """Why the exact test: on 202 samples at a 1-point rule, a candidate whose true drop is exactly 1 point and
    that changes no sample otherwise passes the point rule ~68 % of the time, Tango's normal approximation at a
    stated 10 % ~13 %, the exact test at most 10 %."""
    n, margin = 202, 0.01
    b, c = _cells(n)
    z = tango_z(n, b, c, margin)
    point = _prob_accept(n, margin, 0.0, margin, float(np.max(z[(b - c) <= n * margin + 1e-9])))
    normal = _prob_accept(n, margin, 0.0, margin, -1.2815515655446004)
    exact = _prob_accept(n, margin, 0.0, margin, _accept_threshold(n, margin, 0.9))
    assert point > 0.6 and normal > 0.12 and exact <= 0.1 + 1e-9


@pytest.mark.parametrize("confidence", [0.8, 0.9])
def test_simulated_validation_splits_through_meets_rule(confidence):
    """Draw 1,500 validation splits (n = 202) from a candidate 1 point worse than the unpruned model (it loses
    2 % of samples and gains 1 %): ``meets_rule`` accepts at most 1 − confidence of them (3 standard errors)."""
    rng = np.random.default_rng(7)
    n, margin, draws = 202, 0.01, 1500
    outcome = rng.multinomial(n, [0.02, 0.01, 0.97], size=draws)
    accepted = sum(meets_rule(Paired(n, int(b), int(c)), margin, confidence) for b, c, _ in outcome)
    alpha = 1 - confidence
    assert accepted / draws <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / draws)


def test_confidence_one_half_is_the_point_rule():
    """``confidence: 0.5`` (documented as the rule before issue 24): accepted exactly when the observed drop is
    within the rule, over random paired outcomes."""
    rng = np.random.default_rng(3)
    for _ in range(500):
        n = int(rng.integers(1, 400))
        lost = int(rng.integers(0, n + 1))
        gained = int(rng.integers(0, n - lost + 1))
        margin = float(rng.uniform(0, 0.1))
        p = Paired(n, lost, gained)
        assert meets_rule(p, margin, 0.5) == ((lost - gained) / n <= margin + 1e-12)
        assert drop_bound(p, 0.5) == p.drop


def test_the_test_accepts_what_the_data_support_and_the_bound_orders_candidates():
    """No change on 600 samples passes a 1-point rule at 80 %; losing samples raises the bound; a candidate that
    gains more than it loses passes where one that changes nothing on 202 samples at 90 % cannot."""
    assert meets_rule(Paired(600, 0, 0), 0.01, 0.8)
    assert not meets_rule(Paired(202, 0, 0), 0.01, 0.9)
    assert smallest_certifiable_drop(202, 0.9) > 0.01 > smallest_certifiable_drop(202, 0.8)
    assert meets_rule(Paired(202, 0, 2), 0.01, 0.9)
    bounds = [drop_bound(Paired(202, lost, 0), 0.8) for lost in range(4)]
    assert bounds == sorted(bounds) and bounds[0] < 0.01 < bounds[1]
    assert p_value(Paired(1000, 10, 0), 0.01) > p_value(Paired(1000, 3, 0), 0.01)  # the normal branch


def test_paired_outcome_from_correctness_vectors():
    base = np.array([1, 1, 0, 0, 1], bool)
    cand = np.array([1, 0, 1, 0, 0], bool)
    p = Paired.of(base, cand)
    assert (p.n, p.lost, p.gained) == (5, 2, 1) and p.drop == pytest.approx(0.2)
    with pytest.raises(ValueError):
        Paired.of(base, cand[:4])


@pytest.mark.parametrize("bad", [0.3, 1.0, True])
def test_selection_confidence_outside_its_range_is_one_config_error(bad):
    with pytest.raises(ConfigError, match=r"pruning\.selection\.confidence"):
        parse_pruning_config({"selection": {"confidence": bad}})
    assert parse_pruning_config({}).selection.confidence == 0.5  # the point rule (docs/pruning.md "Selection": why the default)


def test_backtrack_asks_accept_instead_of_the_point_rule():
    """With ``accept`` the backtracking's decision is the caller's (the stage's paired test): a step the point
    rule would keep is refused, and the search falls back to the fastest step accept takes."""
    hist = [Step({"g": 8 - k}, HwPoint(fps=100.0 * (k + 1), resources=Resources(), fits=True), 0.9) for k in range(6)]
    finals = {k: 0.9 for k in range(6)}  # every step meets the point rule
    i_point, _ = backtrack(hist, finals.__getitem__, start_accuracy=0.9, max_accuracy_drop=0.01)
    asked: list[int] = []

    def accept(k: int, acc: float) -> bool:
        asked.append(k)
        return k <= 2

    i_paired, tried = backtrack(hist, finals.__getitem__, start_accuracy=0.9, max_accuracy_drop=0.01, accept=accept)
    assert i_point == 5 and i_paired == 2 and set(asked) == set(tried)


def test_at_a_zero_margin_the_statistic_is_mcnemars():
    """Tango's statistic at margin 0 is McNemar's (lost − gained) / sqrt(lost + gained), the classic paired test
    of two classifiers on one test set (Dietterich, Neural Computation 10, 1998)."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        lost, gained = (int(v) for v in rng.integers(0, 40, size=2))
        if lost + gained:
            z = float(tango_z(500, lost, gained, 0.0))
            assert z == pytest.approx((lost - gained) / math.sqrt(lost + gained))

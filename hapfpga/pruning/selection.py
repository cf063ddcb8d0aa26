"""The accuracy rule as a paired statistical test against the unpruned model (pure: numpy, no torch).

A pruned candidate and the unpruned model are judged on the same validation samples, so their comparison is
*paired*: per sample, ``lost`` (the unpruned model right, the candidate wrong) and ``gained`` (the reverse); the
observed drop is ``(lost − gained) / n``. On a small split that drop is noise-dominated (202 samples: one sample
is 0.5 point), and a search that keeps the fastest of several candidates passing ``drop ≤ max_accuracy_drop``
keeps the one the noise favoured most. :func:`meets_rule` instead accepts a candidate only when the data show,
at a stated one-sided ``confidence``, that its true drop (on the population the validation split is drawn from)
is at most ``max_accuracy_drop``: a non-inferiority test for paired proportions with margin ``max_accuracy_drop``.

The test: H0 "true drop ≥ margin" against H1 "true drop < margin". The statistic is Tango's score statistic for
the difference of paired proportions (Tango, "Equivalence test and confidence interval for the difference in
proportions for the paired-sample design", Statistics in Medicine 17:891–908, 1998; Nam, Biometrics 53, 1997):
``Z = (lost − gained − n·margin) / sqrt(n·(2·q + margin·(1 − margin)))`` with ``q`` the maximum-likelihood
probability of a ``gained`` sample under H0. Its normal approximation is liberal on small splits (on 202 samples
at a 1-point margin it accepts up to 13 % of the time at a stated 10 %: every candidate that changes no sample), so
for ``n ≤ EXACT_MAX_N`` the p-value is *exact unconditional*: the largest probability, over the nuisance parameter
(the ``gained`` rate, on a grid), that a model whose true drop is the margin gives a ``Z`` as low as the one
observed (Berger and Sidik, "Exact unconditional tests for a 2×2 matched-pairs design", Statistical Methods in
Medical Research 12:91–108, 2003). Above it the normal approximation is used (the excess shrinks with ``n``).

``confidence: 0.5`` is the point rule (``drop ≤ margin``), the rule before issue 24. :func:`within_drop` and
:func:`over_drop` are that point rule on two accuracies, the one comparison every search loop makes (greedy, its
backtracking, NSGA-II's choice, the prune stage's candidates).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = [
    "Paired", "EXACT_MAX_N", "DROP_TOL", "within_drop", "over_drop", "tango_z", "p_value", "meets_rule", "drop_bound",
    "smallest_certifiable_drop",
]

#: splits up to this many samples get the exact unconditional p-value (all (lost, gained) cells: ~n²/2)
EXACT_MAX_N = 600
#: the nuisance grid: the ``gained`` rate from 0 to its largest value under H0, denser near 0 (where the
#: supremum lies on a small split)
_GRID = 96
#: slack of the point rule: a drop of exactly ``max_drop`` in samples (e.g. 1/200 = 0.005) comes out a few ulps above
#: it from float accuracies (1.0 − 0.995 = 0.0050000000000000044) and must still meet the rule
DROP_TOL = 1e-12


def within_drop(start: float, acc: float, max_drop: float) -> bool:
    """The point accuracy rule: ``start − acc ≤ max_drop`` up to float rounding (:data:`DROP_TOL`); False for a NaN
    accuracy. A drop already computed is ``within_drop(drop, 0.0, max_drop)``."""
    return start - acc <= max_drop + DROP_TOL


def over_drop(start: float, acc: float, max_drop: float) -> bool:
    """``start − acc > max_drop`` beyond float rounding: ``not within_drop`` except that a NaN accuracy is neither
    within nor over (a step of NaN accuracy was never taken to be beyond a greedy step's tolerance)."""
    return start - acc > max_drop + DROP_TOL


@dataclass(frozen=True)
class Paired:
    """A candidate against the unpruned model on the same ``n`` samples: ``lost`` (unpruned right, candidate
    wrong) and ``gained`` (unpruned wrong, candidate right)."""

    n: int
    lost: int
    gained: int

    def __post_init__(self) -> None:
        if self.n < 1 or self.lost < 0 or self.gained < 0 or self.lost + self.gained > self.n:
            raise ValueError(f"Paired(n={self.n}, lost={self.lost}, gained={self.gained}) is not a paired outcome")

    @classmethod
    def of(cls, base_correct: Sequence[bool] | np.ndarray, candidate_correct: Sequence[bool] | np.ndarray) -> Paired:
        """From per-sample correctness of the unpruned model and of the candidate (same samples, same order)."""
        a, b = np.asarray(base_correct, dtype=bool), np.asarray(candidate_correct, dtype=bool)
        if a.shape != b.shape or a.ndim != 1:
            raise ValueError(f"paired correctness needs two equal 1-D vectors, got {a.shape} and {b.shape}")
        return cls(int(a.size), int(np.sum(a & ~b)), int(np.sum(~a & b)))

    @property
    def drop(self) -> float:
        """The observed accuracy drop (fraction): unpruned accuracy − candidate accuracy."""
        return (self.lost - self.gained) / self.n


def tango_z(n: int | np.ndarray, lost: int | np.ndarray, gained: int | np.ndarray, margin: float) -> np.ndarray:
    """Tango's score statistic for H0 "drop = margin" (vectorised over cells); low values speak for H1."""
    n, b, c = (np.asarray(v, dtype=float) for v in (n, lost, gained))
    d = float(margin)
    big_b = -b - c + (2 * n - b + c) * d
    q = (-big_b + np.sqrt(np.maximum(0.0, big_b * big_b + 8 * n * c * d * (1 - d)))) / (4 * n)
    var = n * (2 * q + d * (1 - d))
    num = b - c - n * d
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / np.sqrt(var)
    return np.where(var > 0, z, np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)))


@functools.lru_cache(maxsize=4096)
def _exact_p(p: Paired, margin: float) -> float:
    """Exact unconditional p-value: sup over the ``gained`` rate of P(Z ≤ Z_observed | true drop = margin)."""
    n = p.n
    z_obs = float(tango_z(n, p.lost, p.gained, margin)) + 1e-9  # ties count as at least as extreme
    b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    inside = (b + c <= n) & (tango_z(n, b, c, margin) <= z_obs)
    b, c = b[inside].astype(float), c[inside].astype(float)
    if b.size == 0:
        return 0.0
    lg = np.array([math.lgamma(k + 1) for k in range(n + 1)])
    log_coef = lg[n] - lg[b.astype(int)] - lg[c.astype(int)] - lg[(n - b - c).astype(int)]
    top = (1.0 - margin) / 2  # the largest gained rate with lost rate = gained + margin
    worst = 0.0
    for q in top * (np.arange(_GRID + 1) / _GRID) ** 2:
        r, rest = q + margin, 1.0 - 2 * q - margin
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = (log_coef + np.where(b > 0, b * np.log(r), 0.0) + np.where(c > 0, c * np.log(q), 0.0)
                  + np.where(n - b - c > 0, (n - b - c) * np.log(max(rest, 0.0)), 0.0))
        worst = max(worst, float(np.sum(np.exp(np.nan_to_num(lp, nan=-np.inf)))))
    return min(1.0, worst)


def p_value(p: Paired, margin: float) -> float:
    """One-sided p-value of H0 "true drop ≥ margin" (exact for ``n ≤ EXACT_MAX_N``, else Tango's normal one)."""
    if p.n <= EXACT_MAX_N:
        return _exact_p(p, margin)
    return NormalDist().cdf(float(tango_z(p.n, p.lost, p.gained, margin)))


def meets_rule(p: Paired, max_drop: float, confidence: float) -> bool:
    """Whether the candidate's true drop is at most ``max_drop`` at one-sided ``confidence`` (0.5: the point rule,
    observed drop ≤ ``max_drop``)."""
    if confidence <= 0.5:
        return within_drop(p.drop, 0.0, max_drop)
    return p_value(p, max_drop) <= 1.0 - confidence + 1e-12


def drop_bound(p: Paired, confidence: float, tol: float = 1e-4) -> float:
    """The one-sided upper confidence bound on the true drop: the smallest margin the test accepts (bisection;
    the observed drop at confidence 0.5)."""
    if confidence <= 0.5:
        return p.drop
    lo, hi = -1.0, 1.0 - 1e-9
    if not meets_rule(p, hi, confidence):
        return 1.0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if meets_rule(p, mid, confidence) else (mid, hi)
    return hi


def smallest_certifiable_drop(n: int, confidence: float) -> float:
    """The bound of a candidate that changes no sample (``lost = gained = 0``) on ``n`` samples: a ``max_drop``
    below it passes only candidates that are more accurate than the unpruned model on the split."""
    return max(0.0, drop_bound(Paired(n, 0, 0), confidence))

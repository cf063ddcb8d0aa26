"""Pure pruning plan: fold scores, fold-aware counts, schedules, scaled FINN layer specs (no torch)."""

from __future__ import annotations

import pytest

from hapfpga.errors import ConfigError, UnsupportedLayerError
from hapfpga.estimate.layers import (
    MVAU,
    ConvolutionInputGenerator,
    DuplicateStreams,
    ElementwiseAdd,
    LabelSelect,
    Thresholding,
)
from hapfpga.pruning.plan import (
    PruningPlan,
    candidate_counts,
    fold_friendly_count,
    fold_score,
    polynomial_schedule,
    scale_layers,
    uniform_counts,
)


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def test_fold_score_extremes():
    assert fold_score(64) == 1.0  # every power-of-two parallelism is a divisor
    assert fold_score(61) < 0.35  # prime: only PE 1 or 61
    assert fold_score(48) > fold_score(47)


def test_fold_score_matches_brute_force_definition():
    for n in (1, 6, 12, 27, 100, 96):
        ps = [p for p in (1, 2, 4, 8, 16, 32, 64, 128) if p <= n]
        expect = sum(max(d for d in _divisors(n) if d <= p) / p for p in ps) / len(ps)
        assert fold_score(n) == pytest.approx(expect)


def test_fold_friendly_count_never_below_wanted_and_in_window():
    for full in (64, 128, 256, 512):
        for wanted in range(1, full + 1, 7):
            n = fold_friendly_count(full, wanted)
            assert wanted <= n <= min(full, int(wanted * 1.125) + 1)
            # no count in the window scores better
            window = range(wanted, min(full, int(wanted * 1.125)) + 1)
            assert fold_score(n) >= max(fold_score(k) for k in window) - 1e-9


def test_fold_friendly_prefers_divisor_rich_counts():
    assert fold_friendly_count(64, 61) == 64
    assert fold_friendly_count(256, 97) == 104 or fold_score(fold_friendly_count(256, 97)) >= fold_score(104)
    assert fold_score(fold_friendly_count(256, 97)) > fold_score(97)


def test_candidate_counts_descending_distinct():
    c = candidate_counts(256)
    assert c[0] == 256 and c == sorted(set(c), reverse=True)
    assert c[-1] <= 256 * 0.0625 * 1.125 + 1


def test_uniform_counts_and_plan():
    ch = {"a": 64, "b": 128}
    u = uniform_counts(ch, 0.5)
    assert u == {"a": 32, "b": 64}
    assert uniform_counts(ch, 0.3, fold_aware=False) == {"a": 19, "b": 38}
    plan = PruningPlan(before=ch, after=u, method="ratio")
    assert plan.keep_ratio() == pytest.approx(0.5)
    assert plan.as_dict()["channels_after"] == u
    with pytest.raises(ConfigError, match="keeps 200"):
        PruningPlan(before=ch, after={"a": 200})
    with pytest.raises(ConfigError, match="unknown group"):
        PruningPlan(before=ch, after={"z": 1})
    with pytest.raises(ConfigError, match="outside"):
        uniform_counts(ch, 0.0)


def test_polynomial_schedule_zhu_gupta():
    assert polynomial_schedule(0, 10, 0.8) == 0.0
    assert polynomial_schedule(10, 10, 0.8) == pytest.approx(0.8)
    vals = [polynomial_schedule(t, 10, 0.8) for t in range(11)]
    assert vals == sorted(vals)
    # cubic: fast early, slow late
    assert vals[5] - vals[0] > vals[10] - vals[5]


def _chain():
    return [
        Thresholding(name="T0", channels=3, n_vectors=1024),
        ConvolutionInputGenerator(name="S0", ifm_ch=3, ifm_dim=(32, 32), ofm_dim=(30, 30)),
        MVAU(name="M0", mw=27, mh=64, n_vectors=900),
        ConvolutionInputGenerator(name="S1", ifm_ch=64, ifm_dim=(30, 30), ofm_dim=(28, 28)),
        MVAU(name="M1", mw=576, mh=64, n_vectors=784),
        MVAU(name="M2", mw=64 * 4, mh=32),  # after a flatten of 64×2×2
        MVAU(name="M3", mw=32, mh=10),
        LabelSelect(name="L", labels=10),
    ]


def test_scale_layers_chain():
    out = scale_layers(_chain(), [64, 64, 32, 10], [16, 48, 8, 10])
    by = {lay.name: lay for lay in out}
    assert by["T0"].channels == 3 and by["S0"].ifm_ch == 3
    assert (by["M0"].mw, by["M0"].mh) == (27, 16)
    assert by["S1"].ifm_ch == 16
    assert (by["M1"].mw, by["M1"].mh) == (16 * 9, 48)
    assert (by["M2"].mw, by["M2"].mh) == (48 * 4, 8)
    assert (by["M3"].mw, by["M3"].mh) == (8, 10)
    assert by["L"].labels == 10
    assert by["M0"].n_vectors == 900


def test_scale_layers_rejects_mismatch_and_uncoupled_joins():
    with pytest.raises(UnsupportedLayerError, match="MVAUs"):
        scale_layers(_chain(), [64, 10], [32, 10])
    # a join of two streams: fine when both sides are pruned alike (one channel group), refused otherwise
    res = [MVAU(name="A", mw=8, mh=8), MVAU(name="B", mw=8, mh=8, producers=("A",)),
           DuplicateStreams(name="D", channels=8, producers=("B",)),
           MVAU(name="C", mw=8, mh=8, producers=("D",)),
           ElementwiseAdd(name="E", lhs_shape=(1, 4, 4, 8), rhs_shape=(1, 4, 4, 8), out_shape=(1, 4, 4, 8),
                          rhs_const=False, producers=("C", "D")),
           MVAU(name="F", mw=8 * 16, mh=4, producers=("E",))]
    out = {lay.name: lay for lay in scale_layers(res, [8, 8, 8, 4], [8, 6, 6, 4])}
    assert out["D"].channels == 6 and out["E"].out_shape == (1, 4, 4, 6) and out["E"].rhs_shape == (1, 4, 4, 6)
    assert (out["C"].mw, out["C"].mh) == (6, 6) and out["F"].mw == 6 * 16
    with pytest.raises(UnsupportedLayerError, match="joins streams"):
        scale_layers(res, [8, 8, 8, 4], [8, 6, 5, 4])

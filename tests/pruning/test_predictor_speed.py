"""The fast predictor answers exactly as the full solve (issue 24, "a search that runs in minutes").

* The FPS bound (``hapfpga.pruning.fpsbound``) never falls below the folding optimiser's proven FPS, and says
  "fits nothing" only where the optimiser finds nothing: over random conv chains on random budgets, against the
  MILP itself.
* A cache hit (memory, or disk across predictors) returns the identical design (FPS, resources, bottleneck,
  plan) as a fresh solve, over many layer specs; two knob settings with the same scaled specs share one solve; a
  changed spec misses.
* The greedy search with the bound (folding only the trials that may be chosen) takes the same steps as the
  search that folds every trial, over random problems, and folds fewer trials.
"""

from __future__ import annotations

import random
from dataclasses import replace
from types import SimpleNamespace

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import InfeasibleError
from hapfpga.estimate import layers as L
from hapfpga.folding import FoldingOptions
from hapfpga.folding.optimise import optimise
from hapfpga.pruning.fpsbound import Relaxation
from hapfpga.pruning.predictor import HwPredictor, PredictorSpec
from hapfpga.pruning.search import HwPoint, greedy_search
from hapfpga.types import Resources

from ..conftest import conv_chain


def _random_chain(rng: random.Random) -> list[L.LayerSpec]:
    return conv_chain(rng.choice([2, 4, 8, 16]), rng.randint(5, 12), rng.choice([4, 8, 16, 32, 48]),
                      rng.choice([2, 4, 10]), wbits=rng.choice([1, 2, 4]), acc_dt="INT12", out_dt="INT16")


def _random_board(rng: random.Random):
    b = load_board("pynq-z2")
    cap = replace(b.capacity, LUT=b.capacity.LUT * rng.choice([0.003, 0.01, 0.03, 0.1, 1.0]),
                  BRAM_18K=b.capacity.BRAM_18K * rng.choice([0.0, 0.02, 0.1, 1.0]))
    return replace(b, capacity=cap)


def test_the_fps_bound_is_never_below_the_milps_optimum_nor_refuses_what_fits():
    seen = {"fits": 0, "bound_no_fit": 0, "tight": 0}
    for seed in range(40):
        rng = random.Random(seed)
        layers, board = _random_chain(rng), _random_board(rng)
        space = rng.choice(["full", "fast"])
        opts = FoldingOptions(clock_mhz=100.0, margin=rng.choice([None, 0.0])).for_predictor(60.0, space)
        bound = Relaxation(board, opts).bound(layers)
        try:
            res = optimise(layers, board, opts)
        except InfeasibleError:
            seen["bound_no_fit"] += not bound.fits  # any bound is sound when nothing fits
            continue
        assert res.optimal, seed
        assert bound.fits, f"seed {seed}: the bound said nothing fits, but the optimiser found a folding"
        assert bound.fps >= res.fps and bound.cycles <= res.max_cycles, seed
        seen["fits"] += 1
        seen["tight"] += bound.fps == res.fps
    # the cases are not vacuous: designs that fit, budgets the bound alone refuses, bounds that are exact
    assert seen["fits"] >= 10 and seen["bound_no_fit"] >= 3 and seen["tight"] >= 1, seen



def test_the_fps_bound_holds_with_the_mvau_implementation_knob():
    """The mixed graph's folds (``impl_knob``: each RTL MVAU RTL or HLS, ``folding/variants.py``): the relaxation
    takes both implementations' foldings, so its bound is never below the optimum and never refuses what fits."""
    seen = {"fits": 0, "hls_only_bound_low": 0}
    for seed in range(30):
        rng = random.Random(100 + seed)
        wb = rng.choice([2, 4])
        layers = [replace(x, impl="rtl", wdt=f"INT{wb}") if x.kind == "MVAU" else x
                  for x in conv_chain(rng.choice([4, 8, 16]), rng.randint(5, 12), rng.choice([8, 16, 32, 48]),
                                      rng.choice([2, 4, 10]), wbits=wb, acc_dt="INT12", out_dt="INT16")]
        board = _random_board(rng)
        opts = FoldingOptions(clock_mhz=100.0, margin=rng.choice([None, 0.0]), impl_knob=True).for_predictor(60.0)
        bound = Relaxation(board, opts).bound(layers)
        try:
            res = optimise(layers, board, opts)
        except InfeasibleError:
            continue
        assert bound.fits and bound.fps >= res.fps * (1 - 1e-12), seed
        seen["fits"] += 1
        hls = [replace(x, impl="hls") if x.kind == "MVAU" else x for x in layers]  # one implementation only
        seen["hls_only_bound_low"] += Relaxation(board, replace(opts, impl_knob=False)).bound(hls).fps < res.fps
    assert seen["fits"] >= 10, seen
    assert seen["hls_only_bound_low"] >= 1, seen  # a bound over one implementation would refuse real designs



def test_folding_the_graph_with_the_higher_bound_first_gives_the_choice_of_folding_both():
    """``fold_candidate`` with bounds (the predictor's default) answers what folding both graphs answers (the
    fold stage's choice), over random embedded/mixed pairs and boards, and skips the second solve on some."""
    from hapfpga.pruning.predictor import fold_candidate, relaxed_bound

    calls = {"bounded": 0, "both": 0}

    def counted(tag):
        def opt(layers, board, options):
            calls[tag] += 1
            return optimise(layers, board, options)
        return opt

    seen = {"mixed": 0, "embedded": 0, "none": 0}
    for seed in range(30):
        rng = random.Random(300 + seed)
        wb = rng.choice([2, 4])
        emb = conv_chain(rng.choice([4, 8, 16]), rng.randint(5, 12), rng.choice([8, 16, 32, 48]),
                         rng.choice([2, 4, 10]), wbits=wb, acc_dt="INT12", out_dt="INT16")
        mix = [replace(x, impl="rtl", wdt=f"INT{wb}") if x.kind == "MVAU" else x for x in emb]
        board = _random_board(rng)
        opts = FoldingOptions(clock_mhz=100.0, margin=0.0).for_predictor(60.0)
        spec = PredictorSpec((), ("net",), {"net": 1}, board, opts)
        spec = replace(spec, variant=replace(spec, options=replace(opts, impl_knob=True)))
        bounds = (relaxed_bound(spec, emb), relaxed_bound(spec.variant, mix))
        got = fold_candidate(spec, emb, mix, counted("bounded"), bounds)
        want = fold_candidate(spec, emb, mix, counted("both"))
        assert (got.fps, got.fits) == (want.fps, want.fits), seed
        seen["none" if not want.fits else "mixed" if want.plan is not None and any(
            f.impl_style for f in dict(want.plan).values()) else "embedded"] += 1
    assert calls["both"] == 60 and calls["bounded"] < calls["both"], calls
    assert seen["embedded"] and seen["mixed"], seen  # both graphs win somewhere: the comparison is not vacuous


def _chain_predictor(chains, monkeypatch, tmp_path, **kw):
    """A predictor whose candidate ``{"net": i}`` is ``chains[i]`` (the specs, unscaled), on a small board."""
    import hapfpga.pruning.predictor as pred

    monkeypatch.setattr(pred, "scaled_layers", lambda spec, counts: list(chains[int(counts["net"])]))
    board = _random_board(random.Random(5))
    spec = PredictorSpec((), ("net",), {"net": 1}, board, FoldingOptions(clock_mhz=100.0).for_predictor(60.0))
    return HwPredictor(spec, cache_dir=tmp_path / "cache", **kw)


def test_a_cache_hit_returns_the_identical_design_over_many_layer_specs(monkeypatch, tmp_path):
    rng = random.Random(11)
    chains = [_random_chain(rng) for _ in range(12)]
    chains.append(list(chains[0]))  # the same specs under another knob setting
    first = _chain_predictor(chains, monkeypatch, tmp_path)
    points = first.predict_many([{"net": i} for i in range(len(chains))])
    assert first.stats["solves"] + first.stats["bound_no_fit"] == 12 and first.stats["memory_hits"] == 1
    assert points[-1] == points[0]
    again = _chain_predictor(chains, monkeypatch, tmp_path)  # a new run: answers from disk
    for i, p in enumerate(points):
        assert again({"net": i}) == p
    assert again.stats["solves"] == 0
    fresh = _chain_predictor(chains, monkeypatch, tmp_path / "other")
    for i, p in enumerate(points):
        q = fresh({"net": i})
        assert (q.fps, q.resources, q.fits, q.bottleneck, q.plan) == (p.fps, p.resources, p.fits, p.bottleneck, p.plan)
    assert any(p.fits for p in points) and any(p.plan is not None for p in points)


def test_a_changed_layer_spec_misses_the_cache(monkeypatch, tmp_path):
    base = conv_chain(4, 8, 16, 10, acc_dt="INT12", out_dt="INT16")
    wider = [*base[:3], replace(base[3], wdt="INT4")]  # one field of one layer differs
    hw = _chain_predictor([base, wider], monkeypatch, tmp_path)
    hw({"net": 0})
    hw({"net": 1})
    assert hw.stats["solves"] == 2 and hw.stats["memory_hits"] == 0 and hw.stats["disk_hits"] == 0


class _Hw:
    """A closed-form predictor with a noisy upper bound (>= its FPS); counts its folds."""

    def __init__(self, rng: random.Random, groups, bounded: bool):
        self.w = {g: rng.uniform(0.5, 3.0) for g in groups}
        self.cap = rng.uniform(0.3, 0.9) * sum(64 * w for w in self.w.values())
        self.slack = {}
        self.rng, self.bounded, self.folds = rng, bounded, 0
        if bounded:
            self.upper_bound = self._ub

    def _exact(self, counts) -> HwPoint:
        work = max(self.w[g] * counts[g] ** 1.5 for g in self.w)
        fits = sum(self.w[g] * counts[g] for g in self.w) <= self.cap or sum(counts.values()) < 40
        return HwPoint(round(1e6 / work) if fits else 0.0, Resources(LUT=float(sum(counts.values()))), fits)

    def __call__(self, counts) -> HwPoint:
        self.folds += 1
        return self._exact(counts)

    def _ub(self, counts) -> float:
        key = tuple(sorted(counts.items()))
        if key not in self.slack:
            self.slack[key] = self.rng.choice([1.0, 1.0, 1.1, 1.5, 3.0])
        return self._exact(counts).fps * self.slack[key] + (5e5 if not self._exact(counts).fits and
                                                              self.slack[key] > 1.2 else 0.0)


@pytest.mark.parametrize("seed", range(30))
def test_the_bounded_greedy_search_takes_the_steps_of_the_full_one(seed):
    rng = random.Random(seed)
    groups = [f"g{i}" for i in range(rng.randint(2, 6))]
    cands = {g: sorted({64, *(rng.randint(4, 63) for _ in range(4))}, reverse=True) for g in groups}
    sens = {g: rng.uniform(0.0, 0.05) for g in groups}

    def acc(counts):
        return 0.99 - sum(sens[g] * (1 - counts[g] / 64) ** 2 for g in groups)

    runs = []
    for bounded in (False, True):
        hw = _Hw(random.Random(seed + 1000), groups, bounded)
        res = greedy_search({g: 64 for g in groups}, cands, hw, acc, acc, start_accuracy=0.99, target="budget",
                            max_accuracy_drop=0.05, max_steps=12)
        runs.append((res, hw.folds))
    (full, n_full), (fast, n_fast) = runs
    assert fast.history == full.history and fast.best == full.best
    assert n_fast <= n_full


def test_the_bound_saves_folds_on_some_problems():
    saved = 0
    for seed in range(30):
        rng = random.Random(seed)
        groups = [f"g{i}" for i in range(rng.randint(2, 6))]
        cands = {g: sorted({64, *(rng.randint(4, 63) for _ in range(4))}, reverse=True) for g in groups}
        folds = []
        for bounded in (False, True):
            hw = _Hw(random.Random(seed + 1000), groups, bounded)
            greedy_search({g: 64 for g in groups}, cands, hw, lambda c: 0.9 + 1e-4 * sum(c.values()) / 64,
                          lambda c: 0.9, start_accuracy=0.9, target="budget", max_accuracy_drop=0.05, max_steps=12)
            folds.append(hw.folds)
        saved += folds[0] - folds[1]
    assert saved > 0


def test_an_unbounded_stand_in_predictor_is_never_bounded_out():
    """A replaced ``optimise`` (tests) has no cost model: its bound is infinite, so every trial is folded."""
    spec = PredictorSpec((), ("fc0",), {"fc0": 8}, SimpleNamespace(budget=Resources(LUT=10.0)), FoldingOptions())
    hw = HwPredictor(spec, optimise=lambda *a: None)
    assert hw.upper_bound({"fc0": 4}) == float("inf")


def test_trials_folded_in_worker_processes_are_the_ones_folded_here(monkeypatch, tmp_path):
    """``predictor_workers``: the batch's specs go to spawned processes; their answers equal this process's."""
    rng = random.Random(21)
    chains = [_random_chain(rng) for _ in range(4)]
    here = _chain_predictor(chains, monkeypatch, tmp_path / "a")
    pool = _chain_predictor(chains, monkeypatch, tmp_path / "b", workers=2)
    try:
        batch = [{"net": i} for i in range(len(chains))]
        assert pool.predict_many(batch) == here.predict_many(batch)
        assert pool.stats == here.stats and here.stats["solves"] >= 2  # the pool had work
    finally:
        pool.close()

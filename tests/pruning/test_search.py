"""Search logic on a small analytic pipeline (pure, fast) and Optuna NSGA-II with two worker processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hapfpga.errors import ConfigError
from hapfpga.pruning.plan import candidate_counts
from hapfpga.pruning.search import (
    HwPoint,
    Step,
    backtrack,
    default_storage,
    greedy_search,
    j_objective,
    nsga2_search,
    pareto_front,
)
from hapfpga.types import Resources

FULL = {"a": 64, "b": 64, "c": 128}
WORK = {"a": 4.0, "b": 1.0, "c": 1.0}  # cycles per channel: "a" is the bottleneck of the unpruned net
SENS = {"a": 0.05, "b": 0.05, "c": 0.01}


def hw(counts):
    """A dataflow pipeline: FPS set by the slowest layer (FINN-R: throughput = clock / max cycles)."""
    cycles = {g: WORK[g] * counts[g] for g in counts}
    lut = sum(10.0 * counts[g] for g in counts)
    return HwPoint(fps=1e5 / max(cycles.values()), resources=Resources(LUT=lut), fits=lut <= 3000)


def acc(counts):
    return 0.95 - sum(SENS[g] * (1 - counts[g] / FULL[g]) for g in counts)


CANDS = {g: candidate_counts(n) for g, n in FULL.items()}


def test_greedy_prunes_the_bottleneck_first_and_is_deterministic():
    r1 = greedy_search(FULL, CANDS, hw, acc, acc, start_accuracy=acc(FULL), target="fps", target_fps=800)
    r2 = greedy_search(FULL, CANDS, hw, acc, acc, start_accuracy=acc(FULL), target="fps", target_fps=800)
    assert [s.counts for s in r1.history] == [s.counts for s in r2.history]
    assert r1.history[1].changed == "a"  # only the bottleneck raises FPS
    assert r1.best.hw.fps >= 800
    # FPS never decreases along the trajectory
    fps = [s.hw.fps for s in r1.history]
    assert fps == sorted(fps)


def test_greedy_budget_respects_accuracy_drop_and_beats_uniform():
    start = acc(FULL)
    r = greedy_search(FULL, CANDS, hw, acc, acc, start_accuracy=start, target="budget", max_accuracy_drop=0.03)
    assert start - r.best.accuracy <= 0.03 + 1e-9
    # the uniform baseline at the same accuracy drop is slower: hardware awareness buys FPS
    best_uniform = 0.0
    for ratio in [i / 64 for i in range(1, 65)]:
        u = {g: max(1, round(n * ratio)) for g, n in FULL.items()}
        if start - acc(u) <= 0.03 + 1e-9 and hw(u).fits:
            best_uniform = max(best_uniform, hw(u).fps)
    assert r.best.hw.fps > best_uniform
    # "c" is cheap in accuracy but never the bottleneck: untouched until FPS needs it
    assert r.best.counts["a"] < FULL["a"]


def test_j_objective_and_search():
    assert j_objective(0.9, 200, 100, 1.0) == pytest.approx(0.9)
    assert j_objective(0.9, 200, 100, 0.0) == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        j_objective(0.9, 1, 1, 1.5)
    r_acc = greedy_search(FULL, CANDS, hw, acc, acc, start_accuracy=acc(FULL), objective="j", alpha=1.0)
    assert len(r_acc.history) == 1  # pure accuracy: never prune
    r_fps = greedy_search(FULL, CANDS, hw, acc, acc, start_accuracy=acc(FULL), objective="j", alpha=0.2)
    assert r_fps.best.hw.fps > hw(FULL).fps


def test_pareto_front_removes_dominated():
    pts = [
        Step({}, HwPoint(100, Resources(LUT=10)), 0.9),
        Step({}, HwPoint(200, Resources(LUT=10)), 0.8),
        Step({}, HwPoint(100, Resources(LUT=20)), 0.85),  # dominated by the first
    ]
    front = pareto_front(pts)
    assert len(front) == 2 and all(p.accuracy != 0.85 for p in front)


def test_nsga2_finds_points_better_than_uniform(tmp_path):
    storage = default_storage(tmp_path)
    assert storage.startswith("sqlite:///") and storage.endswith("pruning_optuna.db")
    res = nsga2_search(
        CANDS, lambda c: (acc(c), hw(c)), storage=storage, n_trials=40, seed=1, population=8,
        baseline_accuracy=acc(FULL), max_accuracy_drop=0.03, enqueue=[FULL],
    )
    assert (tmp_path / "pruning_optuna.db").is_file()
    assert len(res.history) == 40
    assert res.best.hw.fps > hw(FULL).fps
    assert acc(FULL) - res.best.accuracy <= 0.03 + 1e-9
    assert all(s in res.history for s in res.pareto)


WORKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_search import CANDS, acc, hw
    from hapfpga.pruning.search import nsga2_study, trial_objective
    study = nsga2_study(sys.argv[1], "shared", int(sys.argv[2]), 4)
    study.optimize(trial_objective(CANDS, lambda c: (acc(c), hw(c))), n_trials=6)
    """
)


def test_two_worker_processes_share_one_storage(tmp_path):
    optuna = pytest.importorskip("optuna")
    storage = default_storage(tmp_path)
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    # create the study first so the two workers do not race on the schema
    optuna.create_study(study_name="shared", storage=storage, directions=["maximize", "maximize", "minimize"])
    procs = [subprocess.Popen([sys.executable, str(script), storage, str(s)]) for s in (1, 2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    study = optuna.load_study(study_name="shared", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 12
    for t in done:  # each stored value is the real evaluation of its parameters
        counts = {g: t.params[g] for g in CANDS}
        assert t.values[0] == pytest.approx(acc(counts))
        assert t.values[2] == pytest.approx(hw(counts).resources.LUT)


def _trajectory(fps_list):
    return [Step({"a": 64 - i}, HwPoint(fps=f, resources=Resources(LUT=1.0)), 0.9) for i, f in enumerate(fps_list)]


@pytest.mark.parametrize("n_ok", range(1, 10))
def test_backtrack_picks_the_fastest_step_that_meets_the_rule_after_its_final_finetune(n_ok):
    # FPS rises along the trajectory with a plateau (steps 3, 4 share a level); the final accuracy falls, and
    # the first n_ok levels meet a 1-point rule
    fps = [100, 120, 150, 180, 180, 220, 260, 300, 340, 400]
    hist = _trajectory(fps)
    levels = [0, 1, 2, 3, 5, 6, 7, 8, 9]
    calls = []

    def final(i):
        calls.append(i)
        assert i in levels and i != 0  # the second step of a plateau is never fine-tuned, nor the start
        return 0.90 if levels.index(i) < n_ok else 0.85

    i, tried = backtrack(hist, final, start_accuracy=0.9, max_accuracy_drop=0.01)
    assert i == levels[n_ok - 1]
    assert set(tried) == set(calls) and len(calls) == len(set(calls))
    assert len(calls) <= 1 + 3  # the fastest first, then a bisection of 9 levels
    assert all(tried[k] < 0.89 for k in tried if fps[k] > fps[i])  # every faster step tried failed the rule


def test_backtrack_skips_steps_that_do_not_fit_and_keeps_the_start_when_nothing_meets_the_rule():
    hist = _trajectory([100, 150, 200])
    hist[2] = Step({"a": 1}, HwPoint(fps=500, fits=False), 0.9)
    i, tried = backtrack(hist, lambda k: 0.5, start_accuracy=0.9, max_accuracy_drop=0.01)
    assert i == 0 and set(tried) == {1}


def test_a_rejected_step_is_undone_its_knob_frozen_and_the_search_goes_on():
    """Group "a" collapses accuracy below 48 channels; without ``reject`` that step ends the search, with it the
    step is undone, "a" frozen at its last accepted count and the other groups still pruned."""

    def cliff(counts):
        return acc(counts) - (0.3 if counts["a"] < 48 else 0.0)

    state = {"model": dict(FULL)}
    restored = []

    def commit(counts):
        state["model"] = dict(counts)
        return cliff(counts)

    def reject(counts):
        restored.append(dict(counts))
        state["model"] = dict(counts)

    start = cliff(FULL)
    kw = dict(start_accuracy=start, target="budget", max_accuracy_drop=0.02, step_tolerance=0.05, max_steps=30)
    plain = greedy_search(FULL, CANDS, hw, cliff, commit, **kw)
    assert plain.history[-1].counts["a"] < 48 and not plain.rejected  # stopped at the cliff
    r = greedy_search(FULL, CANDS, hw, cliff, commit, reject=reject, **kw)
    assert r.rejected[0].changed == "a" and [s.changed for s in r.rejected].count("a") == 1  # frozen after it
    bad = r.rejected[0]
    assert bad.counts["a"] < 48 and start - bad.accuracy > 0.05
    # restored to the last accepted counts, which the history then continues from
    assert restored[0] == {**bad.counts, "a": restored[0]["a"]} and restored[0]["a"] >= 48
    assert all(s.counts["a"] == restored[0]["a"] for s in r.history[r.history.index(
        next(s for s in r.history if s.counts == restored[0])):])
    assert all(start - s.accuracy <= 0.05 + 1e-9 for s in r.history)  # no accepted step beyond the tolerance
    assert len(r.history) + len(r.rejected) - 1 <= 30
    # the others went on: more steps after the rejection, and at least as fast as the plain search's choice
    assert any(s.changed != "a" for s in r.history[r.history.index(
        next(s for s in r.history if s.counts == restored[0])) + 1:])
    assert r.best.hw.fps >= plain.best.hw.fps
    assert start - r.best.accuracy <= 0.02 + 1e-9
    assert r.as_dict()["rejected"][0]["changed"] == "a"

"""``benchmarks/pruning_vs_finn.py --parallel-arms`` (issue 24, "the full 3-seed CNV protocol ≤ 20 minutes per
seed"): the hardware-aware and mixed-precision searches run side by side in two processes and give the arms the
serial path gives (same seed: same FPS, accuracies, channels, bits); every seed reports where its time went
(wall and CPU seconds per phase) in the JSON and the printed table."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pruning_vs_finn.py"
_spec = importlib.util.spec_from_file_location("pruning_vs_finn", BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.mark.parametrize("workers, n, each", [(2, 2, 1), (1, 2, 1), (4, 2, 2), (5, 2, 2), (8, 3, 2), (3, 1, 3)])
def test_predictor_workers_are_shared_out(workers, n, each):
    assert bench.side_by_side_workers(workers, n) == each
    assert each * n <= max(workers, n)  # never more predictor processes than --workers (at least one per search)


def test_parallel_arms_defaults_to_the_cores():
    args = bench.make_parser().parse_args([])
    assert args.parallel_arms is None  # resolved in main: on with 2 or more CPUs
    assert bench.make_parser().parse_args(["--no-parallel-arms"]).parallel_arms is False
    assert bench.make_parser().parse_args(["--parallel-arms"]).parallel_arms is True


def test_scheduling_is_not_in_the_search_key():
    """The searched arms' cache key does not depend on --parallel-arms: an arm cached by either path is reused."""
    keys = []
    for flag in ("--parallel-arms", "--no-parallel-arms"):
        args = bench.make_parser().parse_args([flag])
        args.max_steps, args.candidate_steps, args.fold_time, args.finetune_epochs = 10, 3, 4.0, 4.0
        keys.append(json.dumps(bench.arm_key("mixed", args, {"model": "cnv", "seed": 0}), sort_keys=True))
    assert keys[0] == keys[1]


def test_phases_measure_wall_and_cpu():
    phases = bench.Phases()
    with phases("busy"):
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass
    with phases("idle"):
        time.sleep(0.2)
    busy, idle = phases.times["busy"], phases.times["idle"]
    assert busy["cpu_s"] >= 0.15 and busy["wall_s"] >= busy["cpu_s"] * 0.9
    assert idle["wall_s"] >= 0.19 and idle["cpu_s"] < 0.1
    assert list(phases.times) == ["busy", "idle"]


def test_phase_line_names_every_phase_run():
    times = {"baseline": {"wall_s": 358.2, "cpu_s": 340.0}, "searches": {"wall_s": 900.0, "cpu_s": 1700.0},
             "hw": {"wall_s": 880.0, "cpu_s": 850.0, "parallel": True},
             "mixed": {"wall_s": 0.5, "cpu_s": 0.4, "cached": True}, "seed": {"wall_s": 1500.0, "cpu_s": 2400.0}}
    line = bench.phase_line(times)
    assert line.split("; ") == ["baseline 358/340", "searches side by side 900/1,700", "hw search 880/850 (parallel)",
                                "mixed search 0/0 (cached)", "seed total 1,500/2,400"]


def test_timed_job_adds_the_jobs_own_seconds():
    out = bench.timed_job(lambda n: {"n": sum(range(n))}, 2_000_000)
    assert out["n"] == sum(range(2_000_000))
    assert out["job_wall_s"] > 0 and out["job_cpu_s"] > 0


def test_combine_accepts_runs_scheduled_either_way(tmp_path, capsys):
    """--combine checks the protocol's settings equal; --parallel-arms is scheduling and may differ."""
    def run(seed: int, parallel: bool) -> Path:
        arms = {a: {"fps": 1000.0 * (i + 1), "ratio": i + 1.0, "accuracy": 0.97, "drop_pts": 0.2, "fits": True,
                    "extra_epochs": 4.0 if i > 1 else 0.0} for i, (a, _) in enumerate(bench.ARMS)}
        r = {"seed": seed, "curve": [0.9, 0.95], "baseline_epochs": 2, "reference_epochs": 4.0,
             "reference_accuracy": 0.975, "arms": arms,
             "phases": {"baseline": {"wall_s": 10.0 + seed, "cpu_s": 9.0}, "seed": {"wall_s": 50.0, "cpu_s": 80.0}}}
        args = {**vars(bench.make_parser().parse_args([])), "seeds": [seed], "parallel_arms": parallel}
        p = tmp_path / f"s{seed}.json"
        p.write_text(json.dumps({"args": args, "runs": [r], "seconds": 50.0,
                                 "load_average": {"start": [1.0], "end": [1.0]}}))
        return p

    assert bench.combine([str(run(0, True)), str(run(1, False))], 1.0) == 0
    out = capsys.readouterr().out
    assert "seed 0: baseline 10/9; seed total 50/80" in out and "seed 1: baseline 11/9" in out


def _smoke(tmp_path: Path, flag: str, *extra: str) -> dict:
    out = tmp_path / flag.strip("-")
    cmd = [sys.executable, str(BENCH), "--smoke", flag, *extra, "--work", str(out / "w"), "--cache", str(out / "c"),
           "--json", str(out / "r.json")]
    env = {**os.environ, "PYTHONPATH": str(BENCH.parents[1])}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "where the time goes" in res.stdout
    return json.loads((out / "r.json").read_text())


ARM_FIELDS = ("fps", "fits", "accuracy", "channels_after", "bits_after", "fps_after", "ratio", "drop_pts")


@pytest.mark.slow
def test_parallel_and_serial_give_the_same_arms(tmp_path):
    """Two --smoke runs of one seed, the searches side by side and one after the other: the same arms (FINN's
    FPS and fit, test accuracies, channels, bits), each phase timed (positive wall and CPU seconds)."""
    par, ser = _smoke(tmp_path, "--parallel-arms"), _smoke(tmp_path, "--no-parallel-arms")
    (rp,), (rs,) = par["runs"], ser["runs"]
    assert set(rp["arms"]) == set(rs["arms"]) >= {"hw+ours", "mixed+ours", "uniform+ours", "unpruned+setfolding"}
    for arm in rp["arms"]:
        for f in ARM_FIELDS:
            assert rp["arms"][arm].get(f) == rs["arms"][arm].get(f), (arm, f)
    assert rp["arms"]["mixed+ours"]["history"] == rs["arms"]["mixed+ours"]["history"]
    assert rp["reference_accuracy"] == rs["reference_accuracy"]
    assert rp["phases"]["hw"]["parallel"] and rp["phases"]["mixed"]["parallel"] and "searches" in rp["phases"]
    assert "searches" not in rs["phases"] and not rs["phases"]["hw"].get("parallel")
    for run in (rp, rs):
        for phase in ("baseline", "hw", "mixed", "uniform", "reference", "finn_jobs", "seed"):
            assert run["phases"][phase]["wall_s"] > 0 and run["phases"][phase]["cpu_s"] > 0, phase
        assert run["phases"]["seed"]["wall_s"] >= run["phases"]["baseline"]["wall_s"] + run["phases"]["uniform"]["wall_s"]
        assert set(run["finn_jobs"]) == set(run["arms"])
    assert par["args"]["parallel_arms"] is True and ser["args"]["parallel_arms"] is False


@pytest.mark.slow
def test_start_uniform_runs_the_uniform_search_once(tmp_path):
    """``--start uniform``: the uniform-under-the-rule arm runs first, once, and both searched arms start at its
    pick instead of running the same uniform search themselves (their first row is its design; their logs have no
    uniform search of their own); with ``--sparsify-epochs`` the sparse training runs once before the three arms
    and none of them trains it again. A 10-pt rule, so that on the smoke data a pruned ratio can meet it; two
    greedy steps."""
    out = _smoke(tmp_path, "--parallel-arms", "--start", "uniform", "--max-drop", "0.1", "--max-steps", "2",
                 "--importance", "bn_scale", "--sparsify-epochs", "0.5")
    (run,) = out["runs"]
    ur = run["arms"]["urule+ours"]
    phases = list(run["phases"])
    assert phases.index("sparse") < phases.index("urule") < phases.index("searches")
    assert run["phases"]["urule"]["wall_s"] > 0 and run["phases"]["sparse"]["wall_s"] > 0
    seed_dir = tmp_path / "parallel-arms" / "w" / "seed0"
    assert "sparse training: 0.5 epochs" in (seed_dir / "sparse" / "pruning" / "search.log").read_text()
    for arm in ("urule", "hw", "mixed"):  # the sparse model trained once, before every arm
        log = (seed_dir / arm / "pruning" / "search.log").read_text()
        assert "not trained again" in log and "sparse training: 0.5 epochs" not in log
    for arm in ("hw", "mixed"):
        log = (seed_dir / arm / "pruning" / "search.log").read_text()
        assert "uniform search:" not in log and "uniform start:" in log
        first = run["arms"][f"{arm}+ours"]["history"][0]["counts"]
        assert {g: first[g] for g in ur["channels_after"]} == ur["channels_after"]
        assert ur["keep_ratio"] == 1 or "the given uniform search's pick" in log
        assert run["arms"][f"{arm}+ours"]["fps_after"] >= ur["fps_after"]


@pytest.mark.parametrize("start, urule, shared", [("uniform", True, True), ("uniform", False, False),
                                                  ("full", True, False), ("full", False, False)])
def test_the_uniform_search_is_shared_only_for_start_uniform_with_its_arm(start, urule, shared):
    args = bench.make_parser().parse_args(["--start", start] + ([] if urule else ["--no-uniform-rule"]))
    assert bench.shares_uniform_search(args) is shared


def test_the_uniform_arms_report_becomes_the_stages_pick():
    """The arm's cached info (channels_after, accuracy_val, keep_ratio) as the stage's ``UniformPick``."""
    rep = {"channels_after": {"conv0": 14, "blocks.0.conv1": 14}, "accuracy_val": {"before": 0.9, "after": 0.8983},
           "keep_ratio": 0.875, "fps_after": 9111.0}
    model = object()
    pick = bench.urule_pick(model, rep)
    assert pick.counts == rep["channels_after"] and pick.counts is not rep["channels_after"]
    assert (pick.model, pick.accuracy, pick.ratio) == (model, 0.8983, 0.875)


@pytest.mark.parametrize("extra", [[], ["--distill"], ["--ft-lr", "0.001", "--val-fraction", "0.3"]])
def test_every_searched_arm_trains_sparse_as_the_shared_model_was(extra):
    """The one sparse model is valid for the uniform, hardware-aware and mixed arms: the settings it is made (and
    cached) with are the same in each arm's config."""
    from hapfpga.pruning.stage import sparse_config

    args = bench.resolve_defaults(bench.make_parser().parse_args(["--importance", "bn_scale", "--sparsify-epochs", "2",
                                                                  *extra]))
    made = sparse_config(bench.arm_cfg("hw", args))
    assert made["epochs"] == 2 and made["distill"] == ("--distill" in extra)
    for arm in ("urule", "mixed"):
        assert sparse_config(bench.arm_cfg(arm, args)) == made, arm


def test_polish_epochs_keep_the_baseline_while_the_final_fine_tune_changes():
    """``--finetune-epochs 8 --polish-epochs 4`` trains (and caches) the baseline of ``--finetune-epochs 4``; without
    ``--polish-epochs`` the polish follows ``--finetune-epochs``, as before the flag."""
    def key(*argv):
        args = bench.resolve_defaults(bench.make_parser().parse_args(["--quick", *argv]))
        return bench.baseline_key(args, "mnist", 9600, 1)

    assert key("--finetune-epochs", "8", "--polish-epochs", "4") == key("--finetune-epochs", "4") == key()
    assert key("--finetune-epochs", "8") != key()
    assert key("--finetune-epochs", "8")["polish_epochs"] == 8.0

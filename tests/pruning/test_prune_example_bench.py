"""``benchmarks/prune_example.py`` (issue 24: the pruning example per seed, through the user path) on a real run:
a demo-sized config whose pruning section really removes channels, one seed, end to end — the row it prints and
writes is the run's own report.json, the ratio is over a SetFolding result cached under the unpruned export's
hash, and ``--combine`` reports the worst seed."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "prune_example.py"
_spec = importlib.util.spec_from_file_location("pruning_vs_finn", ROOT / "benchmarks" / "pruning_vs_finn.py")
prune_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prune_bench)

#: examples/demo.yaml's model, data and board, short training, uniform pruning that halves every layer
TINY = {
    "board": "pynq-z2", "seed": 0, "model": {"name": "digits_cnn", "weight_bits": 2, "act_bits": 2},
    "data": {"name": "digits"}, "train": {"epochs": 2, "batch_size": 64, "lr": 0.01},
    "pruning": {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 1.0, "sensitivity": False},
    "folding": {"mode": "max_fps"}, "verify": {"n_samples": 32},
}
#: a two-build SetFolding scan (one target, one refinement) instead of the fine scan from 400 FPS
SCAN = ["--scan", "quick", "--sf-start", "20000", "--sf-stop", "20001"]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prune_example")
    cfg = tmp / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    js = tmp / "s1.json"
    proc = subprocess.run([sys.executable, str(BENCH), str(cfg), "--seeds", "1", "--work", str(tmp / "work"),
                           "--cache", str(tmp / "cache"), "--json", str(js), *SCAN],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return tmp, proc.stdout.strip().splitlines(), json.loads(js.read_text())


def _last(line: str) -> dict[str, float]:
    words = line.split()
    assert words[0] == "prune_example_worst_seed_speedup" and len(words) == 8, line
    return {words[i]: float(words[i + 1]) for i in range(0, 8, 2)}


def test_row_is_the_runs_report_and_the_seed_is_the_configs(bench_run):
    tmp, lines, res = bench_run
    (row,) = res["rows"]
    out = tmp / "work" / "seed1"
    rep = json.loads((out / "report.json").read_text())
    assert yaml.safe_load((tmp / "work" / "seed1.yaml").read_text())["seed"] == 1
    assert json.loads((out / "config.json").read_text())["seed"] == 1  # the run used the copy with the seed
    p = rep["pruning"]
    assert row["fps"] == pytest.approx(rep["finn_estimate"]["fps"])
    assert row["fits_finn"] == rep["finn_estimate"]["fits"] and row["fits_ours"] == rep["estimate"]["fits"]
    assert row["acc_unpruned"] == pytest.approx(100 * p["accuracy"]["before"])
    assert row["acc_pruned"] == pytest.approx(100 * p["accuracy"]["after"])
    assert row["drop_pts"] == pytest.approx(row["acc_unpruned"] - row["acc_pruned"])
    removed = sum(p["channels_before"][k] - p["channels_after"][k] for k in p["channels_before"])
    assert row["channels_removed"] == removed > 0
    assert row["ratio"] == pytest.approx(row["fps"] / row["setfolding_fps"])
    assert 0 < row["cpu_s"] == pytest.approx(row["user_s"] + row["sys_s"]) and row["wall_s"] > 0
    assert row["checks"]["drop"] == (row["drop_pts"] <= 1.0) and row["checks"]["speedup"] == (row["ratio"] >= 5)
    last = _last(lines[-1])
    assert last["prune_example_worst_seed_speedup"] == pytest.approx(row["ratio"], abs=1e-3)
    assert last["worst_seed_drop_pts"] == pytest.approx(row["drop_pts"], abs=0.01)
    assert last["max_cpu_s"] == pytest.approx(row["cpu_s"], abs=0.5)
    assert any(ln.startswith("seed 1:") and f"{row['ratio']:.2f}x" in ln for ln in lines)


def test_row_pairs_the_runs_own_models_on_the_test_split(bench_run):
    """``test_paired``: the run's baseline.pt and pruned.pt re-scored per test sample reproduce the report's
    accuracies, lost − gained is their difference in samples, and the row prints the drop's paired interval."""
    tmp, lines, res = bench_run
    (row,) = res["rows"]
    t = row["test_paired"]
    assert t is not None and t["n"] == 450  # digits' test split
    before, after = (round(row[k] / 100 * t["n"]) for k in ("acc_unpruned", "acc_pruned"))
    assert before - after == t["lost"] - t["gained"]
    assert row["drop_pts"] == pytest.approx(100 * (t["lost"] - t["gained"]) / t["n"], abs=1e-9)
    lo, hi = (100 * v for v in prune_bench.drop_interval(t["n"], t["lost"], t["gained"]))
    assert lo < row["drop_pts"] < hi
    seed_line = next(ln for ln in lines if ln.startswith("seed 1:") and "acceptance" in ln)
    assert f"95 % interval [{lo:.2f}, {hi:.2f}]" in seed_line


def test_setfolding_is_cached_under_the_unpruned_exports_hash(bench_run):
    tmp, _, res = bench_run
    (row,) = res["rows"]
    assert row["setfolding_cached"] is False and row["setfolding_builds"] >= 1
    onnx = (tmp / "work" / "seed1" / "baseline.qonnx.onnx").read_bytes()
    (f,) = (tmp / "cache").glob("setfolding_*.json")
    entry = json.loads(f.read_text())
    assert entry["key"]["onnx"] == hashlib.sha256(onnx).hexdigest()
    assert entry["value"]["fps"] == row["setfolding_fps"] and entry["value"]["fits"] is True
    assert entry["key"]["scan"]["start"] == 20000


def test_combine_reports_the_worst_seed(bench_run, tmp_path):
    _, _, res = bench_run
    (row,) = res["rows"]
    files = []
    for seed, ratio, drop, cpu in ((0, 9.5, 0.44, 480.0), (1, 6.1, -0.44, 445.0), (2, 7.0, 0.9, 520.0)):
        r = copy.deepcopy(res)
        r["rows"] = [{**row, "seed": seed, "ratio": ratio, "drop_pts": drop, "cpu_s": cpu, "wall_s": cpu + 10}]
        files.append(tmp_path / f"s{seed}.json")
        files[-1].write_text(json.dumps(r))
    proc = subprocess.run([sys.executable, str(BENCH), "--combine", *map(str, files)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert _last(proc.stdout.strip().splitlines()[-1]) == {
        "prune_example_worst_seed_speedup": 6.1, "worst_seed_drop_pts": 0.9, "max_cpu_s": 520.0, "max_wall_s": 530.0}
    other = json.loads(files[0].read_text())
    other["config_sha256"] = "0" * 64
    files[0].write_text(json.dumps(other))
    bad = subprocess.run([sys.executable, str(BENCH), "--combine", *map(str, files)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "different configs" in bad.stderr

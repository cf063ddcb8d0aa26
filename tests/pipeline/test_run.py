"""End to end: `hapfpga run` on digits, determinism, and resume after a real kill -9."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hapfpga.cli import main

REPO = Path(__file__).resolve().parents[2]
HAPFPGA = [sys.executable, "-m", "hapfpga.cli"]


def _report(d: Path) -> dict:
    return json.loads((d / "report.json").read_text())


def _figures(rep):
    """The report without timings and resume bookkeeping (what must be identical run to run)."""
    if isinstance(rep, dict):
        return {k: _figures(v) for k, v in rep.items() if k not in ("timings", "resumed_stages", "seconds")}
    if isinstance(rep, list):
        return [_figures(v) for v in rep]
    return rep


def test_run_fast_digits_end_to_end_and_deterministic(tmp_path, fast_config):
    cfg = fast_config()
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", str(cfg), "--out", str(a)]) == 0
    rep = _report(a)
    for f in ("baseline.qonnx.onnx", "final.qonnx.onnx", "folding.json", "finn/report/estimate_layer_resources.json"):
        assert (a / f).is_file(), f
    assert rep["verification"]["passed"] is True
    assert rep["finn_estimate"]["fits"] is True
    assert rep["accuracy"]["baseline"] > 0.5  # 3 epochs only; the demo's >= 0.90: tests/examples/test_examples.py::test_demo (slow)
    assert rep["finn_estimate"]["fps"] > 0
    # same config + seed -> byte-identical artefacts and identical figures
    assert main(["run", str(cfg), "--out", str(b)]) == 0
    for f in ("final.qonnx.onnx", "folding.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert _figures(_report(a)) == _figures(_report(b))
    # re-running into the same directory resumes every stage
    assert main(["run", str(cfg), "--out", str(a)]) == 0
    assert set(_report(a)["resumed_stages"]) >= {"train", "export", "fold", "finn_build", "verify"}


def test_changed_config_reruns_only_affected_stages(tmp_path, fast_config):
    out = tmp_path / "r"
    assert main(["run", str(fast_config()), "--out", str(out)]) == 0
    cfg2 = fast_config(verify={"n_samples": 32})
    assert main(["run", str(cfg2), "--out", str(out)]) == 0
    resumed = set(_report(out)["resumed_stages"])
    assert {"train", "export", "fold", "finn_build"} <= resumed
    assert "verify" not in resumed


def _wait_for(pred, proc, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def test_kill_mid_run_then_resume(tmp_path, fast_config):
    cfg = fast_config(train={"epochs": 6})
    out = tmp_path / "k"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*HAPFPGA, "run", str(cfg), "--out", str(out)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / "manifest.json"

    def trained():
        try:
            return "train" in json.loads(manifest.read_text())["stages"]
        except (OSError, ValueError, KeyError):
            return False

    try:
        assert _wait_for(trained, proc, 600), "training stage never finished"
        os.kill(proc.pid, signal.SIGKILL)  # kill -9 after training, in export/fold/build
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (out / "report.json").exists()
    done = subprocess.run([*HAPFPGA, "run", str(cfg), "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rep = _report(out)
    assert "train" in rep["resumed_stages"]
    assert rep["verification"]["passed"] is True


def test_run_with_pruning_builds_the_pruned_model(tmp_path, fast_config):
    cfg = fast_config(pruning={"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 1.0,
                               "sensitivity": False})
    out = tmp_path / "p"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    rep = _report(out)
    p = rep["pruning"]
    before, after = p["channels_before"], p["channels_after"]
    assert set(before) == set(after) and all(after[k] < before[k] for k in before)
    assert rep["model"]["params"] < rep["model"]["baseline"]["params"]
    assert (out / "baseline.qonnx.onnx").read_bytes() != (out / "final.qonnx.onnx").read_bytes()
    assert rep["verification"]["passed"] is True and rep["finn_estimate"]["fits"] is True

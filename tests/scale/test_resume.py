"""Resumable training: a QAT job killed with SIGKILL mid-run resumes from its last epoch checkpoint and ends with
the same model bytes as an uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

JOB = Path(__file__).with_name("_train_job.py")
REPO = Path(__file__).resolve().parents[2]
EPOCHS = 6


def _start(run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, str(JOB), str(run_dir), str(EPOCHS)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _checkpoint_epoch(ckpt: Path) -> int:
    try:
        return int(torch.load(ckpt, weights_only=False, map_location="cpu")["epoch"])
    except Exception:  # not there yet (the write is atomic: either the old file or the new one)
        return 0


def test_kill_9_mid_qat_then_rerun_gives_the_uninterrupted_model_bytes(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    p = _start(whole)
    assert p.wait(timeout=600) == 0, p.stdout.read().decode()
    assert json.loads((whole / "result.json").read_text())["resumed_epoch"] == 0

    p = _start(killed)
    ckpt = killed / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while _checkpoint_epoch(ckpt) < 1:  # kill after the first epoch's checkpoint, long before the last epoch
        assert p.poll() is None and time.time() < deadline, "the job ended before it could be killed"
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(timeout=60) == -signal.SIGKILL
    at_kill = _checkpoint_epoch(ckpt)
    assert 1 <= at_kill < EPOCHS and not (killed / "final.pt").exists()

    p = _start(killed)
    assert p.wait(timeout=600) == 0, p.stdout.read().decode()
    res = json.loads((killed / "result.json").read_text())
    assert at_kill <= res["resumed_epoch"] < EPOCHS  # it continued after a checkpoint, not from scratch
    assert (killed / "final.pt").read_bytes() == (whole / "final.pt").read_bytes()
    assert res["accuracy"] == json.loads((whole / "result.json").read_text())["accuracy"]


def test_a_checkpoint_of_another_run_is_ignored(tmp_path):
    """Another seed, other data or other settings: the checkpoint's fingerprint differs, training starts over."""
    from hapfpga.data import load_digits
    from hapfpga.runconfig import ModelConfig
    from hapfpga.train import FitSpec, fit
    from hapfpga.zoo import build_model

    ds = load_digits()
    x, y, ck = ds.x_train[:200], ds.y_train[:200], tmp_path / "ck.pt"

    def run(seed, spec=None, xs=x):
        m = build_model(ModelConfig(), ds.input_shape, ds.num_classes, seed=0)
        return fit(m, xs, y, spec or FitSpec(epochs=2), seed=seed, checkpoint=ck)[1]

    assert run(0) == 0 and ck.is_file()
    assert run(0) == 2  # the same run: found finished, nothing retrained
    assert run(1) == 0
    assert run(1, FitSpec(epochs=2, lr=0.002)) == 0
    assert run(1, FitSpec(epochs=2, lr=0.002), x * 0.5) == 0

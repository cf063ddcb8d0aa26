"""Acceptance: a multi-machine NSGA-II pruning search on a real PostgreSQL server.

A leader (``hapfpga prune``) and two ``hapfpga search-worker`` processes share one Optuna study; one worker is
killed with SIGKILL in the middle of a trial. Every trial must end complete, or failed and retried to completion;
a third process (``hapfpga search-front --json``) must see both workers' trials and the front of all of them; the
model artifact of every Pareto point must load from the shared folder and reproduce the accuracy its trial
reported.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")
optuna = pytest.importorskip("optuna")

REPO = Path(__file__).resolve().parents[2]
HAPFPGA = [sys.executable, "-m", "hapfpga.cli"]
TRIALS = 20  # enough that each worker starts several trials after the leader has published the problem


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _config(tmp: Path, url: str) -> Path:
    cfg = {
        "board": "pynq-z2", "seed": 0,
        "model": {"name": "digits_cnn", "weight_bits": 2, "act_bits": 2},
        "data": {"name": "digits"},
        "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "device": "cpu"},
        "pruning": {
            "method": "nsga2", "target": "budget", "max_accuracy_drop": 0.05, "sensitivity": False,
            "min_ratio": 0.25, "candidate_steps": 4, "finetune_epochs": 0.0,
            "nsga2": {"trials": TRIALS, "population": 4, "storage": url, "study_name": "acc",
                      "finetune_epochs": 0.5},
            "search": {"artifacts": str(tmp / "shared"), "heartbeat": 1, "grace": 3, "retries": 2},
        },
    }
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _trials(url: str) -> list:
    from hapfpga.pruning.nsga2 import open_study

    try:
        return open_study(url, "acc").get_trials(deepcopy=False)
    except Exception:  # the study does not exist yet
        return []


def _pid_of(t) -> int | None:
    w = t.user_attrs.get("worker")
    return int(w.rsplit(":", 1)[1]) if w else None


class _Tail:
    """Reads a process's merged output on a thread (so the test sees the worker's progress lines as they come)."""

    def __init__(self, p: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, args=(p,), daemon=True)
        self._t.start()

    def _read(self, p: subprocess.Popen) -> None:
        for raw in p.stdout:
            self.lines.append(raw.decode(errors="replace"))

    def text(self) -> str:
        self._t.join(timeout=10)
        return "".join(self.lines)[-3000:]


def _kill_in_second_trial(leader, victim, log: _Tail, url: str) -> int:
    """SIGKILL the victim inside a trial of its own once it has completed one; returns the killed trial's number.

    The victim is frozen (SIGSTOP) as soon as it reports its first trial done and then stepped in short slices
    until the database shows it holding a RUNNING trial, so a fast machine cannot let it finish unobserved.
    """
    from optuna.trial import TrialState

    deadline = time.time() + 1200  # the leader trains and converts with FINN first
    while not any("trial done (1 by this worker" in line for line in log.lines):
        for name, p in (("leader", leader), ("victim", victim)):
            assert p.poll() is None, f"{name} ended early:\n{log.text() if p is victim else ''}"
        assert time.time() < deadline, "the victim never completed a trial"
        time.sleep(0.01)
    while True:
        os.kill(victim.pid, signal.SIGSTOP)
        running = [t for t in _trials(url) if _pid_of(t) == victim.pid and t.state == TrialState.RUNNING]
        if running:
            os.kill(victim.pid, signal.SIGKILL)
            return running[0].number
        os.kill(victim.pid, signal.SIGCONT)
        assert victim.poll() is None, f"the victim left the study before a second trial:\n{log.text()}"
        assert time.time() < deadline, "the victim never started a second trial"
        time.sleep(0.02)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_two_workers_one_killed_mid_trial_on_postgresql(tmp_path, postgres_url):
    from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
    from optuna.trial import TrialState

    cfg = _config(tmp_path, postgres_url)
    out = {}
    leader = subprocess.Popen([*HAPFPGA, "prune", str(cfg), "--out", str(tmp_path / "leader")], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    workers = [subprocess.Popen([*HAPFPGA, "search-worker", str(cfg), "--storage", postgres_url, "--study", "acc",
                                 "--wait", "1200"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for _ in range(2)]
    victim, survivor = workers
    victim_log = _Tail(victim)
    try:
        killed_trial = _kill_in_second_trial(leader, victim, victim_log, postgres_url)
        assert victim.wait(timeout=60) == -signal.SIGKILL
        for name, p in (("leader", leader), ("survivor", survivor)):
            rc = p.wait(timeout=1200)
            out[name] = p.stdout.read().decode()
            assert rc == 0, f"{name} failed:\n{out[name][-3000:]}"
    finally:
        for p in (leader, *workers):
            if p.poll() is None:
                p.kill()

    trials = _trials(postgres_url)
    by_number = {t.number: t for t in trials}
    assert by_number[killed_trial].state == TrialState.FAIL
    for t in trials:  # every trial accounted for: complete, or failed and retried to completion
        assert t.state in (TrialState.COMPLETE, TrialState.FAIL), (t.number, t.state)
        if t.state == TrialState.FAIL:
            assert any(r.state == TrialState.COMPLETE and t.number in Retry.retry_history(r)
                       for r in trials), f"failed trial {t.number} was not retried to completion"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= TRIALS

    # a third process reads the front while nothing else runs
    res = subprocess.run([*HAPFPGA, "search-front", "--storage", postgres_url, "--study", "acc", "--json"],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    front = json.loads(res.stdout)
    seen_pids = {int(r["worker"].rsplit(":", 1)[1]) for r in front["complete"]}
    assert {victim.pid, survivor.pid} <= seen_pids
    assert len(front["complete"]) == len(complete)

    def dominated(a, b):  # b dominates a (accuracy up, fps up, LUT down)
        ka, kb = (a["accuracy"], a["fps"], -a["LUT"]), (b["accuracy"], b["fps"], -b["LUT"])
        return all(y >= x for x, y in zip(ka, kb, strict=True)) and ka != kb

    expect = sorted(r["trial"] for r in front["complete"] if not any(dominated(r, q) for q in front["complete"]))
    assert sorted(r["trial"] for r in front["front"]) == expect

    # every Pareto point's model loads from the shared folder and gives the accuracy its trial reported
    from hapfpga.data import load_digits, split_validation
    from hapfpga.pruning.workers import load_artifact
    from hapfpga.train import evaluate

    ds = load_digits()
    _, _, x_val, y_val = split_validation(ds.x_train, ds.y_train, 0.2, 0)
    for r in front["front"]:
        model = load_artifact(tmp_path / "shared", r["artifact"])
        assert evaluate(model, x_val, y_val) == pytest.approx(r["accuracy"], abs=1e-12), r
    assert (tmp_path / "leader" / "pruned.pt").is_file()

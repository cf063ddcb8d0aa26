"""Run models through the user path exactly as a user would, and judge the outcome.

A user writes a model file (``model.name: file.py:factory``), saves an ``.npz``, writes a config with a
``pruning:`` section and types ``hapfpga run cfg.yaml --out DIR``. :func:`run_user_config` does exactly that in a
subprocess (``nice``: the suite shares its machine) and returns a :class:`RunOutcome`: the exit status, the
CLI's stderr, the wall time and the run's ``report.json``. :func:`classify` sorts an outcome into the classes
the conformance property talks about (completed, refused before training, and everything that breaks it).

:func:`finn_estimate_of` builds any QONNX file (the run's unpruned ``baseline.qonnx.onnx``) through the CLI the
same way the run builds its final model (``hapfpga fold --max-fps`` then ``hapfpga build --folding``), so the
"FINN FPS before pruning" of a results row is FINN's own estimate report of the unpruned model, folded for the
same board by the same optimiser as the pruned one.

:func:`digits_npz` writes the small real data the suite runs on: scikit-learn's bundled 8×8 digits, upsampled
to the input shape of the model under test (1×28×28 for the MNIST models, 3×32×32 for the CIFAR-10 ones) on the
UINT8 grid the hardware sees, in the ``.npz`` layout ``hapfpga.data.load_npz`` reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
HAPFPGA = ["nice", "-n", "10", sys.executable, "-m", "hapfpga.cli"]

#: The outcome classes of :func:`classify`; only the first two satisfy the conformance property.
COMPLETED, REFUSED_EARLY = "completed", "refused_before_training"
INTERNAL, REFUSED_LATE, NOT_VERIFIED, NOT_FITTING, BAD_REFUSAL = (
    "internal_error", "refused_after_training", "verification_failed", "does_not_fit", "refusal_not_one_sentence")


@dataclass
class RunOutcome:
    """What ``hapfpga run`` did: exit status, stderr, wall time, the run directory and its report (if any)."""

    rc: int
    stdout: str
    stderr: str
    wall_s: float
    run_dir: Path
    report: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def error(self) -> str:
        """The one-sentence refusal (``hapfpga: error: ...``) or the tail of an internal error."""
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("hapfpga: ")]
        return lines[-1] if lines else self.stderr.strip()[-600:]

    @property
    def trained(self) -> bool:
        """Whether the train stage finished (its checkpoint exists): a refusal after that is not fail-fast."""
        return (self.run_dir / "baseline.pt").exists()


def run_user_config(cfg: dict[str, Any], work: Path, timeout: float = 3600) -> RunOutcome:
    """Write ``cfg`` to ``work/cfg.yaml`` and run ``hapfpga run`` on it into ``work/run`` (a fresh directory)."""
    work.mkdir(parents=True, exist_ok=True)
    cfg_path, run_dir = work / "cfg.yaml", work / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.monotonic()
    proc = subprocess.run([*HAPFPGA, "run", str(cfg_path), "--out", str(run_dir)], cwd=work, env=_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.monotonic() - t0
    rep_path = run_dir / "report.json"
    report = json.loads(rep_path.read_text()) if proc.returncode == 0 and rep_path.is_file() else None
    return RunOutcome(proc.returncode, proc.stdout, proc.stderr, wall, run_dir, report)


def _env() -> dict[str, str]:
    """The caller's environment with this checkout first on ``PYTHONPATH`` (the CLI must run this code)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def one_sentence(msg: str) -> bool:
    """A refusal as the project promises it: ``hapfpga: error: <one sentence ending in a full stop>``."""
    if not msg.startswith("hapfpga: error:"):
        return False
    body = msg[len("hapfpga: error:"):].strip()
    return bool(body) and body.endswith(".") and "Traceback" not in body


def classify(out: RunOutcome) -> str:
    """Which class of the conformance property the outcome falls in (see the module constants)."""
    if out.rc == 0:
        rep = out.report or {}
        if not rep.get("verification", {}).get("passed"):
            return NOT_VERIFIED
        return COMPLETED if rep.get("finn_estimate", {}).get("fits") else NOT_FITTING
    if out.rc != 2:
        return INTERNAL
    if not one_sentence(out.error):
        return BAD_REFUSAL
    return REFUSED_LATE if out.trained else REFUSED_EARLY


#: the first words of ``hapfpga fold``'s one-sentence refusal when not even the cheapest folding fits the board
NO_FIT = "No legal folding fits the budget"


def finn_estimate_of(onnx: Path, board: str, work: Path, timeout: float = 1800) -> dict[str, Any]:
    """FINN's estimate report (``build.json``'s ``finn_estimate``) of ``onnx`` folded ``--max-fps`` for ``board``.

    A model that does not fit the board at all (``hapfpga fold`` refuses with exit 2: not even the cheapest legal
    folding fits) has no FPS: ``{"fits": False, "fps": None, "refusal": <the sentence>}``. Any other failure
    is an assertion."""
    work.mkdir(parents=True, exist_ok=True)
    fold, out = work / "folding.json", work / "build"
    shutil.rmtree(out, ignore_errors=True)
    for argv in (["fold", str(onnx), "--board", board, "--max-fps", "--out", str(fold), "--work-dir", str(work / "fw")],
                 ["build", str(onnx), "--board", board, "--folding", str(fold), "--no-codegen", "--out", str(out)]):
        proc = subprocess.run([*HAPFPGA, *argv], cwd=work, env=_env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if proc.returncode == 2 and argv[0] == "fold" and NO_FIT in proc.stderr:
            return {"fits": False, "fps": None, "refusal": proc.stderr.strip().removeprefix("hapfpga: error: ")}
        if proc.returncode != 0:
            raise AssertionError(f"hapfpga {argv[0]} of {onnx.name} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return json.loads((out / "build.json").read_text())["finn_estimate"]


# -- data ------------------------------------------------------------------------------------------------


def digits_images(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits as C×H×W float32 images on the UINT8 grid: nearest-neighbour upsampling by the
    largest integer factor that fits, centred by zero padding, the grey channel repeated to C channels."""
    from sklearn.datasets import load_digits

    c, h, w = shape
    d = load_digits()
    x = (d.images.astype(np.float64) / 16.0)[:, None, :, :]
    r = min(h, w) // 8
    x = x.repeat(r, axis=2).repeat(r, axis=3)
    ph, pw = h - 8 * r, w - 8 * r
    x = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    x = np.repeat(x, c, axis=1)
    k = np.clip(np.rint(x * 255.0), 0, 255).astype(np.float32)
    return (k * np.float32(1.0 / 255.0)).astype(np.float32), d.target.astype(np.int64)


def digits_npz(path: Path, shape: tuple[int, ...], n_train: int, n_test: int, seed: int = 0) -> Path:
    """Save a stratified-enough random split of :func:`digits_images` (``n_train`` + ``n_test`` samples)."""
    x, y = digits_images(shape)
    idx = np.random.default_rng(seed).permutation(len(x))
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te])
    return path


# -- results rows ----------------------------------------------------------------------------------------


def results_dir(default: Path) -> Path:
    """Where results rows go: ``$HAPFPGA_CONFORMANCE_RESULTS`` if set (for the README table), else ``default``."""
    d = Path(os.environ.get("HAPFPGA_CONFORMANCE_RESULTS") or default)
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_row(folder: Path, name: str, row: dict[str, Any]) -> Path:
    """One JSON row per member (``benchmarks/conformance_table.py`` turns a folder of them into the table)."""
    p = folder / f"{name}.json"
    p.write_text(json.dumps(row, indent=1, sort_keys=True))
    return p

"""``pruning.finetune_patience`` through the prune stage on sklearn digits (real training, real pruning; the
analytic FPS model of tests/pruning/conftest.py stands in for FINN's so the test stays fast): the long fine-tunes
of the hardware-aware search stop where the validation curve is flat, the stage says so, and the accuracy rule
still holds for what it delivers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.data import load_digits  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune  # noqa: E402

from .conftest import make_digits_net, pipeline_hw  # noqa: E402


@pytest.fixture(scope="module")
def trained_digits():
    ds = load_digits()
    torch.manual_seed(0)
    m = make_digits_net()
    finetune(m, ds.x_train, ds.y_train, FinetuneConfig(epochs=3, lr=3e-3, batch_size=128), seed=0)
    return m, ds


def test_the_search_s_long_finetunes_stop_on_a_flat_curve_and_the_rule_still_holds(trained_digits, tmp_path):
    model, ds = trained_digits
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.02, "step_accuracy_drop": 0.3,
           "step_finetune_epochs": 0.2, "finetune_epochs": 12.0, "finetune_patience": 1.0, "sensitivity": False,
           "min_ratio": 0.25, "candidate_steps": 2, "max_steps": 3, "lr": 1e-3, "on_step_drop": "reject",
           "final_weights": "reprune"}
    m, r = run_pruning_stage(cfg, model, ds, HwTarget(predictor=pipeline_hw), tmp_path / "on", seed=0)
    log = (tmp_path / "on" / "pruning" / "search.log").read_text()
    stops = [ln for ln in log.splitlines() if ln.startswith("fine-tune stopped after")]
    assert stops, log  # at least one 12-epoch fine-tune went flat and stopped
    assert all(float(ln.split()[3]) < 12.0 for ln in stops)
    assert r["backtrack"] and r["accuracy_val"]["before"] - r["accuracy_val"]["after"] <= 0.02 + 1e-12
    assert r["fps_after"] >= r["fps_before"]
    # off: no early stop, every long fine-tune runs its 12 epochs
    _, r_off = run_pruning_stage({**cfg, "finetune_patience": None}, model, ds, HwTarget(predictor=pipeline_hw),
                                 tmp_path / "off", seed=0)
    assert "fine-tune stopped" not in (tmp_path / "off" / "pruning" / "search.log").read_text()
    assert r_off["history"] == r["history"]  # the greedy walk (short step fine-tunes) is the same either way
    assert np.isfinite(r_off["accuracy"]["after"])

"""The prune stage's backtracking judges candidates by the paired test of ``pruning.selection`` (real training,
real pruning on sklearn digits; an analytic FPS model keeps it fast, as in test_stage.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")
nn = torch.nn

from hapfpga.data import split_validation  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.search import HwPoint  # noqa: E402
from hapfpga.pruning.selection import Paired, meets_rule  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune, predict  # noqa: E402
from hapfpga.types import Resources  # noqa: E402


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.c1 = qnn.QuantConv2d(1, 16, 3, padding=1, bias=False, weight_bit_width=2)
        self.b1 = nn.BatchNorm2d(16)
        self.a1 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.c2 = qnn.QuantConv2d(16, 16, 3, padding=1, bias=False, weight_bit_width=2)
        self.b2 = nn.BatchNorm2d(16)
        self.a2 = qnn.QuantReLU(bit_width=2, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(16 * 16, 10, bias=True, weight_bit_width=2)

    def forward(self, x):
        x = self.a1(self.b1(self.c1(self.inp(x))))
        x = self.pool(self.a2(self.b2(self.c2(x))))
        return self.fc(x.flatten(1))


def _hw(counts):
    cycles = {"c1": counts["c1"] * 36, "c2": counts["c2"] * counts["c1"] * 4.5, "fc": 10 * counts["c2"]}
    return HwPoint(fps=1e8 / max(cycles.values()), resources=Resources(LUT=50.0 * (counts["c1"] + counts["c2"])),
                   fits=True)


@pytest.fixture(scope="module")
def setup():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    p = np.random.default_rng(0).permutation(len(x))
    x, y = x[p], y[p]
    data = SimpleNamespace(x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:],
                           input_shape=(1, 8, 8), num_classes=10, name="digits")
    torch.manual_seed(0)
    m = _Net()
    finetune(m, data.x_train, data.y_train, FinetuneConfig(epochs=3, lr=3e-3, batch_size=128), seed=0)
    return m, data


def _correct(model, x, y):
    return predict(model.eval(), x).argmax(axis=1) == y


def test_backtracking_keeps_the_fastest_candidate_the_paired_test_accepts(setup, tmp_path):
    """Every tried candidate's paired counts are in the report and are the real ones (recomputed from the
    delivered model on the run's validation split); the kept design passes the paired test at the configured
    confidence and every faster candidate tried fails it, whatever the point rule says of them."""
    model, data = setup
    conf, rule = 0.9, 0.02
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": rule, "step_accuracy_drop": 0.5,
           "step_finetune_epochs": 0.1, "finetune_epochs": 0.5, "sensitivity": False, "min_ratio": 0.125,
           "candidate_steps": 4, "max_steps": 6, "lr": 2e-3, "final_weights": "reprune",
           "selection": {"confidence": conf}}
    pruned, r = run_pruning_stage(cfg, model, data, HwTarget(predictor=_hw), tmp_path, seed=0)
    _, _, x_val, y_val = split_validation(data.x_train, data.y_train, 0.2, 0)
    tried = {b["step"]: b for b in r["backtrack"]}
    assert tried and all({"lost", "gained", "n_val", "drop_bound"} <= set(b) for b in tried.values())
    verdict = {k: meets_rule(Paired(b["n_val"], b["lost"], b["gained"]), rule, conf) for k, b in tried.items()}
    chosen_fps = r["fps_after"]
    assert all(not verdict[k] for k, b in tried.items() if b["fps"] > chosen_fps)
    assert all(b["drop_bound"] > rule for k, b in tried.items() if not verdict[k])
    if chosen_fps > r["fps_before"]:
        k = next(k for k, b in tried.items() if b["fps"] == chosen_fps)
        assert verdict[k]
        p = Paired.of(_correct(model, x_val, y_val), _correct(pruned, x_val, y_val))
        assert (p.n, p.lost, p.gained) == (tried[k]["n_val"], tried[k]["lost"], tried[k]["gained"])
    log = (tmp_path / "pruning" / "search.log").read_text()
    assert "selection: step" in log


@pytest.mark.slow
def test_confidence_one_half_keeps_the_point_rule_and_adds_no_paired_rows(setup, tmp_path):
    """``selection.confidence: 0.5``: the backtracking decides by the observed drop, as before issue 24."""
    model, data = setup
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.02, "step_accuracy_drop": 0.5,
           "step_finetune_epochs": 0.1, "finetune_epochs": 0.5, "sensitivity": False, "min_ratio": 0.125,
           "candidate_steps": 4, "max_steps": 6, "lr": 2e-3, "selection": {"confidence": 0.5}}
    _, r = run_pruning_stage(cfg, model, data, HwTarget(predictor=_hw), tmp_path, seed=0)
    acc0 = r["accuracy_val"]["before"]
    tried = r["backtrack"]
    assert tried and all("lost" not in b for b in tried)
    assert all(acc0 - b["accuracy_val_final"] > 0.02 for b in tried if b["fps"] > r["fps_after"])

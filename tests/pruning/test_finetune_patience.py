"""``pruning.finetune_patience`` through the prune stage on sklearn digits (real training, real pruning; an analytic
FPS model stands in for FINN's so the test stays fast): the long fine-tunes of the hardware-aware search stop where
the validation curve is flat, the stage says so, and the accuracy rule still holds for what it delivers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")
nn = torch.nn

from hapfpga.data import load_digits  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.search import HwPoint  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune  # noqa: E402
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
    """A dataflow pipeline at a fixed PE·SIMD budget: FPS = clock / the slowest layer's cycles."""
    c1, c2 = counts["c1"], counts["c2"]
    cycles = {"c1": c1 * 9 * 64 / 16, "c2": c2 * c1 * 9 * 64 / 16 / 8, "fc": 10 * c2 * 16 / 16}
    return HwPoint(fps=1e8 / max(cycles.values()), resources=Resources(LUT=50.0 * (c1 + c2)), fits=True)


@pytest.fixture(scope="module")
def trained_digits():
    ds = load_digits()
    torch.manual_seed(0)
    m = _Net()
    finetune(m, ds.x_train, ds.y_train, FinetuneConfig(epochs=3, lr=3e-3, batch_size=128), seed=0)
    return m, ds


def test_the_search_s_long_finetunes_stop_on_a_flat_curve_and_the_rule_still_holds(trained_digits, tmp_path):
    model, ds = trained_digits
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.02, "step_accuracy_drop": 0.3,
           "step_finetune_epochs": 0.2, "finetune_epochs": 6.0, "finetune_patience": 1.0, "sensitivity": False,
           "min_ratio": 0.25, "candidate_steps": 2, "max_steps": 3, "lr": 1e-3, "on_step_drop": "reject",
           "final_weights": "reprune"}
    m, r = run_pruning_stage(cfg, model, ds, HwTarget(predictor=_hw), tmp_path / "on", seed=0)
    log = (tmp_path / "on" / "pruning" / "search.log").read_text()
    stops = [ln for ln in log.splitlines() if ln.startswith("fine-tune stopped after")]
    assert stops, log  # at least one 6-epoch fine-tune went flat and stopped
    assert all(float(ln.split()[3]) < 6.0 for ln in stops)
    assert r["backtrack"] and r["accuracy_val"]["before"] - r["accuracy_val"]["after"] <= 0.02 + 1e-12
    assert r["fps_after"] >= r["fps_before"]
    # off: no early stop, every long fine-tune runs its 6 epochs
    _, r_off = run_pruning_stage({**cfg, "finetune_patience": None}, model, ds, HwTarget(predictor=_hw),
                                 tmp_path / "off", seed=0)
    assert "fine-tune stopped" not in (tmp_path / "off" / "pruning" / "search.log").read_text()
    assert r_off["history"] == r["history"]  # the greedy walk (short step fine-tunes) is the same either way
    assert np.isfinite(r_off["accuracy"]["after"])

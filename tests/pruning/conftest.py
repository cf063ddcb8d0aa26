"""The digits set-up the pruning-stage tests share (test_stage.py, test_selection_stage.py): a small Brevitas CNN
trained on sklearn digits, and an analytic FPS model of its dataflow pipeline.

Torch and Brevitas are imported inside the helpers, so the pure pruning tests of this folder collect without them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hapfpga.pruning.search import HwPoint
from hapfpga.types import Resources


def make_digits_net():
    """A fresh, untrained DigitsNet: 8-bit input, conv 16 -> conv 16 (w2a2, 3x3, BatchNorm) -> max-pool -> FC 10."""
    import brevitas.nn as qnn
    import torch.nn as nn

    class DigitsNet(nn.Module):
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

    return DigitsNet()


def pipeline_hw(counts):
    """c2 is the bottleneck (16·9 inputs × 64 positions per output channel); PE·SIMD budget fixed at 16."""
    c1, c2 = counts["c1"], counts["c2"]
    cycles = {"c1": c1 * 9 * 64 / 16, "c2": c2 * c1 * 9 * 64 / 16 / 8, "fc": 10 * c2 * 16 / 16}
    return HwPoint(fps=1e8 / max(cycles.values()), resources=Resources(LUT=50.0 * (c1 + c2)), fits=True)


@pytest.fixture(scope="module")
def digits():
    """sklearn digits (8x8, scaled to [0, 1]), shuffled with seed 0: 1,400 training images, 397 test images."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    p = rng.permutation(len(x))
    x, y = x[p], y[p]
    n = 1400
    return SimpleNamespace(x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:], input_shape=(1, 8, 8),
                           num_classes=10, name="digits")


@pytest.fixture(scope="module")
def trained(digits):
    """DigitsNet trained 3 epochs on ``digits`` (seed 0)."""
    import torch

    from hapfpga.train import FinetuneConfig, finetune

    torch.manual_seed(0)
    m = make_digits_net()
    finetune(m, digits.x_train, digits.y_train, FinetuneConfig(epochs=3, lr=3e-3, batch_size=128), seed=0)
    return m

"""Small Brevitas models of every graph kind the pruner must handle (built here, independent of the zoo).

* :class:`Separable` — conv → depthwise conv → pointwise conv (MobileNet's block): the depthwise conv's channels
  are its producer's, so pruning ``c0`` removes the same depthwise channels and changes ``groups``.
* :class:`Residual` — a ResNet basic block with a 1×1 shortcut conv, a shared ``QuantIdentity`` before a
  ``QuantEltwiseAdd``: ``c2`` and the shortcut ``sc`` must keep the same channels.
* :class:`IdentityResidual` — the same block with an identity shortcut: the block's convs are coupled to the
  stem.
* :class:`Conv1dNet` — ``QuantConv1d`` / ``BatchNorm1d`` / ``MaxPool1d`` on N×C×L signals.
* :class:`Mlp` — FC only (``QuantLinear`` / ``BatchNorm1d``).

``input_shape`` is each class's input without the batch dimension; every model ends in a classifier of
``classes`` outputs (not prunable). All are FINN-convertible shapes apart from the residual ones, which need the
fork/join streamlining of the generality issue.
"""

from __future__ import annotations

from types import SimpleNamespace

import brevitas.nn as qnn
import numpy as np
import torch
import torch.nn as nn

BITS = 4


def _act() -> nn.Module:
    return qnn.QuantReLU(bit_width=BITS, return_quant_tensor=True)


def _conv(cin: int, cout: int, k: int, **kw) -> nn.Module:
    return qnn.QuantConv2d(cin, cout, k, bias=False, weight_bit_width=BITS, **kw)


class _Net(nn.Module):
    input_shape: tuple[int, ...] = ()
    classes = 5

    def inp(self, x):
        """The zoo's convention: float pixels on the k/255 grid, UINT8 in hardware (``hapfpga.export``)."""
        return x


class Separable(_Net):
    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.c0 = _conv(3, 16, 3, padding=1)
        self.b0, self.a0 = nn.BatchNorm2d(16), _act()
        self.dw = _conv(16, 16, 3, padding=1, groups=16)
        self.b1, self.a1 = nn.BatchNorm2d(16), _act()
        self.pw = _conv(16, 24, 1)
        self.b2, self.a2 = nn.BatchNorm2d(24), _act()
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(24 * 4 * 4, self.classes, bias=False, weight_bit_width=BITS)

    def forward(self, x):
        x = self.a0(self.b0(self.c0(self.inp(x))))
        x = self.a1(self.b1(self.dw(x)))
        x = self.a2(self.b2(self.pw(x)))
        return self.fc(self.pool(x).flatten(1))


class Residual(_Net):
    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.c0 = _conv(3, 8, 3, padding=1)
        self.b0, self.a0 = nn.BatchNorm2d(8), _act()
        self.c1 = _conv(8, 16, 3, padding=1)
        self.b1, self.a1 = nn.BatchNorm2d(16), _act()
        self.c2 = _conv(16, 16, 3, padding=1)
        self.b2 = nn.BatchNorm2d(16)
        self.sc = _conv(8, 16, 1)
        self.bs = nn.BatchNorm2d(16)
        self.q = qnn.QuantIdentity(bit_width=BITS, return_quant_tensor=True)  # shared by both add inputs
        self.add = qnn.QuantEltwiseAdd(return_quant_tensor=True)
        self.a2 = _act()
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(16 * 4 * 4, self.classes, bias=False, weight_bit_width=BITS)

    def forward(self, x):
        x = self.a0(self.b0(self.c0(self.inp(x))))
        y = self.q(self.b2(self.c2(self.a1(self.b1(self.c1(x))))))
        y = self.a2(self.add(y, self.q(self.bs(self.sc(x)))))
        return self.fc(self.pool(y).flatten(1))


class IdentityResidual(_Net):
    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.c0 = _conv(3, 12, 3, padding=1)
        self.b0 = nn.BatchNorm2d(12)
        self.q = qnn.QuantIdentity(bit_width=BITS, return_quant_tensor=True)
        self.c1 = _conv(12, 8, 3, padding=1)
        self.b1, self.a1 = nn.BatchNorm2d(8), _act()
        self.c2 = _conv(8, 12, 3, padding=1)
        self.b2 = nn.BatchNorm2d(12)
        self.add = qnn.QuantEltwiseAdd(return_quant_tensor=True)
        self.a2 = _act()
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(12 * 4 * 4, self.classes, bias=False, weight_bit_width=BITS)

    def forward(self, x):
        x = self.q(self.b0(self.c0(self.inp(x))))
        y = self.q(self.b2(self.c2(self.a1(self.b1(self.c1(x))))))
        y = self.a2(self.add(x, y))
        return self.fc(self.pool(y).flatten(1))


class Conv1dNet(_Net):
    input_shape = (2, 32)

    def __init__(self) -> None:
        super().__init__()
        self.c0 = qnn.QuantConv1d(2, 8, 3, bias=False, weight_bit_width=BITS)
        self.b0, self.a0 = nn.BatchNorm1d(8), _act()
        self.p0 = nn.MaxPool1d(2)
        self.c1 = qnn.QuantConv1d(8, 12, 3, bias=False, weight_bit_width=BITS)
        self.b1, self.a1 = nn.BatchNorm1d(12), _act()
        self.fc = qnn.QuantLinear(12 * 13, self.classes, bias=False, weight_bit_width=BITS)

    def forward(self, x):
        x = self.p0(self.a0(self.b0(self.c0(self.inp(x)))))
        x = self.a1(self.b1(self.c1(x)))
        return self.fc(x.flatten(1))


class Mlp(_Net):
    input_shape = (20,)

    def __init__(self) -> None:
        super().__init__()
        self.fc0 = qnn.QuantLinear(20, 32, bias=False, weight_bit_width=BITS)
        self.b0, self.a0 = nn.BatchNorm1d(32), _act()
        self.fc1 = qnn.QuantLinear(32, 24, bias=False, weight_bit_width=BITS)
        self.b1, self.a1 = nn.BatchNorm1d(24), _act()
        self.fc2 = qnn.QuantLinear(24, self.classes, bias=False, weight_bit_width=BITS)

    def forward(self, x):
        x = self.a0(self.b0(self.fc0(self.inp(x))))
        x = self.a1(self.b1(self.fc1(x)))
        return self.fc2(x)


GRAPH_MODELS = {c.__name__: c for c in (Separable, Residual, IdentityResidual, Conv1dNet, Mlp)}


def build(name: str, seed: int = 0) -> nn.Module:
    """``GRAPH_MODELS[name]`` with seeded weights and BN statistics that are not the identity."""
    torch.manual_seed(seed)
    m = GRAPH_MODELS[name]()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m.eval()


def random_data(shape: tuple[int, ...], n: int = 96, classes: int = 5) -> SimpleNamespace:
    """A seeded random dataset in the pruning stage's shape (inputs in [0, 1], the first 32 samples as test)."""
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, size=(n, *shape)) / 255.0).astype(np.float32)
    y = rng.integers(0, classes, size=n).astype(np.int64)
    return SimpleNamespace(x_train=x, y_train=y, x_test=x[:32], y_test=y[:32], input_shape=shape,
                           num_classes=classes, name="random")

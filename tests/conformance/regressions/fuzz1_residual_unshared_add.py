"""Fuzzer seed 1, shrunk to one residual block (a user model file): the two inputs of the add go through two
different QuantReLUs, so they keep different scales — a user mistake FINN cannot build. On main (2026-12-06)
the pre-training check exported the model and Brevitas raised "RuntimeError: Scaling factors are different"
inside it: exit 1 (internal error) instead of one sentence naming the add and the fix (one shared quantiser on
both inputs, as Brevitas' QuantBasicBlock does; issue 21, capability 4)."""

import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU

SHAPE = (1, 8, 8)
CLASSES = 4


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv = QuantConv2d(1, 4, 3, stride=2, padding=1, bias=False, weight_bit_width=3)
        self.conv_bn = nn.BatchNorm2d(4)
        self.join = QuantReLU(bit_width=2, return_quant_tensor=True)
        self.short = QuantConv2d(1, 4, 1, stride=2, padding=0, bias=False, weight_bit_width=4)
        self.short_bn = nn.BatchNorm2d(4)
        self.join_short = QuantReLU(bit_width=2, return_quant_tensor=True)
        self.out = QuantReLU(bit_width=2)
        self.classifier = QuantLinear(64, num_classes, bias=False, weight_bit_width=2)

    def forward(self, x):
        y = self.join(self.conv_bn(self.conv(x)))
        x = self.join_short(self.short_bn(self.short(x)))
        x = self.out(y + x)
        return self.classifier(x.flatten(1))


def make(input_shape, num_classes):
    return Net(num_classes)

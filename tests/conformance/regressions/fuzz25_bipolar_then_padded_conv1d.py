"""Fuzzer seed 25, shrunk (a user model file): a 1D conv whose bipolar (1-bit signed) activation feeds a
zero-padded conv. On main (2026-12-06) FINN converted it before training without complaint, the run trained and
pruned, and verification then failed at finn_streamlined (max difference 15 integer units: FINN pads the BINARY
code of the bipolar tensor with 0, i.e. with -1): a refusal after minutes of training. It is now refused before
training, naming layer 'b1' (hapfpga/bipolar_pad.py)."""

import torch.nn as nn
from brevitas.nn import QuantConv1d, QuantIdentity, QuantLinear
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

SHAPE = (1, 16)
CLASSES = 4


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.b0 = QuantConv1d(1, 12, 1, stride=2, padding=0, bias=False, weight_bit_width=4)
        self.b0_bn = nn.BatchNorm1d(12)
        self.b0_act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        self.b1 = QuantConv1d(12, 16, 3, stride=1, padding=1, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.b1_bn = nn.BatchNorm1d(16)
        self.b1_act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        self.classifier = QuantLinear(128, num_classes, bias=False, weight_bit_width=4)

    def forward(self, x):
        x = self.b0_act(self.b0_bn(self.b0(x)))
        x = self.b1_act(self.b1_bn(self.b1(x)))
        return self.classifier(x.flatten(1))


def make(input_shape, num_classes):
    return Net(num_classes)

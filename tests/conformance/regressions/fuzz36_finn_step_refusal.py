"""Fuzzer seed 36 (2D 1x8x8: conv8/k1s1p0[w1a2] dws16/k3s2p1[w12a32] dws12/k3s1p1[w72a13]; in8, nn.Flatten, fc32).
FINN's step_convert_to_hw refuses it ("MultiThreshold_4: out_scale must be equal to 1.0 for HLS conversion"); on
main (2026-12-06) the refusal said only "step step_convert_to_hw failed" and left FINN's reason in the build log.
The refusal must quote FINN's reason (tests/conformance/test_fuzz.py::test_a_finn_step_refusal_quotes_finn)."""

import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

SHAPE = (1, 8, 8)
CLASSES = 10


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.b0 = QuantConv2d(1, 8, 1, stride=1, padding=0, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.b0_bn = nn.BatchNorm2d(8)
        self.b0_act = QuantReLU(bit_width=2)
        self.b1_dw = QuantConv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.b1_dw_bn = nn.BatchNorm2d(8)
        self.b1_dw_act = QuantReLU(bit_width=3)
        self.b1_pw = QuantConv2d(8, 16, 1, stride=1, padding=0, bias=False, weight_bit_width=2)
        self.b1_pw_bn = nn.BatchNorm2d(16)
        self.b1_pw_act = QuantReLU(bit_width=2)
        self.b2_dw = QuantConv2d(16, 16, 3, stride=1, padding=1, groups=16, bias=False, weight_bit_width=7)
        self.b2_dw_bn = nn.BatchNorm2d(16)
        self.b2_dw_act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
        self.b2_pw = QuantConv2d(16, 12, 1, stride=1, padding=0, bias=False, weight_bit_width=2)
        self.b2_pw_bn = nn.BatchNorm2d(12)
        self.b2_pw_act = QuantReLU(bit_width=3)
        self.flatten = nn.Flatten()
        self.fc = QuantLinear(192, 32, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.fc_bn = nn.BatchNorm1d(32)
        self.fc_act = QuantReLU(bit_width=4)
        self.classifier = QuantLinear(32, num_classes, bias=False, weight_bit_width=2)

    def forward(self, x):
        x = self.inp(x)
        x = self.b0_act(self.b0_bn(self.b0(x)))
        x = self.b1_dw_act(self.b1_dw_bn(self.b1_dw(x)))
        x = self.b1_pw_act(self.b1_pw_bn(self.b1_pw(x)))
        x = self.b2_dw_act(self.b2_dw_bn(self.b2_dw(x)))
        x = self.b2_pw_act(self.b2_pw_bn(self.b2_pw(x)))
        x = self.flatten(x)
        x = self.fc_act(self.fc_bn(self.fc(x)))
        x = self.classifier(x)
        return x


def make(input_shape, num_classes):
    assert tuple(input_shape) == (1, 8, 8), input_shape
    return Net(num_classes)

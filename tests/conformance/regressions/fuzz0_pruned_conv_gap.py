"""Fuzzer seed 0, kept as a regression (a user model file as the fuzzer writes it): one 5×5 conv, Brevitas'
TruncAvgPool2d over the whole map, nn.Flatten, a classifier. The greedy max_fps search removes conv channels
(8 -> 6); on main (2026-12-06) the export stage then rebuilt the model from the factory at its original width and
load_state_dict failed: exit 1, "size mismatch for b0.weight ... [6, 3, 5, 5] ... [8, 3, 5, 5]" (issue 21,
capability 1: pruned models of any origin persist and reload)."""

import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU, TruncAvgPool2d
from brevitas.quant import TruncTo8bit

SHAPE = (3, 12, 12)
CLASSES = 4


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.b0 = QuantConv2d(3, 8, 5, stride=1, padding=2, bias=False, weight_bit_width=6)
        self.b0_bn = nn.BatchNorm2d(8)
        self.b0_act = QuantReLU(bit_width=8, return_quant_tensor=True)
        self.gpool = TruncAvgPool2d(kernel_size=12, trunc_quant=TruncTo8bit, float_to_int_impl_type='FLOOR')
        self.flatten = nn.Flatten()
        self.classifier = QuantLinear(8, num_classes, bias=False, weight_bit_width=7)

    def forward(self, x):
        x = self.b0_act(self.b0_bn(self.b0(x)))
        x = self.gpool(x)
        x = self.flatten(x)
        return self.classifier(x)


def make(input_shape, num_classes):
    return Net(num_classes)

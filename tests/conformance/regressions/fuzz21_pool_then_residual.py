"""Fuzzer seeds 15, 21 and 39, shrunk (2D 1x8x8: an 8-bit input quantiser, a conv and a 2x max-pool whose output
forks into a residual block with a 1x1 shortcut, torch.flatten into a QuantLinear over the 4x4 map).

On main (2026-12-06) refused before training: "FINN node Shuffle_0 (Shuffle) is not a layer kind the estimator
models ... use the layers of the zoo's models". Two causes, both in FINN's own step_streamline on a fork:
finn-plus 1.6.1's MakeMaxPoolNHWC swaps a MaxPool only with its first consumer Transpose, so the other branch's
Transpose read the swapped, unpooled tensor (a wrong graph, and a Shuffle); and each branch's convolution kept its
own NCHW->NHWC Transpose of the forked tensor (seed 15: of the input quantiser's output). step_streamline_forks now
gives each branch its own MaxPool (FINN's MoveOpPastFork) and step_streamline_fork_layouts merges the identical
MaxPools and Transposes again (hapfpga/finn/streamline.py).

PRUNING: uniform pruning removes channels of the conv, the block and the flattened FC's inputs."""

import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

SHAPE = (1, 8, 8)
CLASSES = 10
PRUNING = {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 0.25}


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.stem = QuantConv2d(1, 8, 3, stride=1, padding=1, bias=False, weight_bit_width=4)
        self.stem_bn = nn.BatchNorm2d(8)
        self.stem_act = QuantReLU(bit_width=3)
        self.stem_pool = nn.MaxPool2d(2)
        self.b0_conv1 = QuantConv2d(8, 8, 3, stride=1, padding=1, bias=False, weight_bit_width=3)
        self.b0_conv1_bn = nn.BatchNorm2d(8)
        self.b0_act1 = QuantReLU(bit_width=3)
        self.b0_conv2 = QuantConv2d(8, 8, 3, stride=1, padding=1, bias=False, weight_bit_width=3)
        self.b0_conv2_bn = nn.BatchNorm2d(8)
        self.b0_short = QuantConv2d(8, 8, 1, stride=1, padding=0, bias=False, weight_bit_width=4)
        self.b0_short_bn = nn.BatchNorm2d(8)
        self.b0_join = QuantReLU(bit_width=4, return_quant_tensor=True)  # one quantiser on both inputs of the add
        self.b0_out = QuantReLU(bit_width=3)
        self.classifier = QuantLinear(8 * 4 * 4, num_classes, bias=False, weight_bit_width=3)

    def forward(self, x):
        x = self.inp(x)
        x = self.stem_pool(self.stem_act(self.stem_bn(self.stem(x))))
        y = self.b0_act1(self.b0_conv1_bn(self.b0_conv1(x)))
        y = self.b0_join(self.b0_conv2_bn(self.b0_conv2(y)))
        x = self.b0_join(self.b0_short_bn(self.b0_short(x)))
        x = self.b0_out(y + x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def make(input_shape, num_classes):
    assert tuple(input_shape) == SHAPE, input_shape
    return Net(num_classes)

"""Fuzzer seed 8, shrunk (2D 3x12x12: one residual block straight on the input, no input quantiser, a 3-bit
activation under a 12x12 TruncAvgPool2d). Two FINN gaps, both found by this seed:

1. On main (2026-12-06) it was refused before training: "FINN node Shuffle_0 (Shuffle) is not a layer kind the
   estimator models ... use the layers of the zoo's models". The input forks into the block's 3x3 conv and its 1x1
   shortcut; qonnx's LowerConvsToMatMul gives each its own NCHW->NHWC Transpose of the input, which FINN built as
   a DuplicateStreams and two Shuffle frame buffers. step_streamline_fork_layouts now merges identical sibling
   Transposes (hapfpga/finn/streamline.py: merge_identical_siblings): one input transpose, done by the driver.
2. Built, it failed verification after training: finn-plus's TruncAvgPool2d conversion recovers the pool's input
   width as floor(log2(2^10/144)) = 2 bits instead of 3 and shifts by 1 instead of 2 (twice Brevitas' average).
   step_hap_avgpool_shift (hapfpga/finn/avgpool.py) sets the width that gives Brevitas' shift.

PRUNING: uniform pruning removes channels (the fuzzer's max_fps search keeps them all: the input sliding window
bounds the FPS), so the pruned residual graph is verified bit-exact too."""

import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantLinear, QuantReLU, TruncAvgPool2d
from brevitas.quant import SignedBinaryWeightPerTensorConst, TruncTo8bit

SHAPE = (3, 12, 12)
CLASSES = 4
PRUNING = {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 0.25}


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.b0_conv1 = QuantConv2d(3, 8, 3, stride=1, padding=1, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
        self.b0_conv1_bn = nn.BatchNorm2d(8)
        self.b0_act1 = QuantReLU(bit_width=2)
        self.b0_conv2 = QuantConv2d(8, 8, 3, stride=1, padding=1, bias=False, weight_bit_width=2)
        self.b0_conv2_bn = nn.BatchNorm2d(8)
        self.b0_short = QuantConv2d(3, 8, 1, stride=1, padding=0, bias=False, weight_bit_width=8)
        self.b0_short_bn = nn.BatchNorm2d(8)
        self.b0_join = QuantReLU(bit_width=4, return_quant_tensor=True)  # one quantiser on both inputs of the add
        self.b0_out = QuantReLU(bit_width=3, return_quant_tensor=True)
        self.gpool = TruncAvgPool2d(kernel_size=12, trunc_quant=TruncTo8bit, float_to_int_impl_type='FLOOR')
        self.classifier = QuantLinear(8, num_classes, bias=False, weight_bit_width=3)

    def forward(self, x):
        y = self.b0_act1(self.b0_conv1_bn(self.b0_conv1(x)))
        y = self.b0_join(self.b0_conv2_bn(self.b0_conv2(y)))
        x = self.b0_join(self.b0_short_bn(self.b0_short(x)))
        x = self.b0_out(y + x)
        x = self.gpool(x)
        x = x.view(x.size(0), -1)
        return self.classifier(x)


def make(input_shape, num_classes):
    assert tuple(input_shape) == SHAPE, input_shape
    return Net(num_classes)

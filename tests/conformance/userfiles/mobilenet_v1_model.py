"""A user's model file, as a FINN user would write it: Brevitas' own quantised MobileNet-v1 class
(``brevitas_examples.imagenet_classification``, the depthwise network finn-examples builds at w4a4), untrained, at
a width and depth a small board and a small image take. Nobody on the hapfpga project wrote this network:
``hapfpga run`` gets it through ``model.name: tests/conformance/userfiles/mobilenet_v1_model.py:make``.

Brevitas' settings are kept: per-channel weight scales, per-channel activation scales on the stem and the
pointwise layers but the last stage's, an 8-bit stem, ``TruncAvgPool2d`` with FLOOR rounding (the ``4b`` ini's
``ROUND_AVG_POOL = FALSE``: FINN builds no other) and a biased ``QuantLinear`` head.
"""

from brevitas_examples.imagenet_classification.models.mobilenetv1 import MobileNet

#: quant_mobilenet_v1's channels per stage (brevitas_examples/imagenet_classification/models/mobilenetv1.py)
CHANNELS = [[32], [64], [128, 128], [256, 256], [512, 512, 512, 512, 512, 512], [1024, 1024]]


def make(input_shape, num_classes, *, width=0.25, bits=4, stages=4):
    """``quant_mobilenet_v1`` with its channels scaled by ``width``, its first ``stages`` stages (the stem and
    each stage but the first halve the image) and ``bits``-bit weights and activations."""
    chans = [[max(1, int(c * width)) for c in stage] for stage in CHANNELS[: stages + 1]]
    pool = input_shape[-1] // 2 ** stages
    if pool < 1:
        raise ValueError(f"{stages} stages halve a {input_shape[-1]}-pixel image below one pixel")
    return MobileNet(channels=chans, first_stage_stride=False, act_bit_width=bits, weight_bit_width=bits,
                     last_layer_bit_width=bits, avg_pool_kernel_size=pool, in_channels=input_shape[0],
                     num_classes=num_classes, round_average_pool=False)

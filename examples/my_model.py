"""A user's own Brevitas model for ``hapfpga run``: ``model: {name: examples/my_model.py:make, options: {...}}``.

The contract (docs/models.md, "Your own model"):

* a function ``factory(input_shape, num_classes, quant, **options)`` returning a ``torch.nn.Module``;
  ``input_shape`` is one sample's shape without the batch dimension (C×H×W images, C×L signals or F vectors),
  ``num_classes`` the dataset's number of classes, ``quant`` a ``hapfpga.types.QuantSpec`` (``weight_bits_of(i)``,
  ``act_bits_of(i)`` for quantised layer ``i``, from ``model.weight_bits`` / ``act_bits`` / per-layer overrides),
  and ``options`` the config's ``model.options``. A factory may leave out ``quant`` (or any of the three) if it
  does not use it;
* the model takes float inputs in [0, 1] (the hardware gets UINT8 ``k`` and computes ``k/255``) and returns one
  score per class;
* only layers FINN builds: Brevitas ``QuantConv1d``/``QuantConv2d``/``QuantLinear`` with quantised weights,
  ``BatchNorm``, ``QuantReLU``/``QuantIdentity`` activations after every conv/linear layer but the last,
  ``MaxPool1d``/``MaxPool2d``, ``TruncAvgPool2d(trunc_quant=TruncTo8bit)``, ``Flatten``. The train stage
  exports the untrained model and runs FINN's conversion first (seconds), so anything else stops the run with
  one sentence naming the layer, the FINN step and the fix, before any training;
* the file is hashed into the train stage's cache key: editing it re-runs training.

This example is a small CNN for 8×8 digits (``examples/my_model.yaml``), with Brevitas' signed 8-bit input
quantiser in front (optional: the exported graph already takes UINT8 pixels).
"""

from __future__ import annotations

import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU


def make(input_shape, num_classes, quant, *, channels=(16, 32), hidden=64, input_quant=True):
    """conv 3×3 → BN → act per entry of ``channels``, 2×2 max-pool, FC ``hidden``, FC to the classes."""
    c, h, w = input_shape
    layers: list[nn.Module] = []
    if input_quant:
        layers.append(QuantIdentity(bit_width=8, return_quant_tensor=True))
    for i, out in enumerate(channels):
        layers += [
            QuantConv2d(c, out, 3, bias=False, weight_bit_width=quant.weight_bits_of(i)),
            nn.BatchNorm2d(out),
            QuantReLU(bit_width=quant.act_bits_of(i)),
        ]
        c, h, w = out, h - 2, w - 2
    layers += [nn.MaxPool2d(2), nn.Flatten()]
    n = len(channels)
    layers += [
        QuantLinear(c * (h // 2) * (w // 2), hidden, bias=False, weight_bit_width=quant.weight_bits_of(n)),
        nn.BatchNorm1d(hidden),
        QuantReLU(bit_width=quant.act_bits_of(n)),
        QuantLinear(hidden, num_classes, bias=False, weight_bit_width=quant.weight_bits_of(n + 1)),
    ]
    return nn.Sequential(*layers)

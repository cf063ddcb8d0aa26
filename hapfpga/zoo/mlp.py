"""Fully connected zoo models: ``kws_mlp`` and ``mlp_autoencoder``.

* ``kws_mlp`` — the MLP FINN submitted to MLPerf Tiny keyword spotting (Borras et al., "Open-source FPGA-ML
  codesign for the MLPerf Tiny Benchmark", arXiv 2206.11791): the flattened feature map (49×10 MFCCs) through
  FC layers with BN and quantised activations to the classes. Full size ``fc=[256, 256, 256]``; default
  ``fc=[64, 64]``.
* ``mlp_autoencoder`` — the layer shapes of MLPerf Tiny's anomaly-detection autoencoder (Koizumi et al.,
  DCASE 2020 task 2 baseline): 640 → 128 ×4 → 8 → 128 ×4 → 640, i.e. ``encoder=[128]*4, bottleneck=8`` on a
  640-feature input, the decoder mirroring the encoder and ending at the input's width. hapfpga's trainer,
  verification and reports are for classification (cross-entropy, argmax), so the reconstruction is followed by
  a last FC layer to the classes: the hardware is the whole autoencoder plus that head, and the task is
  classification (e.g. normal vs anomalous), not a reconstruction-error score. Default ``encoder=[32, 32],
  bottleneck=8``.

Both are ``classifier``-only ``QuantCNN`` models (``fc`` = the hidden widths, as for ``tfc``), so pruning and
rebuilding at pruned widths work as for ``tfc``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..types import QuantSpec
from .models import QuantCNN, _fc_classifier, _ints, _prod

__all__ = ["kws_mlp", "mlp_autoencoder"]


def kws_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    fc: Sequence[int] = (64, 64),
    per_channel: bool = False,
):
    """The flattened input through FC ``fc`` (BN + quantised activation each) → classes."""
    classifier = _fc_classifier(_prod(input_shape), _ints("fc", fc), num_classes, quant, 0, per_channel)
    return QuantCNN(torch.nn.Sequential(), classifier, input_shape, "kws_mlp")


def mlp_autoencoder(
    input_shape: Sequence[int],
    num_classes: int,
    quant: QuantSpec,
    *,
    encoder: Sequence[int] = (32, 32),
    bottleneck: int = 8,
    fc: Sequence[int] | None = None,
    per_channel: bool = False,
):
    """Encoder ``encoder`` → ``bottleneck`` → mirrored decoder → the input's width (the reconstruction) → a FC
    head to the classes. ``fc`` gives every hidden width explicitly (how a pruned model is rebuilt)."""
    n_in = _prod(input_shape)
    if fc is None:
        enc = _ints("encoder", encoder)
        fc = (*enc, *_ints("bottleneck", [bottleneck]), *reversed(enc), n_in)
    classifier = _fc_classifier(n_in, _ints("fc", fc), num_classes, quant, 0, per_channel)
    return QuantCNN(torch.nn.Sequential(), classifier, input_shape, "mlp_autoencoder")

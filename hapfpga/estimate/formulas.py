"""The explicit table from FINN layer kind to its cost formula ``(layer, folding, ctx) -> (Resources, cycles)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..types import LayerFolding, Resources
from .context import Ctx
from .misc import (
    duplicatestreams_cost,
    dwc_cost,
    elementwise_cost,
    fifo_layer_cost,
    fmpadding_cost,
    labelselect_cost,
    pool_cost,
    reshape_cost,
    streamingmaxpool_cost,
)
from .mvau import mvau_cost, vvau_cost
from .swg import swg_cost
from .thresholding import thresholding_cost

__all__ = ["FORMULAS"]

Formula = Callable[[Any, LayerFolding, Ctx], tuple[Resources, int]]

FORMULAS: dict[str, Formula] = {
    "MVAU": mvau_cost,
    "Thresholding": thresholding_cost,
    "ConvolutionInputGenerator": swg_cost,
    "VVAU": vvau_cost,
    "Pool": pool_cost,
    "StreamingMaxPool": streamingmaxpool_cost,
    "FMPadding": fmpadding_cost,
    "LabelSelect": labelselect_cost,
    "ElementwiseMul": elementwise_cost,
    "ElementwiseAdd": elementwise_cost,
    "Reshape": reshape_cost,
    "DuplicateStreams": duplicatestreams_cost,
    "StreamingDataWidthConverter": dwc_cost,
    "StreamingFIFO": fifo_layer_cost,
}

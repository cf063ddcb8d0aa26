"""The explicit table from FINN layer kind to its cost formula ``(layer, folding, ctx) -> (Resources, cycles)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..types import LayerFolding, Resources
from .context import Ctx
from .mvau import mvau_cost
from .swg import swg_cost
from .thresholding import thresholding_cost

__all__ = ["FORMULAS"]

Formula = Callable[[Any, LayerFolding, Ctx], tuple[Resources, int]]

FORMULAS: dict[str, Formula] = {
    "MVAU": mvau_cost,
    "Thresholding": thresholding_cost,
    "ConvolutionInputGenerator": swg_cost,
}

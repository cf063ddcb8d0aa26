"""Pure resource and cycle estimator for FINN dataflow layers (imports numpy and hapfpga core only).

Public API::

    from hapfpga.estimate import estimate_layer, estimate_network, layers
    cost = estimate_layer(layers.MVAU(name="MVAU_hls_0", mw=27, mh=64, n_vectors=900), LayerFolding(pe=8, simd=3))
    net = estimate_network(layer_list, plan, load_board("pynq-z2"))

Every formula's docstring cites the finn-plus 1.6.1 function (or FINN-R / measurement) it mirrors;
docs/estimator.md lists where we deliberately differ from FINN.
"""

from __future__ import annotations

from . import layers
from .context import Ctx, FoldingError
from .core import COST_COLUMNS, FORMULAS, cost_table, effective_folding, estimate_layer
from .deviations import DEVIATIONS, deviations_for
from .folding_io import check_plan, load_folding
from .layers import LAYER_KINDS, LayerSpec
from .network import NetworkEstimate, estimate_network

__all__ = [
    "layers",
    "LayerSpec",
    "LAYER_KINDS",
    "FORMULAS",
    "Ctx",
    "FoldingError",
    "estimate_layer",
    "cost_table",
    "COST_COLUMNS",
    "effective_folding",
    "estimate_network",
    "NetworkEstimate",
    "load_folding",
    "check_plan",
    "DEVIATIONS",
    "deviations_for",
]

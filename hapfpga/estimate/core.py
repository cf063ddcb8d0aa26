"""Dispatch from a layer description + folding to the per-kind formula, with a cache.

``estimate_layer`` is called many thousands of times by the folding optimiser, so results are
memoised on each layer description by (effective folding, context) (see ``LayerSpec.memo``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..boards import BoardSpec
from ..errors import UnsupportedLayerError
from ..types import LayerCost, LayerFolding
from .context import Ctx
from .formulas import FORMULAS
from .layers import LayerSpec

__all__ = [
    "estimate_layer", "effective_folding", "ctx_for", "FORMULAS", "cost_of", "cost_table", "COST_COLUMNS",
    "clear_caches", "compute_cost", "merge_folding",
]

#: columns of ``cost_table``
COST_COLUMNS: tuple[str, ...] = ("LUT", "FF", "BRAM_18K", "URAM", "DSP", "cycles")


def effective_folding(layer: LayerSpec, folding: LayerFolding | None) -> LayerFolding:
    """``folding`` on top of the layer's current FINN attributes (``None`` fields fall through), memoised."""
    base = layer.default_folding
    if folding is None or folding is base:
        return base
    memo = layer.memo("effective_folding")
    f = memo.get(folding)
    if f is None:
        f = memo[folding] = merge_folding(layer, folding)
    return f


def merge_folding(layer: LayerSpec, folding: LayerFolding | None) -> LayerFolding:
    """``effective_folding`` without the memo."""
    if folding is None:
        return layer.default_folding
    defaults = layer.folding_defaults
    return folding.filled_from(defaults) if defaults else folding


@lru_cache(maxsize=64)
def ctx_for(board: BoardSpec | None = None, finn_compat: bool = False) -> Ctx:
    """The estimation context of a board (DSP58 on Versal parts, URAM where the part has it)."""
    if board is None:
        return Ctx(finn_compat=finn_compat)
    part = board.part.lower()
    return Ctx(finn_compat=finn_compat, dsp58=part.startswith("xcv"), has_uram=board.capacity.URAM > 0,
               dsp48e1=part[2:3] == "7")


def cost_of(layer: LayerSpec, folding: LayerFolding, ctx: Ctx) -> LayerCost:
    """Formula call on an already-effective folding, cached per layer by (folding, ctx)."""
    memo = layer.memo("cost")
    key = (folding, ctx)
    c = memo.get(key)
    if c is None:
        c = memo[key] = compute_cost(layer, folding, ctx)
    return c


def compute_cost(layer: LayerSpec, folding: LayerFolding, ctx: Ctx) -> LayerCost:
    """``cost_of`` without the memo: the layer kind's formula (``FORMULAS``)."""
    fn = FORMULAS.get(layer.kind)
    if fn is None:
        raise UnsupportedLayerError(
            f"Layer {layer.name} has kind '{layer.kind}', which the estimator does not model; "
            f"supported kinds are {', '.join(sorted(FORMULAS))}."
        )
    res, cycles = fn(layer, folding, ctx)
    return LayerCost(layer.name, layer.kind, res, int(cycles))


def estimate_layer(
    layer: LayerSpec,
    folding: LayerFolding | None = None,
    clock_mhz: float = 100.0,
    *,
    board: BoardSpec | None = None,
    finn_compat: bool = False,
) -> LayerCost:
    """LUT, FF (not modelled: 0), BRAM_18K, URAM, DSP and expected cycles per frame of one layer.

    ``folding`` overrides the layer's current FINN attributes field by field (``None`` = keep).
    ``clock_mhz`` does not change resources or cycles (it changes FPS and power, see
    ``estimate_network``). ``board`` selects DSP48/DSP58 and whether URAM exists;
    ``finn_compat=True`` reproduces finn-plus's own numbers, FINN bugs included.
    Raises ``UnsupportedLayerError`` for unknown kinds and ``FoldingError`` (a ``ConfigError``)
    for an illegal folding.
    """
    del clock_mhz  # resources and cycles are clock-independent
    if not isinstance(layer, LayerSpec) or not layer.kind:
        raise UnsupportedLayerError(f"{layer!r} is not a layer description the estimator models.")
    return cost_of(layer, effective_folding(layer, folding), ctx_for(board, finn_compat))


def cost_table(
    layer: LayerSpec,
    foldings: Sequence[LayerFolding],
    *,
    board: BoardSpec | None = None,
    finn_compat: bool = False,
) -> np.ndarray:
    """Costs of many candidate foldings of one layer as an ``(n, 6)`` float array (``COST_COLUMNS``).

    For solvers that want whole candidate sets at once (knapsack / ILP over per-layer options).
    Results are memoised per layer like ``estimate_layer``; an illegal candidate raises ``FoldingError``.
    """
    ctx = ctx_for(board, finn_compat)
    out = np.empty((len(foldings), len(COST_COLUMNS)), dtype=np.float64)
    for i, f in enumerate(foldings):
        c = cost_of(layer, effective_folding(layer, f), ctx)
        r = c.resources
        out[i] = (r.LUT, r.FF, r.BRAM_18K, r.URAM, r.DSP, c.cycles)
    return out


def clear_caches(layers: Sequence[LayerSpec] = ()) -> None:
    """Forget every folding-dependent memo: the per-layer tables of ``layers`` (``LayerSpec.memo``) and the
    module-level caches of the formulas (FIFO, edge and BRAM-mapping costs).

    For timing the estimator cold (``benchmarks/estimator_speed.py``): a new folding then pays every formula.
    Kept, because no folding changes them: what each layer derives from its own description
    (``LayerSpec.folding_defaults``, the attributes a folding falls back to; ``LayerSpec.derived``: data-type
    and accumulator widths, the SWG's window-loop counters), the parsed data-type names, a board's context
    (``ctx_for``) and power coefficients, the graph of a layer list (``network._topology``) and the names of its
    FIFOs and DWCs (docs/estimator.md, "Speed").
    """
    from . import bram_map, infra

    for layer in layers:
        for table in layer.__dict__.get("_memo", {}).values():
            table.clear()  # emptied in place: every entry is gone, the (empty) tables stay allocated
    for fn in (infra.fifo_cost, infra._edge_costs, infra._bram18_plan, bram_map.yosys_bram18,
               bram_map.yosys_memory_kind):
        fn.cache_clear()

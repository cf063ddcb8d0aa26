"""Thresholding (hls and rtl) cost formulas.

Mirrors finn-plus 1.6.1 ``finn/custom_op/fpgadataflow/thresholding.py`` (``get_exp_cycles``),
``hls/thresholding_hls.py`` (``bram/uram/lut_estimation``) and ``rtl/thresholding_rtl.py``
(``get_pe_mem_geometries``, ``_get_memory_estimate_details``) with ``finn/util/memutil.py``.
"""

from __future__ import annotations

import math

from ..types import LayerFolding, Resources
from .context import Ctx, FoldingError, knob
from .dtypes import bits
from .layers import Thresholding
from .rtl_luts import thresholding_rtl_luts

__all__ = ["thresholding_cost", "MEM_PRIMITIVES", "memutil_best"]

#: finn/util/memutil.py ``mem_primitives_versal``: name -> (width, depth)
MEM_PRIMITIVES: dict[str, tuple[int, int]] = {
    "URAM_72x4096": (72, 4096),
    "URAM_36x8192": (36, 8192),
    "URAM_18x16384": (18, 16384),
    "URAM_9x32768": (9, 32768),
    "BRAM18_36x512": (36, 512),
    "BRAM18_18x1024": (18, 1024),
    "BRAM18_9x2048": (9, 2048),
    "LUTRAM": (1, 64),
}


#: (name, width, depth, bits, resource key) per primitive, in MEM_PRIMITIVES order (FINN's tie order)
_ROWS = tuple((n, w, d, w * d, "BRAM" if n.startswith("BRAM") else n.split("_")[0])
              for n, (w, d) in MEM_PRIMITIVES.items())


def _row_sets(rows: tuple) -> tuple[tuple, tuple, tuple]:
    """(all rows, the BRAM rows a depth trigger allows, the URAM rows — BRAM when there are none)."""
    bram = tuple(r for r in rows if r[4] == "BRAM")
    return rows, bram, tuple(r for r in rows if r[4] == "URAM") or bram


#: FINN's primitives; without URAM (deviation ``thr-rtl-no-uram``): a URAM request is backed with BRAM by Vivado
_WITH_URAM = _row_sets(_ROWS)
_WITHOUT_URAM = _row_sets(tuple(r for r in _ROWS if r[4] != "URAM"))


def _least_waste(width: int, depths: list[float], rows: tuple) -> list[tuple[str, int, str]]:
    """Per depth: (primitive, count, resource key) with least wasted bits among ``rows``, the first on ties.

    ``get_memutil_alternatives(...)[0]`` of finn/util/memutil.py: count = ceil(width/w) * ceil(depth/d)
    (``_roundup(x, m) // m``), waste = count * w * d - width * depth; ties keep dictionary order, as Python's
    stable ``sorted`` does in FINN. One width at several depths (a Thresholding_rtl's stages) takes
    ceil(width/w) once per primitive."""
    cols = [(row, math.ceil(width / row[1])) for row in rows]
    out = []
    for depth in depths:
        need = width * depth
        best = None
        best_waste = 0.0
        for row, cw in cols:
            count = cw * math.ceil(depth / row[2])
            waste = count * row[3] - need
            if best is None or waste < best_waste:
                best, best_count, best_waste = row, count, waste
        assert best is not None
        out.append((best[0], best_count, best[4]))
    return out


def memutil_best(width: int, depth: float, allowed: tuple[str, ...]) -> tuple[str, int]:
    """The primitive of ``allowed`` (``MEM_PRIMITIVES`` names) with least wasted bits and how many of it."""
    name, count, _ = _least_waste(width, [depth], tuple(r for r in _ROWS if r[0] in allowed))[0]
    return name, count


def _rtl_memory(layer: Thresholding, pe: int, trig_bram: int, trig_uram: int, ctx: Ctx,
                lut_stages: list[int] | None = None) -> dict[str, int]:
    """Thresholding_rtl memory per FINN: one memory per output bit (binary search stage) per PE.

    ``lut_stages``, when given, receives the indices of the stages whose memory FINN places in LUTRAM."""
    wbits, obits = bits(layer.tdt), bits(layer.odt)
    cf = layer.channels / pe
    if layer.uniform_thres:
        geoms = [(obits - x, cf * 2**x) for x in range(1, obits)]
    else:
        geoms = [(wbits, cf * 2**x) for x in range(obits)]
    # deviation: FINN offers URAM primitives even on parts that have none (xc7z020)
    rows_all, bram_rows, uram_rows = _WITH_URAM if ctx.finn_compat or ctx.has_uram else _WITHOUT_URAM
    if trig_bram == 0 and trig_uram == 0 and not layer.uniform_thres:  # one width, one primitive set
        picks = _least_waste(wbits, [d for _, d in geoms], rows_all)
    else:
        picks = []
        for width, depth in geoms:
            rows = rows_all
            if trig_bram != 0 or trig_uram != 0:
                if trig_bram <= depth < trig_uram:
                    rows = bram_rows
                elif depth >= trig_uram:
                    rows = uram_rows
            picks += _least_waste(width, [depth], rows)
    out: dict[str, int] = {}
    for stage, (_, count, key) in enumerate(picks):
        out[key] = out.get(key, 0) + pe * count
        if key == "LUTRAM" and lut_stages is not None:
            lut_stages.append(stage)
    return out


def thresholding_cost(layer: Thresholding, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """LUT, BRAM18, URAM and cycles of a Thresholding node.

    - cycles: prod(folded output shape[:-1]) = n_vectors * channels/PE (``Thresholding.get_exp_cycles``).
    - hls: comparators A*P LUTs + LUTRAM P*Wt*steps*ceil(TMEM/64) for ram_style=distributed (TMEM>1);
      BRAM ceil(width/16)*ceil(TMEM/1024) for block; URAM ceil(width/72)*ceil(TMEM/4096) for ultra
      (``Thresholding_hls``).
    - rtl: FINN counts, per PE and per output bit, the least-waste primitive of memutil.py; its LUT
      estimate is only the LUTRAM count. Unless ``ctx.finn_compat`` we count finn-rtllib ``thresholding.sv``'s
      structure (:func:`~hapfpga.estimate.rtl_luts.thresholding_rtl_luts`: per PE and binary-search stage a
      Wt-bit comparator and the stage's threshold ROM as logic, the output queue and counters; checked against
      Yosys) and never place memory in URAM on parts without URAM. Uniform thresholds (FINN's compressed
      geometry) keep the older P * B * Wt comparator term on top of FINN's LUTRAM.
    """
    pe = int(knob(f, "pe", 1))
    if layer.channels % pe:
        raise FoldingError(f"{layer.name}: PE={pe} does not divide NumChannels={layer.channels}; "
                           f"choose a divisor of {layer.channels}.")
    cycles = layer.n_vectors * (layer.channels // pe)
    tmem = layer.channels // pe
    if layer.impl == "hls":
        style = knob(f, "ram_style", "distributed")
        if style not in ("distributed", "block", "ultra"):
            raise FoldingError(f"{layer.name}: ram_style '{style}' is not distributed, block or ultra.")
        width = pe * bits(layer.tdt) * layer.num_steps
        bram = int(math.ceil(width / 16)) * int(math.ceil(tmem / 1024)) if style == "block" and tmem > 1 else 0
        uram = int(math.ceil(width / 72)) * int(math.ceil(tmem / 4096)) if style == "ultra" and tmem > 1 else 0
        lutram = width * int(math.ceil(tmem / 64)) if style == "distributed" and tmem > 1 else 0
        lut = bits(layer.idt) * pe + lutram
        return Resources(LUT=lut, BRAM_18K=bram, URAM=uram), int(cycles)
    trig_bram = int(knob(f, "depth_trigger_bram", 0))
    trig_uram = int(knob(f, "depth_trigger_uram", 0))
    lut_stages: list[int] = []
    mem = _rtl_memory(layer, pe, trig_bram, trig_uram, ctx, lut_stages)
    lut = mem.get("LUTRAM", 0)
    if not ctx.finn_compat and layer.uniform_thres:
        lut += pe * bits(layer.odt) * bits(layer.tdt)
    elif not ctx.finn_compat:  # deviation thr-rtl-comparators: the RTL's structure, memories in LUTs as ROM logic
        lut = thresholding_rtl_luts(pe, tmem, layer.num_steps, bits(layer.tdt), tuple(lut_stages))
    return Resources(LUT=lut, BRAM_18K=mem.get("BRAM", 0), URAM=mem.get("URAM", 0)), int(cycles)

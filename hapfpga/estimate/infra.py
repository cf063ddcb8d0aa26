"""Infrastructure FINN's per-layer estimate leaves out: FIFOs between layers and data-width converters.

- FIFO cost: a port of finn-plus 1.6.1 ``finn/util/resource_models.py`` (``_resolve``, ``_fifo_cost``),
  the fitted model of ``finn-rtllib/fifo/hdl/fifo.sv`` (UltraScale+ variant; fitted by the finn-plus
  authors on out-of-context Vivado runs). On parts without URAM, an ``ultra`` FIFO is costed as
  ``block`` (Vivado maps it to BRAM, Synth 8-12187, as that module's docstring says).
- FIFO depth: ``fifo_depths="minimal"`` (default) is FINN's ``force_minimal_fifos`` rule (InsertFIFO
  with create_shallow_fifos: depth 2 on every edge, plus the input and output FIFOs; checked equal to
  FINN's inserted nodes on TFC/CNV in tests/estimate/test_parity_networks.py);
  ``"rate"`` is an analytic upper bound: an edge whose producer and consumer take Cp and Cc
  cycles per frame for N words needs ``max(2, ceil(N * (1 - min(Cp,Cc)/max(Cp,Cc))))`` words so
  the faster side never stalls the bottleneck within a frame (capped at one frame, N) — a
  heuristic, not FINN's simulation-based sizing (see docs/estimator.md).
- DWC cost: finn-plus ``StreamingDataWidthConverter.lut_estimation`` (shift-based, via the LCM
  width); inserted wherever a producer's output width differs from its consumer's input width,
  as FINN's ``InsertDWC`` does. FINN's ``InsertFIFO`` then treats the DWC as a node of its own, so such
  an edge gets two FIFOs (producer width before the DWC, consumer width after it).
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

from ..types import LayerCost, Resources

__all__ = ["fifo_cost", "fifo_style", "dwc_luts", "rate_depth", "infrastructure_costs"]

_RAMB18_SDP = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_URAM_DEPTH_THRESHOLD = 2028


def _clog2(x: int) -> int:
    return max(x - 1, 0).bit_length()


def _geometry(depth: int, is_uram: bool) -> tuple[int, int]:
    min_abits, qdepth = (12, 16) if is_uram else (9, 0)
    req = max(depth - qdepth - 1, 1)
    lo, hi = _clog2(req), 0
    if lo > min_abits:
        hi_abits = _clog2(req - 2 ** (lo - 1))
        if hi_abits < lo - 1:
            lo -= 1
            hi = max(hi_abits, 1)
    return lo, hi


def _hi_in_ram(rows: int, w: int) -> bool:
    return rows * rows * w >= 2**20


def _lutram_luts(rows: int, w: int) -> int:
    return math.ceil(rows / 32) * math.ceil(w / 2) * 5 // 4


@cache
def _bram18_plan(rows: int, w: int) -> tuple[int, int]:
    tiles: list[int | None] = [0] + [None] * w
    groups = [0] * (w + 1)
    for ww in range(1, w + 1):
        for cw, cr in _RAMB18_SDP:
            t = math.ceil(rows / cr)
            rest = max(ww - cw, 0)
            cand = (t + tiles[rest], max(t, groups[rest]))  # type: ignore[operator]
            if tiles[ww] is None or cand[0] < tiles[ww]:  # type: ignore[operator]
                tiles[ww], groups[ww] = cand
    return tiles[w], groups[w]  # type: ignore[return-value]


def fifo_style(depth: int, width: int, requested: str = "auto") -> str:
    """fifo.sv's RAM_STYLE_EFF ladder (``resource_models._resolve``); ``width`` is the padded width."""
    if depth <= 33:
        return "srl"
    if requested != "auto":
        return requested
    if depth <= 64 and width < 12:
        return "srl"
    if depth <= 257 or width < 5:
        return "distributed"
    return "block" if depth <= _URAM_DEPTH_THRESHOLD else "ultra"


@lru_cache(maxsize=1 << 16)
def fifo_cost(depth: int, width: int, requested: str = "auto", has_uram: bool = True) -> Resources:
    """LUT/BRAM18/URAM of a ``depth`` x ``width`` fifo.sv (``resource_models._fifo_cost``, UltraScale+)."""
    w = int(math.ceil(width / 8) * 8)  # get_instream_width_padded
    if depth < 2 or w == 0:
        return Resources()
    style = fifo_style(depth, w, requested)
    if style == "ultra" and not has_uram:
        style = "block"
    cw = _clog2(depth + 1) + 1
    if style == "srl":
        stages = math.ceil((depth - 1 if depth > 4 else 4) / 32)
        return Resources(LUT=stages * w + 5 * cw - 7)
    if style == "distributed":
        rows = 2 ** _clog2(depth - 1)
        return Resources(LUT=_lutram_luts(rows, w) + rows // 128 * (w // 2) + 8 * cw - 15)
    is_uram = style == "ultra"
    lo, hi = _geometry(depth, is_uram)
    hi_in_lutram = bool(hi) and not _hi_in_ram(2**hi, w)
    hi_sel = (18 + 3 * w // 7) if hi else 0
    if not is_uram:
        tiles, groups = _bram18_plan(2**lo, w)
        if hi and _hi_in_ram(2**hi, w):
            ht, hg = _bram18_plan(2**hi, w)
            tiles, groups = tiles + ht, max(groups, hg)
        lut = 54 + 3 * groups + 2 * tiles // 5 + hi_sel
        if hi_in_lutram:
            lut += _lutram_luts(2**hi, w)
        return Resources(LUT=lut, BRAM_18K=tiles)
    groups = math.ceil(2**lo / 4096)
    uram = groups * math.ceil(w / 72)
    lut = 6 * cw + hi_sel
    if hi_in_lutram:
        lut += _lutram_luts(2**hi, w) + w
    lut += max(1, groups // 4 - 2) * w
    bram = 0
    if hi and _hi_in_ram(2**hi, w):
        hu = math.ceil(2**hi / 4096) * math.ceil(w / 72)
        hb = _bram18_plan(2**hi, w)[0]
        if hi >= 12 or hb >= 7 * hu:
            uram += hu
        else:
            bram = hb
    return Resources(LUT=lut, BRAM_18K=bram, URAM=uram)


def dwc_luts(in_width: int, out_width: int) -> int:
    """``StreamingDataWidthConverter.lut_estimation``: counters + control sets via the LCM width."""
    intw = math.lcm(in_width, out_width)
    cnt = cset = 0
    if in_width != intw:
        cnt += abs(math.ceil(math.log(in_width / intw, 2)))
        cset += intw
    if intw != out_width:
        cnt += abs(math.ceil(math.log(intw / out_width, 2)))
        cset += out_width
    return int(cnt + cset)


def rate_depth(words: int, cycles_producer: int, cycles_consumer: int) -> int:
    """Analytic FIFO depth of an edge (see module docstring): rate mismatch within one frame."""
    hi = max(cycles_producer, cycles_consumer, 1)
    lo = min(cycles_producer, cycles_consumer)
    return int(min(max(words, 2), max(2, math.ceil(words * (1.0 - lo / hi)))))


def infrastructure_costs(edges: list[tuple] | tuple[tuple, ...], *, fifo_depths: str = "minimal",
                         has_uram: bool = True) -> dict[str, LayerCost]:
    """FIFO and DWC costs of ``edges``, named ``FIFO_<producer>__<consumer>`` / ``DWC_...``.

    Each edge is ``(producer, consumer, width_out, width_in, words, cycles_producer,
    cycles_consumer)``; producer is ``""`` for the graph input, consumer ``""`` for the output.
    Cached per edge.
    """
    out: dict[str, LayerCost] = {}
    for e in edges:
        for c in _edge_costs(tuple(e), fifo_depths, has_uram):
            out[c.name] = c
    return out


@lru_cache(maxsize=1 << 12)
def _edge_names(prod_name: str, cons_name: str) -> tuple[str, str, str]:
    """Names of an edge's FIFO, of the FIFO in front of its DWC, and of the DWC (of the graph, not of a folding)."""
    tag = f"{prod_name or 'in'}__{cons_name or 'out'}"
    return f"FIFO_{tag}", f"FIFO_{tag}__pre", f"DWC_{tag}"


@lru_cache(maxsize=1 << 16)
def _edge_costs(edge: tuple, fifo_depths: str, has_uram: bool) -> tuple[LayerCost, ...]:
    prod_name, cons_name, w_out, w_in, words, cp, cc = edge
    fifo, pre, dwc = _edge_names(prod_name, cons_name)
    depth = 2 if fifo_depths == "minimal" or not (prod_name and cons_name) else rate_depth(words, cp, cc)
    width = w_in if cons_name else w_out
    last = LayerCost(fifo, "StreamingFIFO", fifo_cost(depth, width, "auto", has_uram), 0)
    if prod_name and cons_name and w_out != w_in:
        # FINN: InsertDWC, then InsertFIFO puts a FIFO on each side of the converter
        return (LayerCost(pre, "StreamingFIFO", fifo_cost(2, w_out, "auto", has_uram), 0),
                LayerCost(dwc, "StreamingDataWidthConverter", Resources(dwc_luts(w_out, w_in)), int(words)),
                last)
    return (last,)

"""MVAU (hls and rtl) and VVAU cost formulas.

Mirrors finn-plus 1.6.1 ``finn/custom_op/fpgadataflow/matrixvectoractivation.py`` (``bram_estimation``,
``uram_estimation``, ``get_exp_cycles``), ``hls/matrixvectoractivation_hls.py`` (``lut_estimation``,
``dsp_estimation``) and ``rtl/matrixvectoractivation_rtl.py`` (``dsp_estimation``); the LUT and BRAM
models are FINN-R's (Blott et al., "FINN-R: An End-to-End Deep-Learning Framework for Fast
Exploration of Quantized Neural Networks", ACM TRETS 2018).
"""

from __future__ import annotations

import math

from ..types import LayerFolding, Resources
from .bram_map import yosys_bram18, yosys_memory_kind
from .context import Ctx, FoldingError, knob
from .dtypes import bits, signed
from .layers import MVAU, VVAU
from .rtl_luts import lutram_xc7, mvu_rtl_luts

__all__ = ["mvau_cost", "vvau_cost", "weight_bram18", "weight_uram", "acc_bits", "mvu_rtl_lanes", "mvu_rtl_dsp"]

_RTL_LUT = ("{name}: resType=lut is not buildable for an RTL MVU (finn-plus raises at code generation); "
            "use resType=dsp or the HLS variant.")
_MEM_MODES = {"internal_embedded", "internal_decoupled", "external", "external_mem", "dynamic"}
_RAM_STYLES = {"auto", "block", "distributed", "ultra"}


def weight_bram18(omega: float, mem_width: int) -> int:
    """BRAM18 count of a weight memory of depth ``omega`` and width ``mem_width`` bits.

    FINN-R's SDP RAMB18 model (UG573 Table 1-10 aspect ratios), as in FINN's
    ``MVAU.bram_estimation``: 1x16K, 2x8K, 4x4K, 9x2K, 18x1K, 36x512.
    """
    if mem_width == 1:
        return math.ceil(omega / 16384)
    if mem_width == 2:
        return math.ceil(omega / 8192)
    if mem_width <= 4:
        return math.ceil(omega / 4096) * math.ceil(mem_width / 4)
    if mem_width <= 9:
        return math.ceil(omega / 2048) * math.ceil(mem_width / 9)
    if mem_width <= 18 or omega > 512:
        return math.ceil(omega / 1024) * math.ceil(mem_width / 18)
    return math.ceil(omega / 512) * math.ceil(mem_width / 36)


def weight_uram(omega: float, mem_width: int) -> int:
    """URAM count (72 x 4096 blocks), FINN's ``MVAU.uram_estimation``."""
    return math.ceil(mem_width / 72) * math.ceil(omega / 4096)


def acc_bits(mw: int, wbits: int, abits: int, idt_signed: bool, acc_dt_bits: int) -> int:
    """Accumulator width: min(accDataType, data-type bound of Colbert et al., arXiv:2301.13376).

    As in FINN's ``MVAU_hls.lut_estimation``.
    """
    alpha = math.log(mw, 2) + wbits + abits - 1 - int(idt_signed)
    return int(min(acc_dt_bits, math.ceil(alpha + math.log(1 + 2.0 ** (-alpha), 2) + 1)))


def _widths(layer: MVAU | VVAU) -> tuple[int, int, int, int]:
    """W, A, the accumulator width of FINN's LUT model (``acc_bits`` over MW, or K*K for a VVAU) and the number of
    thresholds 2^B - 1: functions of the layer description alone, derived once per layer."""
    W, A = bits(layer.wdt), bits(layer.idt)
    n = layer.mw if isinstance(layer, MVAU) else layer.kernel_elems
    return W, A, acc_bits(n, W, A, signed(layer.idt), bits(layer.acc_dt)), 2 ** bits(layer.odt) - 1


def mvu_rtl_lanes(wbits: int, abits: int, narrow: bool, a_width: int) -> int:
    """MACs packed into one DSP by finn-rtllib ``mvu/mvu.sv`` (finn-plus 1.6.1): ``NUM_LANES``.

    ``NUM_LANES = A_WIDTH == WEIGHT_WIDTH ? 1 : 1 + (A_WIDTH - !NARROW_WEIGHTS - WEIGHT_WIDTH) / MIN_LANE_WIDTH``
    with ``MIN_LANE_WIDTH = WEIGHT_WIDTH + ACTIVATION_WIDTH - 1`` (integer division) and ``A_WIDTH = 25`` on
    DSP48E1, 27 on DSP48E2 / DSP58 (the pre-adder width the weights of all lanes share).
    """
    if a_width == wbits:
        return 1
    return 1 + (a_width - (0 if narrow else 1) - wbits) // (wbits + abits - 1)


def mvu_rtl_dsp(pe: int, simd: int, wbits: int, abits: int, narrow: bool, version: str) -> int:
    """DSP slices of one RTL MVU, as ``mvu_vvu_axi.sv`` + ``mvu.sv`` instantiate them (finn-plus 1.6.1).

    - ``mvu.sv`` (``genPipes`` x ``genSIMD``): ``PIPE_COUNT = 1 + (PE-1)/NUM_LANES`` = ceil(PE/L) pipes of SIMD DSPs
      each, L = :func:`mvu_rtl_lanes`; ``version`` ``"DSP48E1"`` (A 25 bits) or ``"DSP48E2"`` (27 bits).
    - ``"DSP58"``: ``mvu_vvu_axi.sv``'s ``genINT8`` sidesteps to ``mvu_vvu_8sx9_dsp58.sv`` when L <= 3, W <= 8 and
      A <= 9: PE chains of ``CHAINLEN = (SIMD+2)/3`` DSP58s; otherwise ``mvu.sv`` with A_WIDTH 27.
    Checked against Yosys elaboration of FINN's generated RTL (docs/estimator.md, tests/synth).
    """
    a_width = 25 if version == "DSP48E1" else 27
    lanes = mvu_rtl_lanes(wbits, abits, narrow, a_width)
    if version == "DSP58" and lanes <= 3 and wbits <= 8 and abits <= 9:
        return pe * ((simd + 2) // 3)
    return -(-pe // lanes) * simd


def _check(layer: MVAU, pe: int, simd: int, mem_mode: str, ram_style: str, ram_style_thr: str,
           res_type: str) -> None:
    if layer.mh % pe:
        raise FoldingError(f"{layer.name}: PE={pe} does not divide MH={layer.mh}; choose a divisor of {layer.mh}.")
    if layer.mw % simd:
        raise FoldingError(f"{layer.name}: SIMD={simd} does not divide MW={layer.mw}; "
                           f"choose a divisor of {layer.mw}.")
    if mem_mode not in _MEM_MODES:
        raise FoldingError(f"{layer.name}: mem_mode '{mem_mode}' is not one of {sorted(_MEM_MODES)}.")
    if ram_style not in _RAM_STYLES:
        raise FoldingError(f"{layer.name}: ram_style '{ram_style}' is not one of {sorted(_RAM_STYLES)}.")
    if ram_style_thr not in {"auto", "block", "distributed"}:
        raise FoldingError(f"{layer.name}: ram_style_thresholds '{ram_style_thr}' is not auto, block or distributed.")
    if res_type not in {"auto", "lut", "dsp"}:
        raise FoldingError(f"{layer.name}: resType '{res_type}' is not auto, lut or dsp.")


def _mvau_rtl(layer: MVAU, pe: int, simd: int, mem_mode: str, ram_style: str, bram: int,
              ctx: Ctx) -> tuple[int, int, int]:
    """LUT, BRAM18 and DSP of an RTL MVAU from finn-rtllib's structure (deviations ``rtl-mvu-lut``/``-dsp``).

    - DSP: :func:`mvu_rtl_dsp`.
    - LUT: :func:`~hapfpga.estimate.rtl_luts.mvu_rtl_luts` (memstream credit buffer, mvu.sv adder trees and lane
      totals, output queue, control) + the LUTRAM the RTL infers: the ``replay_buffer`` of SF = MW/SIMD words of
      SIMD*A bits and, when the weights are in distributed RAM, the weight memory (7-series:
      :func:`~hapfpga.estimate.rtl_luts.lutram_xc7`; UltraScale+: FINN-R's LUTRAM term P*Q*W*ceil(WMEM/64)).
    - ``ram_style=auto`` weights of at most 64 words go to LUTRAM, not BRAM (what Yosys's memory mapper picks:
      a RAM64M column is cheaper than a RAMB18 up to 64 words; FINN counts BRAM).
    - BRAM18 of block weights (deviation ``rtl-mvu-bram``): the memory ``memstream.sv`` infers is
      ``get_instream_width_padded(1)`` = PE*SIMD*W rounded up to whole bytes wide (``hwcustomop.py``
      ``generate_hdl_memstream``), packed as Yosys's ``memory_libmap`` packs it
      (:func:`~hapfpga.estimate.bram_map.yosys_bram18`); FINN-R's table uses the unpadded width. On 7-series
      the kind (block, distributed) of an ``auto`` weight memory and of the ``replay_buffer`` (2**clog2(SF)
      words of SIMD*A bits, present when NF > 1) is memory_libmap's cheapest
      (:func:`~hapfpga.estimate.bram_map.yosys_memory_kind`); on UltraScale+ the 64-word rule above.
    """
    W, A = bits(layer.wdt), bits(layer.idt)
    narrow = layer.narrow_weights
    if mem_mode in ("dynamic", "external_mem"):
        narrow = False  # MVAU_rtl.generate_hdl: NARROW_WEIGHTS = 0 for streamed weights
    elif narrow is None:
        narrow = ctx.dsp48e1  # FINN only specialises MVAU_rtl with narrow weights on DSP48E1
    version = "DSP58" if ctx.dsp58 else ("DSP48E1" if ctx.dsp48e1 else "DSP48E2")
    dsp = mvu_rtl_dsp(pe, simd, W, A, narrow, version)
    a_width = 25 if ctx.dsp48e1 else 27
    accu = bits(layer.odt) if layer.no_activation else bits(layer.acc_dt)
    lanes = mvu_rtl_lanes(W, A, narrow, a_width)
    decoupled = mem_mode == "internal_decoupled"
    lut = mvu_rtl_luts(pe, simd, layer.mw, layer.mh, W, A, accu, narrow, lanes, a_width, decoupled)
    wmem = layer.mw * layer.mh // (pe * simd)
    padded = 8 * math.ceil(pe * simd * W / 8)  # memstream's WIDTH: the byte-padded weight word
    if decoupled and ctx.dsp48e1 and ram_style in ("auto", "block", "distributed"):
        kind, bram = yosys_memory_kind(wmem, padded, True, ram_style)  # 7-series: memory_libmap's choice
        ram_style = "block" if kind == "block" else "distributed"
    elif decoupled and ram_style == "auto" and wmem <= 64:
        bram = 0
        ram_style = "distributed"
    elif decoupled and bram and not ctx.dsp58:
        bram = yosys_bram18(wmem, padded, "xc7" if ctx.dsp48e1 else "xcup")
    if decoupled and ram_style == "distributed":
        lut += lutram_xc7(wmem, pe * simd * W) if ctx.dsp48e1 else pe * simd * W * math.ceil(wmem / 64)
    sf, nf = layer.mw // simd, layer.mh // pe
    if sf > 1 and nf > 1:  # replay_buffer.sv holds 2**clog2(SF) x SIMD*A only when it replays (REP = NF > 1)
        rows = 2 ** (sf - 1).bit_length()
        kind, rb = yosys_memory_kind(rows, simd * A, False) if ctx.dsp48e1 else ("distributed", 0)
        bram += rb
        lut += lutram_xc7(rows, simd * A) if kind != "block" else 0
    return int(lut), int(bram), int(dsp)


def mvau_cost(layer: MVAU, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """LUT, BRAM18, URAM, DSP and cycles of one MVAU.

    - cycles: MH/PE * MW/SIMD * prod(numInputVectors) (FINN ``MVAU.get_exp_cycles``, TH=1).
    - BRAM18/URAM: FINN-R weight-memory model (``MVAU.bram_estimation`` / ``uram_estimation``).
    - LUT (hls): FINN-R ``c0 + c1*P*(mult + addertree + acc + thr + comp) + c2`` with c0=300, c1=1.1,
      c2 = LUTRAM of distributed weights (``MVAU_hls.lut_estimation``).
    - DSP (hls): P*Q*ceil((W+A)/48) for resType=dsp, else 0 (``MVAU_hls.dsp_estimation``).
    - rtl, ``ctx.finn_compat``: DSP = ceil(P/4)*Q on DSP48, P*ceil(Q/3) on DSP58 (``MVAU_rtl.dsp_estimation``).
      Otherwise the RTL's own packing rule, :func:`mvu_rtl_dsp` (ceil(P/L)*Q with L MACs per DSP from the
      weight/activation widths and NARROW_WEIGHTS; deviation ``rtl-mvu-dsp``). Unknown narrowness: narrow on
      DSP48E1 (FINN only builds MVAU_rtl there with narrow weights), else not narrow (never fewer DSPs).
      FINN reports LUT=0 for MVAU_rtl; unless ``ctx.finn_compat`` we count its LUTs from the RTL's
      structure (:func:`_mvau_rtl`), checked against Yosys (docs/estimator.md).
    - rtl with resType=lut: FINN still reports DSPs, but ``MVAU_rtl._resolve_dsp_version`` raises at
      code generation; unless ``ctx.finn_compat`` we raise ``FoldingError`` (not buildable).
    """
    pe = int(knob(f, "pe", 1))
    simd = int(knob(f, "simd", 1))
    mem_mode = knob(f, "mem_mode", "internal_decoupled")
    ram_style = knob(f, "ram_style", "auto")
    ram_style_thr = knob(f, "ram_style_thresholds", "auto")
    res_type = knob(f, "res_type", "lut" if layer.impl == "hls" else "auto")
    _check(layer, pe, simd, mem_mode, ram_style, ram_style_thr, res_type)
    if layer.impl == "rtl" and res_type == "lut" and not ctx.finn_compat:
        raise FoldingError(_RTL_LUT.format(name=layer.name))

    W, A, acc, n_thr = layer.derived(_widths)
    wmem = layer.mw * layer.mh // (pe * simd)
    tmem = 0 if layer.no_activation else layer.mh // pe
    omega = wmem
    mem_width = simd * W * pe

    # --- weight memory: BRAM / URAM (FINN-R, MVAU.bram_estimation / uram_estimation)
    no_bram = (
        (mem_mode == "internal_decoupled" and ram_style in ("distributed", "ultra"))
        or (mem_mode == "internal_embedded" and wmem <= 128)
        or mem_mode in ("external", "external_mem")
    )
    bram = 0 if no_bram else weight_bram18(omega, mem_width)
    no_uram = (
        (mem_mode == "internal_decoupled" and ram_style != "ultra")
        or (mem_mode == "internal_embedded" and wmem <= 128)
        or mem_mode in ("external", "external_mem")
    )
    uram = 0 if no_uram else weight_uram(omega, mem_width)

    # --- LUT (FINN-R; MVAU_hls.lut_estimation)
    c2 = 0
    if (mem_mode == "internal_decoupled" and ram_style == "distributed") or (
        mem_mode == "internal_embedded" and wmem <= 128
    ):
        c2 = (pe * simd * W) * math.ceil(wmem / 64)
    thr_luts = comp_luts = 0
    if not layer.no_activation and ram_style_thr == "distributed":  # (2^B - 1) thresholds of acc bits each
        thr_luts = n_thr * acc * math.ceil(tmem / 64)
        comp_luts = n_thr * acc

    if layer.impl == "hls":
        mult_luts = 0 if res_type == "dsp" else simd * (2 * math.ceil((W + A) / 6) - 1) * (W + A)
        addertree_luts = (W + A) * (2 * simd - 1)
        lut = int(300 + 1.1 * (pe * (mult_luts + addertree_luts + acc + thr_luts + comp_luts)) + c2)
        dsp = int(pe * simd * math.ceil((W + A) / 48)) if res_type == "dsp" else 0
    elif ctx.finn_compat:
        lut = 0
        dsp = pe * math.ceil(simd / 3) if ctx.dsp58 else math.ceil(pe / 4) * simd
    else:
        lut, bram, dsp = _mvau_rtl(layer, pe, simd, mem_mode, ram_style, bram, ctx)

    cycles = (layer.mh // pe) * (layer.mw // simd) * layer.n_vectors
    return Resources(LUT=lut, BRAM_18K=bram, URAM=uram, DSP=dsp), int(cycles)


def vvau_cost(layer: VVAU, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """LUT, BRAM18, URAM, DSP and cycles of one VVAU (depthwise conv).

    Mirrors finn-plus ``VVAU.get_exp_cycles`` (Ch*K*K/PE/SIMD * H*W), ``VVAU.bram_estimation``
    (its own aspect-ratio table with /8, /16, /32 widths; ``auto`` memories of <= 128 words are
    assumed LUTRAM), ``VVAU.uram_estimation``, ``VVAU_hls.lut_estimation`` (FINN-R) and
    ``dsp_estimation``; ``VVAU_rtl``: DSP = P*ceil(Q/3), LUT 0 in FINN.
    Deviations unless ``ctx.finn_compat`` (docs/estimator.md): (1) ``VVAU_hls`` resType=dsp costs
    P*Q*ceil((W+A)/48) DSPs (FINN: P*ceil(...), i.e. ignores SIMD — one multiplier per PE*SIMD lane
    exists, as in MVAU); (2) an ``auto`` weight memory of <= 128 words that FINN moves out of BRAM
    is costed as LUTRAM (FINN counts it nowhere); (3) ``VVAU_rtl`` LUTs as for MVAU_rtl.
    """
    pe = int(knob(f, "pe", 1))
    simd = int(knob(f, "simd", 1))
    mem_mode = knob(f, "mem_mode", "internal_decoupled")
    ram_style = knob(f, "ram_style", "auto")
    res_type = knob(f, "res_type", "auto")
    k = layer.kernel_elems
    if layer.channels % pe:
        raise FoldingError(f"{layer.name}: PE={pe} does not divide Channels={layer.channels}; "
                           f"choose a divisor of {layer.channels}.")
    if k % simd:
        raise FoldingError(f"{layer.name}: SIMD={simd} does not divide the kernel size {k}; choose a divisor of {k}.")
    if ram_style not in _RAM_STYLES:
        raise FoldingError(f"{layer.name}: ram_style '{ram_style}' is not one of {sorted(_RAM_STYLES)}.")
    if layer.impl == "rtl" and res_type == "lut" and not ctx.finn_compat:
        raise FoldingError(_RTL_LUT.format(name=layer.name))
    W, A, acc, n_thr = layer.derived(_widths)
    wmem = (k * layer.channels // pe) // simd
    tmem = 0 if layer.no_activation else layer.channels // pe
    mem_width = simd * W * pe
    omega = wmem
    auto_small = ram_style == "auto" and wmem <= 128
    if ((mem_mode == "internal_decoupled" and ram_style in ("distributed", "ultra")) or auto_small
            or (mem_mode == "internal_embedded" and wmem <= 128) or mem_mode == "external"):
        bram = 0
    elif mem_width == 1:
        bram = math.ceil(omega / 16384)
    elif mem_width == 2:
        bram = math.ceil(omega / 8192)
    elif mem_width <= 4:
        bram = math.ceil(omega / 4096) * math.ceil(mem_width / 4)
    elif mem_width <= 9:
        bram = math.ceil(omega / 2048) * math.ceil(mem_width / 8)
    elif mem_width <= 18 or omega > 512:
        bram = math.ceil(omega / 1024) * math.ceil(mem_width / 16)
    else:
        bram = math.ceil(omega / 512) * math.ceil(mem_width / 32)
    uram = 0
    if not ((mem_mode == "internal_decoupled" and ram_style != "ultra") or mem_mode in
            ("internal_embedded", "external")):
        uram = weight_uram(omega, mem_width)
    c2 = 0
    if (mem_mode == "internal_decoupled" and ram_style == "distributed") or (
        mem_mode == "internal_embedded" and wmem <= 128
    ) or (auto_small and not ctx.finn_compat):
        c2 = (pe * simd * W) * math.ceil(wmem / 64)
    thr_luts = comp_luts = 0.0
    if not layer.no_activation:  # (2^B - 1) thresholds of acc bits each
        thr_luts = n_thr * acc * tmem / 64
        comp_luts = n_thr * acc
    if layer.impl == "hls":
        mult = 0 if res_type == "dsp" else simd * (2 * math.ceil((W + A) / 6) - 1) * (W + A)
        adder = (W + A) * (2 * simd - 1)
        lut = int(300 + 1.1 * (pe * (mult + adder + acc + thr_luts + comp_luts)) + c2)
        per = math.ceil((W + A) / 48)
        dsp = (pe * per if ctx.finn_compat else pe * simd * per) if res_type == "dsp" else 0
    else:
        lut = 0 if ctx.finn_compat else int(300 + 1.1 * (pe * (acc + thr_luts + comp_luts)) + c2)
        dsp = pe * math.ceil(simd / 3)
    cycles = int(layer.channels * k / pe / simd * layer.dim[0] * layer.dim[1])
    return Resources(LUT=lut, BRAM_18K=bram, URAM=uram, DSP=dsp), cycles

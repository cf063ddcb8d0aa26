"""Structural LUT models of finn-rtllib layers (finn-plus 1.6.1), counted from the RTL, checked against Yosys.

Each model counts the logic the RTL describes, in LUT6 terms of the Xilinx mapping: one LUT per bit of an adder
or comparator (the carry chain takes the rest), ``ceil((n-1)/3)`` LUT6 (+ MUXF7/F8) per bit of an n:1 multiplexer,
and distributed RAM per primitive (7-series RAM32M: 6 bits x 32 words, RAM64M: 3 bits x 64 words, four LUTs
each). Constants in these LUT costs are Xilinx primitive facts, not fitted coefficients; the only free terms are
named control-logic allowances, each stated where it is used. ``benchmarks/estimator_vs_synth.py`` compares the
models with Yosys ``synth_xilinx`` on random configurations; docs/estimator.md lists the results and where Yosys
and Vivado differ (Yosys does not infer SRLs from array shift registers, so shift-register FIFOs keep FINN's
Vivado-fitted model).
"""

from __future__ import annotations

import math

__all__ = [
    "mux_luts", "lutram_xc7", "mvu_rtl_luts", "dwc_rtl_luts", "fifo_distributed_xc7", "mvu_lanes_offsets", "swg_rtl_luts",
    "counter_luts",
]


def _clog2(x: int) -> int:
    x = int(x)
    return (x - 1).bit_length() if x > 1 else 0


def mux_luts(n: int) -> int:
    """LUT6 per bit of an n:1 multiplexer: a LUT6 is a 4:1 mux, each further LUT adds 3 inputs (MUXF7/F8 tree)."""
    return 0 if n <= 1 else math.ceil((n - 1) / 3)


def lutram_xc7(depth: int, width: int) -> int:
    """LUTs of a ``depth`` x ``width`` simple-dual-port distributed RAM on 7-series.

    RAM32M (4 LUTs: 6 bits x 32) up to 32 words, RAM64M (4 LUTs: 3 bits x 64) beyond, banks of 64 words
    selected by an output mux of ``width * mux_luts(banks)`` LUTs (UG474, "Distributed RAM").
    """
    if depth <= 0 or width <= 0:
        return 0
    if depth <= 32:
        return 4 * math.ceil(width / 6)
    banks = math.ceil(depth / 64)
    return 4 * math.ceil(width / 3) * banks + width * mux_luts(banks)


def mvu_lanes_offsets(wbits: int, abits: int, narrow: bool, lanes: int, accu: int, a_width: int,
                      p_width: int = 48) -> list[int]:
    """``mvu.sv``'s ``sliceLanes``: bit offset of each lane in the DSP's P output (lanes + 1 entries)."""
    lane_min = wbits + abits - 1
    slack = a_width - (0 if narrow else 1) - wbits - (lanes - 1) * lane_min
    res = [0]
    for i in range(1, lanes):
        extra = (slack + (lanes - 1 - i)) // (lanes - i)
        res.append(res[-1] + lane_min + extra)
        slack -= extra
    res.append(min(res[-1] + accu, p_width))
    return res


def mvu_rtl_luts(pe: int, simd: int, mw: int, mh: int, wbits: int, abits: int, accu: int, narrow: bool,
                 lanes: int, a_width: int, decoupled: bool) -> int:
    """LUT logic of ``mvu_vvu_axi.sv`` + ``mvu.sv`` (+ ``memstream.sv`` for decoupled weights), without LUTRAM.

    - ``memstream.sv`` output credit buffer ``OSrl[FULL_CREDIT-1]`` read at ``OPtr`` (FULL_CREDIT = 8): an 8:1
      mux per weight-stream bit, PE*SIMD*W bits (decoupled mode only).
    - ``mvu.sv``, per pipe (ceil(PE/L)) and occupied lane (``PE_REM`` lanes of the last pipe are unused): the SIMD-input adder tree ``add_multi`` over the lane's low
      part (SIMD-1 adders of lo_width + log2(SIMD)/2 bits on average), the high sideband tree and accumulator
      (2-bit args, HI bits), the cross-lane carry correction (two 2-bit adders per SIMD element and lane) and
      the lane total ``Res5`` (a three-operand ACCU_WIDTH-bit add: 2 LUTs per bit, one for lane 0).
    - ``mvu_vvu_axi.sv`` output queue ``OBuf[0:MAX_IN_FLIGHT]`` read at ``OPtr``: a (MAX_IN_FLIGHT+1):1 mux per
      output bit (PE*ACCU), MAX_IN_FLIGHT = 3 + clog2(SIMD+1) + (SIMD == 1).
    - control: ``replay_buffer`` and queue pointers, counters over SF = MW/SIMD and NF = MH/PE: 2 LUTs per
      counter bit plus 24 for the handshakes (an allowance).
    """
    pipes = -(-pe // lanes)
    offs = mvu_lanes_offsets(wbits, abits, narrow, lanes, accu, a_width)
    lut = 0
    for c in range(pipes):
        used = min(lanes, pe - c * lanes)
        for i in range(lanes - used, lanes):  # genLanes: lanes below PE_REM are tied to zero
            lo = offs[i + 1] - offs[i]
            if simd > 1:
                lut += (simd - 1) * (lo + _clog2(simd) // 2)
                if lanes > 1:
                    lut += (simd - 1) * 2 + 2 * simd  # high sideband tree + cross-lane correction
            lut += accu * (2 if i > 0 else 1)
    mif = 3 + _clog2(simd + 1) + (simd == 1)
    lut += pe * accu * mux_luts(mif + 1)
    if decoupled:
        lut += pe * simd * wbits * mux_luts(8)
    lut += 2 * (_clog2(max(mw // simd, 2)) + _clog2(max(mh // pe, 2)) + _clog2(mif + 2)) + 24
    return int(lut)


def dwc_rtl_luts(ibits: int, obits: int) -> int:
    """LUTs of ``dwc_axi.sv``'s ``vpc`` (W=1, PI=IBITS, PO=OBITS): GCD-wide lanes in a rotating buffer.

    ``vpc.sv`` normalises to W0 = gcd(IBITS, OBITS) bit lanes, PI0 = IBITS/W0 in, PO0 = OBITS/W0 out, and keeps a
    buffer of CAP = PI0 + PO0 lanes: each buffer lane is written from one of PI0 input lanes (the ``IRot`` barrel,
    a PI0:1 mux, plus hold) and each output lane reads one of CAP buffer lanes (a CAP:1 mux); the deposit mask
    and beat counters are 2 LUTs per bit of CAP + clog2 of the beats. PI0 = 1 (``genDes``, an integer
    up-conversion) shifts input lanes into place: no data muxes, control only.
    """
    if ibits == obits:
        return 0
    w0 = math.gcd(ibits, obits)
    pi0, po0 = ibits // w0, obits // w0
    cap = pi0 + po0
    data = 0 if pi0 == 1 else w0 * (cap * mux_luts(pi0 + 1) + po0 * mux_luts(cap))
    ctrl = 2 * (cap + _clog2(pi0 + 1) + _clog2(po0 + 1)) + 8
    return int(data + ctrl)


def fifo_distributed_xc7(depth: int, width: int) -> tuple[int, int]:
    """(logic LUTs, LUTRAM LUTs) of ``fifo.sv``'s distributed style on 7-series.

    Storage: 2**clog2(DEPTH-1) rows (the last entry is the output register) of ``width`` bits in RAM32M/RAM64M
    (:func:`lutram_xc7`); logic: read/write pointers and the fill counter (2 LUTs per pointer bit + 5) and the
    bank select mux when the rows exceed one 64-word bank.
    """
    rows = 2 ** _clog2(depth - 1)
    banks = math.ceil(rows / 64)
    ram = 4 * math.ceil(width / 6) if rows <= 32 else 4 * math.ceil(width / 3) * banks
    return 2 * _clog2(rows) + 5 + width * mux_luts(banks), ram


def counter_luts(loops: tuple[int, ...]) -> int:
    """Loop counters over ``loops`` values each: 2 LUTs per counter bit (increment + wrap compare), clog2(max(n, 2))
    bits."""
    cnt = 0
    for n in loops:
        cnt += 2 * (int(n) - 1).bit_length() if n > 2 else 2
    return cnt


def swg_rtl_luts(loops: tuple[int, ...], depth: int, parallel: bool, counters: int = 0) -> int:
    """Controller logic of the RTL SWG (``swg_template_default.sv`` / ``swg_template_parallel.sv``), without LUTRAM.

    Loop counters over the window loops (``loops``: OFM_H, OFM_W, K_H, K_W, channel fold; :func:`counter_luts`;
    ``counters``: the counter LUTs of loops already counted, e.g. the folding-independent OFM and kernel loops),
    three buffer-address computations (write pointer, read address = pointer + window offset, fill level: 2 LUTs
    per address bit each) and a handshake allowance of 40 LUTs. The parallel style has no read-address arithmetic
    (the window is a register row) and one address computation.
    """
    addr = (1 if parallel else 3) * 2 * _clog2(max(depth, 2))
    return int(counters + counter_luts(loops) + addr + 40)


def thresholding_rtl_luts(pe: int, cf: int, n_thresholds: int, wt: int, rom_stages: tuple[int, ...],
                          deep_pipeline: bool = True) -> int:
    """LUTs of ``thresholding.sv`` (finn-plus 1.6.1, wrapped by ``thresholding_axi.sv`` with K = WT) with its
    threshold memories held as logic.

    The binary search has M = clog2(N+1) stages per PE. Stage s reads a CF*2**s-word x WT-bit threshold memory
    (``blkThresh``: ROM data from ``$readmemh``, a registered read) and compares it with the input
    (``$signed(Thresh) <= $signed(P.val)``): a WT-bit magnitude comparator on the carry chain, one LUT per two
    bits, plus one LUT for ``Scope && cmp`` into the pointer. ROM stages listed in ``rom_stages`` (their memory
    in LUTs) add WT * ceil(depth/64) LUTs (a LUT6 per bit per 64 words) when they have at least 8 words; a
    column of a ROM of at most 4 words is a function of at most two address bits that synthesis folds into the
    neighbouring logic (counted 0). The output queue ``blkStreamOutput`` reads one of A_DEPTH =
    (DEEP_PIPELINE+1)*M + 2 entries of PE*M bits (an A_DEPTH:1 mux per bit); control: the channel counter
    ``CnlCnt``, the credit counter ``GuardSem`` and the queue pointer ``APtr``, 2 LUTs per counter bit.
    """
    m = _clog2(n_thresholds + 1)
    compare = pe * m * (math.ceil(wt / 2) + 1)
    rom = 0
    for s in rom_stages:
        depth = cf * 2**s
        if int(depth) > 4:  # clog2(depth) >= 3
            rom += pe * wt * math.ceil(depth / 64)
    a_depth = (int(deep_pipeline) + 1) * m + 2
    queue = pe * m * mux_luts(a_depth)
    ctrl = 2 * (_clog2(cf) + _clog2(a_depth + 1) + 1 + _clog2(a_depth) + 1)
    return int(compare + rom + queue + ctrl)

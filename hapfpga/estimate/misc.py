"""Pool, StreamingMaxPool, FMPadding, LabelSelect, Elementwise{Mul,Add}, Reshape, DuplicateStreams, DWC, FIFO.

Cycles mirror finn-plus 1.6.1's ``get_exp_cycles`` of ``pool.py``, ``fmpadding.py``,
``labelselect.py``, ``elementwise_binary.py``, ``reshape.py`` and ``duplicatestreams.py``. FINN gives these nodes 0 LUT
(the ``HWCustomOp`` base-class default); unless ``ctx.finn_compat`` we count their logic with the
structural models below — counts of comparators, registers and multiplexers of the hlslib / finn-rtllib
implementation at ~1 LUT6 per bit of a compare or a 2:1 mux. They are our estimates, not fitted to
Vivado runs; docs/estimator.md lists them.
"""

from __future__ import annotations

import math
from math import prod

from ..types import LayerFolding, Resources
from .context import Ctx, FoldingError, knob
from .dtypes import bits
from .infra import dwc_luts, fifo_cost, fifo_style
from .layers import (
    DuplicateStreams,
    ElementwiseBinary,
    FMPadding,
    LabelSelect,
    Pool,
    Reshape,
    StreamingDataWidthConverter,
    StreamingFIFO,
    StreamingMaxPool,
)
from .mvau import weight_bram18
from .rtl_luts import dwc_rtl_luts, fifo_distributed_xc7

__all__ = [
    "pool_cost",
    "streamingmaxpool_cost",
    "fmpadding_cost",
    "labelselect_cost",
    "elementwise_cost",
    "reshape_cost",
    "duplicatestreams_cost",
    "dwc_cost",
    "fifo_layer_cost",
]


def _pe(layer, f: LayerFolding, dim: int, knob_name: str = "pe") -> int:
    v = int(knob(f, knob_name, 1))
    if v < 1 or dim % v:
        raise FoldingError(f"{layer.name}: {knob_name.upper()}={v} does not divide {dim}; choose a divisor of {dim}.")
    return v


def _ctrl(words: int) -> int:
    """Counter logic of a loop over ``words``: ~2 LUTs per counter bit (increment + compare)."""
    return 2 * max(1, math.ceil(math.log2(max(words, 2))))


def pool_cost(layer: Pool, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """Pool: cycles = Ch*prod(K)/PE * prod(OutImgDims) * batch (``Pool.get_exp_cycles``).

    LUT (ours; FINN 0): per PE one running max (A-bit compare + A-bit register mux, 2A LUTs) or an
    accumulator (2*AccumBits) for Avg/AccPool, plus the loop counters.
    """
    pe = _pe(layer, f, layer.channels)
    kp = prod(layer.kernel)
    cycles = int(layer.channels * kp / pe * prod(layer.out_dims) * layer.batch)
    if ctx.finn_compat:
        return Resources(), cycles
    a = bits(layer.idt)
    w = a if layer.function == "MaxPool" else (layer.accum_bits or a + math.ceil(math.log2(max(kp, 2))))
    return Resources(LUT=pe * 2 * w + _ctrl(cycles)), cycles


def streamingmaxpool_cost(layer: StreamingMaxPool, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """StreamingMaxPool (upstream FINN; finn-plus 1.6.1 uses SWG + Pool instead).

    cycles: every input word once, plus the 1/k_w overhead of upstream FINN's 2D formula
    ``ifm_w * (ifm_w + ifm_w/k_w)`` per channel fold. LUT (ours): a line buffer of the pooled row
    (LUTRAM, Ch*A*ceil(W/k/64)) and PE A-bit compares.
    """
    pe = _pe(layer, f, layer.channels)
    (h, w), (_, kw) = layer.ifm_dim, layer.pool_dim
    cf = layer.channels // pe
    cycles = int(h * (w + w / kw) * cf)
    if ctx.finn_compat:
        return Resources(), cycles
    a = bits(layer.idt)
    lut = pe * 2 * a + pe * a * math.ceil(cf * (w // kw) / 64) + _ctrl(cycles)
    return Resources(LUT=lut), cycles


def fmpadding_cost(layer: FMPadding, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """FMPadding: cycles = Ch/SIMD * padded H*W (``FMPadding.get_exp_cycles``).

    LUT (ours; FINN 0): the SIMD*A output mux between data and zero plus row/column counters.
    """
    simd = _pe(layer, f, layer.channels, "simd")
    (h, w), (t, left, b, r) = layer.ifm_dim, layer.padding
    cycles = int(layer.channels / simd * (h + t + b) * (w + left + r))
    if ctx.finn_compat:
        return Resources(), cycles
    return Resources(LUT=simd * bits(layer.idt) + _ctrl(h + t + b) + _ctrl(w + left + r)
                     + _ctrl(layer.channels // simd)), cycles


def labelselect_cost(layer: LabelSelect, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """LabelSelect: cycles = Labels/PE (``LabelSelect.get_exp_cycles``).

    LUT (ours; FINN 0): hlslib's top-K keeps K (value, index) pairs in registers and inserts each of
    PE candidates by comparing against all K: PE*K A-bit compares + K*(A + index bits) 2:1 muxes.
    """
    pe = _pe(layer, f, layer.labels)
    cycles = int(layer.labels / pe) * layer.n_vectors
    if ctx.finn_compat:
        return Resources(), cycles
    a = bits(layer.idt)
    ib = max(1, math.ceil(math.log2(max(layer.labels, 2))))
    return Resources(LUT=pe * layer.k * a + layer.k * (a + ib) + _ctrl(cycles)), cycles


def _is_float(dt: str) -> bool:
    return dt.upper().startswith(("FLOAT", "BFLOAT"))


def _operand_types(layer: ElementwiseBinary) -> tuple[int, int, bool]:
    """Bits of both operands and whether either is a float (a function of the layer alone)."""
    return bits(layer.lhs_dt), bits(layer.rhs_dt), _is_float(layer.lhs_dt) or _is_float(layer.rhs_dt)


def elementwise_cost(layer: ElementwiseBinary, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """ElementwiseMul/Add: cycles = prod(folded output shape[:-1]) (``get_exp_cycles``).

    Memory for a constant operand: ``ElementwiseBinaryOperation._parameter_memory_specs`` with the
    FINN-R BRAM table (``_bram18_estimation``) for ram_style auto/block, 72x4096 URAMs for ultra,
    LUTRAM (width*ceil(depth/64)) for distributed (FINN's only LUT term). In ``internal_embedded``
    mode (the default) FINN's spec has width 0 (``get_instream_width`` returns 0 for an embedded
    constant), so FINN counts no memory at all; unless ``ctx.finn_compat`` we cost it like the
    decoupled case. The operator (ours; FINN 0): per PE a FINN-R multiplier
    (2*ceil((a+b)/6)-1)*(a+b) LUTs or a max(a,b)+1-bit adder; float operands use Vivado HLS's
    floating-point cores (fmul: 3 DSP + ~100 LUT, fadd: 2 DSP + ~220 LUT per PE, Vivado HLS
    defaults of the ``full_dsp`` implementation).
    """
    pe = _pe(layer, f, layer.channels)
    cycles = int(prod(layer.out_shape[:-1]) * (layer.out_shape[-1] // pe))
    ram_style = knob(f, "ram_style", "auto")
    mem_mode = knob(f, "mem_mode", "internal_embedded")
    # constant operand memory geometry (rhs is the usual constant)
    specs = []
    for const, shape, dt in ((layer.lhs_const, layer.lhs_shape, layer.lhs_dt),
                             (layer.rhs_const, layer.rhs_shape, layer.rhs_dt)):
        if not const:
            continue
        last = shape[-1] if shape else 1
        broadcast = last == 1 and layer.channels != 1
        elems = pe if broadcast else pe
        depth = prod(shape[:-1]) * (1 if broadcast else last // pe) if shape else 1
        width = elems * bits(dt)
        if mem_mode == "internal_embedded" and ctx.finn_compat:
            width = 0
        if width > 0 and depth > 0:
            specs.append((width, depth))
    if not ctx.finn_compat and mem_mode == "internal_embedded":
        # HLS keeps a small embedded constant array (<= 128 words) in registers/LUTRAM, as FINN
        # assumes for MVAU internal_embedded weights (calc_wmem() <= 128)
        small = [(w, d) for w, d in specs if d <= 128]
        specs = [(w, d) for w, d in specs if d > 128]
    else:
        small = []
    bram = sum(weight_bram18(d, w) for w, d in specs) if specs and ram_style in ("auto", "block") else 0
    uram = sum(math.ceil(w / 72) * math.ceil(d / 4096) for w, d in specs) if specs and ram_style == "ultra" else 0
    lutram = sum(w * math.ceil(d / 64) for w, d in specs) if specs and ram_style == "distributed" else 0
    if small:
        lutram += sum(w * math.ceil(d / 64) for w, d in small)
    if ctx.finn_compat:
        return Resources(LUT=lutram, BRAM_18K=bram, URAM=uram), cycles
    a, b, floats = layer.derived(_operand_types)
    dsp = 0
    if floats:
        if layer.kind == "ElementwiseMul":
            op, dsp = 100 * pe, 3 * pe
        else:
            op, dsp = 220 * pe, 2 * pe
    elif layer.kind == "ElementwiseMul":
        op = pe * (2 * math.ceil((a + b) / 6) - 1) * (a + b)
    else:
        op = pe * (max(a, b) + 1)
    return Resources(LUT=lutram + op + _ctrl(cycles), BRAM_18K=bram, URAM=uram, DSP=dsp), cycles


def reshape_cost(layer: Reshape, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """Reshape: cycles = prod(folded output shape[:-1]) (``Reshape.get_exp_cycles``).

    A stream reshape that keeps the element order is wiring; ours counts its word counter (FINN 0).
    """
    pe = _pe(layer, f, layer.out_channels)
    cycles = int(prod(layer.out_shape[:-1]) * (layer.out_shape[-1] // pe))
    return (Resources() if ctx.finn_compat else Resources(LUT=_ctrl(cycles))), cycles


def duplicatestreams_cost(layer: DuplicateStreams, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """DuplicateStreams: cycles = n_vectors * Ch/PE (``DuplicateStreams.get_exp_cycles``).

    LUT (ours; FINN 0): the joint handshake of the output streams (an AND of the ready signals and a
    per-output "sent" flag) plus the word counter; the data wires fan out for free.
    """
    pe = _pe(layer, f, layer.channels)
    cycles = layer.n_vectors * (layer.channels // pe)
    if ctx.finn_compat:
        return Resources(), cycles
    return Resources(LUT=2 * layer.n_outputs + _ctrl(cycles)), cycles


def dwc_cost(layer: StreamingDataWidthConverter, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """DWC as a graph node: LUT per ``StreamingDataWidthConverter.lut_estimation``; cycles (ours;
    FINN defines none): max(input words, output words) per frame.

    ``StreamingDataWidthConverter_rtl`` unless ``ctx.finn_compat``: the structure of finn-rtllib's ``vpc.sv``
    (:func:`~hapfpga.estimate.rtl_luts.dwc_rtl_luts`; deviation ``dwc-rtl-lut``): FINN's LCM-width formula
    counts ~1 LUT per output bit where the RTL's rotating buffer needs muxes per lane.
    """
    n_out = layer.in_width * layer.n_words_in // max(layer.out_width, 1)
    if layer.impl == "rtl" and not ctx.finn_compat:
        lut = dwc_rtl_luts(layer.in_width, layer.out_width)
    else:
        lut = dwc_luts(layer.in_width, layer.out_width)
    return Resources(LUT=lut), max(layer.n_words_in, n_out)


def fifo_layer_cost(layer: StreamingFIFO, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """FIFO as a graph node: finn-plus ``resource_models._fifo_cost`` (see infra.py); cycles = words.

    That model is fitted on UltraScale+ (RAM64M8 LUTRAM). On 7-series parts, unless ``ctx.finn_compat``, a
    distributed FIFO is counted from ``fifo.sv``'s structure with RAM32M/RAM64M
    (:func:`~hapfpga.estimate.rtl_luts.fifo_distributed_xc7`) and a block FIFO's logic as its pointers
    (2 LUTs per address bit + 5); deviation ``fifo-xc7``. Shift-register FIFOs keep FINN's SRL model (Yosys
    does not infer SRLs from fifo.sv's addressable array, so it is no reference there; docs/estimator.md).
    """
    depth = int(knob(f, "depth", layer.depth))
    style = knob(f, "ram_style", layer.ram_style)
    res = fifo_cost(depth, layer.width, style, ctx.has_uram or ctx.finn_compat)
    if ctx.dsp48e1 and not ctx.finn_compat and depth >= 2:
        w = int(math.ceil(layer.width / 8) * 8)
        eff = fifo_style(depth, w, style)
        if eff == "distributed":
            res = Resources(LUT=sum(fifo_distributed_xc7(depth, w)))
        elif eff == "block":
            res = Resources(LUT=2 * max(depth - 1, 1).bit_length() + 5, BRAM_18K=res.BRAM_18K)
    return res, layer.n_words

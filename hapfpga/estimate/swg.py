"""ConvolutionInputGenerator (sliding-window generator) cost formulas.

Mirrors finn-plus 1.6.1 ``finn/custom_op/fpgadataflow/rtl/convolutioninputgenerator_rtl.py``
(``select_impl_style``, ``get_buffer_depth``, ``get_exp_cycles``, ``bram/lut/uram_estimation``).
finn-plus 1.6.1 has no HLS SWG; an ``impl="hls"`` SWG is costed with the RTL model.
"""

from __future__ import annotations

import math

from ..types import LayerFolding, Resources
from .context import Ctx, FoldingError, knob
from .dtypes import bits
from .layers import ConvolutionInputGenerator
from .rtl_luts import counter_luts, lutram_xc7, swg_rtl_luts

__all__ = ["swg_cost", "swg_impl_style", "swg_buffer_depth"]


def swg_impl_style(layer: ConvolutionInputGenerator, simd: int, parallel_window: int) -> str:
    """``"parallel"`` or ``"default"`` and the folding constraints of ``select_impl_style``."""
    kh, kw = layer.kernel
    if layer.ifm_ch % simd:
        raise FoldingError(
            f"{layer.name}: SIMD={simd} does not divide IFMChannels={layer.ifm_ch}; "
            f"choose a divisor of {layer.ifm_ch}."
        )
    mmv_out = kh * kw if parallel_window else 1
    if mmv_out > 1 or (kh == 1 and kw == 1):
        if not (layer.depthwise or (kh == 1 and kw == 1)) and simd != layer.ifm_ch:
            raise FoldingError(
                f"{layer.name}: parallel_window=1 needs SIMD = IFMChannels = {layer.ifm_ch} "
                f"(got SIMD={simd}); set SIMD={layer.ifm_ch} or parallel_window=0."
            )
        return "parallel"
    return "default"


def swg_buffer_depth(layer: ConvolutionInputGenerator, simd: int, style: str) -> int:
    """Line-buffer depth in words (``get_buffer_depth``)."""
    kh, kw = layer.kernel
    h, w = layer.ifm_dim
    sh, sw = layer.stride
    dh, dw = layer.dilation
    cf = layer.ifm_ch // simd
    if style == "default":
        bmin = ((kh - 1) * dh * w + (kw - 1) * dw + 1) * cf
        return bmin + max(0, ((sw - 1) - kh * kw) * cf) + max(0, ((sh - 1) * w - kh * kw) * cf)
    return ((kh - 1) * dh * w + (kw - 1) * dw) * cf + 1 + 1


def _ramb18_width(depth: int) -> int:
    """Widest RAMB18 aspect ratio that holds ``depth`` words (``bram_estimation``'s ladder)."""
    for lim, wd in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2)):
        if depth <= lim:
            return wd
    return 1


def _bram_for(depth: int, width: int) -> int:
    casc_d = math.ceil(depth / 16384)
    casc_w = math.ceil(width / _ramb18_width(depth))
    savings = 0
    if depth > 16384:
        savings = casc_w - math.ceil(width / _ramb18_width(depth % 16384))
    return casc_d * casc_w - savings


def _finn_cycles(layer: ConvolutionInputGenerator, simd: int, style: str) -> int:
    """``get_exp_cycles`` exactly (finn-plus 1.6.1, ``convolutioninputgenerator_rtl.py``)."""
    if style == "parallel":
        return layer.ifm_dim[0] * layer.ifm_dim[1] * (layer.ifm_ch // simd) + 2
    cf = layer.ifm_ch // simd
    (ih, iw), (oh, ow) = layer.ifm_dim, layer.ofm_dim
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    if ih == 1 or iw == 1:  # 1D, normalised to [1, D]
        if iw == 1:
            ih, iw, oh, ow, kh, kw, sh, sw, dh, dw = iw, ih, ow, oh, kw, kh, sw, sh, dw, dh
        if layer.depthwise:
            c_out = ow * kw * cf + (cf - 1) * kw
            c_in = iw * cf + cf * (kw - 1) * (sw - 1)
            return max(c_out, c_in) + 2
        return ow * kw * cf + 2
    bmin = ((kh - 1) * dh * iw + (kw - 1) * dw + 1) * cf
    mx = max(ow * kw * kh * cf, sw * iw * cf)
    if layer.depthwise:
        mx += ow * (sw - 1) * (cf - 1)
    cyc = bmin + oh * mx
    if layer.depthwise:
        cyc += (sh - 1) * iw * cf
    return cyc


def _rtl_cycles(layer: ConvolutionInputGenerator, simd: int, style: str, buf: int) -> int:
    """Steady-state cycles per frame of finn-rtllib's default-style SWG (2D); FINN's formula elsewhere.

    From ``finn-rtllib/swg/swg_template_default.sv`` (out always ready, input always valid):

    - frames do not overlap: the next frame's first read waits until the last window is written and the
      last input word read (``nbe_rst``, "todo: allow for read overlapping between feature maps");
    - one buffer fetch and one output word per cycle (``fetch_cmd``), one input word per cycle
      (``read_cmd``), a fetch waits until its element is buffered (``Current_elem > Newest_buffered_elem``),
      a read until the element it overwrites is behind ``First_elem_next_window`` and ``Current_elem``;
    - so the output stream runs OFM_H*OFM_W*K_H*K_W*CF words back to back, after a fill: the first window's
      last element is input word ``bmin - 1`` (non-depthwise: the window then needs no more fetch time,
      fill = bmin - K_H*K_W*CF); a depthwise window (``IS_DEPTHWISE``, ``prepare_codegen_default``'s
      re-arranged loops: channel fold outer, kernel inner) replays the buffered window once per channel
      fold, so its channel-0 pass already waits for the window's last pixel (fill = bmin - CF - K_H*K_W);
    - depthwise, from the second output row on: the first window of a row needs the last kernel row's
      pixels, which the read side could not fetch ahead while the previous row's last window held the
      buffer (``BUF_ELEM_TOTAL`` from ``get_buffer_depth``): a stall of the words between what the buffer
      let in and what channel 0 needs, less the (K_H-1)*K_W fetches of channel 0 that do not wait;
    - never fewer cycles than reading the whole input frame (H*W*CF words, stride > 1 skips rows).

    Checked against a cycle-level model of the template and Verilator runs of single SWG nodes
    (docs/estimator.md, D10). The 1D and parallel styles measure within 3 cycles of FINN's formula.
    ``buf``: ``swg_buffer_depth(layer, simd, style)``.
    """
    (ih, iw), (oh, ow) = layer.ifm_dim, layer.ofm_dim
    if style == "parallel" or ih == 1 or iw == 1:
        return _finn_cycles(layer, simd, style)
    cf = layer.ifm_ch // simd
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    k2 = kh * kw
    bmin = ((kh - 1) * dh * iw + (kw - 1) * dw + 1) * cf
    if layer.depthwise and cf > 1:
        gap = ((sh + (kh - 1) * dh) * iw + (kw - 1) * dw - (ow - 1) * sw - 1) * cf - buf + 2
        stall = max(0, gap - (kh - 1) * kw - 4)
        cyc = bmin - cf - k2 + 3 + oh * ow * k2 * cf + (oh - 1) * stall
    else:
        cyc = bmin - k2 * cf + 2 + oh * ow * k2 * cf
    return max(cyc, ih * iw * cf + 2)


def _window_counters(layer: ConvolutionInputGenerator) -> int:
    """Counter LUTs of the window loops that do not depend on the folding (OFM_H, OFM_W, K_H, K_W)."""
    return counter_luts((*layer.ofm_dim, *layer.kernel))


def _rtl_luts(layer: ConvolutionInputGenerator, simd: int, style: str, ram_style: str, depth: int, width: int,
              bdepth: int, bcount: int) -> tuple[int, str]:
    """Our LUT count (deviation ``swg-rtl-lut``) and the effective ram_style.

    Controller logic from the template's structure (:func:`~hapfpga.estimate.rtl_luts.swg_rtl_luts`) plus the
    line buffers in distributed RAM (``swg_common.sv``'s ``ram_style`` memories; 7-series RAM32M/RAM64M,
    :func:`~hapfpga.estimate.rtl_luts.lutram_xc7`). ``ram_style=auto`` buffers of at most 64 words go to
    LUTRAM, as Yosys's memory mapper places them (a RAM64M column is cheaper than a RAMB18); FINN counts BRAM.
    FINN's 300-LUT constant is a guess the RTL does not support (Yosys: 80-170 LUTs of control).
    """
    lut = swg_rtl_luts((layer.ifm_ch // simd,), depth, style == "parallel", layer.derived(_window_counters))
    if ram_style == "auto" and bcount and bdepth <= 64:
        ram_style = "distributed"
    if ram_style == "distributed" and bcount:
        lut += bcount * lutram_xc7(bdepth, width)
    return lut, ram_style


def swg_cost(layer: ConvolutionInputGenerator, f: LayerFolding, ctx: Ctx) -> tuple[Resources, int]:
    """LUT, BRAM18, URAM and cycles of the RTL SWG.

    - cycles: ``ctx.finn_compat``: ``get_exp_cycles`` (parallel: input words + 2; default: buffer fill +
      OFM_H * max(write block, read block), with the 1D and depthwise variants); otherwise the RTL's
      steady state (``_rtl_cycles``, deviation ``swg-rtl-cycles``).
    - LUT: ``ctx.finn_compat``: 300 + width*ceil(depth/38) for ram_style=distributed (FINN's fitted LUTRAM
      model); otherwise the RTL's controller and line-buffer LUTRAM (:func:`_rtl_luts`).
    - BRAM18: aspect-ratio model for ram_style block/auto; parallel: (k_h-1) line buffers.
    - URAM: 72x4096 blocks for ram_style=ultra.
    """
    simd = int(knob(f, "simd", 1))
    pw = int(knob(f, "parallel_window", 0))
    ram_style = knob(f, "ram_style", "distributed")
    if ram_style not in ("auto", "block", "distributed", "ultra"):
        raise FoldingError(f"{layer.name}: ram_style '{ram_style}' is not auto, block, distributed or ultra.")
    style = swg_impl_style(layer, simd, pw)
    width = simd * bits(layer.idt)
    depth = swg_buffer_depth(layer, simd, style)
    kh, kw = layer.kernel
    (ih, iw), (dh, dw) = layer.ifm_dim, layer.dilation
    if style == "default":
        bdepth, bcount = depth, 1
    elif ih == 1 or iw == 1:
        bdepth, bcount = 0, 0
    else:
        bdepth, bcount = (iw - ((kw - 1) * dw + 1)) + iw * (dh - 1), kh - 1
    if ctx.finn_compat:
        lut = 300 + (int(width * math.ceil(depth / 38)) if ram_style == "distributed" else 0)
    else:
        lut, ram_style = _rtl_luts(layer, simd, style, ram_style, depth, width, bdepth, bcount)
    bram = uram = 0
    if ram_style in ("block", "auto", "ultra") and bcount:
        if ram_style == "ultra":
            uram = math.ceil(bdepth / 4096) * math.ceil(width / 72) * bcount
        else:
            bram = _bram_for(bdepth, width) * bcount
    cycles = _finn_cycles(layer, simd, style) if ctx.finn_compat else _rtl_cycles(layer, simd, style, depth)
    return Resources(LUT=lut, BRAM_18K=bram, URAM=uram), cycles

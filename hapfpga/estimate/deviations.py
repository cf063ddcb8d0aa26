"""Where our default estimate deliberately differs from finn-plus 1.6.1, and for which fields.

docs/estimator.md gives the reason and evidence for each entry; the parity tests use
``deviations_for`` to compare only the fields a documented deviation does not touch.
"""

from __future__ import annotations

from ..boards import BoardSpec
from ..types import LayerFolding
from .context import FoldingError, knob
from .core import effective_folding
from .layers import (
    MVAU,
    VVAU,
    ConvolutionInputGenerator,
    ElementwiseBinary,
    LayerSpec,
    StreamingDataWidthConverter,
    StreamingFIFO,
    Thresholding,
)
from .swg import swg_impl_style

__all__ = ["DEVIATIONS", "deviations_for"]

#: id -> (what differs, fields affected)
DEVIATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rtl-mvu-lut": (
        "MVAU_rtl / VVAU_rtl: FINN reports 0 LUT; we count the RTL's adder trees, queues and LUTRAM "
        "(MVAU_rtl: finn-rtllib structure, checked against Yosys)",
        ("LUT",),
    ),
    "rtl-mvu-auto-lutram": (
        "MVAU_rtl ram_style=auto weights of <= 64 words: FINN counts BRAM; they map to LUTRAM (Yosys)",
        ("LUT", "BRAM_18K"),
    ),
    "rtl-mvu-bram": (
        "MVAU_rtl block weights: FINN-R's RAMB18 table on PE*SIMD*W bits; we pack memstream's byte-padded word "
        "as Yosys's memory_libmap does (brams_xc4v.txt: 9-bit bytes, RAMB36 when cheaper; exact against Yosys)",
        ("BRAM_18K",),
    ),
    "dwc-rtl-lut": (
        "StreamingDataWidthConverter_rtl: FINN's LCM-width formula; we count vpc.sv's lane muxes",
        ("LUT",),
    ),
    "fifo-xc7": (
        "StreamingFIFO on 7-series: FINN's model is fitted on UltraScale+; we count RAM32M/RAM64M LUTRAM",
        ("LUT",),
    ),
    "swg-rtl-lut": (
        "ConvolutionInputGenerator_rtl: FINN's 300-LUT constant; we count controller and line-buffer LUTRAM, "
        "auto buffers of <= 64 words in LUTRAM",
        ("LUT", "BRAM_18K"),
    ),
    "rtl-mvu-dsp": (
        "MVAU_rtl: FINN counts ceil(P/4)*Q DSPs; we count what mvu.sv instantiates, ceil(P/L)*Q with L lanes "
        "per DSP from the weight/activation widths (exact against Yosys)",
        ("DSP",),
    ),
    "thr-rtl-comparators": (
        "Thresholding_rtl: FINN's LUT is only the LUTRAM count; we count thresholding.sv's comparators, ROMs as "
        "logic, output queue and counters (checked against Yosys)",
        ("LUT",),
    ),
    "thr-rtl-no-uram": (
        "Thresholding_rtl: FINN may place thresholds in URAM on parts without URAM",
        ("LUT", "BRAM_18K", "URAM"),
    ),
    "vvau-dsp-simd": ("VVAU_hls resType=dsp: FINN counts P*ceil((W+A)/48) DSPs, ignoring SIMD", ("DSP",)),
    "vvau-auto-small": (
        "VVAU ram_style=auto, <=128 words: FINN counts the weights in neither BRAM nor LUT",
        ("LUT",),
    ),
    "zero-lut-kinds": (
        "Pool, StreamingMaxPool, FMPadding, LabelSelect, Reshape, DuplicateStreams: FINN reports 0 LUT",
        ("LUT",),
    ),
    "eltwise-embedded-const": (
        "Elementwise* internal_embedded constant: FINN counts no memory (width 0)",
        ("LUT", "BRAM_18K", "URAM"),
    ),
    "eltwise-operator": ("Elementwise*: FINN counts no operator logic", ("LUT", "DSP")),
    "swg-rtl-cycles": (
        "ConvolutionInputGenerator default style, 2D: FINN adds the whole buffer fill per frame "
        "and a per-window depthwise stall; we count finn-rtllib's measured steady state",
        ("cycles",),
    ),
}

_ZERO_LUT_KINDS = {"Pool", "StreamingMaxPool", "FMPadding", "LabelSelect", "Reshape", "DuplicateStreams"}


def deviations_for(
    layer: LayerSpec, folding: LayerFolding | None = None, board: BoardSpec | None = None
) -> list[str]:
    """Ids of the deviations that can change this layer's estimate from FINN's."""
    f = effective_folding(layer, folding)
    out = []
    if isinstance(layer, (MVAU, VVAU)) and layer.impl == "rtl":
        out.append("rtl-mvu-lut")
    if isinstance(layer, MVAU) and layer.impl == "rtl":
        out.append("rtl-mvu-dsp")
        if board is None or not board.part.lower().startswith("xcv"):  # Versal (DSP58): FINN-R's table kept
            out.append("rtl-mvu-bram")
        if knob(f, "ram_style", "auto") == "auto":
            out.append("rtl-mvu-auto-lutram")
    if isinstance(layer, StreamingDataWidthConverter) and layer.impl == "rtl":
        out.append("dwc-rtl-lut")
    if isinstance(layer, StreamingFIFO) and (board is None or board.part.lower().startswith("xc7")):
        out.append("fifo-xc7")
    if isinstance(layer, ConvolutionInputGenerator):
        out.append("swg-rtl-lut")
    if isinstance(layer, Thresholding) and layer.impl == "rtl":
        out.append("thr-rtl-comparators")
        if board is None or board.capacity.URAM == 0:
            out.append("thr-rtl-no-uram")
    if isinstance(layer, VVAU) and layer.impl == "hls" and knob(f, "res_type", "auto") == "dsp":
        out.append("vvau-dsp-simd")
    if isinstance(layer, VVAU) and knob(f, "ram_style", "auto") == "auto":
        out.append("vvau-auto-small")
    if layer.kind in _ZERO_LUT_KINDS:
        out.append("zero-lut-kinds")
    if isinstance(layer, ElementwiseBinary):
        out.append("eltwise-operator")
        if knob(f, "mem_mode", "internal_embedded") == "internal_embedded":
            out.append("eltwise-embedded-const")
    if isinstance(layer, ConvolutionInputGenerator) and 1 not in layer.ifm_dim:
        try:
            style = swg_impl_style(layer, int(knob(f, "simd", 1)), int(knob(f, "parallel_window", 0)))
        except FoldingError:
            style = None
        if style == "default":
            out.append("swg-rtl-cycles")
    return out

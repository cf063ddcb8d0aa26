"""Stream widths and words per frame at each layer's input and output, for width converters and FIFOs.

Mirrors the ``get_instream_width`` / ``get_outstream_width`` / ``get_folded_*_shape`` methods of the
finn-plus 1.6.1 custom ops named in each branch.
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod
from typing import Any

from ..errors import UnsupportedLayerError
from ..types import LayerFolding
from .context import knob
from .dtypes import bits
from .layers import (
    MVAU,
    VVAU,
    ConvolutionInputGenerator,
    DuplicateStreams,
    ElementwiseBinary,
    FMPadding,
    LabelSelect,
    LayerSpec,
    Pool,
    Reshape,
    StreamingDataWidthConverter,
    StreamingFIFO,
    StreamingMaxPool,
    Thresholding,
)

__all__ = ["stream_io", "compute_stream_io", "STREAMS"]


def stream_io(layer: LayerSpec, f: LayerFolding) -> tuple[int, int, int, int]:
    """``(in_width_bits, in_words_per_frame, out_width_bits, out_words_per_frame)`` of ``layer``."""
    memo = layer.memo("stream_io")
    r = memo.get(f)
    if r is None:
        r = memo[f] = compute_stream_io(layer, f)
    return r


def compute_stream_io(layer: LayerSpec, f: LayerFolding) -> tuple[int, int, int, int]:
    """``stream_io`` without the memo: the layer kind's entry of ``STREAMS``."""
    fn = STREAMS.get(layer.kind)
    if fn is None:
        raise UnsupportedLayerError(f"Layer {layer.name} has kind '{layer.kind}', whose streams the estimator "
                                    "does not model.")
    return fn(layer, f)


def _mvau(layer: MVAU, f: LayerFolding) -> tuple[int, int, int, int]:
    pe, simd = int(knob(f, "pe", 1)), int(knob(f, "simd", 1))
    return (simd * bits(layer.idt), layer.n_vectors * layer.mw // simd,
            pe * bits(layer.odt), layer.n_vectors * layer.mh // pe)


def _vvau(layer: VVAU, f: LayerFolding) -> tuple[int, int, int, int]:
    pe, simd = int(knob(f, "pe", 1)), int(knob(f, "simd", 1))
    n = prod(layer.dim)
    k = layer.kernel_elems
    return (pe * simd * bits(layer.idt), n * layer.channels * k // (pe * simd),
            pe * bits(layer.odt), n * layer.channels // pe)


def _thresholding(layer: Thresholding, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    w = layer.n_vectors * layer.channels // pe
    return pe * bits(layer.idt), w, pe * bits(layer.odt), w


def _swg(layer: ConvolutionInputGenerator, f: LayerFolding) -> tuple[int, int, int, int]:
    simd = int(knob(f, "simd", 1))
    pw = int(knob(f, "parallel_window", 0))
    kk = layer.kernel[0] * layer.kernel[1]
    w_in = layer.ifm_dim[0] * layer.ifm_dim[1] * layer.ifm_ch // simd
    n_out = layer.ofm_dim[0] * layer.ofm_dim[1] * kk * layer.ifm_ch // simd
    if pw:
        return simd * bits(layer.idt), w_in, simd * bits(layer.idt) * kk, n_out // kk
    return simd * bits(layer.idt), w_in, simd * bits(layer.idt), n_out


def _pool(layer: Pool, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    n = prod(layer.out_dims) * layer.batch
    return (pe * bits(layer.idt), n * prod(layer.kernel) * layer.channels // pe,
            pe * bits(layer.odt), n * layer.channels // pe)


def _maxpool(layer: StreamingMaxPool, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    (h, w), (ph, pw_) = layer.ifm_dim, layer.pool_dim
    return (pe * bits(layer.idt), h * w * layer.channels // pe,
            pe * bits(layer.idt), (h // ph) * (w // pw_) * layer.channels // pe)


def _fmpadding(layer: FMPadding, f: LayerFolding) -> tuple[int, int, int, int]:
    simd = int(knob(f, "simd", 1))
    (h, w), (t, left, b, r) = layer.ifm_dim, layer.padding
    return (simd * bits(layer.idt), h * w * layer.channels // simd,
            simd * bits(layer.idt), (h + t + b) * (w + left + r) * layer.channels // simd)


def _labelselect(layer: LabelSelect, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    return pe * bits(layer.idt), layer.labels // pe, bits(layer.odt), layer.k


def _elementwise(layer: ElementwiseBinary, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    w = prod(layer.out_shape) // pe
    return pe * bits(layer.lhs_dt), w, pe * bits(layer.odt), w


def _dwc(layer: StreamingDataWidthConverter, f: LayerFolding) -> tuple[int, int, int, int]:
    total = layer.in_width * layer.n_words_in
    return layer.in_width, layer.n_words_in, layer.out_width, total // layer.out_width


def _fifo(layer: StreamingFIFO, f: LayerFolding) -> tuple[int, int, int, int]:
    return layer.width, layer.n_words, layer.width, layer.n_words


def _duplicate(layer: DuplicateStreams, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    w = layer.n_vectors * layer.channels // pe
    return pe * bits(layer.idt), w, pe * bits(layer.idt), w


def _reshape(layer: Reshape, f: LayerFolding) -> tuple[int, int, int, int]:
    pe = int(knob(f, "pe", 1))
    n_in = prod(layer.inp_shape) // pe
    return pe * bits(layer.dt), n_in, pe * bits(layer.dt), n_in


#: layer kind -> ``(layer, folding) -> (in width, in words, out width, out words)``
STREAMS: dict[str, Callable[[Any, LayerFolding], tuple[int, int, int, int]]] = {
    "MVAU": _mvau,
    "VVAU": _vvau,
    "Thresholding": _thresholding,
    "ConvolutionInputGenerator": _swg,
    "Pool": _pool,
    "StreamingMaxPool": _maxpool,
    "FMPadding": _fmpadding,
    "LabelSelect": _labelselect,
    "ElementwiseBinary": _elementwise,
    "ElementwiseMul": _elementwise,
    "ElementwiseAdd": _elementwise,
    "StreamingDataWidthConverter": _dwc,
    "StreamingFIFO": _fifo,
    "DuplicateStreams": _duplicate,
    "Reshape": _reshape,
}

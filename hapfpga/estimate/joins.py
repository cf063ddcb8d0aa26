"""Forks and joins (residual networks): the depth of the skip-branch FIFO in front of a join.

A fork is finn-plus's ``DuplicateStreams`` (``duplicatestreams.py``: one input word is read and written to every
output in the same cycle, ``get_exp_cycles`` = words per frame); a join is the streamed ``ElementwiseAdd``
(``elementwise_binary.py``: one word from *each* input per cycle, ``get_exp_cycles`` = words per frame). Both are
costed in ``misc.py`` (``duplicatestreams_cost``, ``elementwise_cost``). What they add to a design is a FIFO: the
join can take its first skip word only when the long branch delivers its first word, and until then the fork
keeps writing the skip branch; once the skip FIFO is full the fork stalls, which starves the long branch too —
a deadlock with FINN's minimal depth-2 FIFOs (``InsertFIFO`` gives every edge ``max(outFIFODepths of the
producer, inFIFODepths of the consumer)``, 2 by default; ``AutoFIFOSizingMethod.FORCE_MINIMAL_FIFOS``).
FINN finds the depth by simulating the stitched design (``InsertAndSetFIFODepths`` / live FIFO sizing), and
finn-examples' ResNet-50 build keeps the depths in its folding file (``step_resnet50_set_fifo_depths``:
"assume folding cfg json contains FIFO sizes too"). We derive it from the estimator instead:

* every layer has a *fill fraction* ``f``: the part of its input frame it consumes before it emits its first
  output word (a sliding-window generator buffers ``(K_h-1)·dil_h`` rows plus ``(K_w-1)·dil_w + 1`` pixels of its
  input — the line buffer of finn-plus's ``ConvolutionInputGenerator_rtl``; an MVAU one input vector of
  ``numInputVectors``; a streaming layer one word, i.e. ~0);
* the latency of a branch, from the fork to the join, is ``sum(f) · T`` cycles at the design's frame period
  ``T`` (``max_cycles``, FINN's ``dataflow_performance``: every layer runs at the bottleneck's rate), so while
  the long branch fills, the fork emits ``(F_long - F_short) · W`` words into the short one, ``W`` the join
  input's words per frame;
* the short branch's FIFO into the join gets ``ceil((F_long - F_short) · W) + 2`` words (FINN's 2-word minimum
  on top), at most one frame plus 2 (a whole frame in the FIFO never blocks the fork within a frame).

Fractions of different layers add up because every layer between a fork and its join covers the same image:
a fraction of one layer's frame is the same part of the picture in the fork's frame. ``hapfpga.rtlsim``'s
simulation-based FIFO sizing measures the real occupancy; tests compare the two on resnet8.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from math import prod

from ..errors import UnsupportedLayerError
from .layers import ConvolutionInputGenerator, ElementwiseBinary, LayerSpec, StreamingMaxPool

__all__ = ["FILL_FRACTION", "fill_fraction", "is_join", "skip_fifo_fractions", "skip_fifo_depth",
           "skip_fifo_depths", "join_input_width"]


def _swg(layer: ConvolutionInputGenerator) -> float:
    (h, w), (kh, kw), (dh, dw) = layer.ifm_dim, layer.kernel, layer.dilation
    return ((kh - 1) * dh * w + (kw - 1) * dw + 1) / (h * w)


def _maxpool(layer: StreamingMaxPool) -> float:
    (h, w), (ph, pw) = layer.ifm_dim, layer.pool_dim
    return ((ph - 1) * w + pw) / (h * w)


def _one_word(layer: LayerSpec) -> float:
    return 0.0


#: kind -> fill fraction of the input frame (module docstring); explicit, no default for unknown kinds
FILL_FRACTION: dict[str, Callable[..., float]] = {
    "ConvolutionInputGenerator": _swg,
    "StreamingMaxPool": _maxpool,
    "MVAU": lambda layer: 1.0 / max(1, layer.n_vectors),
    "VVAU": lambda layer: 1.0 / max(1, prod(layer.dim)),
    "Pool": lambda layer: 1.0 / max(1, prod(layer.out_dims) * layer.batch),
    "Thresholding": lambda layer: 1.0 / max(1, layer.n_vectors),
    "FMPadding": _one_word,  # emits its top padding rows before it reads anything
    "ElementwiseMul": _one_word,
    "ElementwiseAdd": _one_word,
    "ElementwiseBinary": _one_word,
    "DuplicateStreams": _one_word,
    "Reshape": _one_word,
    "StreamingDataWidthConverter": _one_word,
    "StreamingFIFO": _one_word,
    "LabelSelect": lambda layer: 1.0,  # top-K needs every label
}


def fill_fraction(layer: LayerSpec) -> float:
    """Part of ``layer``'s input frame consumed before its first output word (module docstring)."""
    fn = FILL_FRACTION.get(layer.kind)
    if fn is None:
        raise UnsupportedLayerError(
            f"Layer {layer.name} ({layer.kind}) has no fill model for skip-branch FIFO sizing; "
            f"modelled: {', '.join(sorted(FILL_FRACTION))}."
        )
    return float(fn(layer))


def is_join(layer: LayerSpec) -> bool:
    """A two-stream element-wise layer (FINN's streamed ``ElementwiseAdd`` that replaced ``AddStreams``)."""
    return isinstance(layer, ElementwiseBinary) and not (layer.lhs_const or layer.rhs_const) and \
        len(layer.producers) == 2


def _branch_fill(by_name: Mapping[str, LayerSpec], start: str) -> tuple[str | None, float]:
    """Walk from a join input back to the fork: (fork name or None, summed fill fraction on the way)."""
    total, name = 0.0, start
    seen: set[str] = set()
    while name in by_name and name not in seen:
        seen.add(name)
        layer = by_name[name]
        if len([c for c in layer.consumers if c in by_name]) > 1:
            return name, total
        total += fill_fraction(layer)
        prods = [p for p in layer.producers if p in by_name]
        if len(prods) != 1:
            return None, total
        name = prods[0]
    return None, total


def skip_fifo_fractions(layers: Sequence[LayerSpec]) -> dict[tuple[str, str], float]:
    """``(producer, join) -> F_long - F_short`` for the short input of every join (``None`` fork: 1.0, a frame).

    Independent of the folding: a pure function of the graph, computed once per layer list."""
    by_name = {layer.name: layer for layer in layers}
    out: dict[tuple[str, str], float] = {}
    for layer in layers:
        if not is_join(layer):
            continue
        a, b = layer.producers
        (fa, la), (fb, lb) = _branch_fill(by_name, a), _branch_fill(by_name, b)
        if fa is None or fa != fb:  # no common fork found: buffer a whole frame
            out[(a, layer.name)] = out[(b, layer.name)] = 1.0
            continue
        short, frac = (a, lb - la) if la <= lb else (b, la - lb)
        out[(short, layer.name)] = min(1.0, frac)
    return out


def join_input_width(join: ElementwiseBinary, producer: str, pe: int) -> int:
    """Stream width (bits) of the join input fed by ``producer``: ``PE · bits(lhs/rhs dtype)``."""
    from .dtypes import bits

    dt = join.lhs_dt if join.producers[0] == producer else join.rhs_dt
    return int(pe) * bits(dt)


def skip_fifo_depth(frac: float, words_per_frame: int) -> int:
    """``ceil(frac · W) + 2`` words, at most ``W + 2`` (module docstring)."""
    w = int(words_per_frame)
    return int(min(w, math.ceil(frac * w - 1e-9)) + 2)


def skip_fifo_depths(layers: Sequence[LayerSpec], pes: Mapping[str, int],
                     fractions: Mapping[tuple[str, str], float] | None = None,
                     ) -> dict[tuple[str, str], tuple[int, int]]:
    """``(producer, join) -> (depth in words, width in bits)`` of every skip FIFO, the joins folded by ``pes``;
    ``fractions``: ``skip_fifo_fractions(layers)`` when the caller already has them."""
    by_name = {layer.name: layer for layer in layers}
    out = {}
    for (p, j), frac in (skip_fifo_fractions(layers) if fractions is None else fractions).items():
        join = by_name[j]
        pe = int(pes.get(j, 1) or 1)
        words = prod(join.out_shape) // pe  # type: ignore[attr-defined]
        out[(p, j)] = (skip_fifo_depth(frac, words), join_input_width(join, p, pe))  # type: ignore[arg-type]
    return out

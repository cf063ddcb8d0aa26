"""FINN's legal foldings per layer kind, and the ties and edges between neighbouring layers.

Rules from finn-plus 1.6.1 (the ground truth):

* divisors: every PE/SIMD must divide the dimension it folds (``SetFolding.divisors`` and each op's
  ``get_folded_*_shape``): MVAU ``PE | MH``, ``SIMD | MW``; VVAU ``PE | Channels``, ``SIMD | k*k``;
  Thresholding/Pool/StreamingMaxPool/ElementwiseBinary ``PE | channels``; LabelSelect ``PE | Labels``;
  SWG/FMPadding ``SIMD | IFMChannels``.
* AXI stream / ap_int width: an HLS node's streams must be at most ``MAX_ALLOWED_AP_INT_W`` = 8191
  bits (``finn/util/basic.py``; ``SetFolding`` reverts MVAU PE when the weight stream PE*SIMD*W exceeds
  it in ``internal_decoupled`` mode).
* SWG ``parallel_window`` (RTL SWG, ``ConvolutionInputGenerator_rtl.select_impl_style``): needs
  ``SIMD == IFMChannels`` for a non-depthwise SWG; its output is then k*k*SIMD wide.
* depthwise SWG feeding VVAU/Pool: ``SIMD`` of the SWG = ``PE`` of its consumer (``SetFolding``:
  "the producer ... whose SIMD value will be set equal to the PE value of its consumer node"), and
  ``parallel_window=1`` iff the VVAU uses SIMD > 1; VVAU SIMD > 1 only with PE = Channels.
* a non-depthwise SWG feeding an MVAU folds independently (``SetFolding`` treats it as a plain SIMD
  op); where the widths differ FINN's ``InsertDWC`` inserts a width converter, which the optimiser
  charges (``optimise(..., tie_conv_swg=True)`` forbids that instead). Width converters are always
  legal here: both widths are whole elements and divide the tensor (``StreamingDataWidthConverter.
  _folded_shape_for_width``), since PE/SIMD divide the channels.

* RTL MVAU ``SIMD < MW`` (hapfpga rule, not FINN's): finn-plus 1.6.1's ``finn-rtllib/mvu/mvu_vvu_axi.sv``
  sizes its output queue for ``3 + $clog2(SIMD+1) + (SIMD == 1)`` results in flight, but ``mvu.sv``'s
  pipeline is ``4 + $clog2(SIMD) + (SIMD == 1)`` deep and the back-pressure lock ``OLock`` is a register;
  with one result per cycle (``SIMD == MW``) a stalled output overflows the queue and loses a result.
  Reproduced in Verilator (tests/rtlsim/test_mvu_queue.py); our simulations patch their copy, a Vivado
  build uses FINN's file, so the optimiser never picks ``SIMD == MW`` for an ``MVAU_rtl``.

Weight storage knobs (MVAU/VVAU ``ram_style`` in block/distributed(/ultra), ``resType`` lut/dsp,
``ram_style_thresholds``) are enumerated; ``mem_mode`` stays ``internal_decoupled`` (FINN's default and
the only mode whose costs FINN models for all ram styles; ``external`` would move weights off-chip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..errors import UnsupportedLayerError
from ..types import LayerFolding

__all__ = [
    "MAX_ALLOWED_AP_INT_W",
    "KnobSpace",
    "board_space",
    "divisors",
    "legal_foldings",
    "stream_widths",
    "SUPPORTED_KINDS",
    "SIM_MODEL_KINDS",
    "open_simulatable_blockers",
    "mvu_rtl_queue_overflows",
]

#: finn/util/basic.py ``MAX_ALLOWED_AP_INT_W`` (finn-plus 1.6.1).
MAX_ALLOWED_AP_INT_W = 8191

SUPPORTED_KINDS = (
    "MVAU",
    "VVAU",
    "Thresholding",
    "ConvolutionInputGenerator",
    "Pool",
    "StreamingMaxPool",
    "FMPadding",
    "LabelSelect",
    "ElementwiseMul",
    "ElementwiseAdd",
    "ElementwiseBinary",
    "Reshape",
    "DuplicateStreams",
)


def mvu_rtl_queue_overflows(mw: int, simd: int) -> bool:
    """True where finn-plus 1.6.1's ``MVAU_rtl`` (DSP48 cores) can overflow its output queue under
    back-pressure (module docstring): one result per cycle, i.e. ``MW == SIMD``.

    From a cycle model of ``mvu_vvu_axi.sv``'s ``blkOutput`` and ``mvu.sv``'s ``L`` pipeline, checked by
    simulation (tests/rtlsim/test_mvu_queue.py): with two or more cycles between results the queue never
    holds more than half the pipeline.
    """
    return int(mw) == int(simd)


#: Kinds without an RTL variant in finn-plus 1.6.1 that ``hapfpga.rtlsim`` simulates with its own models
#: (``OWN_MODELS`` in ``hapfpga/rtlsim/design.py``: max-pool RTL, HLS-style C++ kernels of
#: ``hls_templates/``); Pool only as MaxPool, ElementwiseAdd only with two streamed integer inputs.
SIM_MODEL_KINDS = ("Pool", "LabelSelect", "DuplicateStreams", "ElementwiseAdd")


def open_simulatable_blockers(layers: Sequence[object]) -> list[str]:
    """Layers (graph order) that keep a design from simulating without Vivado: neither an RTL variant
    (``impl == "rtl"``) nor a hapfpga model, and not in the software head/tail around the simulated layers
    (``hapfpga.rtlsim.design.split_segment``: e.g. the float ``ElementwiseMul`` FINN's driver runs in software).
    """

    def sim(layer: object) -> bool:
        kind = layer.kind  # type: ignore[attr-defined]
        if getattr(layer, "impl", "hls") == "rtl":
            return True
        if kind == "Pool":
            return getattr(layer, "function", "MaxPool") == "MaxPool"
        if kind == "ElementwiseAdd":
            dts = (layer.lhs_dt, layer.rhs_dt, layer.odt)  # type: ignore[attr-defined]
            return not (layer.lhs_const or layer.rhs_const) and not any("FLOAT" in d for d in dts)  # type: ignore[attr-defined]
        return kind in SIM_MODEL_KINDS

    flags = [sim(layer) for layer in layers]
    if not any(flags):
        return [layer.name for layer in layers]  # type: ignore[attr-defined]
    first = flags.index(True)
    last = len(flags) - 1 - flags[::-1].index(True)
    return [layer.name for layer, ok in zip(layers[first:last], flags[first:last], strict=True) if not ok]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class KnobSpace:
    """Which implementation knobs the search may use (all FINN exposes through the folding file)."""

    ram_styles: tuple[str, ...] = ("block", "distributed")  # MVAU/VVAU weights; add "ultra" with URAM
    res_types: tuple[str, ...] = ("lut", "dsp")  # MVAU_hls / VVAU
    threshold_styles: tuple[str, ...] = ("auto", "distributed")  # MVAU ram_style_thresholds
    swg_ram_styles: tuple[str, ...] = ("block", "distributed")
    parallel_window: bool = True
    max_stream_width: int = MAX_ALLOWED_AP_INT_W


#: the full knob space on a part without URAM
DEFAULT_SPACE = KnobSpace()


def board_space(board: object) -> KnobSpace:
    """The full knob space on ``board``: URAM among the weight RAM styles where the part has URAM."""
    if board.budget.URAM > 0:  # type: ignore[attr-defined]
        return KnobSpace(ram_styles=("block", "distributed", "ultra"))
    return DEFAULT_SPACE


def divisors(n: int) -> list[int]:
    """Divisors of ``n`` ascending (FINN's ``set_folding.divisors``)."""
    n = int(n)
    return [d for d in range(1, n + 1) if n % d == 0]


def _bits(dt: str) -> int:
    from ..estimate.dtypes import bits

    return bits(dt)


def stream_widths(layer: object, f: LayerFolding) -> tuple[int, int]:
    """(input, output) stream widths in bits of ``layer`` under folding ``f`` — the estimator's
    ``stream_io`` (each op's ``get_instream_width(0)`` / ``get_outstream_width(0)`` in finn-plus)."""
    from ..estimate.streams import stream_io

    i, _, o, _ = stream_io(layer, f)  # type: ignore[arg-type]
    return int(i), int(o)


def _keep(layer: object, f: LayerFolding, space: KnobSpace) -> bool:
    """Stream widths within FINN's ap_int limit (HLS) — the AXI stream width rule."""
    if getattr(layer, "impl", "hls") != "hls":
        return True
    i, o = stream_widths(layer, f)
    if max(i, o) > space.max_stream_width:
        return False
    # weight stream of internal_decoupled: PE*SIMD*W (SetFolding's ap_int check)
    return not (
        layer.kind in ("MVAU", "VVAU")  # type: ignore[attr-defined]
        and (f.pe or 1) * (f.simd or 1) * _bits(layer.wdt) > space.max_stream_width  # type: ignore[attr-defined]
    )


def _base(layer: object) -> LayerFolding:
    return getattr(layer, "default_folding", None) or LayerFolding()


def _mvau_foldings(
    layer: object, base: LayerFolding, space: KnobSpace, _dc: str | None
) -> list[LayerFolding]:
    out: list[LayerFolding] = []
    thr_styles: Sequence[str | None] = (None,) if layer.no_activation else space.threshold_styles  # type: ignore[attr-defined]
    res_types: Sequence[str | None] = space.res_types if layer.impl == "hls" else (None,)  # type: ignore[attr-defined]
    simds = divisors(layer.mw)  # type: ignore[attr-defined]
    if layer.impl == "rtl" and layer.mw > 1:  # type: ignore[attr-defined]
        simds = [d for d in simds if not mvu_rtl_queue_overflows(layer.mw, d)]  # type: ignore[attr-defined]
    for pe in divisors(layer.mh):  # type: ignore[attr-defined]
        for simd in simds:
            for rs in space.ram_styles:
                for rt in res_types:
                    for ts in thr_styles:
                        out.append(
                            base.with_(
                                pe=pe,
                                simd=simd,
                                ram_style=rs,
                                res_type=rt if rt is not None else base.res_type,
                                ram_style_thresholds=ts if ts is not None else base.ram_style_thresholds,
                                mem_mode=base.mem_mode or "internal_decoupled",
                            )
                        )
    return out


def _vvau_foldings(
    layer: object, base: LayerFolding, space: KnobSpace, _dc: str | None
) -> list[LayerFolding]:
    out: list[LayerFolding] = []
    ch, kk = layer.channels, layer.kernel_elems  # type: ignore[attr-defined]
    for pe in divisors(ch):
        for simd in divisors(kk) if pe == ch else [1]:
            for rs in space.ram_styles:
                for rt in space.res_types:
                    out.append(
                        base.with_(
                            pe=pe,
                            simd=simd,
                            ram_style=rs,
                            res_type=rt,
                            mem_mode=base.mem_mode or "internal_decoupled",
                        )
                    )
    return out


def _swg_foldings(
    layer: object, base: LayerFolding, space: KnobSpace, depthwise_consumer: str | None
) -> list[LayerFolding]:
    out: list[LayerFolding] = []
    ch = layer.ifm_ch  # type: ignore[attr-defined]
    kk = layer.kernel[0] * layer.kernel[1]  # type: ignore[attr-defined]
    rtl = layer.impl == "rtl"  # type: ignore[attr-defined]
    for simd in divisors(ch):
        pws = [0]
        if rtl and space.parallel_window and kk > 1:
            if layer.depthwise:  # type: ignore[attr-defined]
                if depthwise_consumer == "VVAU":
                    pws = [0, 1]
            elif simd == ch:
                pws = [0, 1]
        for pw in pws:
            for rs in space.swg_ram_styles:
                out.append(
                    base.with_(simd=simd, parallel_window=pw if rtl else base.parallel_window, ram_style=rs)
                )
    return out


def _reshape_foldings(
    layer: object, base: LayerFolding, _s: KnobSpace, _dc: str | None
) -> list[LayerFolding]:
    """Reshape_rtl: "PE must divide last axis" of input and output."""
    import math

    g = math.gcd(int(layer.inp_shape[-1]), int(layer.out_shape[-1]))  # type: ignore[attr-defined]
    return [base.with_(pe=pe) for pe in divisors(g)]


def _channel_pe_foldings(
    layer: object, base: LayerFolding, _s: KnobSpace, _dc: str | None
) -> list[LayerFolding]:
    return [base.with_(pe=pe) for pe in divisors(layer.channels)]  # type: ignore[attr-defined]


def _label_pe_foldings(
    layer: object, base: LayerFolding, _s: KnobSpace, _dc: str | None
) -> list[LayerFolding]:
    return [base.with_(pe=pe) for pe in divisors(layer.labels)]  # type: ignore[attr-defined]


def _channel_simd_foldings(
    layer: object, base: LayerFolding, _s: KnobSpace, _dc: str | None
) -> list[LayerFolding]:
    return [base.with_(simd=simd) for simd in divisors(layer.channels)]  # type: ignore[attr-defined]


# kind -> enumerator of its candidate foldings (before the stream-width filter ``_keep``)
_ENUMERATORS: dict[str, Callable[[object, LayerFolding, KnobSpace, str | None], list[LayerFolding]]] = {
    "MVAU": _mvau_foldings,
    "VVAU": _vvau_foldings,
    "ConvolutionInputGenerator": _swg_foldings,
    "Reshape": _reshape_foldings,
    "Thresholding": _channel_pe_foldings,
    "Pool": _channel_pe_foldings,
    "StreamingMaxPool": _channel_pe_foldings,
    "ElementwiseMul": _channel_pe_foldings,
    "ElementwiseAdd": _channel_pe_foldings,
    "ElementwiseBinary": _channel_pe_foldings,
    # SetFolding's pe_ops: PE divides NumChannels; both outputs take the input's width
    "DuplicateStreams": _channel_pe_foldings,
    "LabelSelect": _label_pe_foldings,
    "FMPadding": _channel_simd_foldings,
}


def legal_foldings(
    layer: object, space: KnobSpace = DEFAULT_SPACE, *, depthwise_consumer: str | None = None
) -> Iterator[LayerFolding]:
    """Every legal folding of ``layer`` (an ``hapfpga.estimate.layers.LayerSpec``) in ``space``.

    Knobs the search does not vary keep the layer's ``default_folding`` value (so that FINN's
    ``ApplyConfig`` sees the same attributes as before). ``depthwise_consumer`` is the kind of the node
    a depthwise SWG feeds ("VVAU"/"Pool"): it restricts ``parallel_window``.
    """
    base = _base(layer)
    kind = layer.kind  # type: ignore[attr-defined]
    enumerate_ = _ENUMERATORS.get(kind)
    if enumerate_ is None:
        raise UnsupportedLayerError(
            f"Folding does not know layer {layer.name} of kind {kind}; "  # type: ignore[attr-defined]
            f"supported kinds are {', '.join(SUPPORTED_KINDS)}."
        )
    out = enumerate_(layer, base, space, depthwise_consumer)
    for f in out:
        if _keep(layer, f, space):
            yield f

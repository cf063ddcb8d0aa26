"""FINN's legality rules as enumerated by ``hapfpga.folding.legal`` (rules read from finn-plus 1.6.1)."""

from __future__ import annotations

import pytest

from hapfpga.errors import UnsupportedLayerError
from hapfpga.estimate import layers as L
from hapfpga.folding.legal import MAX_ALLOWED_AP_INT_W, KnobSpace, divisors, legal_foldings, stream_widths
from hapfpga.types import LayerFolding


def test_divisors_match_definition() -> None:
    for n in (1, 7, 12, 27, 64, 2304):
        assert divisors(n) == [d for d in range(1, n + 1) if n % d == 0]


def test_mvau_foldings_divide_and_cover_every_knob() -> None:
    layer = L.MVAU(name="MVAU_hls_0", mw=27, mh=64, n_vectors=900, idt="UINT8", wdt="INT2", odt="UINT2")
    folds = list(legal_foldings(layer))
    assert folds, "no legal folding"
    for f in folds:
        assert 64 % f.pe == 0 and 27 % f.simd == 0
        assert f.mem_mode == "internal_decoupled"
    pairs = {(f.pe, f.simd) for f in folds}
    assert pairs == {(p, s) for p in divisors(64) for s in divisors(27)}
    assert {f.ram_style for f in folds} == {"block", "distributed"}
    assert {f.res_type for f in folds} == {"lut", "dsp"}
    assert {f.ram_style_thresholds for f in folds} == {"auto", "distributed"}


def test_mvau_weight_stream_limit_removes_too_wide_foldings() -> None:
    # PE*SIMD*W > 8191 is illegal for an HLS MVAU in internal_decoupled mode (SetFolding's ap_int check)
    layer = L.MVAU(name="MVAU_hls_0", mw=1024, mh=1024, idt="INT8", wdt="INT8", odt="INT8")
    folds = list(
        legal_foldings(
            layer, KnobSpace(ram_styles=("block",), res_types=("lut",), threshold_styles=("auto",))
        )
    )
    widest = max(f.pe * f.simd * 8 for f in folds)
    assert widest <= MAX_ALLOWED_AP_INT_W
    assert (1024, 1024) not in {(f.pe, f.simd) for f in folds}
    pairs = {(f.pe, f.simd) for f in folds}
    assert (1, 512) in pairs and (2, 256) in pairs  # 4096 weight bits
    assert (2, 512) not in pairs and (1, 1024) not in pairs  # 8192 weight bits > 8191
    for f in folds:
        assert max(stream_widths(layer, f)) <= MAX_ALLOWED_AP_INT_W


def test_swg_parallel_window_only_at_full_simd() -> None:
    swg = L.ConvolutionInputGenerator(
        name="ConvolutionInputGenerator_rtl_0",
        impl="rtl",
        ifm_ch=64,
        ifm_dim=(30, 30),
        ofm_dim=(28, 28),
        kernel=(3, 3),
        idt="UINT2",
    )
    folds = list(legal_foldings(swg))
    assert {f.simd for f in folds} == set(divisors(64))
    pw = [f for f in folds if f.parallel_window]
    assert pw and all(f.simd == 64 for f in pw)
    # parallel window multiplies the output stream by k*k (ConvolutionInputGenerator.get_outstream_width)
    i, o = stream_widths(swg, pw[0])
    assert o == i * 9


def test_depthwise_swg_feeding_pool_has_no_parallel_window() -> None:
    swg = L.ConvolutionInputGenerator(
        name="ConvolutionInputGenerator_rtl_2",
        impl="rtl",
        ifm_ch=64,
        ifm_dim=(28, 28),
        ofm_dim=(14, 14),
        kernel=(2, 2),
        stride=(2, 2),
        idt="UINT2",
        depthwise=True,
    )
    assert not any(f.parallel_window for f in legal_foldings(swg, depthwise_consumer="Pool"))
    assert any(f.parallel_window for f in legal_foldings(swg, depthwise_consumer="VVAU"))


def test_reshape_pe_divides_both_axes() -> None:
    r = L.Reshape(name="Reshape_rtl_0", impl="rtl", inp_shape=(1, 1, 28, 28), out_shape=(1, 784), dt="UINT8")
    assert {f.pe for f in legal_foldings(r)} == set(divisors(28))


def test_unknown_kind_is_an_error() -> None:
    fifo = L.StreamingFIFO(name="StreamingFIFO_0", width=8)
    with pytest.raises(UnsupportedLayerError, match="StreamingFIFO"):
        list(legal_foldings(fifo))


def test_untouched_knobs_keep_finn_defaults() -> None:
    base = LayerFolding(pe=1, runtime_writeable_weights=0, mem_mode="internal_decoupled")
    t = L.Thresholding(name="Thresholding_rtl_0", impl="rtl", channels=12, default_folding=base)
    for f in legal_foldings(t):
        assert f.runtime_writeable_weights == 0 and f.mem_mode == "internal_decoupled"


def test_rtl_mvau_never_gets_one_result_per_cycle() -> None:
    """finn-rtllib's MVU output queue overflows with SIMD == MW (tests/rtlsim/test_mvu_queue.py)."""
    hls = L.MVAU(name="MVAU_hls_0", mw=9, mh=16, n_vectors=64, idt="UINT8", wdt="INT2", odt="UINT2")
    rtl = L.MVAU(name="MVAU_rtl_0", impl="rtl", mw=9, mh=16, n_vectors=64, idt="UINT8", wdt="INT2",
                 odt="INT16", no_activation=True)
    assert {f.simd for f in legal_foldings(hls)} == {1, 3, 9}
    assert {f.simd for f in legal_foldings(rtl)} == {1, 3}
    assert {f.pe for f in legal_foldings(rtl)} == set(divisors(16))


def test_open_simulatable_blockers_allow_software_head_and_tail_only() -> None:
    from hapfpga.folding.legal import open_simulatable_blockers

    swg = L.ConvolutionInputGenerator(name="ConvolutionInputGenerator_rtl_0", impl="rtl", ifm_ch=1,
                                      ifm_dim=(8, 8), ofm_dim=(8, 8), kernel=(3, 3))
    mvau_rtl = L.MVAU(name="MVAU_rtl_0", impl="rtl", mw=9, mh=16, n_vectors=64, idt="UINT8", wdt="INT2",
                      odt="INT16", no_activation=True)
    mvau_hls = L.MVAU(name="MVAU_hls_1", mw=16, mh=10, n_vectors=1, idt="UINT2", wdt="INT2", odt="UINT2")
    maxpool = L.Pool(name="Pool_hls_0", channels=16)
    avgpool = L.Pool(name="Pool_hls_1", channels=16, function="AvgPool")
    mul = L.ElementwiseMul(name="ElementwiseMul_hls_0", lhs_shape=(1, 10), rhs_shape=(10,), out_shape=(1, 10),
                           lhs_dt="INT16", rhs_dt="FLOAT32", odt="FLOAT32")
    assert open_simulatable_blockers([swg, mvau_rtl, maxpool, mul]) == []  # float tail runs in software
    assert open_simulatable_blockers([swg, mvau_hls, mvau_rtl, mul]) == ["MVAU_hls_1"]
    assert open_simulatable_blockers([swg, avgpool, mvau_rtl]) == ["Pool_hls_1"]
    assert open_simulatable_blockers([mvau_hls]) == ["MVAU_hls_1"]

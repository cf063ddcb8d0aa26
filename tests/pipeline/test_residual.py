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

"""Mixed precision end to end on a residual model (issue 24; slow): a small resnet8 (width 0.25, w4a4) trained on
digits 3×16×16, the pruning stage with ``bits: [4, 3, 2]`` and the FINN-backed predictor, every channel group
excluded so every step lowers one activation quantiser, the board's LUT budget cut so that bits buy parallelism.
Checks that a bits step is taken and raises the predicted FPS, that report.json's bits say which quantiser and
layers moved, that the delivered model still classifies, and that FINN converts its export with every residual
join's two inputs at one (the lowered) data type."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("finn")

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.data import load_digits  # noqa: E402
from hapfpga.folding import FoldingOptions  # noqa: E402
from hapfpga.pruning.hwmodel import export_for_finn  # noqa: E402
from hapfpga.pruning.mixed import input_acts  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune  # noqa: E402
from hapfpga.types import Resources  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402

pytestmark = pytest.mark.slow


def test_greedy_lowers_a_residual_quantiser_and_finn_builds_equal_join_inputs(tmp_path):
    data = load_digits(size=16, channels=3)
    model = build_model(ModelConfig(name="resnet8", weight_bits=4, act_bits=4, options={"width": 0.25}),
                        data.input_shape, data.num_classes, seed=0)
    finetune(model, data.x_train, data.y_train, FinetuneConfig(epochs=3, lr=1e-2), seed=0)
    model.eval()
    groups = ["conv0", "blocks.0.conv1", "blocks.1.conv1", "blocks.1.conv2", "blocks.2.conv1", "blocks.2.conv2"]
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.5, "bits": [4, 3, 2], "max_steps": 2,
           "exclude": groups, "sensitivity": False, "step_finetune_epochs": 0.5, "finetune_epochs": 1.0,
           "lr": 2e-3, "folding_time_limit": 20.0}
    board = load_board("pynq-z2")
    tight = dataclasses.replace(board, capacity=Resources(LUT=8000, FF=1e9, BRAM_18K=140, URAM=0, DSP=220),
                                limits=Resources(LUT=1, FF=1, BRAM_18K=1, URAM=1, DSP=1))
    pruned, rep = run_pruning_stage(cfg, model, data, HwTarget(tight, FoldingOptions(clock_mhz=100.0)), tmp_path,
                                    seed=0)
    steps = rep["history"][1:]
    assert steps and all(s["changed"].startswith("bits:") for s in steps)
    assert rep["fps_after"] > rep["fps_before"] > 0
    assert rep["channels_after"] == rep["channels_before"]
    acts = input_acts(model)
    for s in steps:  # every layer that reads the lowered quantiser got its weights capped too
        layer = s["changed"].split(":", 1)[1]
        readers = [n for n, a in acts.items() if a == acts[layer]]
        assert all(rep["bits_after"][n]["weight"] <= s["counts"][s["changed"]] for n in readers)
    assert rep["accuracy"]["after"] > 0.5

    from hapfpga.finn.graph import hw_layers_from_qonnx

    onnx = export_for_finn(pruned, data.input_shape, tmp_path / "mixed.qonnx.onnx")
    layers, _ = hw_layers_from_qonnx(onnx, tmp_path / "finn", board, 100.0)
    joins = [lay for lay in layers if lay.kind == "ElementwiseAdd" and not lay.rhs_const]
    assert len(joins) == 3 and all(j.lhs_dt == j.rhs_dt for j in joins)
    assert any(j.lhs_dt != "UINT4" for j in joins) or any(
        lay.kind == "MVAU" and lay.wdt != "INT4" for lay in layers)  # some lowered width reached FINN's graph

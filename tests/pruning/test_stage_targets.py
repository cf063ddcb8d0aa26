"""The pruning stage says when its FPS target is out of reach, and its predictor is the fold stage's.

* ``target: fps`` that no plan reaches: ``target_met: false`` in the report and exactly one warning line —
  never a silent return of the unpruned model; a reachable target: ``target_met: true``.
* The hardware search works on a depthwise-separable graph (FINN VVAUs) and its predicted FPS for a pruned
  plan equals what the fold stage's optimiser (``folding.optimise`` with its defaults) reaches on FINN's own
  conversion of the actually pruned model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")

from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.search import HwPoint  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.types import Resources  # noqa: E402

_spec = importlib.util.spec_from_file_location("graph_models", Path(__file__).with_name("graph_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)


CFG = {"method": "greedy", "target": "fps", "finetune_epochs": 0, "step_finetune_epochs": 0,
       "sensitivity": False, "min_ratio": 0.25, "candidate_steps": 3, "max_steps": 6}


def test_unreachable_fps_target_is_reported_not_silent(tmp_path):
    m = gm.build("Mlp")

    def flat(counts):  # pruning never helps (e.g. the input layer is the bottleneck)
        return HwPoint(fps=1000.0, resources=Resources(LUT=sum(counts.values())), fits=True)

    lines: list[str] = []
    _, rep = run_pruning_stage({**CFG, "target_fps": 5000}, m, gm.random_data((20,)), HwTarget(predictor=flat),
                               tmp_path, log=lines.append)
    assert rep["target_met"] is False and rep["target_fps"] == 5000
    warnings = [s for s in lines if s.startswith("warning:")]
    assert len(warnings) == 1 and "5,000 FPS" in warnings[0] and "\n" not in warnings[0]


def test_reachable_fps_target_is_met(tmp_path):
    m = gm.build("Mlp")

    def bottleneck(counts):  # fc0 is the slowest layer: FPS grows as it loses channels
        return HwPoint(fps=1e6 / counts["fc0"], resources=Resources(LUT=sum(counts.values())), fits=True)

    lines: list[str] = []
    pruned, rep = run_pruning_stage({**CFG, "target_fps": 1e6 / 20}, m, gm.random_data((20,)),
                                    HwTarget(predictor=bottleneck), tmp_path, log=lines.append)
    assert rep["target_met"] is True and rep["fps_after"] >= 1e6 / 20
    assert rep["channels_after"]["fc0"] <= 20 < rep["channels_before"]["fc0"]
    assert not [s for s in lines if s.startswith("warning:")]


def test_hw_search_on_depthwise_graph_predicts_the_fold_stage(tmp_path):
    """Predictor (scaled specs, fold stage's knob space) == optimiser on FINN's conversion of the pruned model."""
    from hapfpga.boards import load_board
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions, optimise
    from hapfpga.pruning.apply import ChannelGraph
    from hapfpga.pruning.hwmodel import build_predictor, export_for_finn

    board = load_board("pynq-z2")
    m = gm.build("Separable")
    x = torch.rand(2, *m.input_shape)
    graph = ChannelGraph(m, x)
    hw, layers, _ = build_predictor(m, graph, m.input_shape, board, tmp_path,
                                    FoldingOptions(clock_mhz=100.0).for_predictor(20.0))
    assert sum(lay.kind == "VVAU" for lay in layers) == 1
    keep = {"c0": [0, 2, 3, 5, 7, 8, 9, 12, 13, 15], "pw": list(range(0, 24, 2))}
    counts = {g: len(k) for g, k in keep.items()}
    pruned = graph.prune(keep)
    real, _ = hw_layers_from_qonnx(export_for_finn(pruned, m.input_shape, tmp_path / "p.onnx"), tmp_path / "f",
                                   board, 100.0)
    fold_fps = optimise(real, board, FoldingOptions(clock_mhz=100.0)).fps
    assert hw(counts).fps == pytest.approx(fold_fps, rel=1e-9)
    assert hw(counts).fps != hw({"c0": 16, "pw": 24}).fps  # the counts reach the predictor

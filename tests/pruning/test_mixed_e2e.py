"""Mixed precision end to end: the zoo's digits CNN (real QAT on sklearn digits), the pruning stage with
``bits: [2, 1]`` and the FINN-backed predictor, the exported QONNX and FINN's HW conversion of it.

Every channel group is excluded, so every step the greedy search takes is a bit-lowering step, and the board's
LUT budget is cut to 4,000 so that the budget binds (a 2-bit MVAU costs more LUTs per PE·SIMD lane than an XNOR
one, so lowering bits buys parallelism). The test checks that a step happens and raises the predicted FPS, that the fine-tuned model still classifies, that report.json's per-layer bits say so, that the
exported QONNX carries them (bipolar weight and activation quantisers) and that FINN builds the lowered layer as
an XNOR-popcount MVAU with binary weights and inputs.
"""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
pytest.importorskip("finn")

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.data import load_digits  # noqa: E402
from hapfpga.folding import FoldingOptions  # noqa: E402
from hapfpga.pruning.hwmodel import export_for_finn  # noqa: E402
from hapfpga.pruning.mixed import layer_bits, operand_bits, with_operand_bits  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune  # noqa: E402
from hapfpga.train import evaluate as evaluate_accuracy  # noqa: E402
from hapfpga.types import Resources  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    data = load_digits()
    model = build_model(ModelConfig(name="digits_cnn"), data.input_shape, data.num_classes, seed=0)
    finetune(model, data.x_train, data.y_train, FinetuneConfig(epochs=3, lr=5e-3), seed=0)
    return model.eval(), data


def quant_bitwidths(onnx_path) -> list[tuple[str, float]]:
    """(op type, bit width) of every quantiser node in a QONNX file (BipolarQuant is 1 bit)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    out = []
    for n in m.graph.node:
        if n.op_type == "BipolarQuant":
            out.append((n.op_type, 1.0))
        elif n.op_type == "Quant":
            out.append((n.op_type, float(inits[n.input[3]])))
    return out


def test_rebuild_at_new_bits_keeps_the_trained_state(trained):
    model, data = trained
    assert operand_bits(model) == {"features.conv1": 2, "classifier.fc0": 2, "classifier.fc1": 2}
    low = with_operand_bits(model, {"classifier.fc1": 1})
    assert low is not model and with_operand_bits(model, {"classifier.fc1": 2}) is model
    bits = layer_bits(low)
    assert bits["classifier.fc1"] == {"weight": 1, "act": None}
    assert bits["classifier.fc0"] == {"weight": 2, "act": 1}
    assert torch.equal(low.features.conv0.weight, model.features.conv0.weight)
    x = torch.as_tensor(data.x_test[:64], dtype=torch.float32)
    assert torch.equal(low.features(x), model.features(x))  # layers before the change compute the same


def test_greedy_lowers_bits_and_the_export_carries_them(trained, tmp_path):
    model, data = trained
    acc0 = evaluate_accuracy(model, data.x_test, data.y_test)
    cfg = {
        "method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.3, "bits": [2, 1], "max_steps": 1,
        "exclude": ["features.conv0", "features.conv1", "classifier.fc0"], "sensitivity": False,
        "step_finetune_epochs": 0.5, "finetune_epochs": 1.0, "lr": 2e-3, "folding_time_limit": 10.0,
    }
    board = load_board("pynq-z2")
    tight = dataclasses.replace(board, capacity=Resources(LUT=4000, FF=1e9, BRAM_18K=20, URAM=0, DSP=20),
                                limits=Resources(LUT=1, FF=1, BRAM_18K=1, URAM=1, DSP=1))
    pruned, rep = run_pruning_stage(cfg, model, data, HwTarget(tight, FoldingOptions(clock_mhz=100.0)), tmp_path, seed=0)
    step = rep["history"][1]
    assert step["changed"].startswith("bits:")
    layer = step["changed"].split(":", 1)[1]
    names = list(rep["bits_before"])
    prev = names[names.index(layer) - 1]
    assert rep["bits_before"][layer]["weight"] == 2 and rep["bits_after"][layer]["weight"] == 1
    assert rep["bits_after"][prev]["act"] == 1
    assert rep["channels_after"] == rep["channels_before"]
    assert rep["fps_after"] > rep["fps_before"] > 0  # the budget binds: lower bits, more parallelism
    assert rep["accuracy"]["after"] > 0.6 and acc0 > 0.8  # QAT fine-tuning after the change keeps it working

    onnx_path = export_for_finn(pruned, data.input_shape, tmp_path / "mixed.qonnx.onnx")
    q = quant_bitwidths(onnx_path)
    assert sum(1 for _, b in q if b == 1.0) == 2  # one weight and one activation quantiser went to 1 bit
    assert [b for _, b in q if b != 1.0] == [2.0] * (len(q) - 2)  # every other quantiser stays at 2 bits
    assert len(q) == 7  # 4 weight + 3 activation quantisers (the pixels enter as UINT8, no input quantiser)

    from hapfpga.finn.graph import hw_layers_from_qonnx

    layers, _ = hw_layers_from_qonnx(onnx_path, tmp_path / "finn", load_board("pynq-z2"), 100.0)
    mvaus = [lay for lay in layers if lay.kind == "MVAU"]
    k = names.index(layer)
    assert mvaus[k].binary_xnor and mvaus[k].wdt == "BINARY" and mvaus[k].idt == "BINARY"
    assert mvaus[k - 1].odt == "BINARY"
    assert not any(m.binary_xnor for i, m in enumerate(mvaus) if i != k)


def test_nsga2_trial_evaluator_applies_the_bits_knobs(trained):
    """NSGA-II's trial evaluator builds the candidate at its bits (not only its channel counts)."""
    from hapfpga.pruning.apply import ChannelGraph
    from hapfpga.pruning.importance import make_importance
    from hapfpga.pruning.search import HwPoint
    from hapfpga.pruning.workers import TrialEvaluator
    from hapfpga.train import FinetuneConfig as FC

    model, data = trained
    example = torch.as_tensor(data.x_train[:2], dtype=torch.float32)
    graph = ChannelGraph(model, example)
    groups = [g for g, grp in graph.groups.items() if grp.prunable]
    ev = TrialEvaluator(model, example, graph, groups, make_importance("l1"), (data.x_train, data.y_train),
                        (data.x_test, data.y_test), FC(epochs=0.0), 0, lambda c: HwPoint(1.0))
    counts = {**graph.channels(), "bits:classifier.fc1": 1}
    counts = {k: v for k, v in counts.items() if k in groups or k.startswith("bits:")}
    acc, _ = ev(counts)
    assert layer_bits(ev.last_model)["classifier.fc1"]["weight"] == 1
    assert layer_bits(ev.last_model)["classifier.fc0"]["act"] == 1
    assert acc == evaluate_accuracy(with_operand_bits(model, {"classifier.fc1": 1}), data.x_test, data.y_test)


def test_a_bits_knob_caps_both_operands_and_never_widens_one():
    model = build_model(ModelConfig(name="digits_cnn", weight_bits=4, act_bits=2), (1, 8, 8), 10, seed=0)
    assert operand_bits(model)["features.conv1"] == 4  # max(weights 4, input 2)
    low = with_operand_bits(model, {"features.conv1": 3})
    assert layer_bits(low)["features.conv1"]["weight"] == 3
    assert layer_bits(low)["features.conv0"]["act"] == 2  # the 2-bit input stays 2 bits
    assert operand_bits(low)["features.conv1"] == 3

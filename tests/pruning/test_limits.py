"""Pruning that cannot help says so (issue 21, capability 5): :func:`hapfpga.pruning.limits.pruning_limit` on the
search's FPS predictor, the pruning report's ``limited_by``, and the run summary's wording.

The predictor here is a dataflow pipeline in miniature: FPS is the clock over the slowest layer's cycles, an MVAU's
cycles scale with its group's channels, the sliding window's and the pool's do not. The stage test runs the real
predictor (FINN conversion + folding optimiser) on a small CNN whose first sliding window bounds the FPS."""

from __future__ import annotations

import io

import pytest

from hapfpga.pruning.limits import finn_kind, pruning_limit
from hapfpga.pruning.search import HwPoint


def _pipeline(fixed: dict[str, int], per_channel: dict[str, int], clock: float = 1e8):
    """``hw(counts)``: layers with fixed cycles and MVAUs of ``cycles_per_channel · channels``."""

    def hw(knobs):
        cyc = {**fixed, **{f"MVAU_hls_{i}": c * knobs[g] for i, (g, c) in enumerate(per_channel.items())}}
        node = max(cyc, key=lambda n: (cyc[n], n))
        return HwPoint(clock / cyc[node], bottleneck=node)

    return hw


CANDS = {"conv0": [16, 8, 4, 2], "conv1": [32, 16, 8, 4]}


def test_first_sliding_window_bounds_the_fps_and_is_named_with_its_knob():
    hw = _pipeline({"ConvolutionInputGenerator_rtl_0": 66}, {"conv0": 2, "conv1": 1})  # MVAUs: 32, 32 cycles
    lim = pruning_limit(hw, {"conv0": 16, "conv1": 32}, CANDS, ["conv0", "conv1"])
    assert lim is not None and lim.layer == "ConvolutionInputGenerator_rtl_0"
    assert lim.kind == "ConvolutionInputGenerator" and lim.fps == pytest.approx(1e8 / 66)
    assert "stride-2 first convolution" in lim.knob and "clock_mhz" in lim.knob
    assert lim.sentence().startswith("Pruning cannot raise the FPS above 1,515,152: the bottleneck is "
                                     "ConvolutionInputGenerator_rtl_0")
    assert lim.as_dict()["sentence"] == lim.sentence()


def test_no_limit_while_removing_channels_still_speeds_the_bottleneck_up():
    hw = _pipeline({"ConvolutionInputGenerator_rtl_0": 66}, {"conv0": 2, "conv1": 10})  # MVAU_hls_1: 320 cycles
    assert pruning_limit(hw, {"conv0": 16, "conv1": 32}, CANDS, ["conv0", "conv1"]) is None
    # at conv1 = 4 the MVAU takes 40 cycles: the window (66) is the bound again, whatever is removed further
    lim = pruning_limit(hw, {"conv0": 16, "conv1": 4}, CANDS, ["conv0", "conv1"])
    assert lim is not None and lim.layer == "ConvolutionInputGenerator_rtl_0"


def test_a_pool_and_an_unprunable_classifier_are_named_with_their_own_knobs():
    pool = _pipeline({"Pool_hls_0": 200, "ConvolutionInputGenerator_rtl_0": 66}, {"conv0": 2, "conv1": 1})
    lim = pruning_limit(pool, {"conv0": 16, "conv1": 32}, CANDS, ["conv0", "conv1"])
    assert lim is not None and lim.kind == "Pool" and "pooling earlier" in lim.knob
    # an MVAU whose channels are not a pruning group (the classifier) stays the bottleneck
    head = _pipeline({}, {"conv0": 1, "conv1": 1, "fc": 100})
    lim = pruning_limit(head, {"conv0": 16, "conv1": 32, "fc": 10}, CANDS, ["conv0", "conv1"])
    assert lim is not None and lim.layer == "MVAU_hls_2" and "min_ratio" in lim.knob


def test_a_design_that_does_not_fit_has_no_limit():
    def hw(knobs):
        return HwPoint(0.0, fits=False)

    assert pruning_limit(hw, {"conv0": 16}, CANDS, ["conv0"]) is None


def test_finn_kind_strips_the_specialisation_and_index():
    assert finn_kind("ConvolutionInputGenerator_rtl_0") == "ConvolutionInputGenerator"
    assert finn_kind("MVAU_hls_12") == "MVAU" and finn_kind("StreamingMaxPool_hls_1") == "StreamingMaxPool"
    assert finn_kind("LabelSelect_0") == "LabelSelect"


def _report(pruning: dict) -> dict:
    budget = {"LUT": 37240, "BRAM_18K": 224, "URAM": 0, "DSP": 176}
    return {
        "board": {"name": "Pynq-Z2", "budget": budget}, "clock_mhz": 100.0, "model": {"name": "m", "params": 10,
                                                                                      "macs": 20},
        "dataset": {"name": "digits", "n_test": 8}, "accuracy": {"baseline": 0.9, "final": 0.91},
        "folding": {"mode": "max_fps", "predicted_fps": 1.0},
        "finn_estimate": {"fps": 1.0, "max_cycles_node": "X", "max_cycles": 1, "total": dict(budget), "fits": True},
        "verification": {}, "pruning": pruning,
    }


def _summary(report: dict) -> str:
    from rich.console import Console

    from hapfpga.summary import print_summary

    buf = io.StringIO()
    print_summary(report, Console(file=buf, width=200, color_system=None))
    return buf.getvalue()


def test_summary_never_calls_an_unchanged_model_after_pruning_and_names_the_limit():
    hw = _pipeline({"ConvolutionInputGenerator_rtl_0": 66}, {"conv0": 2, "conv1": 1})
    lim = pruning_limit(hw, {"conv0": 16, "conv1": 32}, CANDS, ["conv0", "conv1"])
    same = {"method": "greedy", "channels_before": {"conv0": 16}, "channels_after": {"conv0": 16},
            "params": {"before": 10, "after": 10}, "fps_before": 1e8 / 66, "fps_after": 1e8 / 66,
            "limited_by": lim.as_dict()}
    text = _summary(_report(same))
    assert "after pruning" not in text
    assert "pruning removed nothing (limited by ConvolutionInputGenerator_rtl_0)" in text
    assert "pruning limited by" in text and "stride-2 first convolution" in text
    pruned = {**same, "channels_after": {"conv0": 8}, "params": {"before": 10, "after": 6}, "limited_by": None}
    text = _summary(_report(pruned))
    assert "after pruning" in text and "limited by" not in text


class _SmallCnn(__import__("torch").nn.Module):
    """conv 1→8 → conv 8→16 → pool → FC on 1×8×8: with the Pynq-Z2's budget every MVAU runs faster than the first
    sliding window, which reads the 64 input pixels one per cycle."""

    def __init__(self, classes: int = 5) -> None:
        import brevitas.nn as qnn
        import torch.nn as nn

        super().__init__()
        self.c0 = qnn.QuantConv2d(1, 8, 3, bias=False, weight_bit_width=4)
        self.b0, self.a0 = nn.BatchNorm2d(8), qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.c1 = qnn.QuantConv2d(8, 16, 3, bias=False, weight_bit_width=4)
        self.b1, self.a1 = nn.BatchNorm2d(16), qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(16 * 2 * 2, classes, bias=False, weight_bit_width=4)

    def forward(self, x):
        x = self.a1(self.b1(self.c1(self.a0(self.b0(self.c0(x))))))
        return self.fc(self.pool(x).flatten(1))


def test_stage_names_the_first_sliding_window_when_it_bounds_max_fps(tmp_path):
    """The real predictor (FINN's conversion + the folding optimiser) on a CNN whose first sliding window bounds
    the FPS: greedy ``target: max_fps`` gains no FPS, and the report says why instead of nothing."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("finn")
    import numpy as np

    from hapfpga.boards import load_board
    from hapfpga.folding import FoldingOptions
    from hapfpga.pruning.predictor import HwTarget
    from hapfpga.pruning.stage import run_pruning_stage

    torch.manual_seed(0)
    model = _SmallCnn().eval()
    rng = np.random.default_rng(0)
    x = (rng.integers(0, 256, size=(64, 1, 8, 8)) / 255.0).astype(np.float32)
    y = rng.integers(0, 5, size=64).astype(np.int64)
    data = type("D", (), {"x_train": x, "y_train": y, "x_test": x[:16], "y_test": y[:16], "input_shape": (1, 8, 8),
                          "num_classes": 5, "name": "random"})()
    lines: list[str] = []
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.5, "finetune_epochs": 0,
           "step_finetune_epochs": 0, "sensitivity": False, "candidate_steps": 3, "max_steps": 2}
    _, rep = run_pruning_stage(cfg, model, data, HwTarget(load_board("pynq-z2"), FoldingOptions()), tmp_path,
                               log=lines.append)
    lim = rep["limited_by"]
    assert lim is not None and lim["kind"] == "ConvolutionInputGenerator" and lim["layer"].endswith("_0"), lim
    assert rep["fps_after"] == pytest.approx(rep["fps_before"]) == pytest.approx(lim["fps"])
    # the search may still remove channels on the plateau (freeing resources), but never gains FPS
    assert all(rep["channels_after"][g] <= n for g, n in rep["channels_before"].items())
    assert [s for s in lines if s.startswith("note: Pruning cannot raise the FPS")] == [f"note: {lim['sentence']}"]
    import json

    assert json.loads((tmp_path / "pruning" / "pruning.json").read_text())["limited_by"] == lim

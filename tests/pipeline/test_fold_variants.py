"""``folding.variants``: the default command folds FINN's embedded-threshold graph and the standalone-threshold graph
with each MVAU RTL (DSP-packed) or HLS, and keeps the faster; FINN builds exactly the design kept.

The mixed case: a digits CNN (conv 64-128, FC 256, w2a2) on ZCU104, where HLS's PE*SIMD*W <= 8191 weight-stream
rule binds the second convolution and an RTL MVAU on DSPs is faster (~1 min through ``hapfpga run``). The unchanged
case: brevitas_examples' TFC-w2a2 on Pynq-Z2, every layer already at its fastest folding in both graphs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hapfpga.cli import main

MIXED = {
    "board": "zcu104",
    "seed": 0,
    "model": {"name": "digits_cnn", "weight_bits": 2, "act_bits": 2,
              "options": {"channels": [64, 128], "fc": [256]}},
    "data": {"name": "digits"},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.01},
    "folding": {"mode": "max_fps"},
    "verify": {"n_samples": 32},
}


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("variants")
    (d / "cfg.yaml").write_text(yaml.safe_dump(MIXED))
    assert main(["run", str(d / "cfg.yaml"), "--out", str(d / "run")]) == 0
    return d / "run"


def _mvau_cycles(layers: dict) -> dict[str, int]:
    return {n: int(v["cycles"]) for n, v in layers.items() if n.startswith("MVAU_")}


def test_run_keeps_the_mixed_design_and_finn_builds_it(mixed_run: Path) -> None:
    rep = json.loads((mixed_run / "report.json").read_text())
    fold, finn = rep["folding"], rep["finn_estimate"]
    assert fold["variant"] == "mixed"
    assert fold["variant_fps"]["mixed"] > fold["variant_fps"]["embedded"] > 0
    # FINN built the folded design: the same nodes, RTL and HLS MVAUs both, under the names of folding.json
    names = set(json.loads((mixed_run / "folding.json").read_text())) - {"Defaults"}
    assert set(finn["layers"]) == names == set(rep["estimate"]["layers"])
    assert any(n.startswith("MVAU_rtl_") for n in names) and any(n.startswith("MVAU_hls_") for n in names)
    assert not any(n.startswith("MVAU_") and "_rtl_" not in n and "_hls_" not in n for n in names)
    # FINN's report of it says the FPS we predicted, each MVAU's cycles ours, and it fits by both estimates
    assert finn["fps"] == pytest.approx(fold["predicted_fps"], rel=1e-9)
    assert _mvau_cycles(finn["layers"]) == _mvau_cycles(rep["estimate"]["layers"])
    assert finn["fits"], finn["over_budget"]
    assert rep["estimate"]["fits"], rep["estimate"]["over_budget"]
    # and the FINN HW graph of the mixed design computes what the trained model computes, bit for bit
    ver = rep["verification"]
    assert ver["passed"]
    hw = [s for s in ver["stages"] if s["name"] == "finn_hw"]
    assert hw and hw[0]["passed"]


def _refold(mixed_run: Path, tmp_path: Path, **extra: object) -> tuple[int, Path]:
    """Fold ``mixed_run``'s model again under a config with ``extra`` sections (train and export resumed)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(mixed_run, run)
    cfg = {**MIXED, **extra}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return main(["run", str(tmp_path / "cfg.yaml"), "--out", str(run), "--from", "fold", "--to", "fold"]), run


def test_a_run_that_simulates_keeps_the_embedded_design_and_says_why(mixed_run: Path, tmp_path: Path) -> None:
    """With ``rtlsim:`` (Verilator reads no HLS) the default keeps the embedded-threshold design, whose RTL
    stand-in rtlsim simulates, instead of refusing the mixed design after the FINN build."""
    rc, run = _refold(mixed_run, tmp_path, rtlsim={"n": 2})
    assert rc == 0
    fold = json.loads((run / "manifest.json").read_text())["stages"]["fold"]["result"]
    assert fold["variant"] == "embedded" and "specialize" not in fold
    assert fold["variant_fps"]["mixed"] > fold["variant_fps"]["embedded"] == fold["predicted_fps"]
    assert "MVAU_hls_" in fold["variant_note"] and "rtlsim cannot take" in fold["variant_note"]
    assert not any(k.startswith("MVAU_rtl_") for k in json.loads((run / "folding.json").read_text()))


def test_variants_mixed_with_rtlsim_is_refused_at_the_fold(mixed_run: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rc, _ = _refold(mixed_run, tmp_path, rtlsim={"n": 2}, folding={"mode": "max_fps", "variants": "mixed"})
    err = capsys.readouterr().err
    assert rc == 2 and "is FINN's MVAU_hls in the design FINN builds" in err and "open_simulatable" in err
    assert [ln for ln in err.splitlines() if ln.startswith("hapfpga: error:")] and "Traceback" not in err


def _fold(model: Path, board: str, out: Path, capsys, *extra: str) -> dict:  # noqa: ANN001
    assert main(["fold", str(model), "--board", board, "--out", str(out), "--json",
                 "--work-dir", str(out.parent / "cache"), *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_fold_then_build_gives_the_predicted_design(mixed_run: Path, tmp_path: Path, capsys) -> None:
    """``hapfpga fold`` writes FINN's specialize config next to the folding; ``hapfpga build --folding`` reads it
    and FINN's report says the FPS ``hapfpga fold`` predicted; ``--variants embedded`` folds today's graph only."""
    q = mixed_run / "final.qonnx.onnx"
    doc = _fold(q, "zcu104", tmp_path / "f.json", capsys)
    assert doc["variant"] == "mixed" and doc["specialize_file"] == str(tmp_path / "f.specialize.json")
    assert (tmp_path / "f.specialize.json").is_file()
    emb = _fold(q, "zcu104", tmp_path / "e.json", capsys, "--variants", "embedded")
    assert emb["variant"] == "embedded" and not (tmp_path / "e.specialize.json").exists()
    assert emb["predicted_fps"] == pytest.approx(doc["variant_fps"]["embedded"])
    assert emb["predicted_fps"] < doc["predicted_fps"]
    assert main(["build", str(q), "--board", "zcu104", "--folding", str(tmp_path / "f.json"),
                 "--out", str(tmp_path / "b"), "--no-codegen"]) == 0
    built = json.loads((tmp_path / "b" / "build.json").read_text())
    assert built["folding"]["variant"] == "mixed"
    assert built["finn_estimate"]["fps"] == pytest.approx(doc["predicted_fps"], rel=1e-9)
    assert built["finn_estimate"]["fits"]


@pytest.fixture(scope="module")
def tfc_qonnx(tmp_path_factory: pytest.TempPathFactory, brevitas_export) -> Path:
    pytest.importorskip("torch")
    return brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp_path_factory.mktemp("tfc") / "tfc_2w2a.onnx", clean=False)


def test_where_the_variant_does_not_help_the_design_is_unchanged(tfc_qonnx: Path, tmp_path: Path, capsys) -> None:
    auto = _fold(tfc_qonnx, "pynq-z2", tmp_path / "a.json", capsys)
    emb = _fold(tfc_qonnx, "pynq-z2", tmp_path / "e.json", capsys, "--variants", "embedded")
    assert auto["variant"] == "embedded" and auto["specialize_file"] is None
    assert auto["variant_fps"]["mixed"] is not None  # the variant was folded, and was not faster
    assert auto["variant_fps"]["mixed"] <= auto["variant_fps"]["embedded"] == pytest.approx(auto["predicted_fps"])
    assert (tmp_path / "a.json").read_text() == (tmp_path / "e.json").read_text()
    assert not (tmp_path / "a.specialize.json").exists()
    assert auto["predicted_fps"] == pytest.approx(emb["predicted_fps"])


def test_mixed_asked_where_no_mvau_can_be_rtl_is_one_sentence(tmp_path: Path, capsys, brevitas_export) -> None:
    """TFC-w1a1 (bipolar weights): FINN's RTL MVAU needs widths of at least 2 bits, so ``--variants mixed`` has
    nothing to choose and is refused (exit 2); ``auto`` folds the embedded graph and says why."""
    pytest.importorskip("torch")
    q = brevitas_export("tfc_1w1a", (1, 1, 28, 28), tmp_path / "tfc_1w1a.onnx", clean=False)
    cmd = ["fold", str(q), "--board", "zcu104", "--work-dir", str(tmp_path / "cache")]
    assert main([*cmd, "--out", str(tmp_path / "m.json"), "--variants", "mixed"]) == 2
    err = capsys.readouterr().err
    assert "no MVAU of this model can be FINN's RTL MVAU" in err and "Traceback" not in err
    assert main([*cmd, "--out", str(tmp_path / "a.json"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["variant"] == "embedded" and doc["variant_fps"]["mixed"] is None
    assert "no MVAU can be RTL" in doc["variant_note"]

"""``hapfpga fold`` end to end on a real brevitas_examples model, judged by FINN's own estimate report.

Slow: exports TFC-w2a2 (untrained: FINN's estimates do not depend on weight values) and runs finn-plus's
estimate-only build twice (~1 min).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tfc_qonnx(tmp_path_factory: pytest.TempPathFactory, brevitas_export) -> Path:
    pytest.importorskip("torch")
    return brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp_path_factory.mktemp("tfc") / "tfc_2w2a.onnx")


def test_fold_cli_design_fits_finns_report_and_beats_default(tfc_qonnx: Path, tmp_path: Path, capsys) -> None:
    from hapfpga.boards import load_board
    from hapfpga.cli import main
    from hapfpga.finn.build import run_finn_steps

    fold = tmp_path / "fold.json"
    rc = main(
        [
            "fold",
            str(tfc_qonnx),
            "--board",
            "pynq-z2",
            "--out",
            str(fold),
            "--json",
            "--work-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    plan = json.loads(fold.read_text())
    assert plan["Defaults"] == {}
    assert any(k.startswith("MVAU_hls_") for k in plan)
    assert doc["predicted_fps"] > 0 and doc["bound_fps"] >= doc["predicted_fps"] * 0.999

    # FINN accepts the file as is and its own report says the design fits the Pynq-Z2 budget
    res = run_finn_steps(
        tfc_qonnx, tmp_path / "finn", board="Pynq-Z2", clock_mhz=100.0, folding_config_file=fold
    )
    total = res.reports["estimate_layer_resources"]["total"]
    budget = load_board("pynq-z2").budget
    assert total["LUT"] <= budget.LUT and total["BRAM_18K"] <= budget.BRAM_18K and total["DSP"] <= budget.DSP
    perf = res.reports["estimate_network_performance"]
    # FINN's cycle model is the one we optimise: same max cycles, same bottleneck cycles
    assert perf["max_cycles"] == doc["max_cycles"]
    # and much faster than FINN's PE=SIMD=1 default
    assert perf["estimated_throughput_fps"] > 100 * 1992.98 / 2  # default TFC build: ~1,993 FPS


def test_fold_cli_infeasible_target_exits_2(tfc_qonnx: Path, tmp_path: Path, capsys) -> None:
    from hapfpga.cli import main

    rc = main(
        [
            "fold",
            str(tfc_qonnx),
            "--board",
            "pynq-z2",
            "--fps",
            "1e12",
            "--out",
            str(tmp_path / "f.json"),
            "--work-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot be met" in err and "FPS" in err

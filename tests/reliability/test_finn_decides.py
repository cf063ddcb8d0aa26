"""FINN, not a list of class names, decides which user models are buildable (issue 21, item 2): the TFC/SFC/LFC/
CNV family of every FINN tutorial (``brevitas_examples.bnn_pynq``: TensorNorm, bipolar 1-bit weights and
activations, BatchNorm after every layer, its own quantisers, inputs mapped to [-1, 1] inside the model) passes
the check before training, trains and is pruned through the user path (a factory file, an ``.npz``, ``hapfpga run``
with a ``pruning:`` section that removes channels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hapfpga.cli import main

FACTORY = """from brevitas_examples.bnn_pynq.models import model_with_cfg


def make(input_shape, num_classes, arch="tfc_1w1a"):
    return model_with_cfg(arch, pretrained=False)[0]
"""

#: bnn_pynq configurations and their input shapes (MNIST for the FCs, CIFAR-10 for CNV)
CONFIGS = {
    **{f"{a}_{q}": (1, 28, 28) for a, qs in (("tfc", ("1w1a", "1w2a", "2w2a")), ("sfc", ("1w1a", "1w2a", "2w2a")),
                                             ("lfc", ("1w1a", "1w2a"))) for q in qs},
    **{f"cnv_{q}": (3, 32, 32) for q in ("1w1a", "1w2a", "2w2a")},
}


def _npz(path: Path, shape: tuple[int, ...], n_train: int = 96, n_test: int = 32) -> Path:
    """Pixels k/255 in [0, 1] (what bnn_pynq's models map to [-1, 1] with ``2x - 1``); a bright band whose
    position is the label, so that one epoch learns something."""
    rng = np.random.default_rng(0)

    def split(n):
        y = np.arange(n) % 10
        x = 0.3 * rng.random((n, *shape))
        for i, c in enumerate(y):
            x[i, :, 2 * c: 2 * c + 6, :] += 0.7
        return (np.round(np.clip(x, 0, 1) * 255) / 255).astype(np.float32), y

    (xt, yt), (xs, ys) = split(n_train), split(n_test)
    np.savez(path, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    return path


def _config(tmp: Path, arch: str, shape: tuple[int, ...], **extra) -> Path:
    (tmp / "bnn.py").write_text(FACTORY)
    cfg = {"board": "pynq-z2", "model": {"name": f"{tmp / 'bnn.py'}:make", "options": {"arch": arch}},
           "data": {"name": "npz", "path": str(_npz(tmp / "data.npz", shape))},
           "train": {"epochs": 1}, "verify": {"n_samples": 8}, **extra}
    p = tmp / "cfg.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_bnn_pynq_tfc_w1a1_passes_the_check_trains_and_prunes_through_the_cli(tmp_path, capsys):
    """TFC w1a1 (TensorNorm, bipolar) was refused at the door by a class-name whitelist; now FINN's conversion
    accepts it, it trains, and uniform pruning removes a quarter of every hidden layer's neurons together with
    their BatchNorm1d entries."""
    cfg = _config(tmp_path, "tfc_1w1a", (1, 28, 28), pruning={"method": "uniform", "target": "ratio", "ratio": 0.75})
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--to", "prune"]) == 0, capsys.readouterr().err[-3000:]
    rep = json.loads((out / "manifest.json").read_text())["stages"]["prune"]["result"]
    hidden = ("features.2", "features.6", "features.10")
    assert {g: rep["channels_before"][g] for g in hidden} == dict.fromkeys(hidden, 64)
    assert {g: rep["channels_after"][g] for g in hidden} == dict.fromkeys(hidden, 48)
    assert rep["params"]["after"] < rep["params"]["before"]
    import torch

    state = torch.load(out / "pruned.pt", weights_only=True)["state_dict"]
    for fc, bn in (("features.2", "features.3"), ("features.6", "features.7"), ("features.10", "features.11")):
        assert state[f"{fc}.weight"].shape[0] == 48
        assert all(state[f"{bn}.{t}"].shape == (48,) for t in ("weight", "bias", "running_mean", "running_var"))
    assert state["features.14.weight"].shape == (10, 48)
    assert state["features.15.weight"].shape == (1,)  # TensorNorm: one scale for the whole tensor


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_every_bnn_pynq_configuration_passes_finns_check(tmp_path, arch):
    """Each TFC/SFC/LFC/CNV configuration converts to FINN's HW graph before training (seconds to a minute)."""
    from hapfpga.boards import load_board
    from hapfpga.modelcheck import check_before_training
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    (tmp_path / "bnn.py").write_text(FACTORY)
    name = f"{tmp_path / 'bnn.py'}:make"
    shape = CONFIGS[arch]
    model = build_model(ModelConfig(name=name, options={"arch": arch}), shape, 10)
    check_before_training(model, name, shape, 10, tmp_path / "check", load_board("pynq-z2"))

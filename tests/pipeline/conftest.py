"""Shared small configs for end-to-end runs of ``hapfpga run``."""

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

#: A fast version of examples/demo.yaml: same model, data and board, fewer epochs and samples.
FAST = {
    "board": "pynq-z2",
    "seed": 0,
    "model": {"name": "digits_cnn", "weight_bits": 2, "act_bits": 2},
    "data": {"name": "digits"},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.01},
    "folding": {"mode": "max_fps"},
    "verify": {"n_samples": 64},
}


@pytest.fixture
def fast_config(tmp_path):
    def make(**overrides):
        cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in FAST.items()}
        for k, v in overrides.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        p = tmp_path / "cfg.yaml"
        p.write_text(yaml.safe_dump(cfg))
        return p

    return make

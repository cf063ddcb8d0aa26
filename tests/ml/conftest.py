"""Shared fixtures of tests/ml: the default digits model as the export/verification tests train it."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def digits_trained() -> tuple[Any, Any]:
    """(digits dataset, the default zoo model trained 2 epochs at lr 0.01, seed 0): the model the export and
    verification tests export and check; read-only for them (they export it and run it in eval mode)."""
    from hapfpga.data import load_digits
    from hapfpga.runconfig import ModelConfig, TrainConfig
    from hapfpga.train import train
    from hapfpga.zoo import build_model

    ds = load_digits()
    model = build_model(ModelConfig(), ds.input_shape, ds.num_classes)
    train(model, ds, TrainConfig(epochs=2, lr=0.01), seed=0, progress=False)
    return ds, model

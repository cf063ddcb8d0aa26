"""Shared fixtures for the RTL simulation tests: brevitas_examples models prepared for Verilator (exported by
``tests/conftest.py``'s ``brevitas_export``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

#: TFC-w2a2 folding for the default suite: small PE/SIMD (fast Verilator builds), different PE/SIMD between
#: neighbours so that FINN inserts width converters.
TFC_FOLDING = {
    "Defaults": {},
    "MVAU_rtl_0": {"PE": 4, "SIMD": 8, "resType": "dsp"},
    "Thresholding_rtl_1": {"PE": 4},
    "MVAU_rtl_1": {"PE": 2, "SIMD": 4, "resType": "dsp"},
    "Thresholding_rtl_2": {"PE": 2},
    "MVAU_rtl_2": {"PE": 2, "SIMD": 4, "resType": "dsp"},
    "Thresholding_rtl_3": {"PE": 2},
    "MVAU_rtl_3": {"PE": 2, "SIMD": 4, "resType": "dsp"},
}


@pytest.fixture(scope="session")
def tfc_folding() -> dict:
    return json.loads(json.dumps(TFC_FOLDING))


@pytest.fixture(scope="session")
def rtlsim_cache(tmp_path_factory) -> Path:
    """The default build cache (content-keyed, so safe to share between runs); builds are slow."""
    from hapfpga.rtlsim.backend import DEFAULT_CACHE

    return DEFAULT_CACHE


@pytest.fixture(scope="session")
def tfc_design(tmp_path_factory, brevitas_export):
    """TFC-w2a2 (untrained brevitas_examples) through FINN with RTL layers, DWCs, FIFOs and HDL."""
    pytest.importorskip("finn")
    from hapfpga.rtlsim.prepare import prepare_design

    work = tmp_path_factory.mktemp("tfc")
    q = brevitas_export("tfc_2w2a", (1, 1, 28, 28), work / "tfc.onnx")
    fold = work / "folding.json"
    fold.write_text(json.dumps(TFC_FOLDING))
    return prepare_design(q, work / "rtlsim", folding_config_file=fold)


@pytest.fixture(scope="session")
def mnist_like() -> np.ndarray:
    """16 images in [0, 1]: sklearn's 8x8 digits upscaled to 28x28 (real data, no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images[:16] / 16.0
    x = np.kron(x, np.ones((3, 3)))  # 24x24
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return x.reshape(16, 1, 28, 28).astype(np.float32)

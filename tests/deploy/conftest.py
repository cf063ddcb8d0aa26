"""One real build for the deploy tests: brevitas TFC-w2a2 (untrained) -> ``hapfpga build --bitstream``.

Without Vivado the command exits 2 after the Vivado-free part; the tests check both the message and
what was built. Test inputs are MNIST-shaped random images the fixture draws; labels are the
QONNX model's own predictions on them (so the accuracy a backend reports is its agreement with QONNX).
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def qonnx_outputs(onnx_path: Path, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    mw = ModelWrapper(str(onnx_path))
    i, o = mw.graph.input[0].name, mw.graph.output[0].name
    return np.concatenate([execute_onnx(mw, {i: x[k : k + 1]})[o].reshape(1, -1) for k in range(len(x))])


@pytest.fixture(scope="session")
def tfc_build(tmp_path_factory: pytest.TempPathFactory, brevitas_export) -> dict[str, Any]:
    from hapfpga.cli import main

    tmp = tmp_path_factory.mktemp("tfc_build")
    onnx_path = brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp / "tfc.qonnx.onnx")

    rng = np.random.default_rng(0)
    x = rng.random((24, 1, 28, 28), dtype=np.float32)
    y = qonnx_outputs(onnx_path, x).argmax(1)
    y[:6] = (y[:6] + 1) % 10  # 6 of 24 deliberately wrong labels: expected accuracy 0.75
    np.savez(tmp / "test.npz", x_test=x, y_test=y)

    out = tmp / "build"
    err, sout = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(sout):
        rc = main(["build", str(onnx_path), "--board", "pynq-z2", "--target-fps", "20000", "--out", str(out),
                   "--bitstream", "--test-data", str(tmp / "test.npz")])
    return {"rc": rc, "stderr": err.getvalue(), "stdout": sout.getvalue(), "out": out, "onnx": onnx_path,
            "x": x, "y": y}

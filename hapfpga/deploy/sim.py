"""The simulated backend: the same ``Accelerator`` API on the host, without a board.

It executes the package's FINN hardware graph (``model/hw_model.onnx``: FINN's graph after
conversion to HW layers, which FINN then partitions, specialises, folds and turns into the
bitstream, and which the verification chain compares against Brevitas and QONNX) with FINN's own Python execution
(``finn.core.onnx_exec.execute_onnx``). Folding does not change what a layer computes, so the
outputs are those of the accelerator; the timings are the host's, and the board prediction is
FINN's estimate (``Measurement.estimated_fps``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .api import Accelerator

__all__ = ["SimulatedAccelerator", "load_hw_model"]


def load_hw_model(path: str | Path):  # -> qonnx ModelWrapper
    """A FINN HW graph ready for Python execution (FINN's custom-op registry loaded)."""
    from ..finn.shim import ensure_finn

    ensure_finn()
    # importing the HLS/RTL sub-packages fills qonnx's op registry for FINN's HW domain as well
    import finn.custom_op.fpgadataflow  # noqa: F401
    import finn.custom_op.fpgadataflow.hls  # noqa: F401
    import finn.custom_op.fpgadataflow.rtl  # noqa: F401
    from onnx import helper
    from qonnx.core.modelwrapper import ModelWrapper

    from ..finn.shim import FINN_HW_DOMAIN

    m = ModelWrapper(str(path))
    # finn-plus leaves its HW domain out of the opset imports; ONNX checks need it
    if any(n.domain == FINN_HW_DOMAIN for n in m.graph.node) and not any(
        o.domain == FINN_HW_DOMAIN for o in m.model.opset_import
    ):
        m.model.opset_import.append(helper.make_opsetid(FINN_HW_DOMAIN, 1))
    return m


class SimulatedAccelerator(Accelerator):
    """FINN's Python execution of the package's HW graph, one sample at a time."""

    backend = "simulated"

    def __init__(self, package_dir: str | Path):
        super().__init__(package_dir)
        self.model = load_hw_model(self.package_dir / self.manifest["hw_model"])
        self._in = self.model.graph.input[0].name
        self._out = self.model.graph.output[0].name
        self._shape = tuple(self.model.get_tensor_shape(self._in))

    def _run_acc(self, x_acc: np.ndarray) -> np.ndarray:
        from finn.core.onnx_exec import execute_onnx

        outs = []
        for i in range(len(x_acc)):  # FINN's graphs are built for batch 1
            xi = x_acc[i : i + 1].reshape(self._shape).astype(np.float32)
            outs.append(np.asarray(execute_onnx(self.model, {self._in: xi})[self._out]).reshape(1, -1))
        return np.concatenate(outs, axis=0)

"""A user forward that ``torch.export`` cannot trace is exported with the TorchScript exporter, and the graph is
the one the model computes: Brevitas' ``QuantBasicBlock`` (bnn_pynq ``resnet18_4w4a``) asserts that both inputs of
its add are QuantTensors, true in eager mode, false under ``torch.export`` (on main every ResNet-18 run of the
conformance suite ended in exit 1 at the pre-training export). The model here has the same block, small."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("finn")


def _block_net():
    import brevitas.nn as qnn
    import torch.nn as nn
    from brevitas.quant_tensor import QuantTensor

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = qnn.QuantConv2d(1, 4, 3, padding=1, bias=False, weight_bit_width=4)
            self.bn = nn.BatchNorm2d(4)
            self.shared = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.short = qnn.QuantConv2d(1, 4, 1, bias=False, weight_bit_width=4)
            self.short_bn = nn.BatchNorm2d(4)
            self.out = qnn.QuantReLU(bit_width=4)
            self.fc = qnn.QuantLinear(256, 3, bias=False, weight_bit_width=4)

        def forward(self, x):
            y = self.shared(self.bn(self.conv(x)))
            x = self.shared(self.short_bn(self.short(x)))
            assert isinstance(y, QuantTensor), "Perform add among QuantTensors"  # as brevitas_examples' block
            assert isinstance(x, QuantTensor), "Perform add among QuantTensors"
            return self.fc(self.out(y + x).flatten(1))

    return Block()


def test_quantbasicblock_style_assert_exports_and_the_graph_computes_the_model(tmp_path):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    from hapfpga.export import export_qonnx

    torch.manual_seed(0)
    model = _block_net()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 1, 8, 8))
    model.eval()
    path = export_qonnx(model, (1, 8, 8), tmp_path / "m.onnx")
    mw = ModelWrapper(str(path))
    rng = np.random.default_rng(0)
    for _ in range(4):
        k = rng.integers(0, 256, (1, 1, 8, 8)).astype(np.float32)
        got = execute_onnx(mw, {mw.graph.input[0].name: k})[mw.graph.output[0].name]
        with torch.no_grad():
            want = model(torch.from_numpy(k * np.float32(1 / 255))).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

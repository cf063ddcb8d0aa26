"""``step_hap_avgpool_shift`` (hapfpga/finn/avgpool.py): FINN's QuantAvgPool2d shifts as Brevitas' TruncAvgPool2d.

finn-plus 1.6.1 recovers the pool's input width as floor(log2(2^in_bits / k²)), one bit short for some kernel
areas that are not powers of two (fuzzer seed 8: a 3-bit map under a 12×12 global pool computed twice the
average). The property: for random kernels and bit widths, the FINN graph after ``step_qonnx_to_finn`` and our
step computes exactly what Brevitas computes, on random UINT8 inputs.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from hapfpga.finn.avgpool import brevitas_shift, ibits_for


def test_ibits_for_gives_brevitas_shift_for_every_kernel_and_width():
    """Brevitas sums b-bit values into in_bits = bitlength((2^b-1)·k²) bits and shifts by in_bits - obits; the
    width we set gives FINN's pool that shift (none when negative) and an accumulator that holds the sum."""
    for k in range(1, 17):
        for b in range(1, 9):
            in_bits = ((2**b - 1) * k * k).bit_length()
            for obits in range(max(1, in_bits - 6), in_bits + 4):
                ib = ibits_for(in_bits - obits, k, obits)
                assert ib is not None, (k, b, obits)
                accum = ((2**ib - 1) * k * k).bit_length()
                assert max(0, accum - obits) == max(0, in_bits - obits) and accum >= min(in_bits, obits), (k, b, obits)


def test_brevitas_shift_reads_the_scales_and_rejects_a_fraction():
    assert brevitas_shift(0.5 * 144, 0.5 * 4, 12) == 2
    assert brevitas_shift(0.6667 * 1.5, 0.6667 * 1.5 / 9 / 8, 3) == -3  # a sum widened to 8 bits
    assert brevitas_shift(1.0, 1.0, 3) is None  # Trunc v1's Div/Mul by the same scale: not ours to change


def _pool_model(bits: int, k: int, channels: int):
    import torch.nn as nn
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU, TruncAvgPool2d
    from brevitas.quant import TruncTo8bit

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.conv = QuantConv2d(1, channels, 1, bias=False, weight_bit_width=4)
            self.act = QuantReLU(bit_width=bits, return_quant_tensor=True)
            self.pool = TruncAvgPool2d(kernel_size=k, trunc_quant=TruncTo8bit, float_to_int_impl_type="FLOOR")

        def forward(self, x):
            return self.pool(self.act(self.conv(self.inp(x)))).value

    return Net()


#: (activation bits, kernel): seed 8's 3-bit 12x12, seed 21's 2-bit 3x3 (a sum narrower than 8 bits), powers of
#: two, random ones. Unsigned inputs only: the step leaves signed pools (a bipolar activation before the pool) as
#: FINN made them (Brevitas saturates a signed window sum at the output width, FINN's QuantAvgPool2d does not).
CASES = [(3, 12), (2, 3), (2, 5), (4, 6), (3, 7), (2, 4), (8, 12)] + [
    (random.Random(s).randint(2, 6), random.Random(s + 100).randint(2, 12)) for s in range(4)]


@pytest.mark.parametrize("bits,k", CASES)
def test_finn_pool_equals_brevitas_pool(bits, k, tmp_path):
    import qonnx.core.onnx_exec as oxe
    import torch
    from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.export import export_qonnx
    from hapfpga.finn.avgpool import step_hap_avgpool_shift

    torch.manual_seed(k * 10 + bits)
    model = _pool_model(bits, k, 3)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 1, k, k))
    model.eval()
    qonnx = export_qonnx(model, (1, k, k), tmp_path / "m.onnx")
    finn = step_hap_avgpool_shift(ModelWrapper(str(qonnx)).transform(ConvertQONNXtoFINN()), None)
    rng = np.random.default_rng(bits * 100 + k)
    for _ in range(8):
        x = rng.integers(0, 256, size=(1, 1, k, k)).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x / 255.0)).numpy()
        got = oxe.execute_onnx(finn, {finn.graph.input[0].name: x})[finn.graph.output[0].name]
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))

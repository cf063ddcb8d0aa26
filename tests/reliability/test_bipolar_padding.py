"""A zero-padded conv after a bipolar activation is refused before training with one sentence naming the layer
(hapfpga/bipolar_pad.py); every other combination of activation bits and padding passes the check. The full
user path of the case the fuzzer found: tests/conformance/regressions/fuzz25_bipolar_then_padded_conv1d.py."""

from __future__ import annotations

import itertools

import pytest
import torch.nn as nn
from brevitas.nn import QuantConv1d, QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import SignedBinaryActPerTensorConst

from hapfpga.bipolar_pad import check_bipolar_padding, is_bipolar
from hapfpga.errors import UnsupportedLayerError


def _act(bits: int, signed: bool, qt: bool):
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=qt)
    return QuantIdentity(bit_width=bits, return_quant_tensor=qt) if signed else QuantReLU(bit_width=bits,
                                                                                           return_quant_tensor=qt)


def _net(dims: int, bits: int, signed: bool, pad: int, qt: bool) -> tuple[nn.Module, tuple[int, ...]]:
    conv, bn = (QuantConv1d, nn.BatchNorm1d) if dims == 1 else (QuantConv2d, nn.BatchNorm2d)
    shape = (2, 12) if dims == 1 else (2, 6, 6)
    side = 12 if dims == 1 else 6
    feats = 8 * (side + 2 * pad - 2) ** dims
    return nn.Sequential(
        conv(2, 4, 1, bias=False, weight_bit_width=4), bn(4), _act(bits, signed, qt),
        conv(4, 8, 3, padding=pad, bias=False, weight_bit_width=2), bn(8), QuantReLU(bit_width=2), nn.Flatten(),
        QuantLinear(feats, 3, bias=False, weight_bit_width=2)), shape


@pytest.mark.parametrize("dims,bits,signed,pad,qt", itertools.product((1, 2), (1, 2, 4), (True, False), (0, 1),
                                                                     (False, True)))
def test_refused_exactly_when_a_padded_conv_gets_a_bipolar_input(dims, bits, signed, pad, qt):
    model, shape = _net(dims, bits, signed, pad, qt)
    if bits == 1 and pad:
        with pytest.raises(UnsupportedLayerError) as e:
            check_bipolar_padding(model, shape, "model 'm.py:make'")
        msg = e.value.message
        assert msg.startswith("Layer '3' (QuantConv") and "bipolar" in msg and "padding=0" in msg, msg
        assert msg.endswith(".") and msg.count(". ") == 0, msg
    else:
        check_bipolar_padding(model, shape, "model 'm.py:make'")


def test_a_forward_that_fails_is_left_to_the_model_check():
    model, _ = _net(2, 1, True, 1, False)
    check_bipolar_padding(model, (2, 5, 5), "model 'm.py:make'")  # wrong shape: no verdict here


def test_is_bipolar_on_values():
    import torch

    assert is_bipolar(torch.tensor([[0.5, -0.5], [-0.5, 0.5]]))
    assert not is_bipolar(torch.tensor([[0.5, 0.0], [-0.5, 0.5]]))  # a zero: at least ternary
    assert not is_bipolar(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))  # one sign only: unsigned
    assert not is_bipolar(torch.tensor([[0.5, -1.0], [-0.5, 0.5]]))

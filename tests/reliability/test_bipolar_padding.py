"""A zero-padded conv after a bipolar activation is refused before training with one sentence naming the layer
(hapfpga/bipolar_pad.py); every other combination of activation bits and padding passes the check. The full
user path of the case the fuzzer found: tests/conformance/regressions/fuzz25_bipolar_then_padded_conv1d.py."""

from __future__ import annotations

import itertools

import pytest
import torch
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
    """On many weight draws (100 where the model must be refused, 10 elsewhere): the verdict must not depend on the
    random weights (a value-only probe let about 1 draw in 70 through: the bipolar activation's probe values all
    had one sign)."""
    model, shape = _net(dims, bits, signed, pad, qt)
    for seed in range(100 if bits == 1 and pad else 10):
        torch.manual_seed(seed)
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                m.reset_parameters()
        if bits == 1 and pad:
            with pytest.raises(UnsupportedLayerError) as e:
                check_bipolar_padding(model, shape, "model 'm.py:make'")
            msg = e.value.message
            assert msg.startswith("Layer '3' (QuantConv") and "bipolar" in msg and "padding=0" in msg, (seed, msg)
            assert msg.endswith(".") and msg.count(". ") == 0, msg
        else:
            check_bipolar_padding(model, shape, "model 'm.py:make'")


class _Functional(nn.Module):
    """The bipolar activation's output reaches the padded conv through a functional op, so no module produced
    the conv's input: the check falls back to the input's values."""

    def __init__(self, bits: int):
        super().__init__()
        self.conv0 = QuantConv2d(2, 4, 1, bias=False, weight_bit_width=4)
        self.act = _act(bits, True, False)
        self.conv1 = QuantConv2d(4, 8, 3, padding=1, bias=False, weight_bit_width=2)

    def forward(self, x):
        return self.conv1(torch.flip(self.act(self.conv0(x)), dims=(3,)))


@pytest.mark.parametrize("bits", [1, 2])
def test_an_input_no_activation_module_produced_is_judged_by_its_values(bits):
    torch.manual_seed(0)
    if bits == 1:
        with pytest.raises(UnsupportedLayerError, match="Layer 'conv1'"):
            check_bipolar_padding(_Functional(bits), (2, 6, 6), "model 'm.py:make'")
    else:
        check_bipolar_padding(_Functional(bits), (2, 6, 6), "model 'm.py:make'")


def test_a_forward_that_fails_is_left_to_the_model_check():
    model, _ = _net(2, 1, True, 1, False)
    check_bipolar_padding(model, (2, 5, 5), "model 'm.py:make'")  # wrong shape: no verdict here


def test_is_bipolar_on_values():
    import torch

    assert is_bipolar(torch.tensor([[0.5, -0.5], [-0.5, 0.5]]))
    assert not is_bipolar(torch.tensor([[0.5, 0.0], [-0.5, 0.5]]))  # a zero: at least ternary
    assert not is_bipolar(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))  # one sign only: unsigned
    assert not is_bipolar(torch.tensor([[0.5, -1.0], [-0.5, 0.5]]))


@pytest.mark.parametrize("qt", [False, True])
def test_a_one_bit_signed_integer_activation_is_bipolar_as_finn_reads_it(qt):
    """``QuantIdentity(bit_width=1)`` outputs {-s, 0}, which has a zero, but qonnx's IntQuant makes every 1-bit
    signed quantiser BIPOLAR, so FINN cannot pad it either: refused, with or without a QuantTensor output."""
    torch.manual_seed(0)
    model = nn.Sequential(QuantConv2d(2, 4, 1, bias=False, weight_bit_width=4), nn.BatchNorm2d(4),
                          QuantIdentity(bit_width=1, return_quant_tensor=qt),
                          QuantConv2d(4, 8, 3, padding=1, bias=False, weight_bit_width=2))
    with pytest.raises(UnsupportedLayerError, match="Layer '3'"):
        check_bipolar_padding(model, (2, 6, 6), "model 'm.py:make'")

"""Layer chains shared by the folding tests."""

from __future__ import annotations

import pytest

from hapfpga.estimate import layers as L


def conv_chain(ch: int, dim: int, conv_out: int, fc_out: int) -> list[L.LayerSpec]:
    """Thresholding -> SWG (3x3, valid) -> MVAU (conv, ``conv_out`` channels) -> MVAU (FC to ``fc_out``):
    a network that exercises the SWG/MVAU tie. ``dim``: input height = width."""
    out = dim - 2
    return [
        L.Thresholding(name="Thresholding_rtl_0", impl="rtl", channels=ch, n_vectors=dim * dim, idt="UINT8",
                       tdt="UINT8", odt="UINT2", num_steps=3, consumers=("ConvolutionInputGenerator_rtl_0",)),
        L.ConvolutionInputGenerator(name="ConvolutionInputGenerator_rtl_0", impl="rtl", ifm_ch=ch,
                                    ifm_dim=(dim, dim), ofm_dim=(out, out), kernel=(3, 3), idt="UINT2",
                                    producers=("Thresholding_rtl_0",), consumers=("MVAU_hls_0",)),
        L.MVAU(name="MVAU_hls_0", mw=9 * ch, mh=conv_out, n_vectors=out * out, idt="UINT2", wdt="INT2", odt="UINT2",
               acc_dt="INT8", num_steps=3, producers=("ConvolutionInputGenerator_rtl_0",), consumers=("MVAU_hls_1",)),
        L.MVAU(name="MVAU_hls_1", mw=conv_out * out * out, mh=fc_out, n_vectors=1, idt="UINT2", wdt="INT2",
               odt="INT8", acc_dt="INT16", no_activation=True, producers=("MVAU_hls_0",)),
    ]


@pytest.fixture
def conv_net() -> list[L.LayerSpec]:
    """4 channels of 6x6 -> 8 -> 4."""
    return conv_chain(ch=4, dim=6, conv_out=8, fc_out=4)


@pytest.fixture
def tiny_conv_net() -> list[L.LayerSpec]:
    """2 channels of 4x4 -> 4 -> 2: small enough for exhaustive search with untied SWG/MVAU (~70k combinations)."""
    return conv_chain(ch=2, dim=4, conv_out=4, fc_out=2)


@pytest.fixture
def make_conv_chain():
    """:func:`conv_chain` itself, for tests that build many chains."""
    return conv_chain

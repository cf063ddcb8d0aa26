"""Layer chains shared by the folding tests (built by ``tests/conftest.py``'s ``conv_chain``)."""

from __future__ import annotations

import pytest

from hapfpga.estimate import layers as L


@pytest.fixture
def conv_net(make_conv_chain) -> list[L.LayerSpec]:
    """4 channels of 6x6 -> 8 -> 4."""
    return make_conv_chain(ch=4, dim=6, conv_out=8, fc_out=4)


@pytest.fixture
def tiny_conv_net(make_conv_chain) -> list[L.LayerSpec]:
    """2 channels of 4x4 -> 4 -> 2: small enough for exhaustive search with untied SWG/MVAU (~70k combinations)."""
    return make_conv_chain(ch=2, dim=4, conv_out=4, fc_out=2)

"""folding margin: the optimiser keeps the measured LUT estimation error free on the board budget."""

from __future__ import annotations

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import ConfigError
from hapfpga.estimate.layers import MVAU
from hapfpga.folding import FoldingOptions, optimise
from hapfpga.folding.margin import DEFAULT_LUT_MARGIN, with_margin
from hapfpga.types import Resources


def test_with_margin_scales_luts_only():
    b = Resources(LUT=1000, FF=5, BRAM_18K=10, URAM=0, DSP=20)
    m = with_margin(b, 0.2)
    assert m == Resources(LUT=800, FF=5, BRAM_18K=10, URAM=0, DSP=20)
    assert pytest.approx(1000 * (1 - DEFAULT_LUT_MARGIN)) == with_margin(b, None).LUT
    with pytest.raises(ConfigError):
        with_margin(b, 1.5)


def test_optimiser_stays_inside_the_margin():
    board = load_board("pynq-z2")
    layers = [MVAU(name=f"MVAU_hls_{i}", mw=256, mh=256, idt="INT4", wdt="INT4", odt="INT4") for i in range(2)]
    free = optimise(layers, board, FoldingOptions(margin=0.0, time_limit=10))
    tight = optimise(layers, board, FoldingOptions(margin=0.3, time_limit=10))
    assert free.binding_resource == "LUT"
    assert free.total.LUT > 0.7 * board.budget.LUT  # without the margin the design sits past 70% of the LUTs
    assert tight.total.LUT <= 0.7 * board.budget.LUT + 1e-6  # with it, it keeps 30% free
    assert tight.fps <= free.fps

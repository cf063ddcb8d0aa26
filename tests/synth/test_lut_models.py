"""One structural LUT model per RTL layer kind against Yosys ``synth_xilinx`` on FINN's own RTL (Pynq-Z2, xc7).

Small configurations (results cached by content under ``~/.cache/hapfpga/synth``; cold, each synthesis takes
10-60 s). Each asserts that our LUT estimate (logic + LUTRAM) is within 25% of Yosys and closer than FINN's
formula, and that DSP and BRAM counts are exact. ``benchmarks/estimator_vs_synth.py`` runs the full random sweep.
"""

from __future__ import annotations

import pytest

from hapfpga.boards import load_board
from hapfpga.synth.compare import compare_node

CONFIGS = {
    "mvau": {"kind": "MVAU_rtl", "mw": 6, "mh": 2, "pe": 2, "simd": 2, "wdt": "INT5", "idt": "UINT6",
             "n_vectors": 2, "narrow": True, "ram_style": "distributed", "seed": 45},
    "thresholding": {"kind": "Thresholding_rtl", "channels": 12, "pe": 4, "idt": "INT6", "odt": "UINT3",
                     "n_vectors": 3, "seed": 47},
    "swg": {"kind": "ConvolutionInputGenerator_rtl", "ifm_ch": 6, "ifm_dim": [8, 10], "kernel": [3, 3],
            "stride": [1, 1], "simd": 6, "depthwise": 1, "idt": "UINT5", "ram_style": "distributed",
            "parallel_window": 1, "seed": 70},
    "fmpadding": {"kind": "FMPadding_rtl", "channels": 1, "simd": 1, "ifm_dim": [10, 10], "padding": [0, 0, 0, 2],
                  "idt": "UINT6", "seed": 73},
    "dwc": {"kind": "StreamingDataWidthConverter_rtl", "channels": 8, "in_elems": 4, "out_elems": 1,
            "idt": "INT4", "n_vectors": 3, "seed": 55},
    "fifo": {"kind": "StreamingFIFO_rtl", "depth": 64, "elems": 11, "idt": "UINT2", "ram_style": "distributed",
             "seed": 77},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_lut_model_close_to_yosys_and_closer_than_finn(synth_layer, name):
    model, node, counts = synth_layer(CONFIGS[name], "pynq-z2", mode="synth")
    row = compare_node(model, node, load_board("pynq-z2"), counts).rows
    y, ours, finn = row["LUT"].yosys, row["LUT"].ours, row["LUT"].finn
    assert y > 0
    assert abs(ours - y) <= 0.25 * y, (name, ours, y, counts.cells)
    assert abs(ours - y) < abs(finn - y), (name, ours, finn, y)
    assert row["DSP"].ours == row["DSP"].yosys
    assert row["BRAM18"].ours == row["BRAM18"].yosys

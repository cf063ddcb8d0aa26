"""``hapfpga rtlsim MODEL.onnx --out DIR``: simulate a FINN design with Verilator (no Vivado needed).

Builds the FINN dataflow design with RTL layers, simulates it end to end on N inputs, checks it bit-exactly
against FINN's Python execution, measures cycles per frame (end to end and per layer) and sizes the FIFOs
from simulation. Writes ``DIR/rtlsim/rtlsim.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Simulate a model's FINN accelerator with Verilator: bit-exact check, measured cycles, FIFO sizing."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QONNX model (.onnx) as exported by hapfpga/Brevitas")
    p.add_argument("--out", required=True, help="output folder (rtlsim/rtlsim.json is written there)")
    p.add_argument("--board", default="pynq-z2", help="board key (see 'hapfpga boards'), default pynq-z2")
    p.add_argument("--folding", default=None, help="FINN folding config JSON (HLS or RTL node names); a mixed "
                   "design's F.specialize.json next to it (hapfpga fold) is read too: that design is simulated")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock for FPS numbers (board default)")
    p.add_argument("-n", "--frames", type=int, default=16, help="number of inputs to simulate (default 16)")
    p.add_argument(
        "--inputs",
        default=None,
        help=".npy of inputs (N, ...) in the model's input domain; default: random values of the "
        "model's input datatype (integers for UINT8 pixels, else uniform [0,1))",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--stall", type=float, default=0.0, help="random back-pressure probability (0..1)")
    p.add_argument("--no-fifo-sizing", action="store_true", help="skip FIFO sizing from simulation")
    p.add_argument("--no-per-layer", action="store_true", help="skip the per-layer simulation")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..finn.onnxfile import check_onnx_file
    from ..rtlsim.tools import find_toolchain
    from ..stages.variant import read_specialize

    model = Path(args.model)
    check_onnx_file(model)  # missing, not ONNX, truncated, not QONNX/FINN: one sentence, exit 2
    find_toolchain()  # no verilator / C++ compiler: one sentence, exit 2, before any heavy work
    import numpy as np

    from ..boards import load_board
    from ..rtlsim.stage import run_rtlsim_stage

    if not 0.0 <= args.stall < 1.0:
        raise ConfigError(f"--stall must be in [0, 1), got {args.stall}; pass a probability such as 0.3.")
    board = load_board(args.board)
    if args.inputs:
        x = np.load(args.inputs).astype(np.float32)
    else:
        from qonnx.core.modelwrapper import ModelWrapper

        mw = ModelWrapper(str(model))
        gin = mw.graph.input[0].name
        shape, dt = mw.get_tensor_shape(gin), mw.get_tensor_datatype(gin)
        rng = np.random.default_rng(args.seed)
        if dt.is_integer():  # e.g. hapfpga's exports take UINT8 pixels
            x = rng.integers(int(dt.min()), int(dt.max()) + 1, (args.frames, *shape[1:])).astype(np.float32)
        else:
            x = rng.random((args.frames, *shape[1:])).astype(np.float32)
    res = run_rtlsim_stage(
        model,
        args.folding,
        board,
        args.out,
        x,
        args.frames,
        clock_mhz=args.clock_mhz,
        fifo_sizing=not args.no_fifo_sizing,
        per_layer=not args.no_per_layer,
        stall=args.stall,
        progress=lambda msg: print(f"hapfpga rtlsim: {msg}", file=sys.stderr, flush=True),
        specialize=read_specialize(args.folding),
    )
    if args.json:
        print(json.dumps(res, indent=1, default=float))
    else:
        status = "bit-exact" if res["exact"] else f"MISMATCH (max |diff| {res['max_abs_diff']})"
        print(
            f"{res['frames']} frames {status} vs FINN Python execution; "
            f"{res['cycles_per_frame']:.0f} cycles/frame ({res['fps']:.0f} FPS at {res['clock_mhz']:g} MHz), "
            f"latency {res['latency_cycles']} cycles; FINN estimate {res['finn_estimate']['max_cycles']} cycles/frame"
        )
        if "fifo_sizing" in res:
            fs = res["fifo_sizing"]
            print(
                f"FIFO sizing: {fs['cycles_per_frame_before']:.0f} -> {fs['cycles_per_frame_after']:.0f} "
                f"cycles/frame (unbounded {fs['cycles_per_frame_unbounded']:.0f}), stall-free: {fs['stall_free']}"
            )
        print(f"results: {Path(args.out) / 'rtlsim' / 'rtlsim.json'}")
    return 0 if res["passed"] else 1

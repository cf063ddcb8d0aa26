"""``hapfpga build MODEL.onnx --board B [--folding F.json] --out DIR [--bitstream] [--rtlsim]``."""

from __future__ import annotations

import argparse

HELP = ("FINN build of a QONNX model: estimate reports, HW code and a deployment package; with --bitstream/"
        "--rtlsim the full Vivado flow.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QONNX model file (.onnx), e.g. DIR/final.qonnx.onnx of hapfpga run")
    p.add_argument("--board", default="pynq-z2", help="board key, FINN board name or board YAML (default pynq-z2)")
    p.add_argument("--folding", default=None, help="FINN folding JSON (hapfpga fold / hapfpga run's folding.json)")
    p.add_argument("--target-fps", type=int, default=None, help="let FINN's SetFolding fold for this FPS instead")
    p.add_argument("--max-fps", action="store_true",
                   help="fold with hapfpga's optimiser (the fastest design that fits, as `hapfpga fold`)")
    p.add_argument("--margin", default=None,
                   help="with --max-fps (implied): fractions of the budget kept free, as `hapfpga fold --margin`")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock (default: the board's)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--bitstream", action="store_true", help="full flow to bitfile, driver and package (Vivado)")
    p.add_argument("--rtlsim", action="store_true",
                   help="RTL simulation: FINN's stitched-IP rtlsim with Vivado, else hapfpga's Verilator simulation")
    p.add_argument("--emulate", action="store_true",
                   help="emulated board in the package: FINN's PYNQ driver -> emulated DMAs -> the RTL in Verilator, "
                        "run on the test data (needs finn-plus-driver and verilator)")
    p.add_argument("--no-codegen", action="store_true", help="skip FINN's HLS/RTL code generation")
    p.add_argument("--open-simulatable", action="store_true",
                   help="RTL variants wherever FINN has one, standalone thresholds (fold with the same flag)")
    p.add_argument("--test-data", default=None,
                   help="npz with x_test/y_test (or x/y), dataset domain, shipped for the accuracy check")
    p.add_argument("--input-scale", type=float, default=None,
                   help="dataset float -> accelerator input factor (default: 255 for a UINT8 graph input, else 1)")


def _load_test_data(path: str):
    import numpy as np

    from ..errors import DataError

    try:
        d = np.load(path)
    except (OSError, ValueError) as e:
        raise DataError(f"Cannot read test data '{path}' ({e}); give an .npz file with x_test and y_test.") from None
    for kx, ky in (("x_test", "y_test"), ("x", "y")):
        if kx in d and ky in d:
            return d[kx], d[ky]
    raise DataError(f"Test data '{path}' has keys {sorted(d.files)}; it needs x_test and y_test (or x and y).")


def _our_folding(args: argparse.Namespace) -> tuple[bool, float | dict[str, float] | None]:
    """(fold with our optimiser, its margin): ``--max-fps`` or ``--margin``; neither goes with a given folding."""
    from ..errors import ConfigError
    from ..folding.margin import parse_margin, resolve_margin

    ours = args.max_fps or args.margin is not None
    if ours and (args.folding or args.target_fps):
        given = "--folding" if args.folding else "--target-fps"
        raise ConfigError(f"--max-fps/--margin fold with hapfpga's optimiser; leave out {given}, or leave them out.")
    margin = parse_margin(args.margin) if args.margin is not None else None
    if margin is not None:
        resolve_margin(margin)
    return ours, margin


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ..boards import load_board
    from ..errors import ToolMissingError
    from ..stages import build_model

    board = load_board(args.board)
    max_fps, margin = _our_folding(args)
    test_data = _load_test_data(args.test_data) if args.test_data else None
    err = Console(stderr=True)
    missing: ToolMissingError | None = None
    with Progress(TextColumn("[bold]FINN build[/bold] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err,
                  transient=False) as prog:
        task = prog.add_task("starting", total=None)

        def progress(i: int, n: int, name: str) -> None:
            prog.update(task, total=n, completed=i, description=name)

        try:
            outs = build_model(Path(args.model), args.out, board, folding_file=args.folding,
                               target_fps=args.target_fps, clock_mhz=args.clock_mhz, bitstream=args.bitstream,
                               rtlsim=args.rtlsim, codegen=not args.no_codegen, test_data=test_data,
                               input_scale=args.input_scale, progress=progress,
                               open_simulatable=args.open_simulatable, console=err, emulate=args.emulate,
                               max_fps=max_fps, margin=margin)
        except ToolMissingError as e:
            if not (Path(args.out) / "build.json").is_file():
                raise
            missing = e
            outs = None
        prog.update(task, completed=prog.tasks[0].total or 0, description="done")

    import json

    summary = json.loads((Path(args.out) / "build.json").read_text())
    fe = summary["finn_estimate"]
    budget = board.budget.as_dict()
    t = Table(title=f"hapfpga build — {Path(args.model).name} on {board.name} @ {summary['clock_mhz']:g} MHz")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("note")
    fold = summary.get("folding") or {}
    if fold:
        t.add_row("folding", str(fold.get("mode")), f"{fold.get('source', 'hapfpga')}; our estimate "
                  f"{fold.get('predicted_fps', 0):,.0f} FPS of the same design")
    t.add_row("FINN estimate FPS", f"{fe['fps']:,.0f}", f"bottleneck {fe['max_cycles_node']} ({fe['max_cycles']:,} cycles)")
    for k in ("LUT", "BRAM_18K", "URAM", "DSP"):
        use = fe["total"][k]
        t.add_row(f"FINN estimate {k}", f"{use:,.0f}",
                  f"budget {budget[k]:,.0f}" + (" [red]OVER[/red]" if use > budget[k] else ""))
    t.add_row("fits the board", "yes" if fe["fits"] else "[red]no[/red]", ", ".join(fe.get("over_budget", [])))
    o = summary["outputs"]
    t.add_row("HW code", "yes" if o["hw_code_dir"] else "no", o["hw_code_dir"] or "")
    t.add_row("bitfile", "yes" if o["bitfile"] else "no", o["bitfile"] or "needs Vivado (--bitstream)")
    t.add_row("deployment package", "yes" if o["deploy"] else "no",
              f"{o['deploy_zip']} ({'board + simulated' if o['bitfile'] else 'simulated backend'})")
    e = summary.get("deploy", {}).get("emulate") if isinstance(summary.get("deploy"), dict) else None
    if e:
        t.add_row("emulated board", "pass" if e["equal_to_sim"] == e["n"] else "[red]FAIL[/red]",
                  f"FINN's driver + RTL: {e['equal_to_sim']}/{e['n']} outputs equal to sim, "
                  f"{e['rtl']['cycles_per_frame']:,.0f} cycles/frame, {e['rtl']['batch_fps']:,.0f} FPS, "
                  f"{e['wall_seconds']:.0f} s")
    r = o.get("rtlsim")
    if r:
        t.add_row("RTL simulation", "pass" if r.get("passed") else "[red]FAIL[/red]",
                  f"{r.get('simulator', '')}: {r.get('frames')} frames, "
                  f"{'bit-exact' if r.get('exact') else 'NOT bit-exact'}, {r.get('fps', 0):,.0f} FPS measured")
    t.add_row("report", "yes", str(Path(args.out) / "report.html"))
    Console().print(t)
    if missing is not None:
        raise missing
    return 0 if outs is not None else 2

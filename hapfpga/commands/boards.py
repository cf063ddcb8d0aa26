"""``hapfpga boards [--json]``: the known boards with capacity and budget.

``hapfpga boards --model MODEL.onnx [--margin M] [--json]``: which board to buy for this model — the model folded
for every board in ``boards/`` exactly as ``hapfpga fold`` folds it (its defaults, its margin), with our estimate's
FPS, latency, binding resource, utilisation of the board's budget, power and FPS per watt, in one table.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "List the supported boards; with --model, the model folded for each (FPS, latency, power, FPS/W)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--model", default=None,
                   help="QONNX export (.onnx) or FINN HW model: fold it for every board and compare")
    p.add_argument("--margin", default=None, help="with --model: as `hapfpga fold --margin` (default: measured)")
    p.add_argument("--time-limit", type=float, default=60.0, help="with --model: solver time limit per board (s)")
    p.add_argument("--work-dir", default=None,
                   help="with --model: where the FINN graph builds are cached (default: .hapfpga-cache next to MODEL)")


def run(args: argparse.Namespace) -> int:
    from ..boards import list_boards, load_board

    boards = [load_board(k) for k in list_boards()]
    if args.model is not None:
        return _run_model(args, boards)
    if args.margin is not None:
        from ..errors import ConfigError

        raise ConfigError("--margin goes with --model (the margin the model is folded with on each board).")
    if args.json:
        print(json.dumps({b.key: b.as_dict() for b in boards}, indent=2))
        return 0
    from .table import cli_table, print_table

    nums = ("LUT", "FF", "BRAM18", "URAM", "DSP")
    keys = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
    t = cli_table("Boards: budget (capacity × FINN's utilisation limits), capacity below",
                  ("board", "part", "MHz", *nums), right=("MHz", *nums))
    for b in boards:
        t.add_row(b.key, b.part, f"{b.clock_mhz:g}", *(f"{int(getattr(b.budget, k)):,}" for k in keys))
        t.add_row("", "capacity", "", *(f"{int(getattr(b.capacity, k)):,}" for k in keys), style="dim")
    print_table(t)
    return 0


_FIT_KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")


def board_row(layers: list[Any], board: Any, margin: Any, time_limit: float) -> dict[str, Any]:
    """The model folded for ``board`` with ``hapfpga fold``'s defaults: what the table and ``--json`` show."""
    from ..errors import InfeasibleError
    from ..folding import FoldingOptions, optimise

    try:
        res = optimise(layers, board, FoldingOptions(margin=margin, time_limit=time_limit))
    except InfeasibleError as e:
        return {"board": board.name, "part": board.part, "fits": False, "why": str(e)}
    est = res.estimate
    util = {k: getattr(est.total, k) / getattr(board.budget, k) for k in _FIT_KEYS if getattr(board.budget, k) > 0}
    return {
        "board": board.name, "part": board.part, "fits": True, "clock_mhz": res.clock_mhz, "fps": est.fps,
        "latency_us": est.critical_path_cycles / res.clock_mhz, "bottleneck": est.bottleneck,
        "binding_resource": res.binding_resource, "utilisation": util, "margin": dict(res.margin),
        "power_w": est.power_w, "fps_per_w": est.fps / est.power_w if est.power_w > 0 else None,
        "bound_fps": res.bound_fps, "optimal": res.optimal,
    }


def _run_model(args: argparse.Namespace, boards: list[Any]) -> int:
    from ..finn.graph import layers_for_model_file
    from ..folding.margin import parse_margin, resolve_margin

    margin = parse_margin(args.margin) if args.margin is not None else None
    if margin is not None:
        resolve_margin(margin)  # a bad margin fails before any FINN build
    rows = {}
    for b in boards:
        layers = layers_for_model_file(args.model, args.work_dir, b)
        rows[b.key] = board_row(layers, b, margin, args.time_limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    _print_rows(rows)
    return 0


def _print_rows(rows: dict[str, dict[str, Any]]) -> None:
    from .table import cli_table, print_table

    cols = ("board", "FPS", "latency µs", "binds", "LUT %", "BRAM %", "DSP %", "power W", "FPS/W")
    t = cli_table("The model folded for every board (hapfpga fold's defaults; our estimate, power analytic)",
                  cols, right=[c for c in cols if c not in ("board", "binds")])
    best = max((k for k, r in rows.items() if r["fits"]), key=lambda k: rows[k]["fps_per_w"] or 0, default=None)
    for key, r in rows.items():
        if not r["fits"]:
            t.add_row(key, "does not fit", "", "", "", "", "", "", "", style="dim")
            continue
        u = r["utilisation"]
        t.add_row(key, f"{r['fps']:,.0f}", f"{r['latency_us']:,.1f}", r["binding_resource"].split(" ")[0],
                  *(f"{u.get(k, 0):.0%}" for k in ("LUT", "BRAM_18K", "DSP")), f"{r['power_w']:.2f}",
                  f"{r['fps_per_w']:,.0f}", style="bold" if key == best else None)
    print_table(t)
    if best is not None:
        print(f"most FPS per watt: {best} ({rows[best]['fps_per_w']:,.0f} FPS/W); fastest: "
              f"{max((k for k in rows if rows[k]['fits']), key=lambda k: rows[k]['fps'])}")
    for key, r in rows.items():
        if not r["fits"]:
            print(f"{key}: {r['why']}")

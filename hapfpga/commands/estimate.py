"""``hapfpga estimate MODEL.onnx --board B [--folding F.json] [--clock-mhz N] [--json]``.

MODEL is a Brevitas/QONNX export (run through finn-plus up to step_specialize_layers, cached by file
hash) or a FINN HW model that is already specialised. Without ``--folding``: FINN's defaults
(PE=SIMD=1, or the folding the HW model holds).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..types import Resources

if TYPE_CHECKING:
    from ..boards import BoardSpec
    from ..estimate import NetworkEstimate

HELP = "Estimate LUT/FF/BRAM/URAM/DSP, cycles, FPS and power of a model's FINN accelerator (no Vivado)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QONNX export (.onnx) or FINN HW model after step_specialize_layers")
    p.add_argument("--board", default="pynq-z2", help="board key or name (see `hapfpga boards`)")
    p.add_argument("--folding", help="FINN folding_config_file (JSON) keyed by FINN node names")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock (default: the board's)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--finn-compat", action="store_true",
                   help="reproduce finn-plus's per-node numbers exactly (its known gaps included)")
    p.add_argument("--no-infrastructure", action="store_true", help="leave out FIFOs and width converters")
    p.add_argument("--fifo-depths", choices=("minimal", "rate"), default="minimal",
                   help="FIFO depth model: FINN's force_minimal_fifos rule, or an analytic rate-mismatch bound")
    p.add_argument("--margin", default=None,
                   help="the margin to report the utilisation against, as `hapfpga fold --margin` (default: the "
                        "measured one `hapfpga fold` folds with)")
    p.add_argument("--work-dir", default=None,
                   help="where the FINN graph build is cached (default: .hapfpga-cache next to MODEL)")


def run(args: argparse.Namespace) -> int:
    from ..boards import load_board
    from ..errors import ConfigError
    from ..estimate import estimate_network, load_folding
    from ..finn.graph import layers_for_model_file
    from ..folding.margin import parse_margin, resolve_margin

    board = load_board(args.board)
    margin = resolve_margin(parse_margin(args.margin) if args.margin is not None else None, board.part)
    if args.clock_mhz is not None and args.clock_mhz <= 0:
        raise ConfigError(f"--clock-mhz must be positive, not {args.clock_mhz:g}.")
    clock = args.clock_mhz or board.clock_mhz
    layers = layers_for_model_file(args.model, args.work_dir, board, clock)
    plan = load_folding(args.folding, layers) if args.folding else None
    est = estimate_network(layers, plan, board, clock, finn_compat=args.finn_compat,
                           infrastructure=not args.no_infrastructure, fifo_depths=args.fifo_depths)
    if args.json:
        kept = margin.apply(board.budget)
        util = {k: getattr(est.total, k) / getattr(kept, k) for k in ("LUT", "BRAM_18K", "URAM", "DSP")
                if getattr(kept, k) > 0}
        print(json.dumps({**est.as_json(), "board_budget": board.budget.as_dict(), "margin": margin.as_dict(),
                          "budget": kept.as_dict(), "utilisation": util}, indent=2))
        return 0
    _print_table(est, board)
    from .fold import budget_lines

    for line in budget_lines(est.total, board.budget, margin.as_dict(), margin.apply(board.budget)):
        print(line)
    return 0


def _print_table(est: NetworkEstimate, board: BoardSpec) -> None:
    from .table import cli_table, print_table

    keys = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")
    t = cli_table(f"hapfpga estimate on {board.name} at {est.clock_mhz:g} MHz (n/m: FF not modelled)",
                  ("node", *keys, "cycles"), right=(*keys, "cycles"))

    def row(name: str, r: Resources, cycles: str, style: str | None = None, budget: bool = False) -> None:
        cells = [f"{getattr(r, k):,.0f}" if (k != "FF" or budget) else "n/m" for k in keys]
        t.add_row(name, *cells, cycles, style=style)

    for n, c in est.layers.items():
        row(n, c.resources, f"{c.cycles:,}", "bold" if n == est.bottleneck else None)
    infra = sum((c.resources for c in est.infrastructure.values()), Resources())
    if est.infrastructure:
        row(f"FIFOs + DWCs ({len(est.infrastructure)})", infra, "")
    row("total", est.total, f"{est.max_cycles:,}", "bold")
    row("budget", board.budget, "", budget=True)
    print_table(t)
    fit = "fits" if est.fits else f"does NOT fit ({', '.join(est.over)} over budget)"
    print(f"{est.fps:,.1f} FPS (bottleneck {est.bottleneck}), {fit}; "
          f"power ≈ {est.power_w:.2f} W (analytic estimate, not Vivado)")

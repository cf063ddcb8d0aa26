"""``hapfpga fold MODEL.onnx --board B [--fps N | --max-fps] [--clock-mhz N] --out F.json [--json]``.

Writes the fastest legal FINN folding that fits the board (``--max-fps``, the default), or the
cheapest one that reaches ``--fps N``, as FINN's ``folding_config_file`` (FINN node names), and
reports the proven bound: no legal folding within the budget is faster than ``bound_fps``.
MODEL is a Brevitas/QONNX export (run through finn-plus up to step_specialize_layers, cached) or a
FINN HW model that is already specialised.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Fastest FINN folding (PE/SIMD/memory knobs) that fits a board, with its proven FPS bound."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="QONNX export (.onnx) or FINN HW model after step_specialize_layers")
    p.add_argument("--board", default="pynq-z2", help="board key or name (see `hapfpga boards`)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fps", type=float, default=None, help="cheapest design reaching this FPS")
    mode.add_argument("--max-fps", action="store_true", help="fastest design within the budget (default)")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock (default: the board's)")
    p.add_argument("--out", required=True, help="folding JSON to write (FINN's folding_config_file format)")
    p.add_argument(
        "--json", action="store_true", help="print the plan, per-layer costs and predicted FPS as JSON"
    )
    p.add_argument(
        "--finn-compat",
        action="store_true",
        help="cost layers exactly as finn-plus's estimate does (its known gaps included)",
    )
    p.add_argument(
        "--no-infrastructure",
        action="store_true",
        help="do not count FIFOs and width converters against the budget",
    )
    p.add_argument(
        "--margin",
        default=None,
        help="fractions of the budget kept free: 0.1 for every resource, or LUT=0.05,BRAM_18K=0.1 (the others keep "
        "the default); default: where our whole-design estimate fell below synthesis (docs/margin.md)",
    )
    p.add_argument(
        "--no-finn-cycles",
        action="store_true",
        help="fold for our cycle model only (default: each layer's cycles the larger of ours and FINN's formula, "
        "so FINN's estimate report says the FPS we predict)",
    )
    p.add_argument("--time-limit", type=float, default=60.0, help="solver time limit in seconds")
    p.add_argument(
        "--open-simulatable",
        action="store_true",
        help="fold FINN's RTL variants (standalone thresholds): a design hapfpga rtlsim simulates as built",
    )
    p.add_argument(
        "--variants",
        choices=("auto", "embedded", "mixed"),
        default="auto",
        help="graph(s) to fold: auto (default) folds FINN's embedded-threshold graph and the standalone-threshold "
        "graph with each MVAU RTL or HLS and keeps the faster; with 'mixed' chosen, FINN's specialize config is "
        "written next to --out as F.specialize.json (docs/margin.md)",
    )
    p.add_argument(
        "--work-dir",
        default=None,
        help="where the FINN graph build is cached (default: .hapfpga-cache next to MODEL)",
    )


def run(args: argparse.Namespace) -> int:
    from ..boards import load_board
    from ..errors import ConfigError
    from ..finn.graph import layers_for_model_file
    from ..folding import FoldingOptions
    from ..folding.margin import parse_margin
    from ..runstate import atomic_write_text

    board = load_board(args.board)
    if args.clock_mhz is not None and args.clock_mhz <= 0:
        raise ConfigError(f"--clock-mhz must be positive, not {args.clock_mhz:g}.")
    if args.fps is not None and args.fps <= 0:
        raise ConfigError(f"--fps must be positive, not {args.fps:g}.")
    clock = args.clock_mhz or board.clock_mhz
    margin = parse_margin(args.margin) if args.margin is not None else None
    if margin is not None:
        from ..folding.margin import resolve_margin

        resolve_margin(margin, board.part)  # a bad margin fails before the FINN graph build
    layers = layers_for_model_file(args.model, args.work_dir, board, clock, rtl=args.open_simulatable)
    options = FoldingOptions(clock_mhz=clock, open_simulatable=args.open_simulatable, finn_compat=args.finn_compat,
                             infrastructure=not args.no_infrastructure, time_limit=args.time_limit,
                             margin=margin, finn_cycles=not args.no_finn_cycles)
    d = _design(args, layers, board, options)
    res, out = d.result, Path(args.out)
    atomic_write_text(out, d.text)
    from ..stages.variant import specialize_path

    spec = specialize_path(out)
    if d.specialize:
        atomic_write_text(spec, json.dumps(d.specialize, indent=1) + "\n")
    elif spec.is_file():
        spec.unlink()  # a mixed design's config from an earlier run would no longer match this folding
    if args.json:
        doc = res.as_json()
        doc.update(board=board.key, folding_file=str(out), **d.report(),
                   specialize_file=str(spec) if d.specialize else None)
        doc["plan"] = d.plan.to_finn_dict()
        if res.estimate is not None:
            doc["estimate"] = res.estimate.as_json()
        print(json.dumps(doc, indent=2))
        return 0
    _print(d, board, out)
    return 0


def _design(args: argparse.Namespace, layers, board, options):  # noqa: ANN001, ANN202
    """``stages/variant.py``'s choice of graph; a FINN HW model is folded as it is."""
    from ..finn.graph import is_finn_hw_model
    from ..finn.onnxfile import check_onnx_file
    from ..stages.variant import choose_design

    model = Path(args.model)
    hw = is_finn_hw_model(check_onnx_file(model))
    work = Path(args.work_dir) if args.work_dir else model.parent / ".hapfpga-cache"
    return choose_design(model, layers, work, board, options, target_fps=args.fps,
                         variants="embedded" if hw else args.variants)


def _print(d, board, out: Path) -> None:  # noqa: ANN001
    from ..stages.variant import specialize_path
    from .table import cli_table, print_table

    res, names = d.result, d.names or {}

    cols = ("node", "PE", "SIMD", "memory", "LUT", "BRAM18", "DSP", "cycles")
    t = cli_table(f"hapfpga fold on {board.name} at {res.clock_mhz:g} MHz ({res.mode})", cols,
                  right=[c for c in cols if c not in ("node", "memory")])
    for name, (r, cyc) in res.layer_costs.items():
        f = res.plan[name]
        mem = "/".join(str(x) for x in (f.ram_style, f.res_type) if x)
        t.add_row(
            names.get(name, name),
            str(f.pe or ""),
            str(f.simd or ""),
            mem,
            f"{r.LUT:,.0f}",
            f"{r.BRAM_18K:,.0f}",
            f"{r.DSP:,.0f}",
            f"{cyc:,}",
            style="bold" if name == res.bottleneck else None,
        )
    print_table(t)
    for line in budget_lines(res.total, res.board_budget or res.budget, res.margin, res.budget):
        print(line)
    fps = ", ".join(f"{k} {v:,.0f} FPS" if v else f"{k} -" for k, v in d.fps.items())
    print(f"graph: {d.variant} ({fps}){'; FINN specialize config ' + str(specialize_path(out)) if d.specialize else ''}")
    print(
        f"predicted {res.fps:,.1f} FPS (bottleneck {names.get(res.bottleneck, res.bottleneck)}); proven bound {res.bound_fps:,.1f} FPS "
        f"(binding: {res.binding_resource}); solved in {res.solve_seconds:.2f}s; wrote {out}"
    )
    for n in res.notes:
        print(f"note: {n}")


_SHORT = {"LUT": "LUT", "BRAM_18K": "BRAM18", "URAM": "URAM", "DSP": "DSP"}


def budget_lines(total, board_budget, margin, budget) -> list[str]:  # noqa: ANN001
    """The budget, the margin kept free and the utilisation, as ``fold`` and ``estimate`` print them."""
    keys = [k for k in _SHORT if getattr(board_budget, k) > 0]
    kept = ", ".join(f"{_SHORT[k]} {margin.get(k, 0.0):.0%}" for k in keys if margin.get(k, 0.0) > 0) or "none"
    return [
        "budget (capacity x FINN's limits): " + ", ".join(f"{_SHORT[k]} {getattr(board_budget, k):,.0f}" for k in keys),
        f"margin kept free: {kept} -> folded within " + ", ".join(f"{_SHORT[k]} {getattr(budget, k):,.0f}" for k in keys),
        "used (FIFOs and width converters included): " + ", ".join(
            f"{_SHORT[k]} {getattr(total, k):,.0f} = {getattr(total, k) / getattr(budget, k):.0%}" for k in keys)
        + " of the budget after the margin",
    ]

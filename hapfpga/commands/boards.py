"""``hapfpga boards [--json]``: list the known boards with capacity and budget."""

from __future__ import annotations

import argparse
import json

HELP = "List the supported boards (part, clock, capacity, utilisation budget)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..boards import list_boards, load_board

    boards = [load_board(k) for k in list_boards()]
    if args.json:
        print(json.dumps({b.key: b.as_dict() for b in boards}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Boards (budget = capacity × FINN's utilisation limits)")
    for col in ("board", "FINN name", "part", "MHz", "LUT", "FF", "BRAM18", "URAM", "DSP"):
        t.add_column(col, justify="right" if col not in ("board", "FINN name", "part") else "left")
    for b in boards:
        c, g = b.capacity, b.budget
        t.add_row(
            b.key, b.finn_board, b.part, f"{b.clock_mhz:g}",
            *(f"{int(getattr(g, k)):,}/{int(getattr(c, k)):,}" for k in ("LUT", "FF", "BRAM_18K", "URAM", "DSP")),
        )
    Console().print(t)
    return 0

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

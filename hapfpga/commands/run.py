"""``hapfpga run CONFIG.yaml --out DIR [--from STAGE] [--to STAGE]``: the main job as registered stages."""

from __future__ import annotations

import argparse

HELP = "Run the whole flow of a config: QAT, pruning, QONNX export, folding, FINN estimate build, verification, report."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..stages import RUN_STAGES

    p.add_argument("config", help="YAML config (see examples/demo.yaml)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")
    p.add_argument("--from", dest="first", default=None, metavar="STAGE",
                   help=f"re-run from this stage on; earlier ones must be finished in DIR ({', '.join(RUN_STAGES)})")
    p.add_argument("--to", dest="last", default=None, metavar="STAGE", help="stop after this stage")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from ..runconfig import load_run_config
    from ..stages import run_config
    from ..summary import print_summary

    cfg = load_run_config(args.config)
    out = args.out or str(Path("runs") / Path(args.config).stem)
    args.out = out
    result = run_config(cfg, out, console=Console(stderr=True), first=args.first, last=args.last)
    rep = result.report
    if rep is not None and all(k in rep for k in ("accuracy", "folding", "finn_estimate", "verification")):
        print_summary(rep, Console())
    else:
        done = ", ".join([*result.resumed, *result.ran]) or "none"
        Console().print(f"stages finished in {result.run_dir}: {done}")
    return 0

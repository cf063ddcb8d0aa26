"""``hapfpga run CONFIG.yaml --out DIR``: the main job (train, [prune], export, fold, build, verify, report)."""

from __future__ import annotations

import argparse

HELP = "Run the whole flow of a config: QAT, pruning, QONNX export, folding, FINN estimate build, verification, report."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see examples/demo.yaml)")
    p.add_argument("--out", default=None, help="run directory (default: runs/<config name>)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console

    from ..pipeline import run_pipeline
    from ..runconfig import load_run_config
    from ..summary import print_summary

    cfg = load_run_config(args.config)
    out = args.out or str(Path("runs") / Path(args.config).stem)
    args.out = out
    console = Console(stderr=True)
    result = run_pipeline(cfg, out, console=console)
    print_summary(result.report, Console())
    return 0

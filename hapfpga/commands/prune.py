"""``hapfpga prune CONFIG.yaml --out DIR [--model M]``: the run's train, prune and export stages, nothing after.

``hapfpga run`` with ``stages: [train, prune, export]``: the same stages, cache keys and resume as the whole flow
(for the same YAML, the same pruned design as ``hapfpga run --to prune``), with its fail-fast checks before
training. ``--model`` gives a trained model instead of training (a run's ``baseline.pt`` or a ``torch.save(model)``
file of a zoo/user model): it takes the train stage's place, keyed by its content. Writes ``DIR/baseline.pt``,
``DIR/pruned.pt`` (``hapfpga.zoo.load_model`` reads both), ``DIR/final.qonnx.onnx``, ``DIR/pruning/pruning.json``
(+ sensitivity plot, Optuna storage) and prints a summary.
"""

from __future__ import annotations

import argparse

HELP = "Prune a trained model for the board (hardware-aware channel pruning or weight pruning) and save it."

#: the stages of ``hapfpga run`` that ``hapfpga prune`` runs
PRUNE_STAGES = ("train", "prune", "export")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config with model/data/train sections and a pruning: section")
    p.add_argument("--out", default=None, help="output directory (default: runs/<config name>-prune)")
    p.add_argument("--model", default=None,
                   help="a trained model instead of training: a run's baseline.pt/pruned.pt or a torch.save(model) file")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from pathlib import Path

    from rich.console import Console

    from ..errors import ConfigError
    from ..runconfig import load_run_config
    from ..stages import run_config

    cfg = load_run_config(args.config)
    if not cfg.pruning:
        raise ConfigError(f"Config '{args.config}' has no pruning: section; add one (see hapfpga/pruning/config.py).")
    out = Path(args.out or Path("runs") / f"{Path(args.config).stem}-prune")
    args.out = str(out)
    result = run_config(dataclasses.replace(cfg, stages=PRUNE_STAGES), out, console=Console(stderr=True),
                        baseline=Path(args.model) if args.model else None)
    report = result.results["prune"]
    summary = {k: report.get(k) for k in ("method", "channels_before", "channels_after", "compression",
                                          "accuracy", "accuracy_drop", "fps_before", "fps_after", "limited_by")}
    print(json.dumps(summary, indent=2, default=str))
    return 0


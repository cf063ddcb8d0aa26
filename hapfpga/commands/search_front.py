"""``hapfpga search-front --storage URL --study NAME [--json]``: the current Pareto front of a pruning search.

Reads the Optuna study (any process, any machine, while workers run): accuracy ↑, predicted FPS ↑, LUT ↓ of the
complete trials, with the worker that ran each point and its model artifact id (load it with
``hapfpga.pruning.workers.load_artifact(ARTIFACTS_DIR, ID)``).
"""

from __future__ import annotations

import argparse

HELP = "Print (or --json export) the current Pareto front of a shared NSGA-II pruning search."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", required=True, help="Optuna storage URL (postgresql://USER@HOST/DB or sqlite:///F)")
    p.add_argument("--study", default="pruning", help="study name (default: pruning)")
    p.add_argument("--json", action="store_true", help="print the front as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    import json

    from ..errors import ConfigError
    from ..pruning.nsga2 import front_rows, open_study, trial_rows

    study = open_study(args.storage, args.study)
    rows = front_rows(study)
    if args.json:
        states = {}
        for t in study.trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        print(json.dumps({"study": args.study, "states": states, "front": rows, "complete": trial_rows(study)},
                         indent=2))
        return 0
    if not rows:
        raise ConfigError(f"Study '{args.study}' has no complete trial yet; start workers or wait.")
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Pareto front of '{args.study}' ({len(study.trials)} trials)")
    for c in ("trial", "accuracy", "FPS", "LUT", "worker", "artifact"):
        t.add_column(c)
    for r in rows:
        t.add_row(str(r["trial"]), f"{r['accuracy']:.4f}", f"{r['fps']:.0f}", f"{r['LUT']:.0f}",
                  str(r["worker"] or "-"), (r["artifact"] or "-")[:8])
    Console().print(t)
    return 0

"""``hapfpga search-worker CONFIG --storage URL --study NAME``: join a shared NSGA-II pruning search from any machine.

The leader (``hapfpga run`` / ``hapfpga prune`` with ``pruning.method: nsga2`` and ``pruning.search.artifacts``)
publishes the trained model and the hardware predictor into the shared artifacts folder; each worker loads them,
evaluates trials of the same Optuna study (heartbeats; a dead worker's trial is failed and retried) and stores
each trial's pruned model in that folder. ``hapfpga search-front`` prints the current Pareto front.
"""

from __future__ import annotations

import argparse
import sys

HELP = "Join a shared NSGA-II pruning search (Optuna study on PostgreSQL or SQLite) and evaluate its trials."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="the leader's run config (same data, model and pruning sections)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL, e.g. postgresql://USER@HOST/DB (default: pruning.nsga2.storage)")
    p.add_argument("--study", default=None, help="study name (default: pruning.nsga2.study_name)")
    p.add_argument("--wait", type=float, default=3600.0,
                   help="seconds to wait for the leader to publish its problem (default 3600)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..pruning.config import parse_pruning_config
    from ..pruning.workers import join_search
    from ..runconfig import load_run_config

    cfg = load_run_config(args.config)
    if not cfg.pruning:
        raise ConfigError(f"Config '{args.config}' has no pruning: section; give the leader's config.")
    pcfg = parse_pruning_config(cfg.pruning)
    storage = args.storage or pcfg.nsga2.storage
    if not storage:
        raise ConfigError("No storage: pass --storage postgresql://USER@HOST/DB or set pruning.nsga2.storage.")
    study = args.study or pcfg.nsga2.study_name
    n = join_search(cfg, storage, study, wait=args.wait, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"search-worker: {n} trials evaluated for study '{study}'", file=sys.stderr)
    return 0

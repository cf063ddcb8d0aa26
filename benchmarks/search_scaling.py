"""Trials per hour of a small NSGA-II pruning search with 1 vs 2 worker processes on this machine.

The search is the prune stage's own: the zoo's ``digits_cnn`` (2-bit) trained for 2 epochs on digits, each trial
prunes it to the NSGA-II sampler's channel counts, fine-tunes for ``--finetune-epochs`` (seeded by the candidate's
identity) and measures validation accuracy (``hapfpga.pruning.workers.TrialEvaluator``), through
``nsga2_search(..., workers=N)`` (batches of one population evaluated in N forked processes,
``hapfpga.pruning.parallel``). The hardware side is a closed-form predictor (FPS falls with the squared widths),
so the figure measures the parallel evaluation, not the folding optimiser. Both runs use a fresh SQLite storage
and produce the same trials (checked). The machine's load average is printed beside the figure: on a shared
machine the speed-up is bounded by the idle cores, not by the code.

Last line: ``search_speedup_2_workers <trials/h with 2 workers ÷ trials/h with 1>``.

Usage: ``python benchmarks/search_scaling.py [--trials N] [--population P] [--finetune-epochs E]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def toy_hw(counts):
    from hapfpga.pruning.search import HwPoint
    from hapfpga.types import Resources

    work = sum((i + 1) * c * c for i, c in enumerate(counts[g] for g in sorted(counts)))
    return HwPoint(1e8 / work, Resources(LUT=10.0 * sum(counts.values())), True)


def setup(args: argparse.Namespace):
    import torch

    from hapfpga.data import load_digits, split_validation
    from hapfpga.pruning.apply import ChannelGraph
    from hapfpga.pruning.importance import make_importance
    from hapfpga.pruning.plan import candidate_counts
    from hapfpga.pruning.workers import TrialEvaluator
    from hapfpga.runconfig import ModelConfig, TrainConfig
    from hapfpga.train import FinetuneConfig, train
    from hapfpga.zoo import build_model

    ds = load_digits()
    model = build_model(ModelConfig(), ds.input_shape, ds.num_classes, seed=0)
    train(model, ds, TrainConfig(epochs=2, lr=0.01, device="cpu"), seed=0, progress=False)
    x_fit, y_fit, x_val, y_val = split_validation(ds.x_train, ds.y_train, 0.2, 0)
    example = torch.as_tensor(x_fit[:2])
    graph = ChannelGraph(model, example)
    groups = [g for g, grp in graph.groups.items() if grp.prunable]
    cands = {g: candidate_counts(graph.groups[g].channels, min_ratio=0.25, steps=8) for g in groups}
    ev = TrialEvaluator(model, example, graph, groups, make_importance("l1"), (x_fit, y_fit), (x_val, y_val),
                        FinetuneConfig(epochs=args.finetune_epochs), 0, toy_hw, "cpu")
    return ev, cands


def run(ev, cands, workers: int, args: argparse.Namespace) -> tuple[float, list]:
    from hapfpga.pruning.search import default_storage, nsga2_search

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = nsga2_search(cands, ev, storage=default_storage(d), n_trials=args.trials, seed=0,
                           population=args.population, workers=workers)
        dt = time.perf_counter() - t0
    return dt, [(s.accuracy, s.hw.fps, dict(s.counts)) for s in res.history]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--finetune-epochs", type=float, default=0.5)
    args = ap.parse_args(argv)
    ev, cands = setup(args)
    cores = len(os.sched_getaffinity(0))
    rate = {}
    results = {}
    for w in (1, 2):
        load = os.getloadavg()[0]
        dt, results[w] = run(ev, cands, w, args)
        rate[w] = args.trials / dt * 3600
        print(f"{w} worker(s): {args.trials} trials in {dt:.1f} s = {rate[w]:.0f} trials/h "
              f"(load average {load:.1f} before, {os.getloadavg()[0]:.1f} after; {cores} cores)")
    if results[1] != results[2]:
        raise SystemExit("the 2-worker search gave other trials than the sequential one (a bug)")
    print("same trials with 1 and 2 workers: yes")
    print(f"search_speedup_2_workers {rate[2] / rate[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

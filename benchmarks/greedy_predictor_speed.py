"""How many folding solves, and how many seconds, the FPS bound saves a greedy pruning search (CNV-w2a2, Pynq-Z2).

The predictor is the prune stage's own (``hapfpga.pruning.hwmodel.build_predictor``: FINN's conversion of the
zoo's CNV-w2a2 on 3x32x32 inputs once, then scaled specs and the folding optimiser at the fold stage's margin,
``folding_time_limit`` 4 s as in ``examples/prune_cnv_digits.yaml``). The accuracies are a closed form of the
channel counts (no training: the figure is the hardware side of the search), the same for both arms:

* ``every trial``: each greedy step folds every trial (the search before the bound);
* ``bounded``: the predictor's ``upper_bound`` lets the step fold only the trials that may be chosen.

Both run ``--steps`` greedy steps with no cache on disk and must take the same steps (checked). Printed: folds,
wall and CPU seconds of each, and the machine's load average (a shared machine stretches the wall time).
Last line: ``greedy_folds_saved <fraction of folds the bound saved>``.

Usage: ``python benchmarks/greedy_predictor_speed.py [--steps N] [--workers W]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build(workers: int, work: Path):
    import torch

    from hapfpga.boards import load_board
    from hapfpga.folding.options import FoldingOptions
    from hapfpga.pruning.apply import ChannelGraph
    from hapfpga.pruning.hwmodel import build_predictor
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    board = load_board("pynq-z2")
    shape = (3, 32, 32)
    m = build_model(ModelConfig(name="cnv", weight_bits=2, act_bits=2), shape, 10, seed=0).eval()
    graph = ChannelGraph(m, torch.rand(2, *shape))
    full = {g: grp.channels for g, grp in graph.groups.items() if grp.prunable}
    opts = FoldingOptions.from_config(_folding_cfg(), board.clock_mhz, board.part).for_predictor(4.0)
    hw = build_predictor(m, graph, shape, board, work, opts, workers=workers)[0]
    hw.cache_dir = None  # every answer solved in this run
    return hw, full


def _folding_cfg():
    from hapfpga.runconfig import FoldingConfig

    return FoldingConfig()


class _EveryTrial:
    """The predictor without its bound: every trial is folded (its batches still go to the workers)."""

    def __init__(self, hw):
        self.hw, self.workers = hw, hw.workers

    def __call__(self, counts):
        return self.hw(counts)

    def predict_many(self, batch):
        return self.hw.predict_many(batch)


def run(hw, full, steps: int):
    from hapfpga.pruning.plan import candidate_counts
    from hapfpga.pruning.search import greedy_search

    cands = {g: candidate_counts(n, min_ratio=0.125, steps=3) for g, n in full.items()}
    sens = {g: 0.002 * (i + 1) for i, g in enumerate(sorted(full))}

    def acc(counts):
        return 0.99 - sum(sens[g] * (1 - counts[g] / full[g]) ** 2 for g in full)

    t0, c0 = time.perf_counter(), _cpu()
    res = greedy_search(dict(full), cands, hw, acc, acc, start_accuracy=0.99, target="budget",
                        max_accuracy_drop=0.2, max_steps=steps)
    return res, time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        out = {}
        for arm in ("every trial", "bounded"):
            hw, full = build(args.workers, Path(d))
            try:
                res, wall, cpu = run(hw if arm == "bounded" else _EveryTrial(hw), full, args.steps)
            finally:
                hw.close()
            out[arm] = (res, wall, cpu, hw.stats["solves"] + hw.stats["bound_no_fit"])
            print(f"{arm}: {out[arm][3]} folds, {wall:.0f} s wall, {cpu:.0f} s CPU, "
                  f"final {res.history[-1].hw.fps:,.0f} FPS after {len(res.history) - 1} steps", flush=True)
    same = out["every trial"][0].history == out["bounded"][0].history
    print(f"same steps: {same}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    saved = 1 - out["bounded"][3] / max(1, out["every trial"][3])
    print(f"greedy_folds_saved {saved:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The pruning search's FPS predictor against what our folding of the actually pruned model gets from FINN.

CNV-w2a2 (the zoo's ``cnv``, untrained, seed 0: FINN's estimates depend on weights only through the
accumulator widths, which the predictor derives from the unpruned weights), 3×32×32, 10 classes, Pynq-Z2,
100 MHz. For each count set (unpruned, uniform keep ratios 0.75 / 0.5 / 0.3, three non-uniform sets, and the
counts of a hardware-aware search result):

- predicted: ``build_predictor`` (FINN conversion of the unpruned model once, scaled layer specs, folding
  solved per call) with the pruning benchmark's fold settings (``OURS_MARGIN``, ``OURS_FINN_CYCLES``) and
  ``--fold-time`` seconds per solve; the wall time per call is timed (predictor caches cold per count set);
- FINN-judged ours: ``benchmarks/pruning_vs_finn.py``'s ``ours_job`` on the l1-pruned model (FINN conversion,
  our folding, FINN's estimate report, the budget tightened until FINN says it fits), in a throw-away cache.

Last line: ``predictor_vs_finn_max_error <max |predicted / FINN - 1|> seconds_per_call <mean>``.

Usage: ``.venv/bin/python benchmarks/predictor_vs_finn.py [--fold-time 2] [--work DIR]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scratch import work_dir  # noqa: E402  (benchmarks/scratch.py)

GROUPS = ("features.conv0", "features.conv1", "features.conv2", "features.conv3", "features.conv4",
          "features.conv5", "classifier.fc0", "classifier.fc1")
#: non-uniform count sets (conv0..conv5, fc0, fc1): early layers pruned hard, late layers hard, mixed, and the
#: channels of the seed-0 hardware-aware result of the pruning benchmark's quick run (issue 13)
SETS = {
    "early": (16, 16, 32, 128, 256, 256, 512, 512),
    "late": (64, 64, 128, 32, 64, 64, 128, 128),
    "mixed": (32, 64, 32, 64, 32, 128, 128, 512),
    "hw-aware seed 0": (8, 64, 96, 128, 120, 192, 512, 512),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fold-time", type=float, default=2.0, help="seconds per predictor solve (quick mode's 2)")
    ap.add_argument("--work", default=None, help="work directory, kept (default: a temporary one, deleted at exit)")
    args = ap.parse_args(argv)

    import torch
    from pruning_vs_finn import FINN_CODE, OURS_FINN_CYCLES, OURS_MARGIN, code_version, ours_job

    from hapfpga.boards import load_board
    from hapfpga.folding import FoldingOptions
    from hapfpga.pruning.apply import ChannelGraph, prune_to_counts
    from hapfpga.pruning.hwmodel import build_predictor, export_for_finn
    from hapfpga.pruning.importance import make_importance
    from hapfpga.pruning.plan import uniform_counts
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    work = work_dir(args.work, "predictor_vs_finn_")
    board, shape = load_board("pynq-z2"), (3, 32, 32)
    model = build_model(ModelConfig(name="cnv", weight_bits=2, act_bits=2), shape, 10, seed=0).eval()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    graph = ChannelGraph(model, x)
    full = {g: grp.channels for g, grp in graph.groups.items() if grp.prunable}
    sets = {"unpruned": dict(full), **{f"uniform {r}": uniform_counts(full, r) for r in (0.75, 0.5, 0.3)},
            **{k: dict(zip(GROUPS, v, strict=True)) for k, v in SETS.items()}}
    rows, times = [], []
    for name, counts in sets.items():
        options = FoldingOptions(clock_mhz=100.0, margin=OURS_MARGIN, finn_cycles=OURS_FINN_CYCLES)
        hw, _, _ = build_predictor(model, graph, shape, board, work / "pred", options.for_predictor(args.fold_time))
        t0 = time.perf_counter()
        pred = hw(counts).fps
        times.append(time.perf_counter() - t0)
        pruned = model if name == "unpruned" else prune_to_counts(model, x, counts, make_importance("l1"),
                                                                   graph=graph)[0]
        onnx = export_for_finn(pruned, shape, work / name.replace(" ", "_") / "model.qonnx.onnx")
        ours = ours_job(str(onnx), str(onnx.parent), str(work / "cache"), code_version(FINN_CODE))
        rows.append((name, counts, pred, ours["fps"], ours["iterations"]))
        print(f"{name:16s} {'/'.join(str(counts[g]) for g in GROUPS):34s} predicted {pred:9,.0f}  FINN-judged ours "
              f"{ours['fps']:9,.0f}  ({pred / ours['fps'] - 1:+.1%}, {ours['iterations']} folding(s), "
              f"{times[-1]:.1f} s per call)", flush=True)
    err = max(abs(p / f - 1) for _, _, p, f, _ in rows)
    print(f"predictor_vs_finn_max_error {err:.4f} seconds_per_call {sum(times) / len(times):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

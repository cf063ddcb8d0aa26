"""CPU time of a distilled fine-tune: the teacher's outputs computed once per teacher and data vs per batch.

CNV-w2a2 (the zoo's FINN CNV, 2-bit), scikit-learn digits 3×32×32, the fit split of ``pruning_vs_finn.py`` (seed 0,
1,145 samples), the benchmark's fine-tune (Adam, per-batch cosine, ``hapfpga.train.finetune``), one torch thread
(as every training in hapfpga). The teacher is the model after one epoch; the student a copy of it.

- ``plain``: the fine-tune without distillation.
- ``distilled, cold``: with distillation, the teacher-output memo emptied first (``hapfpga.train._teacher_outputs``
  runs one teacher pass over the fit split in fixed chunks, then every batch reads its rows).
- ``distilled, warm``: the same again with the memo kept (what every fine-tune after a search's first one costs).
- ``per-batch teacher`` (how distillation ran before, re-created here): the plain fine-tune's CPU time plus the
  teacher's forward on the same batches the fine-tune draws, timed one batch at a time in eval mode.

Each is median CPU seconds (``time.process_time``) of ``--reps`` runs. Last line: ``distill_speedup_vs_per_batch
<ratio> cold <ratio>`` = per-batch teacher / distilled warm, and / distilled cold.

Usage: ``.venv/bin/python benchmarks/distill_speed.py [--epochs 2] [--reps 3]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def teacher_per_batch(teacher, x, cfg, seed: int) -> float:
    """CPU seconds of the teacher's forward on every batch the fine-tune of ``cfg`` draws (its shuffling)."""
    import torch

    from hapfpga.train import deterministic

    n, bs = len(x), cfg.spec().batch_size
    total = cfg.spec().total_steps(n)
    xt = torch.as_tensor(x)
    t, step = 0.0, 0
    with deterministic(seed), torch.no_grad():
        teacher.eval()
        gen = torch.Generator().manual_seed(seed)
        while step < total:
            perm = torch.randperm(n, generator=gen)
            for b in range(0, n, bs):
                if step >= total:
                    break
                idx = perm[b : b + bs]
                if len(idx) < 2:
                    continue
                t += cpu(lambda idx=idx: teacher(xt[idx]))
                step += 1
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    import torch

    import hapfpga.train as T
    from hapfpga.data import load_digits, split_validation
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    torch.set_num_threads(1)
    d = load_digits(size=32, channels=3)
    x, y, _, _ = split_validation(d.x_train, d.y_train, 0.15, 0)
    teacher = build_model(ModelConfig(name="cnv", weight_bits=2, act_bits=2), d.input_shape, 10, seed=0)
    T.finetune(teacher, x, y, T.FinetuneConfig(epochs=1, lr=2e-3), seed=0)
    plain_cfg = T.FinetuneConfig(epochs=args.epochs, lr=5e-4, schedule="cosine")
    kd_cfg = T.FinetuneConfig(epochs=args.epochs, lr=5e-4, schedule="cosine", distill=True)

    def run(cfg, clear: bool):
        if clear:
            T._TEACHER_MEMO.clear()
        return lambda: T.finetune(copy.deepcopy(teacher), x, y, cfg, teacher=teacher, seed=1)

    rows = {}
    for name, cfg, clear in (("plain", plain_cfg, True), ("distilled, cold", kd_cfg, True),
                             ("distilled, warm", kd_cfg, False)):
        rows[name] = statistics.median(cpu(run(cfg, clear)) for _ in range(args.reps))
    rows["teacher forwards per batch"] = statistics.median(
        teacher_per_batch(teacher, x, plain_cfg, 1) for _ in range(args.reps))
    rows["per-batch teacher (plain + forwards)"] = rows["plain"] + rows["teacher forwards per batch"]
    print(f"CNV-w2a2, {len(x)} samples, {args.epochs:g} epochs, 1 thread, median CPU s of {args.reps}:")
    for k, v in rows.items():
        print(f"  {k:38s} {v:7.2f}")
    old = rows["per-batch teacher (plain + forwards)"]
    print(f"distill_speedup_vs_per_batch {old / rows['distilled, warm']:.3f} cold {old / rows['distilled, cold']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

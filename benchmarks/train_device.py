"""Epoch time of CNV QAT (the zoo's ``cnv``, 2-bit weights and activations) on the CPU and, when there is one,
on a CUDA GPU, through the one trainer (``hapfpga.train.fit``) as ``hapfpga run`` uses it.

Data: random images of digits-32's shape (3×32×32, 10 classes; ``--digits`` uses scikit-learn's digits upsampled
to that shape instead). Each device trains a fresh model from the same seed for ``--epochs`` epochs. Two phases
are reported apart: Brevitas's activation quantisers first collect percentile statistics for 300 training steps
(``collect_stats_steps``; ``torch.kthvalue``, which is slow on CUDA), then train their scales; the figure is the
median of the epochs that lie wholly after that phase ("steady"), the first of which is left out as warm-up. The CPU uses ``--cpu-threads`` threads (default: all cores; ``hapfpga run`` trains with
one for bit-reproducibility, see ``hapfpga.train.TRAIN_THREADS``).

Needs only torch, brevitas, numpy and this package (no FINN/QONNX). Last line: ``train_epoch_speedup_cuda
<CPU epoch s / CUDA epoch s>``, or ``train_epoch_speedup_cuda unavailable`` on a machine without CUDA.

Usage: ``python benchmarks/train_device.py [--samples N] [--epochs E] [--batch-size B] [--cpu-threads T]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.train import FitSpec, fit  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    if args.digits:
        from hapfpga.data import load_digits

        ds = load_digits(size=32, channels=3)
        reps = max(1, -(-args.samples // len(ds.x_train)))
        return np.concatenate([ds.x_train] * reps)[: args.samples], np.concatenate([ds.y_train] * reps)[: args.samples]
    rng = np.random.default_rng(0)
    return rng.random((args.samples, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, args.samples)


def _stats_steps(model) -> int:
    """Training steps during which Brevitas collects activation statistics (0 when no quantiser does)."""
    return max([int(getattr(m, "collect_stats_steps", 0)) for m in model.modules()] or [0])


def epoch_seconds(device: str, x: np.ndarray, y: np.ndarray, args: argparse.Namespace) -> tuple[list[float], int]:
    """Wall time of each epoch (a CUDA epoch ends with a device sync: the epoch's loss is read back) and the
    number of the first epoch that lies wholly after the statistics phase."""
    model = build_model(ModelConfig(name="cnv", weight_bits=2, act_bits=2), (3, 32, 32), 10, seed=0)
    per_epoch = -(-len(x) // args.batch_size)
    first_steady = -(-_stats_steps(model) // per_epoch)
    marks = [time.perf_counter()]

    def progress(done: int, total: int, rec: dict | None) -> None:
        if rec is not None:
            marks.append(time.perf_counter())

    fit(model, x, y, FitSpec(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3), seed=0, device=device,
        threads=args.cpu_threads, progress=progress)
    return [b - a for a, b in zip(marks, marks[1:], strict=False)], first_steady


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--epochs", type=int, default=8, help="epochs per device (steady ones: after 300 steps + 1)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cpu-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--digits", action="store_true", help="digits upsampled to 3x32x32 instead of random data")
    args = ap.parse_args(argv)
    import torch

    x, y = _data(args)
    print(f"CNV-w2a2 QAT, {len(x)} samples of 3x32x32, batch {args.batch_size}, torch {torch.__version__}")
    res = {}
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        times, first = epoch_seconds(dev, x, y, args)
        steady = times[first + 1 :]
        if not steady:
            raise SystemExit(f"no steady epoch: raise --epochs above {first + 1} (or --samples)")
        res[dev] = statistics.median(steady)
        name = torch.cuda.get_device_name(0) if dev == "cuda" else f"{args.cpu_threads} threads"
        stats = statistics.median(times[:first]) if first else float("nan")
        print(f"{dev:5s} ({name}): steady epoch {res[dev]:.3f} s, statistics-phase epoch {stats:.3f} s "
              f"(all: {', '.join(f'{t:.2f}' for t in times)})")
    if "cuda" in res:
        print(f"train_epoch_speedup_cuda {res['cpu'] / res['cuda']:.2f}")
    else:
        print("train_epoch_speedup_cuda unavailable")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Candidate evaluations of the pruning search in worker processes on one machine (pure: no torch, no FINN).

A greedy/NetAdapt step's trial accuracies (:func:`map_ordered`, :class:`AccuracyOracle`) and each batch of
NSGA-II trials (``hapfpga.pruning.nsga2.run_trials``) are evaluated in ``pruning.search.workers`` forked processes. Results are identical to the
sequential run for the same seed: the candidate order is fixed (results come back in input order), every
evaluation runs with one torch thread in the parent and in the workers alike (float summation order independent
of the process), and a candidate that trains is seeded by its identity (:func:`candidate_seed`), not by when or
where it runs. NSGA-II trials are asked from the sampler in fixed batches of one population, evaluated, and told
back in trial order, so the sampler sees the same history whatever the number of workers. Workers are forked
(Linux), so they inherit the caller's models and data without pickling; with a CUDA device the search stays in
one process (the GPU is the parallelism, and CUDA cannot be forked). The multi-machine search is
:mod:`hapfpga.pruning.workers`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

__all__ = ["candidate_seed", "map_ordered", "AccuracyOracle", "die_with_parent"]

#: ``prctl`` option: the signal the kernel sends a process when the thread that started it ends (Linux)
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int | None = None) -> None:
    """In a worker process (a pool's ``initializer``): end it with ``sig`` (default SIGTERM) when the process that
    started it ends, however that ends (Ctrl-C, ``kill -9``, a CI timeout), so a killed search or benchmark leaves
    no worker computing on for minutes (Linux ``prctl(PR_SET_PDEATHSIG)``, :manpage:`prctl(2)`; elsewhere nothing).
    A parent that ended before the call: the worker exits at once."""
    import multiprocessing as mp
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(sig or signal.SIGTERM), 0, 0, 0)
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


def candidate_seed(seed: int, counts: Mapping[str, int]) -> int:
    """A seed that depends only on the run's seed and the candidate's channel counts (its identity)."""
    key = f"{seed}:" + ",".join(f"{g}={int(c)}" for g, c in sorted(counts.items()))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Evaluate with one torch thread (when torch is loaded), restoring the count afterwards."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


_TASK: dict[str, Any] = {}


def _run_one(i: int) -> tuple[bool, Any]:
    """In a forked worker: evaluate item ``i`` of the inherited task; errors travel back as values."""
    try:
        with _one_thread():
            return True, _TASK["fn"](_TASK["items"][i])
    except Exception as e:  # re-raised in the parent, in input order
        return False, e


def map_ordered(fn: Callable[[Any], Any], items: Sequence[Any], workers: int) -> list[Any]:
    """``[fn(x) for x in items]``, in ``workers`` forked processes when ``workers > 1``; same results either way.

    The workers are forked per call, so they see the caller's current state (closures, models) without pickling
    it; only the results travel back. The first error (in input order) is re-raised.

    CUDA builds of PyTorch refuse autograd in a process forked after the parent used it ("Unable to handle
    autograd's threading in combination with fork-based multiprocessing"): there, candidates that train are
    evaluated in this process instead (same results; for parallel trials start several ``hapfpga search-worker``
    processes, which are not forks). Accuracy-only candidates (the greedy step's) still run in the workers.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        with _one_thread():
            return [fn(x) for x in items]
    import multiprocessing as mp

    _TASK.update(fn=fn, items=items)
    try:
        with mp.get_context("fork").Pool(min(workers, len(items)), initializer=die_with_parent) as pool:
            out = pool.map(_run_one, range(len(items)), chunksize=1)
    finally:
        _TASK.clear()
    results = []
    for x, (ok, v) in zip(items, out, strict=True):
        if not ok and _autograd_after_fork(v):
            with _one_thread():
                v, ok = fn(x), True
        if not ok:
            raise v
        results.append(v)
    return results


class AccuracyOracle:
    """A greedy step's trial accuracies: ``oracle(counts)`` one, ``accuracy_many(batch)`` a batch in ``workers``
    forked processes (:func:`map_ordered`: same results as in this process). ``measure(counts)`` is the accuracy
    of the search's current model pruned to ``counts`` without fine-tuning (the workers inherit that model)."""

    def __init__(self, measure: Callable[[Mapping[str, int]], float], workers: int = 1):
        self.measure, self.workers = measure, workers

    def __call__(self, counts: Mapping[str, int]) -> float:
        return self.measure(counts)

    def accuracy_many(self, batch: Sequence[Mapping[str, int]]) -> list[float]:
        return map_ordered(self.measure, batch, self.workers)


def _autograd_after_fork(e: BaseException) -> bool:
    """PyTorch's refusal to run autograd in a forked child (CUDA builds), which this process can do instead."""
    return isinstance(e, RuntimeError) and "autograd" in str(e) and "fork" in str(e)

"""Candidate evaluations of the pruning search in worker processes on one machine (pure: no torch, no FINN).

A greedy/NetAdapt step's trial accuracies (:func:`map_ordered`) and each batch of NSGA-II trials
(:func:`run_trials`) are evaluated in ``pruning.search.workers`` forked processes. Results are identical to the
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
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError, InfeasibleError

__all__ = [
    "SearchConfig", "resolve_workers", "candidate_seed", "map_ordered", "run_trials", "enqueue_snapped",
    "AccuracyOracle",
]


@dataclass(frozen=True)
class SearchConfig:
    """``pruning.search``: ``workers`` (an int or ``auto`` = this machine's cores) evaluate candidates in parallel;
    ``artifacts`` (a directory every machine can read and write) turns on the multi-machine mode; ``heartbeat``
    and ``grace`` (seconds) detect dead workers; a failed trial is retried up to ``retries`` times."""

    workers: int | Literal["auto"] = 1
    artifacts: str | None = None
    heartbeat: int = 10
    grace: int | None = None  # None: 3 heartbeats
    retries: int = 2

    def __post_init__(self) -> None:
        resolve_workers(self.workers)
        if self.heartbeat < 1 or self.retries < 0 or (self.grace is not None and self.grace <= self.heartbeat):
            raise ConfigError("pruning.search needs heartbeat >= 1, grace > heartbeat and retries >= 0; fix them.")


def resolve_workers(workers: int | str) -> int:
    """``auto`` -> the cores this process may use; an int >= 1 as is."""
    if workers == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
        return workers
    raise ConfigError(f"Config key 'pruning.search.workers' is {workers!r}; use a number >= 1 or 'auto'.")


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
        with mp.get_context("fork").Pool(min(workers, len(items))) as pool:
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


def _distributions(candidates: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution

    return {g: CategoricalDistribution(list(c)) for g, c in candidates.items()}


def run_trials(
    study: Any,
    candidates: Mapping[str, Sequence[int]],
    evaluate: Callable[[Mapping[str, int]], Any],
    objective_fn: Callable[..., Callable[[Any], Any]],
    *,
    n_trials: int,
    batch: int,
    workers: int = 1,
) -> None:
    """``n_trials`` trials of ``study``: ask ``batch`` trials, evaluate them (in ``workers`` processes), tell them
    in trial order; the same trials and values for any ``workers``.

    ``objective_fn(candidates, evaluate)`` is the search's objective factory (it reads the trial's parameters and
    records its attributes); here it runs in this process on precomputed evaluations.
    """
    dists = _distributions(candidates)
    done = 0
    while done < n_trials:
        trials = [study.ask(dists) for _ in range(min(batch, n_trials - done))]
        todo = [{g: int(t.params[g]) for g in candidates} for t in trials]

        def safe(c: Mapping[str, int]) -> tuple[bool, Any]:
            try:
                return True, evaluate(c)
            except InfeasibleError as e:  # a failed trial, as study.optimize(catch=InfeasibleError) records it
                return False, e

        results = map_ordered(safe, todo, workers)
        for trial, (ok, res) in zip(trials, results, strict=True):
            if not ok:
                study.tell(trial, state=_fail_state())
                continue
            values = objective_fn(candidates, lambda _c, r=res: r)(trial)
            study.tell(trial, values)
        done += len(trials)


def enqueue_snapped(study: Any, candidates: Mapping[str, Sequence[int]], plans: Sequence[Mapping[str, int]]) -> None:
    """Queue ``plans`` as the first trials, each count snapped to the nearest candidate (categorical space); a knob
    a plan does not name (e.g. a mixed-precision ``bits:<layer>``) starts at its first, largest candidate."""
    for c in plans:
        want = {g: int(c.get(g, candidates[g][0])) for g in candidates}
        study.enqueue_trial({g: min(candidates[g], key=lambda v, t=want[g]: (abs(v - t), v)) for g in candidates})


def _fail_state() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL

"""Multi-objective search with Optuna's NSGA-II (Deb et al. 2002), and every use of Optuna in hapfpga (pure:
no torch).

:func:`nsga2_search` searches channel counts (and operand bits) for accuracy ↑, FPS ↑, LUT ↓ in one study; the
storage is any Optuna storage URL (SQLite in the run directory by default). Trials are asked in batches of one
population and evaluated in forked processes (:func:`run_trials`, same trials for any number of workers). The
multi-machine search (:mod:`hapfpga.pruning.workers`) shares one study in an RDB storage with heartbeats
(:func:`make_storage`), in which each process runs :func:`worker_loop`; trial models are Optuna artifacts
(:func:`artifact_store`, :func:`upload_file`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InfeasibleError
from ..types import Resources
from .config import SearchConfig
from .parallel import map_ordered
from .results import HwPoint, SearchResult, Step, pareto_front
from .selection import within_drop

__all__ = [
    "nsga2_search", "nsga2_study", "trial_objective", "default_storage", "run_trials", "enqueue_snapped",
    "make_storage", "fail_dead_trials", "worker_loop", "open_study", "trial_rows", "front_rows", "artifact_store",
    "upload_file", "read_artifact", "worker_id",
]


def default_storage(run_dir: str | Path) -> str:
    """SQLite storage in the run directory: ``sqlite:///RUN_DIR/pruning_optuna.db``."""
    p = Path(run_dir).resolve()
    p.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p / 'pruning_optuna.db'}"


def trial_objective(
    candidates: Mapping[str, Sequence[int]],
    evaluate: Callable[[Mapping[str, int]], tuple[float, HwPoint]],
) -> Callable[[Any], tuple[float, float, float]]:
    """The NSGA-II objective of an Optuna trial: (accuracy, FPS (0 when it does not fit), LUT) of the counts it
    suggests; the trial records whether they fit and their resources."""

    def objective(trial: Any) -> tuple[float, float, float]:
        counts = {g: int(trial.suggest_categorical(g, list(c))) for g, c in candidates.items()}
        acc, h = evaluate(counts)
        trial.set_user_attr("fits", bool(h.fits))
        trial.set_user_attr("resources", h.resources.as_dict())
        return float(acc), float(h.fps if h.fits else 0.0), float(h.resources.LUT)

    return objective


def nsga2_study(storage: Any, study_name: str, seed: int, population: int) -> Any:
    """The Optuna study of a pruning search (created, or joined when it exists): accuracy ↑, FPS ↑, LUT ↓."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    return optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=["maximize", "maximize", "minimize"],
        sampler=sampler,
        load_if_exists=True,
    )


def nsga2_search(
    candidates: Mapping[str, Sequence[int]],
    evaluate: Callable[[Mapping[str, int]], tuple[float, HwPoint]],
    *,
    storage: str,
    study_name: str = "pruning",
    n_trials: int = 32,
    seed: int = 0,
    population: int = 16,
    baseline_accuracy: float | None = None,
    max_accuracy_drop: float = 0.01,
    enqueue: Sequence[Mapping[str, int]] = (),
    workers: int = 1,
    progress: Callable[[int, Mapping[str, int], Any, int], None] | None = None,
) -> SearchResult:
    """NSGA-II over channel counts (and operand bits per layer for mixed precision: one more categorical dimension
    per ``bits:<layer>`` knob); ``evaluate(counts) -> (accuracy, HwPoint)``.

    Returns the Pareto front of *all* completed trials in the storage (other workers' too) and, as ``best``,
    the fastest fitting Pareto point within ``max_accuracy_drop`` of ``baseline_accuracy`` (the most accurate
    one when none is within it). ``enqueue`` seeds the first generation (e.g. the unpruned and uniform plans; a knob
    an enqueued plan does not name starts at its first, largest candidate).
    Trials are evaluated one population at a time in ``workers`` processes (same result for any number);
    ``progress`` is :func:`run_trials`'s.
    """
    import optuna

    study = nsga2_study(storage, study_name, seed, population)
    enqueue_snapped(study, candidates, enqueue)
    run_trials(study, candidates, evaluate, trial_objective, n_trials=n_trials, batch=population, workers=workers,
               progress=progress)
    steps = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        acc, fps, _lut = t.values
        res = Resources.from_dict(t.user_attrs.get("resources", {}))
        steps.append(Step({g: int(v) for g, v in t.params.items()}, HwPoint(fps, res, bool(t.user_attrs.get("fits"))), acc))
    if not steps:
        raise InfeasibleError("No NSGA-II trial completed; check the evaluator and the board budget.")
    front = pareto_front(steps)
    base = baseline_accuracy if baseline_accuracy is not None else max(s.accuracy for s in steps)
    ok = [s for s in front if s.hw.fits and within_drop(base, s.accuracy, max_accuracy_drop)]
    best = max(ok, key=lambda s: (s.hw.fps, s.accuracy)) if ok else max(front, key=lambda s: s.accuracy)
    return SearchResult(best=best, history=tuple(steps), pareto=tuple(front))


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
    progress: Callable[[int, Mapping[str, int], Any, int], None] | None = None,
) -> None:
    """``n_trials`` trials of ``study``: ask ``batch`` trials, evaluate them (in ``workers`` processes), tell them
    in trial order; the same trials and values for any ``workers``.

    ``objective_fn(candidates, evaluate)`` is the search's objective factory (it reads the trial's parameters and
    records its attributes); here it runs in this process on precomputed evaluations. ``progress(trial number,
    counts, evaluation or None when it failed, trials left)`` is told of each trial as it is told to the study.
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
        for k, (trial, counts, (ok, res)) in enumerate(zip(trials, todo, results, strict=True), 1):
            if ok:
                study.tell(trial, objective_fn(candidates, lambda _c, r=res: r)(trial))
            else:
                study.tell(trial, state=_fail_state())
            if progress is not None:
                progress(trial.number, counts, res if ok else None, n_trials - done - k)
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


def make_storage(url: str, cfg: SearchConfig) -> Any:
    """An Optuna RDB storage with heartbeats and retry of failed trials (``url``: sqlite:/// or postgresql://)."""
    import importlib.util
    import warnings

    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from sqlalchemy.pool import NullPool

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]  # the pinned driver (SQLAlchemy's default is v3)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5 (stable since 2.x in practice)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=cfg.heartbeat, grace_period=cfg.grace or 3 * cfg.heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=cfg.retries),
                # no connection pool on a shared server: a connection per operation, closed after it, so many
                # workers (and the processes they fork) never hold idle connections up to max_connections
                engine_kwargs={"poolclass": NullPool} if url.startswith("postgresql") else None,
            )
    except ImportError as e:  # e.g. psycopg2 missing for postgresql://
        raise ConfigError(f"Optuna storage '{url}' needs a driver that is not installed ({e}); install it.") from e
    except Exception as e:  # sqlalchemy's OperationalError: the database is not reachable
        raise ConfigError(f"Cannot open the Optuna storage '{url}': {str(e).splitlines()[0]}") from e


def _counts_by_state(study: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def fail_dead_trials(study: Any) -> None:
    """Optuna's ``fail_stale_trials`` extended to the dead trials it cannot see: RUNNING trials that never wrote a
    heartbeat (a worker killed between taking a trial and its heartbeat thread's first beat; Optuna's RDB storage
    skips trials without a heartbeat row in ``_get_stale_trial_ids``, so such a trial stayed RUNNING and every
    worker waited for it forever). Those count as dead once they started more than grace + one heartbeat ago (by
    this machine's clock, as Optuna stamps ``datetime_start``). Every dead trial is failed and handed to the
    storage's stale-trial callback (the retry), as ``fail_stale_trials`` does."""
    import copy

    import optuna
    from optuna.storages._heartbeat import is_heartbeat_enabled
    from optuna.trial import TrialState

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return
    dead = set(storage._get_stale_trial_ids(study._study_id)) | _silent_trial_ids(study)
    failed = []
    for tid in sorted(dead):
        try:
            if storage.set_trial_state_values(tid, state=TrialState.FAIL):
                failed.append(tid)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            pass
    callback = storage.get_heartbeat_stale_trial_callback()
    for tid in failed if callback is not None else []:
        callback(study, copy.deepcopy(storage.get_trial(tid)))


def _silent_trial_ids(study: Any) -> set[int]:
    """RUNNING trials of an RDB study with no heartbeat row that started more than grace + one heartbeat ago."""
    import datetime

    from optuna.trial import TrialState

    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    if not hasattr(backend, "scoped_session"):
        return set()
    interval = storage.get_heartbeat_interval()
    limit = datetime.timedelta(seconds=(getattr(backend, "grace_period", None) or 2 * interval) + interval)
    now = datetime.datetime.now()
    old = {t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
           if t.datetime_start is not None and now - t.datetime_start > limit}
    if not old:
        return set()
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        beating = {tid for (tid,) in session.query(models.TrialHeartbeatModel.trial_id)
                   .filter(models.TrialHeartbeatModel.trial_id.in_(sorted(old)))}
    return old - beating


def worker_loop(study: Any, objective: Callable[[Any], Any], *, n_trials: int, cap: int,
                poll: float = 1.0, log: Callable[[str], None] | None = None) -> int:
    """Run trials of a shared study until it has ``n_trials`` complete ones (this worker runs at most ``cap``).

    Re-queued (WAITING) trials run first; no new trial starts when the complete and running ones already reach
    ``n_trials``; while other workers' trials run, this worker waits and fails the dead ones
    (:func:`fail_dead_trials`; their retries then
    run here), so a study is only left when every trial is complete or failed and retried. Returns the number of
    trials this worker ran.
    """
    say = log or (lambda s: None)
    ran = 0
    while ran < cap:
        fail_dead_trials(study)
        n = _counts_by_state(study)
        if n.get("WAITING", 0) == 0 and n.get("COMPLETE", 0) + n.get("RUNNING", 0) >= n_trials:
            if n.get("RUNNING", 0) == 0:
                break
            time.sleep(poll)  # others are still running: wait for them or for their heartbeats to go stale
            continue
        study.optimize(objective, n_trials=1, catch=(InfeasibleError,))
        ran += 1
        say(f"trial done ({ran} by this worker; study: {_counts_by_state(study)})")
    return ran


def open_study(storage_url: str, study_name: str) -> Any:
    """An existing study of a storage, for reading (a missing one is a user error naming the known studies)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(storage_url, SearchConfig())
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise ConfigError(f"No study '{study_name}' in {storage_url}; known studies: {names or 'none'}.") from None


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every complete trial of a study as a plain row (trial number, objectives, counts, worker, artifact id)."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        acc, fps, lut = t.values
        rows.append({"trial": t.number, "accuracy": acc, "fps": fps, "LUT": lut,
                     "counts": {g: int(v) for g, v in t.params.items()}, "worker": t.user_attrs.get("worker"),
                     "artifact": t.user_attrs.get("artifact")})
    return rows


def front_rows(study: Any) -> list[dict[str, Any]]:
    """The Pareto front (accuracy ↑, FPS ↑, LUT ↓) of a study's complete trials, fastest first."""
    rows = trial_rows(study)
    steps = [Step(r["counts"], HwPoint(r["fps"], Resources(LUT=r["LUT"])), r["accuracy"]) for r in rows]
    front = {id(s) for s in pareto_front(steps)}
    out = [r for r, s in zip(rows, steps, strict=True) if id(s) in front]
    return sorted(out, key=lambda r: (-r["fps"], -r["accuracy"], r["trial"]))


def artifact_store(directory: str | Path) -> Any:
    from optuna.artifacts import FileSystemArtifactStore

    p = Path(directory) / "artifacts"
    p.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(p))


def upload_file(store: Any, trial: Any, path: str | Path) -> str:
    """Store the file at ``path`` as the trial's artifact; sets the trial's ``artifact`` attribute to its id."""
    from optuna.artifacts import upload_artifact

    aid = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
    trial.set_user_attr("artifact", aid)
    return aid


def read_artifact(directory: str | Path, artifact_id: str) -> bytes:
    """The bytes of an artifact in the shared artifacts directory."""
    with artifact_store(directory).open_reader(artifact_id) as f:
        return f.read()


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"

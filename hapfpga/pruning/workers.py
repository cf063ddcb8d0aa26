"""One pruning search over many machines: ``hapfpga search-worker`` processes join a shared Optuna study.

Processes on any machine join one Optuna study in an RDB storage (PostgreSQL; SQLite in the run directory stays
the embedded default). Each worker's trials send Optuna heartbeats; a worker that dies mid-trial has its trial
marked failed by the next worker that looks (``fail_stale_trials`` after ``grace`` seconds) and re-queued by
``RetryHeartbeatStaleTrialCallback``. The leader (``hapfpga run`` / ``hapfpga prune`` with
``pruning.search.artifacts``) publishes what a trial needs (the trained model, the hardware predictor's layer
specs, the candidate counts) as ``problem.pt`` in the shared artifacts directory; every trial's pruned model is
stored there too, in Optuna's ``FileSystemArtifactStore`` (the trial's ``artifact`` user attribute is its id), so
the leader and every worker can read every Pareto point's model. Parallel workers on one machine:
:mod:`hapfpga.pruning.parallel`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InfeasibleError
from .parallel import SearchConfig, candidate_seed, enqueue_snapped
from .predictor import HwPredictor, PredictorSpec

__all__ = [
    "TrialEvaluator",
    "make_storage",
    "publish_problem",
    "load_problem",
    "worker_loop",
    "front_rows",
    "trial_rows",
    "open_study",
    "join_search",
    "lead_shared_search",
    "load_artifact",
]

PROBLEM_FILE = "problem.pt"


class TrialEvaluator:
    """``counts -> (validation accuracy, HwPoint)`` of the base model pruned to ``counts`` (and fine-tuned for
    ``finetune.epochs`` with a seed from the candidate's identity); keeps the last evaluated model."""

    def __init__(self, base: Any, example: Any, graph: Any, groups: Sequence[str], importance: Any,
                 fit_data: tuple[Any, Any], val_data: tuple[Any, Any], finetune: Any, seed: int,
                 hw: Callable[[Mapping[str, int]], Any], device: Any = "cpu"):
        self.base, self.example, self.graph, self.groups = base, example, graph, list(groups)
        self.importance, self.fit_data, self.val_data = importance, fit_data, val_data
        self.finetune, self.seed, self.hw, self.device = finetune, seed, hw, device
        self.last_model: Any = None

    def __call__(self, counts: Mapping[str, int]) -> tuple[float, Any]:
        from ..train import evaluate, finetune
        from .apply import prune_to_counts
        from .mixed import split_knobs, with_operand_bits

        m = prune_to_counts(self.base, self.example, {g: int(counts[g]) for g in self.groups}, self.importance,
                            graph=self.graph)[0]
        bits = split_knobs(counts)[1]  # mixed precision: ``bits:<layer>`` knobs
        if bits:
            m = with_operand_bits(m, bits)
        if self.finetune.epochs > 0:
            finetune(m, *self.fit_data, self.finetune, seed=candidate_seed(self.seed, counts), device=self.device)
        self.last_model = m
        return evaluate(m, *self.val_data, device=self.device), self.hw(counts)


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


def _save_model_bytes(model: Any) -> bytes:
    """``hapfpga.zoo.save_model``'s file (rebuild spec + state_dict) as bytes."""
    import tempfile

    from ..zoo import save_model

    with tempfile.TemporaryDirectory() as d:
        return save_model(model, Path(d) / "m.pt").read_bytes()


def _load_model_bytes(data: bytes) -> Any:
    import tempfile

    from ..zoo import load_model

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.pt"
        p.write_bytes(data)
        return load_model(p)


def _data_hash(*arrays: Any) -> str:
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def publish_problem(directory: str | Path, study_name: str, base: Any, hw_spec: PredictorSpec,
                    candidates: Mapping[str, Sequence[int]], groups: Sequence[str], seed: int, finetune: Any,
                    val_data: tuple[Any, Any]) -> Path:
    """Write what a remote worker needs to evaluate trials of ``study_name`` into the shared ``directory``."""
    from ..train import atomic_torch_save

    d = Path(directory) / study_name
    d.mkdir(parents=True, exist_ok=True)
    blob = {"model": _save_model_bytes(base), "hw_spec": hw_spec, "candidates": dict(candidates),
            "groups": list(groups), "seed": seed, "finetune": finetune, "val_hash": _data_hash(*val_data)}
    path = d / PROBLEM_FILE
    atomic_torch_save(blob, path)
    return path


def load_problem(directory: str | Path, study_name: str, *, wait: float = 0.0) -> dict[str, Any]:
    """The leader's ``problem.pt`` for ``study_name`` (waiting up to ``wait`` seconds for it to appear)."""
    import torch

    path = Path(directory) / study_name / PROBLEM_FILE
    deadline = time.monotonic() + wait
    while not path.is_file():
        if time.monotonic() >= deadline:
            raise ConfigError(f"No search problem in '{path.parent}' yet; start the leader (hapfpga run/prune "
                              f"with pruning.search.artifacts) first, or pass --wait SECONDS.")
        time.sleep(1.0)
    blob = torch.load(path, weights_only=False)
    blob["model"] = _load_model_bytes(blob["model"])
    return blob


def shared_objective(candidates: Mapping[str, Sequence[int]], evaluator: TrialEvaluator, store: Any,
                     tmp_dir: str | Path) -> Callable[[Any], Any]:
    """The search's objective, plus: the trial records which worker ran it and stores its model as an artifact."""
    from .search import trial_objective

    base = trial_objective(candidates, evaluator)

    def objective(trial: Any) -> Any:
        trial.set_user_attr("worker", worker_id())
        values = base(trial)
        upload_model(store, trial, evaluator.last_model, tmp_dir)
        return values

    return objective


def lead_shared_search(pcfg: Any, storage_url: str, evaluator: TrialEvaluator, candidates: Mapping[str, Sequence[int]],
                       enqueue: Sequence[Mapping[str, int]], seed: int, log: Callable[[str], None] | None = None) -> Any:
    """The leader's part of a multi-machine NSGA-II search: publish the problem, run trials with the workers
    until the study has ``nsga2.trials`` complete ones; returns the storage (read the front from it)."""
    from .search import nsga2_study

    if not isinstance(evaluator.hw, HwPredictor):
        raise ConfigError("pruning.search.artifacts needs the built-in hardware predictor; remove it to search here.")
    scfg, art = pcfg.search, Path(pcfg.search.artifacts)
    storage = make_storage(storage_url, scfg)
    study = nsga2_study(storage, pcfg.nsga2.study_name, seed, pcfg.nsga2.population)
    if not study.trials:
        enqueue_snapped(study, candidates, enqueue)
    publish_problem(art, pcfg.nsga2.study_name, evaluator.base, evaluator.hw.spec, candidates, evaluator.groups, seed,
                    evaluator.finetune, evaluator.val_data)
    objective = shared_objective(candidates, evaluator, artifact_store(art), art / pcfg.nsga2.study_name)
    worker_loop(study, objective, n_trials=pcfg.nsga2.trials, cap=pcfg.nsga2.trials, log=log)
    return storage


def join_search(cfg: Any, storage_url: str, study_name: str, *, wait: float = 0.0,
                log: Callable[[str], None] | None = None) -> int:
    """``hapfpga search-worker``: evaluate trials of the leader's study from this machine; returns trials run."""
    import torch

    from ..data import load_dataset, split_validation
    from ..train import resolve_device
    from .apply import ChannelGraph
    from .config import parse_pruning_config
    from .importance import make_importance
    from .search import nsga2_study

    pcfg = parse_pruning_config(cfg.pruning)
    if pcfg.method != "nsga2" or not pcfg.search.artifacts:
        raise ConfigError("search-worker needs pruning.method: nsga2 and pruning.search.artifacts (a shared folder).")
    art = Path(pcfg.search.artifacts)
    dataset = load_dataset(cfg.data, seed=cfg.seed)
    x_fit, y_fit, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, pcfg.val_fraction, cfg.seed)
    prob = load_problem(art, study_name, wait=wait)
    if prob["val_hash"] != _data_hash(x_val, y_val):
        raise ConfigError("This worker's data or seed differ from the leader's (validation split hash); use the "
                          "leader's config and the same data files.")
    example = torch.as_tensor(x_fit[:2], dtype=torch.float32)
    base, hw = prob["model"], HwPredictor(prob["hw_spec"])
    ev = TrialEvaluator(base, example, ChannelGraph(base, example), prob["groups"],
                        make_importance(pcfg.importance, x=x_fit[:512], y=y_fit[:512]), (x_fit, y_fit),
                        (x_val, y_val), prob["finetune"], prob["seed"], hw, resolve_device(cfg.train.device))
    storage = make_storage(storage_url, pcfg.search)
    study = nsga2_study(storage, study_name, candidate_seed(prob["seed"], {worker_id(): 0}), pcfg.nsga2.population)
    objective = shared_objective(prob["candidates"], ev, artifact_store(art), art / study_name)
    return worker_loop(study, objective, n_trials=pcfg.nsga2.trials, cap=pcfg.nsga2.trials, log=log)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
    from ..types import Resources
    from .search import HwPoint, Step, pareto_front

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


def upload_model(store: Any, trial: Any, model: Any, tmp_dir: str | Path) -> str:
    """Store ``model`` (``hapfpga.zoo.save_model`` format) as the trial's artifact; sets its ``artifact`` attr."""
    from optuna.artifacts import upload_artifact

    from ..zoo import save_model

    path = save_model(model, Path(tmp_dir) / f"trial-{trial.number}-{os.getpid()}.pt")
    try:
        aid = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
    finally:
        path.unlink(missing_ok=True)
    trial.set_user_attr("artifact", aid)
    return aid


def load_artifact(directory: str | Path, artifact_id: str) -> Any:
    """A trial's model from the shared artifacts directory."""
    with artifact_store(directory).open_reader(artifact_id) as f:
        return _load_model_bytes(f.read())

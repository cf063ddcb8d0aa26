"""One pruning search over many machines: publish the problem, join it (``hapfpga search-worker``).

Processes on any machine join one Optuna study in an RDB storage (PostgreSQL; SQLite in the run directory stays
the embedded default; the Optuna side, heartbeats and retries included, is :mod:`hapfpga.pruning.nsga2`). The
leader (``hapfpga run`` / ``hapfpga prune`` with
``pruning.search.artifacts``) publishes what a trial needs (the trained model, the hardware predictor's layer
spec ``PredictorSpec``, the candidate counts) as ``problem.pt`` in the shared artifacts directory; every trial's pruned model is
stored there too, in Optuna's ``FileSystemArtifactStore`` (the trial's ``artifact`` user attribute is its id), so
the leader and every worker can read every Pareto point's model. Parallel workers on one machine:
:mod:`hapfpga.pruning.parallel`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .nsga2 import (
    artifact_store,
    enqueue_snapped,
    make_storage,
    nsga2_study,
    read_artifact,
    trial_objective,
    upload_file,
    worker_id,
    worker_loop,
)
from .parallel import candidate_seed
from .predictor import HwPredictor, PredictorSpec

__all__ = [
    "TrialEvaluator",
    "publish_problem",
    "load_problem",
    "join_search",
    "lead_shared_search",
    "upload_model",
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


def publish_problem(directory: str | Path, study_name: str, base: Any, hw_spec: PredictorSpec,
                    candidates: Mapping[str, Sequence[int]], groups: Sequence[str], seed: int, finetune: Any,
                    val_data: tuple[Any, Any]) -> Path:
    """Write what a remote worker needs to evaluate trials of ``study_name`` into the shared ``directory``."""
    from ..data import array_digest
    from ..train import atomic_torch_save

    d = Path(directory) / study_name
    d.mkdir(parents=True, exist_ok=True)
    blob = {"model": _save_model_bytes(base), "hw_spec": hw_spec, "candidates": dict(candidates),
            "groups": list(groups), "seed": seed, "finetune": finetune, "val_hash": array_digest(*val_data)}
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

    from ..data import array_digest, load_dataset, split_validation
    from ..train import resolve_device
    from .apply import ChannelGraph
    from .config import parse_pruning_config
    from .importance import make_importance

    pcfg = parse_pruning_config(cfg.pruning)
    if pcfg.method != "nsga2" or not pcfg.search.artifacts:
        raise ConfigError("search-worker needs pruning.method: nsga2 and pruning.search.artifacts (a shared folder).")
    art = Path(pcfg.search.artifacts)
    dataset = load_dataset(cfg.data, seed=cfg.seed)
    x_fit, y_fit, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, pcfg.val_fraction, cfg.seed)
    prob = load_problem(art, study_name, wait=wait)
    if prob["val_hash"] != array_digest(x_val, y_val):
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


def upload_model(store: Any, trial: Any, model: Any, tmp_dir: str | Path) -> str:
    """Store ``model`` (``hapfpga.zoo.save_model`` format) as the trial's artifact; sets its ``artifact`` attr."""
    from ..zoo import save_model

    path = save_model(model, Path(tmp_dir) / f"trial-{trial.number}-{os.getpid()}.pt")
    try:
        return upload_file(store, trial, path)
    finally:
        path.unlink(missing_ok=True)


def load_artifact(directory: str | Path, artifact_id: str) -> Any:
    """A trial's model from the shared artifacts directory."""
    return _load_model_bytes(read_artifact(directory, artifact_id))

"""Parallel candidate evaluation on one machine gives exactly the sequential results for the same seed."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hapfpga.data import load_digits  # noqa: E402
from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.config import resolve_workers  # noqa: E402
from hapfpga.pruning.parallel import candidate_seed, map_ordered  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.search import HwPoint  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.runconfig import ModelConfig, TrainConfig  # noqa: E402
from hapfpga.train import train  # noqa: E402
from hapfpga.types import Resources  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def trained(digits):
    m = build_model(ModelConfig(), digits.input_shape, digits.num_classes, seed=0)
    train(m, digits, TrainConfig(epochs=2, lr=0.01, device="cpu"), seed=0, progress=False)
    return m


def toy_hw(counts):
    """A predictor that rewards removing channels (FPS falls with the squared widths), LUT ~ channels."""
    work = sum((i + 1) * c * c for i, c in enumerate(counts[g] for g in sorted(counts)))
    return HwPoint(1e8 / work, Resources(LUT=10.0 * sum(counts.values())), True)


def _state_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _strip(rep):
    return {k: v for k, v in rep.items() if k not in ("seconds", "storage")}


@pytest.mark.parametrize("method", ["greedy", "nsga2"])
def test_two_workers_give_the_sequential_result(trained, digits, tmp_path, method):
    cfg = {"method": method, "target": "budget", "max_accuracy_drop": 0.05, "sensitivity": False,
           "min_ratio": 0.25, "candidate_steps": 4, "max_steps": 4, "step_finetune_epochs": 0.1,
           "finetune_epochs": 0.1, "nsga2": {"trials": 8, "population": 4, "finetune_epochs": 0.2}}
    tc = TrainConfig(device="cpu")
    runs = {}
    for w in (1, 2):
        runs[w] = run_pruning_stage({**cfg, "search": {"workers": w}}, trained, digits, HwTarget(predictor=toy_hw),
                                    tmp_path / f"w{w}", train_cfg=tc, seed=0)
    (m1, r1), (m2, r2) = runs[1], runs[2]
    assert len({str(h["counts"]) for h in r1["history"]}) > 2  # it really searched (several candidates measured)
    assert _strip(r1) == _strip(r2)
    assert _state_equal(m1, m2)


def _square_after_training(n: int) -> float:
    """A candidate that trains: a tiny seeded regression whose result depends on torch's RNG and float order."""
    torch.manual_seed(candidate_seed(0, {"n": n}))
    w = torch.randn(64, 64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.01)
    for _ in range(5):
        loss = (w @ w).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(w.sum())


def test_map_ordered_keeps_order_and_values_and_raises_the_first_error():
    items = list(range(9))
    assert map_ordered(_square_after_training, items, 3) == map_ordered(_square_after_training, items, 1)

    def boom(x):
        if x >= 4:
            raise ConfigError(f"bad candidate {x}")
        return x

    with pytest.raises(ConfigError, match="bad candidate 4"):
        map_ordered(boom, items, 2)


def test_candidate_seed_is_the_identity_not_the_order():
    a, b = {"c1": 8, "c2": 16}, {"c2": 16, "c1": 8}
    assert candidate_seed(0, a) == candidate_seed(0, b)
    assert candidate_seed(0, a) != candidate_seed(1, a) != candidate_seed(0, {"c1": 8, "c2": 12})
    assert resolve_workers("auto") >= 1 and resolve_workers(3) == 3
    with pytest.raises(ConfigError, match="workers"):
        resolve_workers(0)


def test_candidates_that_cannot_train_in_a_fork_are_evaluated_here():
    """CUDA builds of torch refuse autograd after fork: those candidates run in this process, same results."""
    import os

    parent = os.getpid()

    def picky(x):
        if os.getpid() != parent and x % 2:
            raise RuntimeError("Unable to handle autograd's threading in combination with fork-based "
                               "multiprocessing. See https://github.com/pytorch/pytorch/wiki/Autograd-and-Fork")
        return (x, os.getpid() == parent)

    out = map_ordered(picky, list(range(6)), 2)
    assert [v for v, _ in out] == list(range(6))
    assert [here for _, here in out] == [False, True, False, True, False, True]  # odd ones fell back to here


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    """Optuna's ``fail_stale_trials`` only sees trials with a heartbeat row; a worker killed between taking a trial
    and its first beat left it RUNNING for ever (the multi-machine test hung on one under load). ``worker_loop``'s
    ``fail_dead_trials`` fails it once it is older than grace + one heartbeat, the retry re-queues it, and a
    surviving worker finishes the study."""
    import datetime

    import optuna
    from optuna.trial import TrialState

    from hapfpga.pruning.config import SearchConfig
    from hapfpga.pruning.nsga2 import fail_dead_trials, make_storage, worker_loop

    storage = make_storage(f"sqlite:///{tmp_path / 's.db'}", SearchConfig(heartbeat=1, grace=2, retries=2))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    dead = study.ask()  # taken, RUNNING, and no heartbeat ever written
    fail_dead_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # too young to call dead
    old = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(seconds=10)
    backend = getattr(study._storage, "_backend", study._storage)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        session.query(models.TrialModel).filter(models.TrialModel.trial_id == dead._trial_id).update(
            {models.TrialModel._datetime_start_utc: old})  # as if taken 10 s ago (stored in UTC)
    ran = worker_loop(study, lambda t: t.suggest_float("x", 0, 1), n_trials=3, cap=10, poll=0.1)
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL and ran >= 3
    assert sum(s == TrialState.COMPLETE for s in states) >= 3
    retried = [t for t in study.trials if t.state == TrialState.COMPLETE
               and dead.number in optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(t)]
    assert retried, "the dead trial's retry must run to completion"

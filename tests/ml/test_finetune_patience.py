"""The learning-curve early stop of fine-tunes (``FinetuneConfig.patience``, ``pruning.finetune_patience``) on real
data (scikit-learn's digits) with the zoo's default Brevitas model: it stops a fine-tune whose validation accuracy
has gone flat, never before the curve has been flat for ``patience`` epochs, keeps the best-on-validation weights,
and changes nothing when off."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hapfpga.data import Dataset, load_digits  # noqa: E402
from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.config import parse_pruning_config  # noqa: E402
from hapfpga.runconfig import ModelConfig, TrainConfig  # noqa: E402
from hapfpga.train import FinetuneConfig, evaluate, finetune, finetune_best, train  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def setup(digits):
    """A model trained 3 epochs on 600 digits (its validation accuracy near its plateau), a fit split of 400 other
    training digits and a validation split of 300 more."""
    tr = Dataset(digits.name, digits.x_train[:600], digits.y_train[:600], digits.x_test, digits.y_test, 10)
    m = build_model(ModelConfig(), tr.input_shape, 10, seed=0)
    train(m, tr, TrainConfig(epochs=3, lr=0.01), seed=0, progress=False)
    fit = (digits.x_train[600:1000], digits.y_train[600:1000])
    val = (digits.x_train[1000:1300], digits.y_train[1000:1300])
    return m, fit, val


def _replay(model, fit, cfg, at_step):
    """The weights a plain ``finetune`` (no checks, no stop) reaches after ``at_step`` optimiser steps."""
    m, seen, n = copy.deepcopy(model), {"m": copy.deepcopy(model)}, [0]

    def grab(mm):
        n[0] += 1
        if n[0] == at_step:
            seen["m"] = copy.deepcopy(mm)

    finetune(m, *fit, cfg, seed=0, after_step=grab)
    return seen["m"]


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_flat_learning_curve_stops_the_finetune_and_keeps_the_best_checked_weights(setup):
    """A 10-epoch fine-tune at a small learning rate from a model near its plateau: with patience 1 it stops at
    the first epoch's end where the accuracy has not risen for an epoch, long before 10 epochs; what comes back
    is, bit for bit, the best checked point of the (shortened) run."""
    model, fit, val = setup
    cfg = FinetuneConfig(epochs=10, lr=3e-4, batch_size=64, schedule="cosine", patience=1.0)
    m, sel = finetune_best(copy.deepcopy(model), *fit, val, cfg, seed=0)
    per_epoch = int(np.ceil(len(fit[0]) / 64))
    assert sel.steps_total == 10 * per_epoch and sel.stopped_early
    assert sel.steps_done <= 5 * per_epoch, sel  # the saving is real: at most half the epochs ran
    assert sel.steps_done % per_epoch == 0  # it stops at an epoch's check
    # the rule: no rise above the best accuracy so far in the last `patience` epochs before the stop
    accs = [(0, sel.start_accuracy)] + list(sel.checks)
    last_rise = max(s for s, a in accs if a > max([b for t, b in accs if t < s], default=-1.0) + 1e-12)
    assert sel.steps_done - last_rise >= per_epoch
    assert sel.accuracy == max(a for _, a in accs) and evaluate(m, *val) == sel.accuracy
    assert _same_weights(m, _replay(model, fit, cfg, sel.step))


@pytest.mark.parametrize("patience", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("lr", [3e-4, 3e-3, 3e-2])
def test_the_stop_never_comes_before_the_curve_has_been_flat_for_patience_epochs(setup, patience, lr):
    """Property over learning rates (a flat, a rising and a noisy curve) and patiences: a run that stopped early
    had no accuracy rise in its last ``patience`` epochs; a run that went to the end never had such a stretch at
    an epoch's end; the checks cover every epoch's end up to where it ran."""
    model, fit, val = setup
    cfg = FinetuneConfig(epochs=4, lr=lr, batch_size=64, schedule="cosine", patience=patience)
    _, sel = finetune_best(copy.deepcopy(model), *fit, val, cfg, seed=0)
    per_epoch = int(np.ceil(len(fit[0]) / 64))
    need = int(np.ceil(patience * per_epoch))
    steps = [s for s, _ in sel.checks]
    assert set(range(per_epoch, sel.steps_done + 1, per_epoch)) <= set(steps)
    best, rise, flat_at = sel.start_accuracy, 0, []
    for s, a in sel.checks:
        if a > best + 1e-12:
            best, rise = a, s
        if s - rise >= need:
            flat_at.append(s)
    if sel.stopped_early:
        assert flat_at and flat_at[0] == sel.steps_done == steps[-1]
    else:
        assert sel.steps_done == sel.steps_total and not [s for s in flat_at if s < sel.steps_total]


def test_patience_off_changes_nothing_and_checks_do_not_perturb_training(setup):
    """Off (the default): the same four checks as ever, every step runs and the result is bit for bit the replayed
    plain fine-tune's weights at the selected step. On but never reached: the extra per-epoch checks do not change
    the training (the checked accuracies at the shared points are equal, and the weights kept are the plain
    fine-tune's at the selected step)."""
    model, fit, val = setup
    off = FinetuneConfig(epochs=3, lr=3e-3, batch_size=64, schedule="cosine")
    assert off.patience is None
    m_off, s_off = finetune_best(copy.deepcopy(model), *fit, val, off, seed=0)
    assert len(s_off.checks) == off.val_checks and s_off.steps_done == s_off.steps_total
    assert _same_weights(m_off, _replay(model, fit, off, s_off.step))
    on = FinetuneConfig(epochs=3, lr=3e-3, batch_size=64, schedule="cosine", patience=50.0)
    m_on, s_on = finetune_best(copy.deepcopy(model), *fit, val, on, seed=0)
    assert not s_on.stopped_early and len(s_on.checks) > len(s_off.checks)
    on_at = dict(s_on.checks)
    assert all(on_at[s] == a for s, a in s_off.checks)
    assert s_on.accuracy >= s_off.accuracy and _same_weights(m_on, _replay(model, fit, on, s_on.step))


def test_patience_config_errors():
    for bad in (0, -1.0):
        with pytest.raises(ConfigError, match="patience"):
            FinetuneConfig(patience=bad)
        with pytest.raises(ConfigError, match="pruning.finetune_patience"):
            parse_pruning_config({"finetune_patience": bad})
    with pytest.raises(ConfigError, match="select_best"):
        parse_pruning_config({"finetune_patience": 1, "select_best": False})
    assert parse_pruning_config({"finetune_patience": 1.5}).finetune_patience == 1.5
    assert parse_pruning_config({}).finetune_patience is None

"""QAT: determinism, checkpoints, distillation hook, accuracy on real digits."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hapfpga.data import Dataset, load_digits  # noqa: E402
from hapfpga.runconfig import ModelConfig, TrainConfig  # noqa: E402
from hapfpga.train import FinetuneConfig, evaluate, finetune, finetune_best, predict, train  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _small(ds: Dataset, n: int = 400) -> Dataset:
    return Dataset(ds.name, ds.x_train[:n], ds.y_train[:n], ds.x_test, ds.y_test, ds.num_classes)


def _run(ds, seed, tmp_path=None, epochs=2, **kw):
    m = build_model(ModelConfig(), ds.input_shape, ds.num_classes, seed=seed)
    r = train(m, ds, TrainConfig(epochs=epochs, lr=0.01), seed=seed, run_dir=tmp_path, progress=False, **kw)
    return m, r


def test_same_seed_gives_identical_weights_and_different_seed_does_not(digits):
    ds = _small(digits)
    a, ra = _run(ds, 0)
    b, rb = _run(ds, 0)
    c, _ = _run(ds, 1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert ra.history == rb.history and ra.accuracy == rb.accuracy
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    # global torch state is restored after training
    assert not torch.are_deterministic_algorithms_enabled()


def test_checkpoint_in_run_dir_holds_the_final_weights(tmp_path, digits):
    m, r = _run(_small(digits), 0, tmp_path)
    ck = tmp_path / "checkpoints" / "last.pt"
    assert r.checkpoint == ck and ck.is_file()
    blob = torch.load(ck, weights_only=False)
    assert blob["epoch"] == 2 and len(blob["history"]) == 2
    sd = m.state_dict()
    assert all(torch.equal(sd[k], blob["model"][k]) for k in sd)


def test_qat_learns_digits(digits):
    """A few epochs of 2-bit QAT on the real digits training split beat chance by far on the test split."""
    m, r = _run(digits, 0, epochs=4)
    assert r.accuracy == pytest.approx(evaluate(m, digits.x_test, digits.y_test))
    assert r.accuracy >= 0.85
    assert r.history[-1]["loss"] < r.history[0]["loss"]


def test_distillation_hook_pulls_student_towards_teacher(digits):
    ds = _small(digits, 300)
    teacher, _ = _run(ds, 0, epochs=3)
    with torch.no_grad():
        t_pred = teacher(torch.from_numpy(ds.x_test)).argmax(1).numpy()
    # garbage labels: with pure distillation (alpha=1) they play no role and the student learns the teacher's
    # function; without a teacher the same labels teach nothing
    rng = np.random.default_rng(0)
    junk = Dataset(ds.name, ds.x_train, rng.permutation(ds.y_train), ds.x_test, ds.y_test, ds.num_classes)
    student, _ = _run(junk, 1, epochs=3, teacher=teacher, kd_alpha=1.0)
    control, _ = _run(junk, 1, epochs=3)
    with torch.no_grad():
        s_pred = student(torch.from_numpy(ds.x_test)).argmax(1).numpy()
        c_pred = control(torch.from_numpy(ds.x_test)).argmax(1).numpy()
    agree_student, agree_control = np.mean(s_pred == t_pred), np.mean(c_pred == t_pred)
    assert agree_student > 0.4 and agree_student > agree_control + 0.2, (agree_student, agree_control)


def _count_forwards(model):
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))
    return calls


def test_distillation_targets_are_computed_once_per_teacher_and_do_not_depend_on_the_memo(digits):
    """A search distils every fine-tune from one teacher: its outputs on the training data are computed once (one
    pass in fixed chunks), reused by the next fine-tune, recomputed when the teacher changes, equal to the
    teacher's own outputs, and a fine-tune gives the same weights with the memo cold or warm."""
    import hapfpga.train as T

    ds = _small(digits, 300)
    teacher, _ = _run(ds, 0, epochs=1)
    calls = _count_forwards(teacher)
    cfg = FinetuneConfig(epochs=2, lr=1e-3, distill=True, distill_weight=0.7)
    T._TEACHER_MEMO.clear()
    cold = finetune(build_model(ModelConfig(), ds.input_shape, ds.num_classes, seed=3), ds.x_train, ds.y_train,
                    cfg, teacher=teacher, seed=5)
    assert calls == [min(T.TEACHER_CHUNK, 300 - i) for i in range(0, 300, T.TEACHER_CHUNK)]
    warm = finetune(build_model(ModelConfig(), ds.input_shape, ds.num_classes, seed=3), ds.x_train, ds.y_train,
                    cfg, teacher=teacher, seed=5)
    assert len(calls) == 2, "the second fine-tune from the same teacher ran the teacher again"
    assert all(torch.equal(a, b) for a, b in zip(cold.state_dict().values(), warm.state_dict().values(), strict=True))
    (key, targets), = T._TEACHER_MEMO.items()
    np.testing.assert_allclose(targets.numpy(), predict(teacher, ds.x_train), rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        next(teacher.parameters()).add_(0.01)
    before = len(calls)
    finetune(copy.deepcopy(cold), ds.x_train, ds.y_train, cfg, teacher=teacher, seed=5)
    assert len(calls) == before + 2 and len(T._TEACHER_MEMO) == 2, "a changed teacher reused the old targets"


def _captured_run(model, ds, cfg, at_step):
    """The same fine-tune as ``finetune_best`` runs, replayed with plain ``finetune``; the weights after
    ``at_step`` optimiser steps (0: before any)."""
    m, seen, n = copy.deepcopy(model), {}, [0]
    if at_step == 0:
        return m

    def grab(mm):
        n[0] += 1
        if n[0] == at_step:
            seen["m"] = copy.deepcopy(mm)

    finetune(m, ds.x_train, ds.y_train, cfg, seed=0, after_step=grab)
    return seen["m"]


@pytest.mark.parametrize("lr", [3e-3, 0.3])
def test_finetune_best_returns_the_best_validation_checkpoint_weights(digits, lr):
    """From a briefly trained model: a sound lr improves it, a destructive one (0.3) wrecks it; either way the
    model that comes back is, bit for bit, the checked point (or the start) with the best validation accuracy."""
    ds = _small(digits, 300)
    val = (digits.x_train[1000:1300], digits.y_train[1000:1300])
    start, _ = _run(ds, 0, epochs=1)
    acc0 = evaluate(start, *val)
    cfg = FinetuneConfig(epochs=2, lr=lr, batch_size=32, schedule="cosine", val_checks=5)
    m, sel = finetune_best(copy.deepcopy(start), ds.x_train, ds.y_train, val, cfg, seed=0)
    accs = [acc0] + [a for _, a in sel.checks]
    assert len(sel.checks) == 5 and sel.start_accuracy == acc0
    assert sel.accuracy == max(accs) >= acc0  # never worse on validation than it started
    assert evaluate(m, *val) == sel.accuracy
    ref = _captured_run(start, ds, cfg, sel.step)
    sm, sr = m.state_dict(), ref.state_dict()
    assert all(torch.equal(sm[k], sr[k]) for k in sr)
    if lr == 0.3:
        assert min(a for _, a in sel.checks) < acc0 - 0.1  # the lr really is destructive: selection mattered
    else:
        assert sel.step > 0 and sel.accuracy > acc0


def test_finetune_best_ranks_equally_accurate_checkpoints_by_validation_loss(digits):
    """A saturated validation split (samples the starting model already gets all right): every checkpoint ties on
    accuracy, and "the earliest on a tie" would keep the starting weights however much training improves them.
    Selection then takes the checkpoint with the lowest cross-entropy, and the model that comes back is that one."""
    from hapfpga.train import accuracy_and_loss, better_on_validation

    ds = _small(digits, 300)
    start, _ = _run(ds, 0, epochs=3)
    pool_x, pool_y = digits.x_train[1000:1400], digits.y_train[1000:1400]
    logits = np.asarray(predict(start, pool_x))
    margin = logits[np.arange(len(pool_y)), pool_y] - np.where(np.eye(10, dtype=bool)[pool_y], -np.inf, logits).max(1)
    easy = np.argsort(-margin)[:100]  # the samples it gets right by the widest margin
    val = (pool_x[easy], pool_y[easy])
    acc0, loss0 = accuracy_and_loss(start, *val)
    assert acc0 == 1.0
    cfg = FinetuneConfig(epochs=2, lr=1e-3, batch_size=32, schedule="cosine", val_checks=5)
    m, sel = finetune_best(copy.deepcopy(start), ds.x_train, ds.y_train, val, cfg, seed=0)
    assert sel.accuracy == 1.0 and sel.step > 0, sel
    acc, loss = accuracy_and_loss(m, *val)
    assert acc == 1.0 and loss == pytest.approx(sel.loss) and loss < loss0
    # every other perfect checkpoint has a higher loss: replay them
    for step, a in sel.checks:
        if a == 1.0 and step != sel.step:
            other = _captured_run(start, ds, cfg, step)
            assert not better_on_validation(*accuracy_and_loss(other, *val), acc, loss)
    assert better_on_validation(0.5, 9.0, 0.4, 0.1) and not better_on_validation(0.5, 0.2, 0.5, 0.1)

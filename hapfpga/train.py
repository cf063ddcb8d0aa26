"""The one trainer (Brevitas QAT, fine-tuning after pruning, knowledge distillation) and the one evaluator.

:func:`fit` is the training loop; :func:`train` (QAT from a run config's ``train:`` section: cosine schedule,
per-epoch history, test accuracy) and :func:`finetune` (short fine-tune after pruning: constant or per-batch cosine LR,
fractional epochs, optional distillation, L1 and a per-step hook) are its two presets; :func:`finetune_best` adds
model selection on a validation split (the starting weights included, so it cannot make a model worse there). :func:`evaluate` / :func:`predict`
are the one accuracy evaluator, used by training, sensitivity, the searches and the pipeline.

Determinism: ``torch.manual_seed(seed)``, a seeded ``torch.Generator`` on the CPU for shuffling (so the batch
order is the same on every device), a fixed number of CPU threads and ``torch.use_deterministic_algorithms(True)``
while training (all restored afterwards): on the CPU the same seed, data and config give bit-identical weights
on the same machine and torch build. On CUDA the same seeds are set and cuDNN is put in deterministic mode
(``cudnn.deterministic = True``, ``benchmark = False``), but deterministic algorithms are only *requested*
(``warn_only=True``): some CUDA kernels (e.g. atomics-based backward passes, cuBLAS without
``CUBLAS_WORKSPACE_CONFIG=:4096:8``) have no deterministic variant, so CUDA runs can differ from each other
and from the CPU in the last bits of the weights (accuracies agree to noise, not bytes).

Device: ``device`` is ``auto`` (CUDA when available), ``cpu`` or ``cuda``. The model (and a teacher) move to it
for training and back to the CPU afterwards, so export and saving always see a CPU model. On CUDA the training
tensors are prepared once: copied to the GPU whole when they fit in :data:`GPU_DATA_BYTES`, else pinned in host
memory and gathered into a pinned staging buffer per batch that is copied with ``non_blocking=True``.

Optimiser: Adam or SGD (momentum 0.9); schedule ``cosine`` (Loshchilov & Hutter, "SGDR", ICLR 2017, without
restarts: ``CosineAnnealingLR`` stepped per epoch) or ``constant``.

Knowledge distillation: with a ``teacher``, the loss is
``(1 - α)·CE(student, y) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))`` (Hinton et al., "Distilling the
Knowledge in a Neural Network", 2015; the T² keeps gradient magnitudes comparable across temperatures). The
teacher's outputs on the training data are computed once per teacher and data (:func:`_teacher_outputs`) and
shared by every fine-tune that distils from it.

Checkpoints and resume: with ``checkpoint=PATH`` the loop writes PATH atomically after every epoch (model,
Brevitas runtime-statistics state, optimiser, scheduler, shuffling generator and global RNG states, epoch,
step, history) under a fingerprint of everything that determines the run (initial weights, data, spec, seed,
teacher, loss options). A re-run of the same training finds the checkpoint and continues after its epoch, so a
job killed with ``kill -9`` loses at most one epoch and, on the CPU, ends with the same weights bytes as an
uninterrupted run; a checkpoint with another fingerprint is ignored (and overwritten).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .data import Dataset
    from .runconfig import TrainConfig

__all__ = [
    "FitSpec",
    "full_state_dict",
    "atomic_torch_save",
    "FinetuneConfig",
    "TrainResult",
    "fit",
    "train",
    "finetune",
    "finetune_best",
    "Selection",
    "evaluate",
    "accuracy_and_loss",
    "better_on_validation",
    "predict",
    "deterministic",
    "resolve_device",
]

#: CPU threads used while training. One thread: the float summation order then does not depend on the machine's
#: core count, so a seed gives the same weights on any machine with the same torch build, and training does not
#: collapse on a shared, oversubscribed machine (measured: CNV on digits-32 with 2 threads under load ~13 took
#: ~11 min per epoch, with 1 thread ~80 s). Pass ``threads=`` to use more.
TRAIN_THREADS = 1

#: Training sets up to this size go to the GPU whole (no host->device copy per batch).
GPU_DATA_BYTES = 2 << 30


@dataclass(frozen=True)
class FitSpec:
    """One training run: ``epochs`` passes (may be fractional; ``max_steps`` caps the batches) of ``batch_size``."""

    epochs: float = 1.0
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = 0.0
    #: ``cosine``: annealed per epoch (QAT); ``cosine_step``: annealed per batch to 0 at the last batch (short,
    #: fractional-epoch fine-tunes); ``constant``
    schedule: Literal["cosine", "cosine_step", "constant"] = "constant"
    max_steps: int | None = None

    def total_steps(self, n: int) -> int:
        """Optimiser steps this spec takes on ``n`` samples (``epochs`` passes, capped by ``max_steps``)."""
        total = int(round(self.epochs * max(1, (n + self.batch_size - 1) // self.batch_size)))
        return min(total, self.max_steps) if self.max_steps is not None else total


@dataclass(frozen=True)
class FinetuneConfig:
    """Short QAT fine-tune after pruning: ``epochs`` over the data (or ``max_steps`` batches), Adam at ``lr``
    (``schedule``: ``constant`` or ``cosine``, annealed per batch). ``val_checks``: with a validation split given
    to :func:`finetune_best`, how many evenly spaced points of the run (the last batch included) are evaluated.
    ``patience`` (:func:`finetune_best` only; None: off, the whole run): a learning-curve early stop, in epochs
    (may be fractional): the validation split is also checked at every epoch's end, and the fine-tune stops at a
    check where the validation accuracy has not risen above its best so far for ``patience`` epochs (a lower
    cross-entropy alone does not count: on a saturated split it falls for as long as the run goes on)."""

    epochs: float = 1.0
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    distill: bool = False
    distill_weight: float = 0.5
    temperature: float = 4.0
    max_steps: int | None = None
    schedule: Literal["constant", "cosine"] = "constant"
    val_checks: int = 4
    patience: float | None = None

    def __post_init__(self) -> None:
        if self.patience is not None and not self.patience > 0:
            raise ConfigError(f"Fine-tune patience is {self.patience}; give a positive number of epochs, or none.")

    def spec(self) -> FitSpec:
        return FitSpec(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay,
                       max_steps=self.max_steps, schedule="cosine_step" if self.schedule == "cosine" else "constant")


@dataclass(frozen=True)
class TrainResult:
    """Test accuracy after the last epoch (fraction), per-epoch history and where the checkpoint is."""

    accuracy: float
    train_accuracy: float
    epochs: int
    seconds: float
    history: tuple[dict[str, float], ...] = field(default=())
    checkpoint: Path | None = None
    resumed_epoch: int = 0  # the epoch a checkpoint let this run start after (0: from scratch)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "train_accuracy": self.train_accuracy,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 3),
            "history": list(self.history),
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
        }


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; ``cuda`` without a GPU is a user error."""
    import torch

    name = name or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"Config key 'train.device' is '{name}'; use auto, cpu or cuda.")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but torch sees no CUDA GPU here; use 'auto' or 'cpu'.")
    return torch.device(name)


@contextlib.contextmanager
def deterministic(seed: int, threads: int = TRAIN_THREADS, device: Any = None) -> Iterator[None]:
    """Seed torch, fix the thread count and force deterministic kernels; restore the global state after.

    On a CUDA ``device`` cuDNN is made deterministic and deterministic algorithms are requested with
    ``warn_only=True`` (see the module docstring for what stays non-deterministic there).
    """
    import torch

    cuda = device is not None and torch.device(device).type == "cuda"
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.manual_seed(seed)  # seeds every CUDA device too
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=cuda)
    if cuda:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn


def _value(out: Any) -> Any:
    """A Brevitas QuantTensor's float value, or the tensor itself."""
    return getattr(out, "value", out)


@contextlib.contextmanager
def _on_device(model: torch.nn.Module, device: Any) -> Iterator[Any]:
    """Run ``model`` on ``device`` (default: where it is) in eval mode; put it back where and as it was."""
    import torch

    p = next(iter(model.parameters()), None)
    home = p.device if p is not None else torch.device("cpu")
    dev = torch.device(device) if device is not None else home
    was_training = model.training
    model.to(dev).eval()
    try:
        yield dev
    finally:
        model.to(home).train(was_training)


def predict(model: torch.nn.Module, x: Any, batch_size: int = 512, *, device: Any = None) -> np.ndarray:
    """Model outputs (float32 logits, numpy) for ``x`` in eval mode, batched, on ``device`` (default: the model's)."""
    import torch

    outs = []
    with _on_device(model, device) as dev, torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32))
            outs.append(_value(model(xb.to(dev))).detach().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def evaluate(model: torch.nn.Module, x: Any, y: Any, batch_size: int = 512, *, device: Any = None) -> float:
    """Top-1 accuracy (fraction of argmax == label) of ``model`` on ``x``, ``y``; NaN for an empty set."""
    if len(x) == 0:
        return float("nan")
    logits = predict(model, x, batch_size, device=device)
    return float(np.mean(logits.argmax(axis=1) == np.asarray(y)))


def accuracy_and_loss(
    model: torch.nn.Module, x: Any, y: Any, batch_size: int = 512, *, device: Any = None
) -> tuple[float, float]:
    """Top-1 accuracy (as :func:`evaluate`) and mean cross-entropy (nats, from the logits) of ``model`` on ``x``,
    ``y``; NaNs for an empty set."""
    if len(x) == 0:
        return float("nan"), float("nan")
    logits = predict(model, x, batch_size, device=device).astype(np.float64)
    y = np.asarray(y)
    z = logits - logits.max(axis=1, keepdims=True)
    nll = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    return float(np.mean(logits.argmax(axis=1) == y)), float(np.mean(nll))


class _Batches:
    """Training tensors prepared once; ``get(idx)`` gives one batch on the training device."""

    def __init__(self, x: Any, y: Any, device: torch.device):
        import torch

        self.device = device
        xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y)).long()
        self.n = len(xt)
        self.staging: tuple[Any, Any] | None = None
        self.resident = not (device.type == "cuda" and xt.numel() * 4 > GPU_DATA_BYTES)
        if self.resident:
            self.x, self.y = xt.to(device), yt.to(device)
        else:
            self.x, self.y = xt.pin_memory(), yt.pin_memory()

    def get(self, idx: Any) -> tuple[Any, Any]:
        import torch

        if self.resident:
            idx = idx.to(self.device)
            return self.x[idx], self.y[idx]
        if self.staging is None or len(self.staging[0]) < len(idx):
            self.staging = (torch.empty((len(idx), *self.x.shape[1:]), pin_memory=True),
                            torch.empty((len(idx),), dtype=torch.long, pin_memory=True))
        sx, sy = self.staging[0][: len(idx)], self.staging[1][: len(idx)]
        torch.index_select(self.x, 0, idx, out=sx)
        torch.index_select(self.y, 0, idx, out=sy)
        return sx.to(self.device, non_blocking=True), sy.to(self.device, non_blocking=True)


def full_state_dict(model: torch.nn.Module) -> dict[str, Any]:
    """``model.state_dict()`` with every Brevitas runtime-statistics scale in it, also one that has not seen a
    training step yet (``brevitas.config._FULL_STATE_DICT``): Brevitas leaves such a scale's ``value`` out, and
    ``load_state_dict`` then reports it missing, so a model saved before its first training step (``train.epochs:
    0``) could not be loaded back. :func:`runtime_state` beside it restores the statistics counters, so the
    loaded model still collects statistics as the saved one would have."""
    try:
        from brevitas import config
    except ImportError:  # a plain torch model
        return model.state_dict()
    before = config._FULL_STATE_DICT
    config._FULL_STATE_DICT = True
    try:
        return model.state_dict()
    finally:
        config._FULL_STATE_DICT = before


def runtime_state(model: torch.nn.Module) -> dict[str, Any]:
    """Brevitas state that ``state_dict`` leaves out: runtime-statistics counters and their raw buffers/params.

    ``ParameterFromRuntimeStatsScaling`` collects activation statistics for its first training steps in a buffer
    that ``state_dict`` drops (and reports the buffer as the value); restoring it exactly is what makes a resumed
    run bit-identical to an uninterrupted one.
    """
    out = {}
    for name, m in model.named_modules():
        if isinstance(getattr(m, "counter", None), int):
            out[name] = {
                "counter": int(m.counter),
                "buffers": {k: v.detach().clone() for k, v in m._buffers.items() if v is not None},
                "params": {k: v.detach().clone() for k, v in m._parameters.items() if v is not None},
            }
    return out


def load_runtime_state(model: torch.nn.Module, state: dict[str, Any]) -> None:
    import torch

    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, s in state.items():
            m = mods[name]
            m.counter = s["counter"]
            for k, v in s["buffers"].items():
                m._buffers[k].copy_(v)
            for k, v in s["params"].items():
                m._parameters[k].copy_(v)


def _fingerprint(model: Any, x: Any, y: Any, parts: dict[str, Any], teacher: Any) -> str:
    """Hash of everything that determines a training run (initial weights and runtime state, data, options)."""
    h = hashlib.sha256(repr(sorted(parts.items())).encode())
    for m in (model, teacher) if teacher is not None else (model,):
        for k, v in list(m.state_dict().items()) + sorted(
            (f"rt:{n}:{b}", t) for n, s in runtime_state(m).items() for b, t in {**s["buffers"], **s["params"]}.items()
        ):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y).astype(np.int64).tobytes())
    return h.hexdigest()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` through a temporary file renamed into place (a killed process leaves no half file)."""
    import torch

    from .runstate import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_states(gen: Any) -> dict[str, Any]:
    import torch

    return {
        "generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_states(gen: Any, s: dict[str, Any]) -> None:
    import torch

    gen.set_state(s["generator"])
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def _try_resume(ckpt: Path | None, fp: str, model: Any, opt: Any, sched: Any, gen: Any, dev: Any) -> dict | None:
    """Load a matching checkpoint into the live objects; None when there is none (or it is another run's)."""
    import torch

    if ckpt is None or not ckpt.is_file():
        return None
    try:
        blob = torch.load(ckpt, map_location=dev, weights_only=False)
    except Exception:  # a torn or foreign file: start from scratch (it will be overwritten)
        return None
    if not isinstance(blob, dict) or blob.get("fingerprint") != fp:
        return None
    model.load_state_dict(blob["model"])
    load_runtime_state(model, blob["runtime"])
    opt.load_state_dict(blob["optimizer"])
    if sched is not None:
        sched.load_state_dict(blob["scheduler"])
    _set_rng_states(gen, blob["rng"])
    return blob


def _make_optimiser(model: Any, spec: FitSpec, total: int) -> tuple[Any, Any]:
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if spec.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=spec.lr, momentum=0.9, weight_decay=spec.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    sched = None
    if spec.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(int(np.ceil(spec.epochs)), 1))
    elif spec.schedule == "cosine_step":  # stepped after every batch by fit's hook
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
    return opt, sched


@dataclass
class _Loss:
    """CE + optional distillation (Hinton et al. 2015) against ``teacher_out`` (the teacher's outputs for every
    training sample, :func:`_teacher_outputs`) + optional L1 on conv/linear weights + an optional ``penalty()``
    of the model's parameters (e.g. :class:`hapfpga.pruning.sparsify.GroupLasso`)."""

    teacher_out: Any = None
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    l1: float = 0.0
    weights: list[Any] = field(default_factory=list)
    penalty: Callable[[], Any] | None = None

    def __call__(self, out: Any, idx: Any, yb: Any) -> Any:
        import torch.nn.functional as F

        loss = F.cross_entropy(out, yb)
        if self.teacher_out is not None:
            t_out = self.teacher_out[idx.to(self.teacher_out.device)]
            t = self.kd_temperature
            kd = F.kl_div(F.log_softmax(out / t, dim=1), F.softmax(t_out / t, dim=1), reduction="batchmean")
            loss = (1.0 - self.kd_alpha) * loss + self.kd_alpha * t * t * kd
        if self.l1:
            loss = loss + self.l1 * sum(w.abs().sum() for w in self.weights)
        if self.penalty is not None:
            loss = loss + self.penalty()
        return loss


#: Samples per teacher forward in :func:`_teacher_outputs` (fixed, so the outputs do not depend on batch order).
TEACHER_CHUNK = 256
#: The last few teachers' outputs, by :func:`_fingerprint` of (teacher, data); a search's fine-tunes share one.
_TEACHER_MEMO: dict[str, Any] = {}
_TEACHER_MEMO_SIZE = 2


def _teacher_outputs(teacher: torch.nn.Module, x: Any, y: Any, data: _Batches) -> Any:
    """The teacher's eval-mode outputs for every training sample, on the training device.

    Distillation's targets do not change while the student trains (the teacher is frozen, in eval mode, and the
    data are not augmented), so they are computed once, in index order in chunks of :data:`TEACHER_CHUNK`
    samples, and kept for the next fine-tune from the same teacher on the same data (a search's steps, rescues and
    backtracking probes all distil from the unpruned model): one teacher pass per search instead of one teacher
    forward per batch of every epoch (on the CPU that forward was ~25 % of a distilled CNV-w2a2 epoch). Computed
    the same way whatever ran before, so a fine-tune's result does not depend on the memo being warm.
    """
    import torch

    key = f"{_fingerprint(teacher, x, y, {'chunk': TEACHER_CHUNK}, None)}:{data.device}"
    if key not in _TEACHER_MEMO:
        teacher.to(data.device).eval()
        with torch.no_grad():
            outs = [_value(teacher(data.get(torch.arange(i, min(i + TEACHER_CHUNK, data.n)))[0])).detach()
                    for i in range(0, data.n, TEACHER_CHUNK)]
        while len(_TEACHER_MEMO) >= _TEACHER_MEMO_SIZE:
            _TEACHER_MEMO.pop(next(iter(_TEACHER_MEMO)))
        _TEACHER_MEMO[key] = torch.cat(outs) if outs else torch.zeros((0,))
    return _TEACHER_MEMO[key]


def fit(
    model: torch.nn.Module,
    x: Any,
    y: Any,
    spec: FitSpec,
    *,
    seed: int = 0,
    teacher: torch.nn.Module | None = None,
    kd_alpha: float = 0.5,
    kd_temperature: float = 4.0,
    l1_sparsity: float = 0.0,
    penalty: Callable[[], Any] | None = None,
    after_step: Callable[[torch.nn.Module], None] | None = None,
    checkpoint: str | Path | None = None,
    device: Any = "cpu",
    threads: int = TRAIN_THREADS,
    progress: Any = None,
    stop: Callable[[], bool] | None = None,
) -> tuple[list[dict[str, float]], int]:
    """Train ``model`` in place on ``(x, y)``; returns (per-epoch history, epoch a checkpoint resumed after).

    ``penalty()`` (optional) is added to every batch's loss: a regulariser of the model's own parameters (its
    ``key``, when it has one, names it in the checkpoint fingerprint). Batches of one sample are skipped
    (BatchNorm needs two in training mode). ``progress(done, total, info)``
    is called after each batch and epoch. ``stop()`` (optional) is asked after each optimiser step (after
    ``after_step``); True ends the run there (an early stop: the schedule is not compressed). The model ends on
    the CPU in eval mode.
    """
    import torch

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    parts = {"spec": asdict(spec), "seed": seed, "kd": (kd_alpha, kd_temperature), "l1": l1_sparsity,
             "penalty": getattr(penalty, "key", None if penalty is None else repr(penalty))}
    fp = _fingerprint(model, x, y, parts, teacher) if ckpt is not None else ""
    data = _Batches(x, y, dev)
    n, bs = data.n, spec.batch_size
    total = spec.total_steps(n)
    history: list[dict[str, float]] = []
    start_epoch = step = 0
    with deterministic(seed, threads, dev):
        model.to(dev)
        teacher_out = _teacher_outputs(teacher, x, y, data) if teacher is not None else None
        gen = torch.Generator().manual_seed(seed)
        opt, sched = _make_optimiser(model, spec, total)
        hook = after_step
        if spec.schedule == "cosine_step":
            def hook(m: Any) -> None:
                sched.step()
                if after_step is not None:
                    after_step(m)
        loss_fn = _Loss(teacher_out, kd_alpha, kd_temperature, l1_sparsity, [
            m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))],
            penalty)
        blob = _try_resume(ckpt, fp, model, opt, sched, gen, dev)
        if blob is not None:
            start_epoch, step, history = int(blob["epoch"]), int(blob["step"]), list(blob["history"])
        epoch = start_epoch
        while step < total and not (stop is not None and stop()):
            step = _epoch(model, data, gen, opt, loss_fn, hook, bs, step, total, history, epoch, progress, stop)
            if sched is not None and spec.schedule == "cosine":
                sched.step()
            epoch += 1
            if ckpt is not None:
                atomic_torch_save({
                    "fingerprint": fp, "epoch": epoch, "step": step, "history": history, "seed": seed,
                    "model": model.state_dict(), "runtime": runtime_state(model), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None, "rng": _rng_states(gen),
                }, ckpt)
        model.to("cpu").eval()
        if teacher is not None:
            teacher.to("cpu")
    return history, start_epoch


def _epoch(model: Any, data: _Batches, gen: Any, opt: Any, loss_fn: _Loss, after_step: Any, bs: int, step: int,
           total: int, history: list[dict[str, float]], epoch: int, progress: Any, stop: Any = None) -> int:
    """One pass over the data (or up to ``total`` steps); appends the epoch's record to ``history``."""
    import torch

    model.train()
    perm = torch.randperm(data.n, generator=gen)
    loss_sum = torch.zeros((), dtype=torch.float64, device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    seen = 0
    for b in range(0, data.n, bs):
        if step >= total:
            break
        idx = perm[b : b + bs]
        if len(idx) < 2:  # BatchNorm needs two samples in training mode
            continue
        xb, yb = data.get(idx)
        out = _value(model(xb))
        loss = loss_fn(out, idx, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(model)
        step += 1
        seen += len(idx)
        loss_sum += loss.detach() * len(idx)
        correct += (out.detach().argmax(1) == yb).sum()
        if progress is not None:
            progress(step, total, None)
        if stop is not None and stop():
            break
    rec = {"epoch": epoch + 1, "loss": float(loss_sum) / max(1, seen), "train_acc": int(correct) / max(1, seen)}
    history.append(rec)
    if progress is not None:
        progress(step, total, rec)
    return step


def finetune(
    model: torch.nn.Module,
    x: Any,
    y: Any,
    cfg: FinetuneConfig = FinetuneConfig(),
    *,
    teacher: torch.nn.Module | None = None,
    seed: int = 0,
    l1_sparsity: float = 0.0,
    penalty: Callable[[], Any] | None = None,
    after_step: Callable[[torch.nn.Module], None] | None = None,
    device: Any = "cpu",
    checkpoint: str | Path | None = None,
    stop: Callable[[], bool] | None = None,
) -> torch.nn.Module:
    """Fine-tune ``model`` in place on ``(x, y)`` (deterministic for ``seed`` on the CPU); returns it in eval mode.

    ``teacher`` distils when ``cfg.distill``; ``l1_sparsity`` adds ``λ·Σ|w|`` over conv/linear weights (L1
    sparsity regularisation); ``penalty()`` is added to the loss (:func:`fit`); ``after_step`` runs after each optimiser step (e.g. re-apply masks); ``checkpoint``
    makes it resumable (see the module docstring); ``stop()`` True after a step ends it early (:func:`fit`).
    """
    fit(model, x, y, cfg.spec(), seed=seed, teacher=teacher if cfg.distill else None, kd_alpha=cfg.distill_weight,
        kd_temperature=cfg.temperature, l1_sparsity=l1_sparsity, penalty=penalty, after_step=after_step,
        checkpoint=checkpoint,
        device=device, stop=stop)
    return model


@dataclass(frozen=True)
class Selection:
    """What :func:`finetune_best` kept: the optimiser step whose weights won (0: the starting weights), its
    validation accuracy and cross-entropy, the starting weights' accuracy and every checked point's
    ``(step, accuracy)``; ``steps_done``/``steps_total``: the optimiser steps taken and planned (fewer taken:
    stopped early by ``FinetuneConfig.patience``)."""

    step: int
    accuracy: float
    start_accuracy: float
    checks: tuple[tuple[int, float], ...]
    loss: float = float("nan")
    steps_done: int = 0
    steps_total: int = 0

    @property
    def stopped_early(self) -> bool:
        return self.steps_done < self.steps_total


def better_on_validation(acc: float, loss: float, best_acc: float, best_loss: float) -> bool:
    """Model selection's order: higher validation accuracy wins; at equal accuracy, lower cross-entropy. A small
    validation split saturates (e.g. 3 errors in 202 samples for every good checkpoint), and "the earliest on a
    tie" would then keep the starting weights of every later fine-tune however much they improve; the loss still
    ranks such checkpoints."""
    if acc > best_acc + 1e-12:
        return True
    return acc >= best_acc - 1e-12 and loss < best_loss - 1e-12


def finetune_best(
    model: torch.nn.Module,
    x: Any,
    y: Any,
    val: tuple[Any, Any],
    cfg: FinetuneConfig = FinetuneConfig(),
    *,
    teacher: torch.nn.Module | None = None,
    seed: int = 0,
    device: Any = "cpu",
) -> tuple[torch.nn.Module, Selection]:
    """:func:`finetune` with model selection on a validation split: the starting weights and ``cfg.val_checks``
    evenly spaced points of the run (the last batch included) are evaluated on ``val = (x_val, y_val)``, and
    ``model`` ends with the weights (and Brevitas runtime state) of the best one by
    :func:`better_on_validation` (most accurate; at equal accuracy the lowest cross-entropy; the earliest on a
    full tie). So a fine-tune never leaves a model less accurate on ``val`` than it started. Never give it the
    test split.
    """
    import copy

    import torch

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    x_val, y_val = val
    total = cfg.spec().total_steps(len(x))
    checks, patience = _check_points(cfg, len(x), total)
    acc0, loss0 = accuracy_and_loss(model, x_val, y_val, device=dev)
    best: dict[str, Any] = {"step": 0, "acc": acc0, "loss": loss0, "model": copy.deepcopy(model).cpu()}
    seen: list[tuple[int, float]] = []
    done, rose = [0], [0, acc0]  # optimiser steps taken; (the step of the last rise in accuracy, the best accuracy)

    def check(m: torch.nn.Module) -> None:
        done[0] += 1
        if done[0] not in checks:
            return
        acc, loss = accuracy_and_loss(m, x_val, y_val, device=dev)
        seen.append((done[0], acc))
        if acc > rose[1] + 1e-12:
            rose[:] = [done[0], acc]
        if better_on_validation(acc, loss, best["acc"], best["loss"]):
            best.update(step=done[0], acc=acc, loss=loss, model=copy.deepcopy(m).cpu())

    def stop() -> bool:  # at a check point only: the learning curve has been flat for ``patience`` epochs
        return done[0] in checks and done[0] - rose[0] >= patience

    if total > 0:
        finetune(model, x, y, cfg, teacher=teacher, seed=seed, after_step=check, device=dev,
                 stop=stop if cfg.patience is not None else None)
    if best["step"] != done[0]:  # the last batch did not win: go back to the winner
        model.load_state_dict(best["model"].state_dict())
        load_runtime_state(model, runtime_state(best["model"]))
    return model.eval(), Selection(best["step"], best["acc"], acc0, tuple(seen), best["loss"], done[0], total)


def _check_points(cfg: FinetuneConfig, n: int, total: int) -> tuple[set[int], int]:
    """:func:`finetune_best`'s validation points (``cfg.val_checks`` evenly spaced, the last step included; with
    ``cfg.patience`` also every epoch's last step) and the patience in optimiser steps (``total + 1``: off)."""
    checks = {max(1, round(total * (i + 1) / max(1, cfg.val_checks))) for i in range(cfg.val_checks)}
    if cfg.patience is None:
        return checks, total + 1
    per_epoch = max(1, (n + cfg.batch_size - 1) // cfg.batch_size)
    checks |= set(range(per_epoch, total + 1, per_epoch))
    return checks, max(1, int(np.ceil(cfg.patience * per_epoch)))


def train(
    model: torch.nn.Module,
    dataset: Dataset,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    run_dir: str | Path | None = None,
    progress: bool = True,
    teacher: torch.nn.Module | None = None,
    kd_alpha: float = 0.5,
    kd_temperature: float = 4.0,
    console: Any = None,
    threads: int = TRAIN_THREADS,
) -> TrainResult:
    """QAT: train ``model`` in place on ``dataset`` with ``cfg`` (epochs, batch size, lr, optimiser, weight decay,
    device) on a cosine schedule; resumable from ``run_dir/checkpoints/last.pt``.

    Returns the test accuracy after the last epoch (no model selection on the test split). ``teacher`` turns on
    knowledge distillation (see the module docstring). ``progress`` shows a rich progress bar on stderr.
    """
    t0 = time.perf_counter()
    ckpt = Path(run_dir) / "checkpoints" / "last.pt" if run_dir is not None else None
    spec = FitSpec(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer,
                   weight_decay=cfg.weight_decay, schedule="cosine")
    dev = resolve_device(getattr(cfg, "device", "cpu"))
    bar = _progress(console) if progress else contextlib.nullcontext(None)
    with bar as pb:
        report = None
        if pb is not None:
            task = pb.add_task("QAT", total=max(1, cfg.epochs * ((len(dataset.x_train) + cfg.batch_size - 1)
                                                                 // cfg.batch_size)), info="")

            def report(done: int, total: int, rec: dict | None) -> None:
                pb.update(task, completed=done, total=total)
                if rec is not None:
                    pb.update(task, info=f"epoch {rec['epoch']}/{cfg.epochs} loss {rec['loss']:.3f} "
                                         f"acc {rec['train_acc']:.3f}")

        history, resumed = fit(model, dataset.x_train, dataset.y_train, spec, seed=seed, teacher=teacher,
                               kd_alpha=kd_alpha, kd_temperature=kd_temperature, checkpoint=ckpt, device=dev,
                               threads=threads, progress=report)
    acc = evaluate(model, dataset.x_test, dataset.y_test, device=dev)
    train_acc = history[-1]["train_acc"] if history else evaluate(model, dataset.x_train, dataset.y_train, device=dev)
    return TrainResult(
        accuracy=acc,
        train_accuracy=float(train_acc),
        epochs=cfg.epochs,
        seconds=time.perf_counter() - t0,
        history=tuple(history),
        checkpoint=ckpt if ckpt is not None and ckpt.exists() else None,
        resumed_epoch=resumed,
    )


def _progress(console: Any = None):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console or Console(stderr=True),
        transient=False,
    )

"""Quantisation-aware training (Brevitas) on CPU: seeded, deterministic, with a rich progress bar.

Determinism: ``torch.manual_seed(seed)``, a seeded ``torch.Generator`` for shuffling, a fixed number of CPU
threads and ``torch.use_deterministic_algorithms(True)`` while training (both restored afterwards), so the same
seed, data and config give bit-identical weights on the same machine and torch build.

Optimiser: Adam or SGD (momentum 0.9) with a cosine learning-rate schedule over the epochs
(Loshchilov & Hutter, "SGDR", ICLR 2017, without restarts: ``torch.optim.lr_scheduler.CosineAnnealingLR``).

Knowledge distillation (for fine-tuning after pruning): with a ``teacher``, the loss is
``(1 - α)·CE(student, y) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))`` (Hinton et al., "Distilling the
Knowledge in a Neural Network", 2015; the T² keeps gradient magnitudes comparable across temperatures).

Checkpoints: ``run_dir/checkpoints/last.pt`` after every epoch (model and optimiser state, epoch, history),
written atomically.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .data import Dataset
    from .runconfig import TrainConfig

__all__ = ["TrainResult", "train", "evaluate", "predict", "deterministic"]

#: CPU threads used while training. One thread: the float summation order then does not depend on the machine's
#: core count, so a seed gives the same weights on any machine with the same torch build, and training does not
#: collapse on a shared, oversubscribed machine (measured: CNV on digits-32 with 2 threads under load ~13 took
#: ~11 min per epoch, with 1 thread ~80 s). Pass ``threads=`` to :func:`train` to use more.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class TrainResult:
    """Test accuracy after the last epoch (fraction), per-epoch history and where the checkpoint is."""

    accuracy: float
    train_accuracy: float
    epochs: int
    seconds: float
    history: tuple[dict[str, float], ...] = field(default=())
    checkpoint: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "train_accuracy": self.train_accuracy,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 3),
            "history": list(self.history),
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
        }


@contextlib.contextmanager
def deterministic(seed: int, threads: int = TRAIN_THREADS) -> Iterator[None]:
    """Seed torch/numpy, fix the thread count and force deterministic kernels; restore the global state after."""
    import torch

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def predict(model: torch.nn.Module, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Model outputs (float32 logits) for ``x`` in eval mode, batched."""
    import torch

    was_training = model.training
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out = model(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size], dtype=np.float32)))
            outs.append(_value(out).detach().cpu().numpy())
    model.train(was_training)
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _value(out: Any) -> Any:
    """A Brevitas QuantTensor's float value, or the tensor itself."""
    return getattr(out, "value", out)


def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 512) -> float:
    """Accuracy (fraction of argmax == label) of ``model`` on ``x``, ``y``."""
    if len(x) == 0:
        return float("nan")
    logits = predict(model, x, batch_size)
    return float(np.mean(logits.argmax(axis=1) == np.asarray(y)))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    from .runstate import atomic_path

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
    """Train ``model`` in place on ``dataset`` with ``cfg`` (epochs, batch size, lr, optimiser, weight decay).

    Returns the test accuracy after the last epoch (no model selection on the test split). ``teacher`` turns on
    knowledge distillation (see the module docstring). ``progress`` shows a rich progress bar on stderr.
    """
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    ckpt = Path(run_dir) / "checkpoints" / "last.pt" if run_dir is not None else None
    history: list[dict[str, float]] = []
    x_tr = torch.from_numpy(np.ascontiguousarray(dataset.x_train, dtype=np.float32))
    y_tr = torch.from_numpy(np.asarray(dataset.y_train, dtype=np.int64))
    n = len(x_tr)
    steps = (n + cfg.batch_size - 1) // cfg.batch_size

    with deterministic(seed, threads):
        gen = torch.Generator().manual_seed(seed)
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay
            )
        else:
            opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
        if teacher is not None:
            teacher.eval()

        bar = _progress(console) if progress else contextlib.nullcontext(None)
        with bar as pb:
            task = pb.add_task("QAT", total=cfg.epochs * steps, info="") if pb is not None else None
            for epoch in range(cfg.epochs):
                model.train()
                perm = torch.randperm(n, generator=gen)
                loss_sum, correct = 0.0, 0
                for b in range(steps):
                    idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    xb, yb = x_tr[idx], y_tr[idx]
                    out = _value(model(xb))
                    loss = F.cross_entropy(out, yb)
                    if teacher is not None:
                        with torch.no_grad():
                            t_out = _value(teacher(xb))
                        t = kd_temperature
                        kd = F.kl_div(
                            F.log_softmax(out / t, dim=1), F.softmax(t_out / t, dim=1), reduction="batchmean"
                        )
                        loss = (1.0 - kd_alpha) * loss + kd_alpha * t * t * kd
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    loss_sum += float(loss.detach()) * len(idx)
                    correct += int((out.detach().argmax(1) == yb).sum())
                    if pb is not None:
                        pb.advance(task)
                sched.step()
                rec = {"epoch": epoch + 1, "loss": loss_sum / n, "train_acc": correct / n}
                history.append(rec)
                if pb is not None:
                    pb.update(
                        task,
                        info=f"epoch {epoch + 1}/{cfg.epochs} loss {rec['loss']:.3f} acc {rec['train_acc']:.3f}",
                    )
                if ckpt is not None:
                    _atomic_torch_save(
                        {
                            "epoch": epoch + 1,
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "history": history,
                            "seed": seed,
                        },
                        ckpt,
                    )
        model.eval()
        acc = evaluate(model, dataset.x_test, dataset.y_test)
        train_acc = history[-1]["train_acc"] if history else evaluate(model, dataset.x_train, dataset.y_train)
    return TrainResult(
        accuracy=acc,
        train_accuracy=float(train_acc),
        epochs=cfg.epochs,
        seconds=time.perf_counter() - t0,
        history=tuple(history),
        checkpoint=ckpt if ckpt is not None and ckpt.exists() else None,
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

"""Fine-tuning after pruning: quantisation-aware training (the Brevitas model trains as is), optional knowledge
distillation from the unpruned model, and iterative pruning on a polynomial-decay schedule.

- Distillation loss: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015:
  ``(1−β)·CE(s, y) + β·T²·KL(softmax(t/T) ‖ softmax(s/T))``.
- Iterative schedule: Zhu & Gupta, "To prune, or not to prune", 2017, eq. (1) (see ``plan.polynomial_schedule``),
  applied to the fraction of channels removed per group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FinetuneConfig", "finetune", "iterative_counts"]


@dataclass(frozen=True)
class FinetuneConfig:
    """Short QAT fine-tune: ``epochs`` over the data (or ``max_steps`` batches), Adam at ``lr``."""

    epochs: float = 1.0
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    distill: bool = False
    distill_weight: float = 0.5
    temperature: float = 4.0
    max_steps: int | None = None


def _logits(out: Any) -> Any:
    return getattr(out, "value", out)


def finetune(
    model: torch.nn.Module,
    x: Any,
    y: Any,
    cfg: FinetuneConfig = FinetuneConfig(),
    *,
    teacher: torch.nn.Module | None = None,
    seed: int = 0,
    l1_sparsity: float = 0.0,
    after_step: Callable[[torch.nn.Module], None] | None = None,
) -> torch.nn.Module:
    """Train ``model`` in place on ``(x, y)`` (deterministic for ``seed``) and return it in eval mode.

    ``teacher`` enables distillation when ``cfg.distill``; ``l1_sparsity`` adds ``λ·Σ|w|`` over conv/linear
    weights (L1 sparsity regularisation); ``after_step`` runs after each optimiser step (e.g. re-apply masks).
    """
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y).long()
    n = len(xt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, (n + cfg.batch_size - 1) // cfg.batch_size)
    total = int(round(cfg.epochs * steps_per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    weights = [m.weight for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))]
    if teacher is not None:
        teacher.eval()
    model.train()
    step = 0
    while step < total:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            if step >= total:
                break
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples in training mode
                continue
            xb, yb = xt[idx], yt[idx]
            out = _logits(model(xb))
            loss = F.cross_entropy(out, yb)
            if teacher is not None and cfg.distill:
                with torch.no_grad():
                    t = _logits(teacher(xb))
                temp = cfg.temperature
                kd = F.kl_div(F.log_softmax(out / temp, 1), F.softmax(t / temp, 1), reduction="batchmean")
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * temp * temp * kd
            if l1_sparsity:
                loss = loss + l1_sparsity * sum(w.abs().sum() for w in weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step(model)
            step += 1
    model.eval()
    return model


def iterative_counts(
    start: Mapping[str, int], final: Mapping[str, int], n_iter: int, *, power: int = 3
) -> list[dict[str, int]]:
    """Channel counts per iteration, removing channels on Zhu & Gupta's polynomial schedule (last = ``final``)."""
    from .plan import polynomial_schedule

    out = []
    for t in range(1, n_iter + 1):
        frac = polynomial_schedule(t, n_iter, 1.0, power=power)  # fraction of the total removal done
        out.append({g: int(round(start[g] - (start[g] - final.get(g, start[g])) * frac)) for g in start})
    out[-1] = {g: int(final.get(g, start[g])) for g in start}
    return out

"""Channel importance criteria as pluggable callables (Torch-Pruning's ``Importance`` pattern).

Each criterion is called as ``criterion(model, graph, group) -> 1-D tensor`` with one score per output channel of
``group`` (a :class:`hapfpga.pruning.apply.ChannelGroup`); higher means "keep". For coupled groups (residual
adds) the per-producer scores are normalised by their mean and summed, so that no producer dominates by scale.

Sources:
- L1 / L2 filter norm: Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017 (L1 of each filter).
- BatchNorm scale ``|γ|``: Liu et al., "Learning Efficient Convolutional Networks through Network Slimming",
  ICCV 2017.
- Taylor: Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019 — first-order Taylor
  expansion of the loss change when a channel is removed, ``(Σ_w g·w)²`` per channel, accumulated over batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .apply import ChannelGraph, ChannelGroup

__all__ = [
    "L1Importance", "L2Importance", "BNScaleImportance", "TaylorImportance", "make_importance", "IMPORTANCES",
    "following_bn",
]


def _combine(scores: list[Any]) -> Any:
    total = None
    for s in scores:
        s = s.detach().double()
        m = s.mean()
        s = s / m if float(m) > 0 else s
        total = s if total is None else total + s
    return total


@dataclass(frozen=True)
class L1Importance:
    """Sum of absolute weights of each output filter/neuron (Li et al. 2017)."""

    p: int = 1

    def __call__(self, model: torch.nn.Module, graph: ChannelGraph, group: ChannelGroup) -> torch.Tensor:
        mods = dict(model.named_modules())
        return _combine(
            [mods[n].weight.detach().flatten(1).abs().pow(self.p).sum(1).pow(1 / self.p) for n in group.producers]
        )


@dataclass(frozen=True)
class L2Importance(L1Importance):
    """Euclidean norm of each output filter/neuron."""

    p: int = 2


def following_bn(model: torch.nn.Module, graph: ChannelGraph, producer: str, channels: int) -> Any:
    """The BatchNorm that normalises ``producer``'s ``channels`` output channels (the first BN of that width after
    it in execution order, before the next conv/linear), or None: the channel scale network slimming reads and
    trains (Liu et al. 2017)."""
    import torch.nn as nn

    mods = dict(model.named_modules())
    for name in graph.order[graph.order.index(producer) + 1 :]:
        m = mods[name]
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.num_features == channels:
            return m if m.weight is not None else None
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            return None
    return None


@dataclass(frozen=True)
class BNScaleImportance:
    """``|γ|`` of the BatchNorm that follows each producer (Liu et al. 2017); falls back to L1 without BN."""

    def __call__(self, model: torch.nn.Module, graph: ChannelGraph, group: ChannelGroup) -> torch.Tensor:
        mods = dict(model.named_modules())
        scores = []
        for prod in group.producers:
            bn = following_bn(model, graph, prod, group.channels)
            if bn is not None:
                scores.append(bn.weight.detach().abs())
            else:
                scores.append(mods[prod].weight.detach().flatten(1).abs().sum(1))
        return _combine(scores)


@dataclass
class TaylorImportance:
    """First-order Taylor importance ``(Σ_w ∂L/∂w · w)²`` per channel (Molchanov et al. 2019).

    Gradients come from ``batches`` of ``(x, y)`` with cross-entropy loss; they are computed once per model
    object and cached (the cache is keyed by ``id(model)``, so pass the model the scores are for).
    """

    x: Any
    y: Any
    batch_size: int = 128
    _cache: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    def _grads(self, model: torch.nn.Module) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        key = id(model)
        if key in self._cache:
            return self._cache[key]
        was = model.training
        model.eval()
        model.zero_grad(set_to_none=True)
        x = torch.as_tensor(self.x)
        y = torch.as_tensor(self.y).long()
        for i in range(0, len(x), self.batch_size):
            out = model(x[i : i + self.batch_size])
            out = getattr(out, "value", out)
            F.cross_entropy(out, y[i : i + self.batch_size], reduction="sum").backward()
        grads = {
            n: (m.weight.grad.detach().clone() if m.weight.grad is not None else torch.zeros_like(m.weight))
            for n, m in model.named_modules()
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))
        }
        model.zero_grad(set_to_none=True)
        model.train(was)
        self._cache = {key: grads}
        return grads

    def __call__(self, model: torch.nn.Module, graph: ChannelGraph, group: ChannelGroup) -> torch.Tensor:
        grads = self._grads(model)
        mods = dict(model.named_modules())
        return _combine(
            [(grads[n] * mods[n].weight.detach()).flatten(1).sum(1).pow(2) for n in group.producers]
        )


IMPORTANCES = ("l1", "l2", "bn_scale", "taylor")


def make_importance(name: str, *, x: Any = None, y: Any = None) -> Any:
    """Criterion by config name (``l1``, ``l2``, ``bn_scale``, ``taylor`` — the last needs data ``x``, ``y``)."""
    if name == "l1":
        return L1Importance()
    if name == "l2":
        return L2Importance()
    if name == "bn_scale":
        return BNScaleImportance()
    if name == "taylor":
        if x is None or y is None:
            raise ConfigError("The 'taylor' importance needs calibration data; pass x and y (training samples).")
        return TaylorImportance(x, y)
    raise ConfigError(f"Unknown importance '{name}'; choose one of {', '.join(IMPORTANCES)}.")

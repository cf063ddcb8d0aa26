"""Sparse training before structured pruning: a group lasso on each prunable channel's scale.

Network slimming (Liu et al., "Learning Efficient Convolutional Networks through Network Slimming", ICCV 2017)
trains with an L1 penalty on the BatchNorm scales ``γ`` so that the channels a model can do without end with a
small ``γ`` and are the ones ``importance: bn_scale`` removes; Torch-Pruning's ``GroupNormPruner`` (Fang et al.,
"DepGraph: Towards Any Structural Pruning", CVPR 2023) applies the same idea to coupled groups as a group lasso.
Here a channel ``c`` of a channel group (:class:`hapfpga.pruning.apply.ChannelGroup`; several producers where a
residual add couples them) has one scale per producer: the ``γ`` of the BatchNorm that follows it
(:func:`hapfpga.pruning.importance.following_bn`), or, for a producer without one, the L2 norm of its output
filter ``c``. The penalty is ``strength · Σ_groups Σ_c sqrt(Σ_producers scale²)``: a whole coupled channel is
driven to zero together, as it is removed together.

Without BatchNorm a filter's norm is its scale; behind a BatchNorm it is not (the BN undoes it), which is why the
penalty reads ``γ`` there, and why the stage pairs it with ``importance: bn_scale``, which reads the same scales.

The pruning stage (``pruning.sparsify_epochs``, :func:`hapfpga.pruning.stage.run_pruning_stage`) fine-tunes the
trained model with this penalty before its search starts from it; the unpruned model stays the teacher and the
accuracy the rule measures against.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .apply import ChannelGraph

__all__ = ["GroupLasso", "group_lasso"]


@dataclass(frozen=True)
class _Scale:
    """One producer's per-channel scale: ``module.weight`` itself (a BatchNorm's ``γ``) or the L2 norms of its
    output filters (``filters``)."""

    name: str
    module: Any
    filters: bool

    def values(self) -> Any:
        w = self.module.weight
        return w.flatten(1).pow(2).sum(1) if self.filters else w.pow(2)  # squared, summed over producers below


@dataclass(frozen=True)
class GroupLasso:
    """``strength · Σ_groups Σ_c sqrt(Σ_producers scale_c²)`` over ``groups`` (each a tuple of producer scales);
    call it for the penalty (a scalar tensor with a gradient). ``key`` names it (strength, scales) for
    :func:`hapfpga.train.fit`'s checkpoint fingerprint."""

    strength: float
    groups: tuple[tuple[_Scale, ...], ...]

    @property
    def key(self) -> str:
        return f"group_lasso({self.strength!r}; " + "; ".join(
            ",".join(f"{s.name}{'/filters' if s.filters else ''}" for s in g) for g in self.groups) + ")"

    def norms(self) -> list[Any]:
        """Per group, each channel's scale ``sqrt(Σ_producers scale²)`` (detached)."""
        return [self._norm(g).detach() for g in self.groups]

    @staticmethod
    def _norm(group: Sequence[_Scale]) -> Any:
        total = group[0].values()
        for s in group[1:]:
            total = total + s.values()
        return (total + 1e-12).sqrt()  # the epsilon keeps the gradient finite at an exact zero

    def __call__(self) -> Any:
        return self.strength * sum(self._norm(g).sum() for g in self.groups)


def group_lasso(model: torch.nn.Module, graph: ChannelGraph, groups: Iterable[str], strength: float) -> GroupLasso:
    """The penalty over ``groups`` (channel-group names of ``graph``, built on ``model``) at ``strength``.

    Raises ``ConfigError`` for a negative strength or an unknown group name."""
    from .importance import following_bn

    if not strength >= 0:
        raise ConfigError(f"The sparse-training strength is {strength}; give a number ≥ 0.")
    mods = dict(model.named_modules())
    names = {m: n for n, m in mods.items()}
    out = []
    for g in groups:
        if g not in graph.groups:
            raise ConfigError(f"'{g}' is not a channel group of this model; use one of {sorted(graph.groups)}.")
        grp = graph.groups[g]
        scales = []
        for prod in grp.producers:
            bn = following_bn(model, graph, prod, grp.channels)
            scales.append(_Scale(names[bn], bn, False) if bn is not None else _Scale(prod, mods[prod], True))
        out.append(tuple(scales))
    return GroupLasso(float(strength), tuple(out))

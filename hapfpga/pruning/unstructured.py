"""Unstructured (weight) pruning, reported honestly.

Magnitude pruning with masks (Han et al., "Learning both Weights and Connections for Efficient Neural Networks",
NeurIPS 2015), the polynomial sparsity schedule of Zhu & Gupta (2017) and L1 sparsity regularisation (the ``λ·Σ|w|``
term of ``finetune``). **On FINN's MVAU this buys no throughput**: the MVAU is a dense matrix-vector unit whose
cycles are ``(MH/PE)·(MW/SIMD)·numInputVectors`` whatever the weight values, and its weight memory stores every
entry (zeros included). What it does change is the number of non-zero weights and the size a *compressed* weight
store would need; :func:`sparsity_report` states both next to the dense size FINN actually uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["magnitude_masks", "apply_masks", "sparsity_report", "prune_unstructured", "FINN_NOTE"]

FINN_NOTE = (
    "FINN's MVAU is dense: zero weights save no cycles and no weight memory (it stores every entry); "
    "only a compressed weight store would shrink."
)


def _layers(model: torch.nn.Module) -> dict[str, Any]:
    import torch.nn as nn

    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}


def magnitude_masks(model: torch.nn.Module, sparsity: float, *, per_layer: bool = True) -> dict[str, Any]:
    """Masks zeroing the ``sparsity`` fraction of smallest-magnitude weights (per layer or globally)."""
    import torch

    if not 0.0 <= sparsity < 1.0:
        from ..errors import ConfigError

        raise ConfigError(f"pruning.sparsity is {sparsity}; give a fraction in [0, 1).")
    layers = _layers(model)
    masks = {}
    if per_layer:
        for n, m in layers.items():
            w = m.weight.detach().abs().flatten()
            k = int(sparsity * w.numel())
            if k == 0:
                masks[n] = torch.ones_like(m.weight)
                continue
            thr = torch.kthvalue(w, k).values
            masks[n] = (m.weight.detach().abs() > thr).to(m.weight.dtype)
    else:
        allw = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        k = int(sparsity * allw.numel())
        thr = torch.kthvalue(allw, k).values if k else torch.tensor(-1.0)
        for n, m in layers.items():
            masks[n] = (m.weight.detach().abs() > thr).to(m.weight.dtype)
    return masks


def apply_masks(model: torch.nn.Module, masks: dict[str, Any]) -> None:
    """Zero the masked weights in place (call after every optimiser step to keep them zero)."""
    import torch

    layers = _layers(model)
    with torch.no_grad():
        for n, mask in masks.items():
            layers[n].weight.mul_(mask)


def sparsity_report(model: torch.nn.Module, weight_bits: int | dict[str, int] = 2) -> dict[str, Any]:
    """Sparsity and weight-memory sizes: dense (what FINN stores) and a bitmap-compressed store.

    Compressed size = one bit per weight (bitmap) + ``weight_bits`` per non-zero weight.
    """
    layers = _layers(model)
    total = nz = dense_bits = comp_bits = 0
    per_layer = {}
    for n, m in layers.items():
        b = weight_bits[n] if isinstance(weight_bits, dict) else weight_bits
        numel = m.weight.numel()
        nonzero = int((m.weight.detach() != 0).sum())
        total += numel
        nz += nonzero
        dense_bits += numel * b
        comp_bits += numel + nonzero * b
        per_layer[n] = {"weights": numel, "nonzero": nonzero, "sparsity": 1 - nonzero / max(1, numel)}
    return {
        "sparsity": 1 - nz / max(1, total),
        "weights": total,
        "nonzero": nz,
        "dense_weight_bits": dense_bits,
        "compressed_weight_bits": comp_bits,
        "finn_cycles_change": 0,
        "note": FINN_NOTE,
        "layers": per_layer,
    }


def prune_unstructured(
    model: torch.nn.Module,
    sparsity: float,
    *,
    n_iter: int = 1,
    finetune_step: Callable[[torch.nn.Module, Callable[[torch.nn.Module], None]], None] | None = None,
    per_layer: bool = True,
) -> dict[str, Any]:
    """Iterative magnitude pruning to ``sparsity`` on the polynomial schedule; returns the final masks.

    ``finetune_step(model, after_step)`` (optional) fine-tunes between iterations, calling ``after_step`` after
    every optimiser step so that pruned weights stay zero.
    """
    from .plan import polynomial_schedule

    masks: dict[str, Any] = {}
    for t in range(1, n_iter + 1):
        s = polynomial_schedule(t, n_iter, sparsity)
        masks = magnitude_masks(model, s, per_layer=per_layer)
        apply_masks(model, masks)
        if finetune_step is not None:
            finetune_step(model, lambda m, _masks=masks: apply_masks(m, _masks))
    return masks

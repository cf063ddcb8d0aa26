"""Pure core of the pruner: channel plans, fold-aware channel counts, pruned FINN layer specs.

No torch, no FINN: these functions work on integers and on the estimator's frozen ``LayerSpec`` dataclasses, so
the hardware-aware search can ask "what FPS would these channel counts give?" thousands of times without
re-running FINN.

Fold-awareness. FINN's MVAU folds its ``MH`` outputs over ``PE`` and its ``MW`` inputs over ``SIMD``; both must
divide the dimension (``MH % PE == 0``, ``MW % SIMD == 0``; FINN ``MVAU.verify_node`` / ``SetFolding``), and the
MVAU takes ``(MH/PE)·(MW/SIMD)·numInputVectors`` cycles per frame (FINN-R, Blott et al. 2018, eq. for
``get_exp_cycles``). A channel count whose divisors are sparse (a prime such as 61) leaves the folding optimiser
only PE ∈ {1, 61}, so a pruned layer may be *slower* to fold well than a slightly larger, divisor-rich one. We
score a count ``n`` by how close its divisors come to every power-of-two parallelism ``P ≤ n``:
``fold_score(n) = mean_P (max{d | n, d ≤ P} / P)`` — 1.0 for powers of two, low for primes — and round each
layer's wanted count to the best-scoring count in a small window (per layer, not one global ``round_to``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from ..errors import ConfigError, UnsupportedLayerError

__all__ = [
    "PruningPlan",
    "fold_score",
    "fold_friendly_count",
    "candidate_counts",
    "uniform_counts",
    "scale_layers",
    "polynomial_schedule",
    "iterative_counts",
]


@dataclass(frozen=True)
class PruningPlan:
    """Output channels per prunable group before and after pruning (group name → count)."""

    before: Mapping[str, int]
    after: Mapping[str, int]
    method: str = "manual"
    notes: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for g, n in self.after.items():
            if g not in self.before:
                raise ConfigError(f"Pruning plan names unknown group '{g}'; use one of {sorted(self.before)}.")
            if not 1 <= n <= self.before[g]:
                raise ConfigError(
                    f"Pruning plan keeps {n} channels of '{g}', which has {self.before[g]}; keep 1..{self.before[g]}."
                )

    def counts(self) -> dict[str, int]:
        """Channels after pruning for every group (unlisted groups keep all)."""
        return {g: int(self.after.get(g, n)) for g, n in self.before.items()}

    def keep_ratio(self) -> float:
        """Kept fraction of all channels."""
        c = self.counts()
        return sum(c.values()) / max(1, sum(self.before.values()))

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "channels_before": dict(self.before), "channels_after": self.counts()}


@lru_cache(maxsize=4096)
def fold_score(n: int) -> float:
    """Mean over powers of two ``P ≤ n`` of ``max{d | n, d ≤ P} / P`` (1.0 = every parallelism reachable)."""
    if n < 1:
        raise ValueError("channel count must be positive")
    divs = [d for d in range(1, n + 1) if n % d == 0]
    ps = [2**k for k in range(int(math.log2(n)) + 1)]
    return sum(max(d for d in divs if d <= p) / p for p in ps) / len(ps)


def fold_friendly_count(full: int, wanted: float, *, window: float = 0.125, min_count: int = 1) -> int:
    """The count in ``[wanted, wanted·(1+window)]`` (clipped to ``[min_count, full]``) with the best fold score.

    Never returns fewer than ``wanted`` channels (rounding up keeps accuracy); ties go to the smaller count.
    """
    lo = max(min_count, min(full, math.ceil(wanted - 1e-9)))
    hi = max(lo, min(full, math.floor(wanted * (1 + window) + 1e-9)))
    return max(range(lo, hi + 1), key=lambda n: (round(fold_score(n), 9), -n))


def candidate_counts(full: int, *, min_ratio: float = 0.0625, steps: int = 16, window: float = 0.125) -> list[int]:
    """Fold-friendly channel counts from ``full`` down to about ``full·min_ratio`` (descending, distinct)."""
    out: list[int] = []
    for i in range(steps + 1):
        r = 1.0 - (1.0 - min_ratio) * i / steps
        n = fold_friendly_count(full, full * r, window=window)
        if n not in out:
            out.append(n)
    return sorted(out, reverse=True)


def uniform_counts(channels: Mapping[str, int], ratio: float, *, fold_aware: bool = True) -> dict[str, int]:
    """Keep ``ratio`` of every group's channels (the uniform baseline), optionally fold-aware rounded."""
    if not 0 < ratio <= 1:
        raise ConfigError(f"Keep ratio {ratio} is outside (0, 1]; give pruning.ratio as a fraction like 0.5.")
    if fold_aware:
        return {g: fold_friendly_count(c, c * ratio) for g, c in channels.items()}
    return {g: max(1, round(c * ratio)) for g, c in channels.items()}


def polynomial_schedule(step: int, n_steps: int, final_sparsity: float, *, initial: float = 0.0, power: int = 3) -> float:
    """Sparsity at ``step`` of ``n_steps``: Zhu & Gupta, "To prune, or not to prune", 2017, eq. (1).

    ``s_t = s_f + (s_i − s_f)(1 − t/n)^power``.
    """
    t = min(max(step, 0), n_steps) / max(1, n_steps)
    return final_sparsity + (initial - final_sparsity) * (1 - t) ** power


def iterative_counts(
    start: Mapping[str, int], final: Mapping[str, int], n_iter: int, *, power: int = 3
) -> list[dict[str, int]]:
    """Channel counts per iteration, removing channels on Zhu & Gupta's polynomial schedule (last = ``final``)."""
    out = []
    for t in range(1, n_iter + 1):
        frac = polynomial_schedule(t, n_iter, 1.0, power=power)  # fraction of the total removal done
        out.append({g: int(round(start[g] - (start[g] - final.get(g, start[g])) * frac)) for g in start})
    out[-1] = {g: int(final.get(g, start[g])) for g in start}
    return out


def _channel_fields(layer: Any) -> list[str]:
    """Fields of a non-MVAU FINN layer that carry the stream's channel count."""
    return [f for f in ("channels", "ifm_ch") if hasattr(type(layer), "__dataclass_fields__") and f in layer.__dataclass_fields__]


#: (id(original layer), changes) -> (original, scaled): the same scaled object for the same request, so the
#: estimator's per-layer cost memo is hit across the thousands of candidates a search evaluates.
_SCALED: dict[tuple[int, tuple[tuple[str, int], ...]], tuple[Any, Any]] = {}


def _replaced(lay: Any, **changes: int) -> Any:
    if not changes:
        return lay
    key = (id(lay), tuple(sorted(changes.items())))
    hit = _SCALED.get(key)
    if hit is not None and hit[0] is lay:
        return hit[1]
    if len(_SCALED) > 50_000:
        _SCALED.clear()
    new = replace(lay, **changes)
    _SCALED[key] = (lay, new)
    return new


def scale_layers(layers: Sequence[Any], before: Sequence[int], after: Sequence[int]) -> list[Any]:
    """FINN layer specs of the pruned network, derived from the unpruned network's specs.

    ``before``/``after`` are the output channels of the model's conv/linear layers in execution order (the last
    one, the classifier, normally unchanged). Assumptions (verified against a real FINN conversion in
    ``tests/pruning/test_plan_finn.py``):

    1. FINN keeps the conv/linear layers as MVAUs in the same order (``MH`` = output channels);
    2. an MVAU's ``MW`` is linear in its input channels (``K·K·C_in`` for conv, ``C·H·W`` after a flatten), so
       ``MW' = MW · C_in' / C_in``;
    3. every other layer on the stream (SWG ``IFMChannels``, ``Thresholding``/``Pool``/``FMPadding``
       ``NumChannels``) carries the channel count of the most recent MVAU (or the network input before the first);
    4. the graph is a chain (one producer per node) — residual graphs raise ``UnsupportedLayerError``.
    """
    if len(before) != len(after):
        raise ValueError("before and after must have the same length")
    mvaus = [i for i, lay in enumerate(layers) if getattr(lay, "kind", "") == "MVAU"]
    if len(mvaus) != len(before):
        raise UnsupportedLayerError(
            f"The FINN graph has {len(mvaus)} MVAUs but the model {len(before)} conv/linear layers; the pruned "
            "layer specs cannot be derived by scaling, re-run FINN on the pruned model instead."
        )
    out: list[Any] = []
    k = -1  # index of the most recent MVAU
    cur_old: int | None = None
    cur_new: int | None = None
    for lay in layers:
        if len(getattr(lay, "producers", ())) > 1:
            raise UnsupportedLayerError(
                f"FINN node '{lay.name}' has several producers (residual/concat); scaled layer specs only support "
                "chains, re-run FINN on the pruned model instead."
            )
        if getattr(lay, "kind", "") == "MVAU":
            k += 1
            in_old = before[k - 1] if k > 0 else None
            in_new = after[k - 1] if k > 0 else None
            mw = lay.mw
            if in_old is not None and in_new != in_old:
                if (mw * in_new) % in_old:
                    raise UnsupportedLayerError(
                        f"MW={mw} of '{lay.name}' is not a multiple of its {in_old} input channels; cannot scale."
                    )
                mw = mw * in_new // in_old
            out.append(_replaced(lay, **({"mw": mw} if mw != lay.mw else {}), **({"mh": after[k]} if after[k] != lay.mh else {})))
            cur_old, cur_new = before[k], after[k]
            continue
        changes = {}
        if cur_old is not None and cur_new != cur_old:
            for f in _channel_fields(lay):
                if getattr(lay, f) == cur_old:
                    changes[f] = cur_new
        out.append(_replaced(lay, **changes))
    return out

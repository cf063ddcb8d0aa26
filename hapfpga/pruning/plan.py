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
    "replaced",
    "polynomial_schedule",
    "ModelLayer",
    "match_hw_layers",
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


#: (id(original layer), changes) -> (original, scaled): the same scaled object for the same request, so the
#: estimator's per-layer cost memo is hit across the thousands of candidates a search evaluates.
_SCALED: dict[tuple[int, tuple[tuple[str, int], ...]], tuple[Any, Any]] = {}


def replaced(lay: Any, **changes: int) -> Any:
    """``dataclasses.replace(lay, **changes)``, memoised (the searches rescale the same specs many times)."""
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


@dataclass(frozen=True)
class ModelLayer:
    """A conv/linear layer of the torch model as FINN will see it (pure data, for matching FINN nodes).

    ``out``: output channels/neurons; ``mw``: weights per output (``C_in·K·K`` for a dense conv, ``in_features``
    for a linear layer, ``K·K`` for a depthwise conv) — FINN's MVAU ``MW`` / VVAU kernel size; ``depthwise``:
    one filter per channel (FINN makes it a VVAU, whose channels are its producer's).
    """

    name: str
    out: int
    mw: int
    depthwise: bool = False


def _prod(t: Sequence[int]) -> int:
    return math.prod(int(v) for v in t)


def match_hw_layers(layers: Sequence[Any], model_layers: Sequence[ModelLayer] | None, n: int) -> dict[str, int]:
    """FINN node name → index of the model layer that sets its output channels (MVAUs and VVAUs only).

    With ``model_layers`` each dense layer is matched to the first unmatched MVAU with its ``(MH, MW)`` and each
    depthwise layer to the first unmatched VVAU with its ``(Channels, K·K)``, in execution order (FINN's node
    order may interleave the branches of a residual block). Without it, the ``n`` layers are the MVAUs in order.
    """
    compute = [lay for lay in layers if getattr(lay, "kind", "") in ("MVAU", "VVAU")]
    if model_layers is None:
        mvaus = [lay for lay in compute if lay.kind == "MVAU"]
        if len(mvaus) != n or len(compute) != n:
            raise UnsupportedLayerError(
                f"The FINN graph has {len(mvaus)} MVAUs and {len(compute) - len(mvaus)} VVAUs but the model {n} "
                "conv/linear layers; the pruned layer specs cannot be derived without the layers' shapes."
            )
        return {lay.name: k for k, lay in enumerate(mvaus)}
    if len(model_layers) != n or len(compute) != n:
        raise UnsupportedLayerError(
            f"The FINN graph has {len(compute)} MVAU/VVAU nodes but the model {n} conv/linear layers; the pruned "
            "layer specs cannot be derived by scaling, re-run FINN on the pruned model instead."
        )
    free = list(compute)
    out: dict[str, int] = {}
    for k, ml in enumerate(model_layers):
        def fits(lay: Any, ml: ModelLayer = ml) -> bool:
            if ml.depthwise:
                return lay.kind == "VVAU" and lay.channels == ml.out and _prod(lay.kernel) == ml.mw
            return lay.kind == "MVAU" and lay.mh == ml.out and lay.mw == ml.mw

        hit = next((lay for lay in free if fits(lay)), None)
        if hit is None:
            raise UnsupportedLayerError(
                f"No FINN {'VVAU' if ml.depthwise else 'MVAU'} matches layer '{ml.name}' ({ml.out} outputs, "
                f"{ml.mw} weights each); the pruned layer specs cannot be derived by scaling."
            )
        free.remove(hit)
        out[hit.name] = k
    return out


#: shape-carrying fields of non-compute FINN layers: scalar channel counts and NHWC shapes (channels last)
_CHANNEL_INTS = ("channels", "ifm_ch")
_CHANNEL_SHAPES = ("lhs_shape", "rhs_shape", "out_shape", "inp_shape")


def _stream_changes(lay: Any, old: int, new: int) -> dict[str, Any]:
    """Field changes of a channel-preserving layer whose input stream goes from ``old`` to ``new`` channels."""
    fields = getattr(type(lay), "__dataclass_fields__", {})
    changes: dict[str, Any] = {f: new for f in _CHANNEL_INTS if f in fields and getattr(lay, f) == old}
    for f in _CHANNEL_SHAPES:
        if f in fields:
            shape = tuple(getattr(lay, f))
            if shape and shape[-1] == old:
                changes[f] = (*shape[:-1], new)
            elif f == "out_shape" and shape and lay.kind == "Reshape" and (shape[-1] * new) % old == 0:
                changes[f] = (*shape[:-1], shape[-1] * new // old)  # a flatten: C·H·W scales with C
    return changes


def _out_channels_of(lay: Any) -> int | None:
    """Channels (last dim) of a layer's output stream, where its spec says it."""
    for f in ("mh", "channels", "ifm_ch"):
        if hasattr(lay, f):
            return int(getattr(lay, f))
    shape = getattr(lay, "out_shape", None)
    return int(shape[-1]) if shape else None


#: standard deviations above the expected accumulator range of a pruned MVAU that :func:`pruned_acc_dt` allows
#: for (which input channels a pruning keeps is not known to the predictor); 2 covers the measured cases (below)
ACC_Z = 2.0


def pruned_acc_dt(contrib: tuple[Any, Any], old: int, new: int, z: float = ACC_Z) -> tuple[str, str]:
    """``(accDataType, its bound if every channel were kept)`` of an MVAU whose ``old`` input channels become ``new``.

    FINN sets ``accDataType`` from the weights (``MVAU.minimize_accumulator_width``: per output column the sum of
    each weight's largest/smallest contribution, ``contrib`` = :func:`hapfpga.finn.graph.accumulator_contributions`,
    then the widest column), so pruning inputs narrows it: keeping ``new`` of ``old`` channels (each channel the
    rows ``i % old == c``: FINN orders an MVAU's rows channel-fastest, ``(kh, kw, c)`` and ``(h, w, c)``) keeps
    ``new`` of the column's ``old`` per-channel sums. Which ones is not known here, so a column's sum is taken as
    a draw without replacement: mean ``f·S`` (``f = new/old``) plus ``z`` standard deviations
    (``new·σ²·(old−new)/(old−1)``), never beyond the unpruned sum (contributions to the max are >= 0, to the min
    <= 0). Measured on 79 pruned MVAUs of FINN's conversions of pruned CNVs (untrained and trained, l1-pruned;
    issue 13): ``z = 0`` was 1 bit too narrow in 19, ``z = 2`` (default) exact in 69, 1 bit wide in 10; over 300
    random layers (tests/pruning/test_predictor.py) never too narrow.
    Bits from the range as FINN: ``UINT⌈log2(max+1)⌉`` when the minimum is >= 0, else ``INT⌈log2 max(−min,
    1+max)⌉+1``."""
    import numpy as np

    def bound(c: Any, sign: float) -> tuple[float, float]:
        g = np.asarray(c, dtype=np.float64)
        g = g.reshape(-1, old, g.shape[-1]).sum(axis=0)  # (old channels, MH) per-channel sums of each column
        full = g.sum(axis=0)
        f = new / old
        var = new * g.var(axis=0) * (old - new) / max(1, old - 1)
        part = np.minimum(np.abs(f * full) + z * np.sqrt(var), np.abs(full))
        return sign * float(part.max()), sign * float(np.abs(full).max())

    hi, hi0 = bound(contrib[0], 1.0)
    lo, lo0 = bound(contrib[1], -1.0)
    return _finn_acc_dt(lo, hi), _finn_acc_dt(lo0, hi0)


def _narrower(dt: str, new: str) -> str:
    """``new`` unless it is wider than ``dt`` (an accumulator of pruned inputs never needs more bits)."""
    bits = lambda t: int(t.lstrip("UINT"))  # noqa: E731
    return new if bits(new) <= bits(dt) else dt


def _finn_acc_dt(lo: float, hi: float) -> str:
    """FINN's ``MVAU.minimize_accumulator_width`` rule from an accumulator range."""
    if lo >= 0:
        return f"UINT{max(1, math.ceil(math.log2(hi + 1)))}"
    return f"INT{math.ceil(math.log2(max(-lo, 1 + hi)) + 1)}"


def scale_layers(
    layers: Sequence[Any],
    before: Sequence[int],
    after: Sequence[int],
    model_layers: Sequence[ModelLayer] | None = None,
    acc: Mapping[str, tuple[Any, Any]] | None = None,
) -> list[Any]:
    """FINN layer specs of the pruned network, derived from the unpruned network's specs.

    ``before``/``after`` are the output channels of the model's conv/linear layers in execution order (the last
    one, the classifier, normally unchanged); ``model_layers`` their shapes (see :func:`match_hw_layers`).
    The channel change is propagated along FINN's graph (``producers``), so chains, forks/joins (residual blocks:
    ``DuplicateStreams``, ``AddStreams``-style adds) and depthwise VVAUs are covered. Assumptions (checked against
    real FINN conversions of pruned models in ``tests/pruning/test_plan_finn.py`` and the property test):

    1. each conv/linear layer is one MVAU (``MH`` = output channels) or, depthwise, one VVAU (``Channels``);
    2. an MVAU's ``MW`` is linear in its input channels (``K·K·C_in`` for conv, ``C·H·W`` after a flatten), so
       ``MW' = MW · C_in' / C_in``; a VVAU's channels are its input stream's;
    3. every other layer carries its input stream's channels (SWG ``IFMChannels``, ``Thresholding``/``Pool``/
       ``FMPadding``/``DuplicateStreams`` ``NumChannels``, the last dim of elementwise and reshape shapes);
    4. FINN's nodes are in topological order, and the inputs of a join carry the same channels.

    ``acc`` (per MVAU, :func:`hapfpga.finn.graph.accumulator_contributions` of the unpruned conversion) narrows
    the ``accDataType`` of an MVAU with thresholds whose inputs are pruned, as FINN's conversion of the pruned
    model does (:func:`pruned_acc_dt`); without it the unpruned width is kept (wider: more threshold LUTs).
    """
    if len(before) != len(after):
        raise ValueError("before and after must have the same length")
    owner = match_hw_layers(layers, model_layers, len(before))
    stream: dict[str, tuple[int, int]] = {}  # node name -> (old, new) channels of its output stream
    out: list[Any] = []
    prev: str | None = None
    for lay in layers:
        # a spec without producers (hand-made chains) is fed by the layer before it
        producers = tuple(getattr(lay, "producers", ())) or ((prev,) if prev else ())
        prev = lay.name
        old, new = _input_stream(lay, producers, stream)
        k = owner.get(lay.name)
        if k is not None:
            changes = _owned_layer_changes(lay, old, new, int(after[k]), acc)
            out.append(replaced(lay, **{f: v for f, v in changes.items() if getattr(lay, f) != v}))
            stream[lay.name] = (int(before[k]), int(after[k]))
            continue
        changes = _stream_changes(lay, old, new) if old is not None and new != old else {}
        new_lay = replaced(lay, **changes)
        out.append(new_lay)
        if old is not None:
            o_old, o_new = _out_channels_of(lay), _out_channels_of(new_lay)
            stream[lay.name] = (o_old, o_new) if o_old is not None and o_new is not None else (old, new)
    return out


def _input_stream(lay: Any, producers: Sequence[str], stream: Mapping[str, tuple[int, int]]) -> tuple[Any, Any]:
    """(old, new) channels of the stream into ``lay`` (``(None, None)`` when no producer's channels change); the
    inputs of a join must agree (assumption 4 of :func:`scale_layers`)."""
    ins = {stream[p] for p in producers if p in stream}
    if len(ins) > 1:
        raise UnsupportedLayerError(
            f"FINN node '{lay.name}' joins streams whose channels would differ after pruning ({sorted(ins)}); "
            "the channels of an add must be pruned together."
        )
    return ins.pop() if ins else (None, None)


def _owned_layer_changes(lay: Any, old: int | None, new: int | None, out_ch: int,
                         acc: Mapping[str, tuple[Any, Any]] | None) -> dict[str, Any]:
    """The spec changes of the MVAU/VVAU of a pruned conv/linear layer: ``out_ch`` outputs and, for an MVAU, ``MW``
    scaled with its input channels (assumption 2 of :func:`scale_layers`) and a narrower ``accDataType``."""
    if lay.kind != "MVAU":
        return {"channels": out_ch}
    mw = lay.mw
    if old is not None and new != old:
        if (mw * new) % old:
            raise UnsupportedLayerError(
                f"MW={mw} of '{lay.name}' is not a multiple of its {old} input channels; cannot scale."
            )
        mw = mw * new // old
    changes: dict[str, Any] = {"mw": mw, "mh": out_ch}
    if acc and lay.name in acc and mw != lay.mw and not lay.no_activation and lay.mw % old == 0:
        changes["acc_dt"] = _narrower(lay.acc_dt, pruned_acc_dt(acc[lay.name], old, new)[0])
    return changes

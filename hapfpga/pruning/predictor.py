"""The pruning search's hardware objective: ``HwPredictor.predict(counts) -> HwPoint`` (pure: no torch, no FINN).

A prediction scales the unpruned model's FINN layer specs to a candidate's channel counts (and operand bits,
``plan.scale_layers``, ``bits.apply_operand_bits``) and folds them with the fold stage's own optimiser and
options (:class:`~hapfpga.folding.options.FoldingOptions`), so no FINN run is needed per candidate. Everything a
prediction needs is one frozen, picklable :class:`PredictorSpec`: the multi-machine search publishes it to its
workers, and a batch of predictions runs in spawned processes that receive it (``HwPredictor(workers=N)``).
The spec is built from a model by ``hapfpga.pruning.hwmodel.build_predictor``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InfeasibleError, SolverTimeLimitError
from ..folding.options import FoldingOptions
from ..types import Resources
from .search import HwPoint

__all__ = ["PredictorSpec", "HwPredictor", "HwTarget"]


@dataclass(frozen=True)
class PredictorSpec:
    """What one prediction needs: the unpruned model's FINN layer specs and how to scale and fold them.

    ``order`` lists the model's conv/linear layers in execution order (one per FINN MVAU), ``before`` their output
    channels, ``layer_to_group`` maps a layer to its channel group (empty: identity, for chains). ``options`` is
    the folding the prediction does (``FoldingOptions.for_predictor`` of the fold stage's). ``model_layers``
    (``plan.ModelLayer`` per entry of ``order``) maps FINN's MVAUs/VVAUs to the layers by shape, which non-chain
    and depthwise graphs need. ``base_bits``: the operand bits the specs were converted at (a ``bits:<layer>``
    knob that differs rewrites the specs' data types). ``acc_contributions``
    (``hapfpga.finn.graph.accumulator_contributions``) narrows pruned MVAUs' accumulators as FINN does.
    """

    layers: tuple[Any, ...]
    order: tuple[str, ...]
    before: Mapping[str, int]
    board: Any
    options: FoldingOptions = FoldingOptions()
    layer_to_group: Mapping[str, str] = field(default_factory=dict)
    model_layers: tuple[Any, ...] | None = None
    base_bits: Mapping[str, int] = field(default_factory=dict)
    acc_contributions: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    dag_bits: bool = False  # bits knobs are activation quantisers followed along FINN's streams (bits.DAG_BITS_MODELS)


#: how much longer the predictor's later solves may run when the one before stopped at its time limit unproven
#: (wall-clock limits: on a loaded machine a solve gets a fraction of a core)
_RETRY_FACTORS = (4.0, 16.0)


def _default_optimise() -> Callable[..., Any]:
    from ..folding.optimise import optimise

    return optimise


def _solve_proven(optimise: Callable[..., Any], layers: list[Any], spec: PredictorSpec) -> Any:
    """``optimise`` on ``layers``; a solve cut by its time limit (no design, or a design not proven fastest) is
    solved again with each of ``_RETRY_FACTORS`` times the limit in turn. HiGHS's incumbent at a time limit can be
    far from the optimum (a pruned CNV at 2 s: 63 FPS where the optimum is 7,972; or no design at all, which read
    as "does not fit"), so a prediction from it misleads the search; when the longest solve is still cut it
    raises (the fix is a larger ``pruning.folding_time_limit``) rather than return an unproven FPS."""
    limit = float(spec.options.time_limit)
    for factor in (1.0, *_RETRY_FACTORS):
        try:
            res = optimise(layers, spec.board, dataclasses.replace(spec.options, time_limit=factor * limit))
            if getattr(res, "optimal", True):
                return res
        except SolverTimeLimitError:
            pass
    raise SolverTimeLimitError(
        f"The folding solver could not prove the fastest folding of a pruning candidate in "
        f"{_RETRY_FACTORS[-1] * limit:g} s; raise pruning.folding_time_limit."
    )


def predict_point(spec: PredictorSpec, counts: Mapping[str, int], optimise: Callable[..., Any]) -> HwPoint:
    """One prediction: ``spec``'s layers scaled to ``counts`` and folded (``fits=False``, 0 FPS when none fits)."""
    from .bits import split_knobs
    from .plan import scale_layers

    order, before = list(spec.order), spec.before
    l2g = spec.layer_to_group or {n: n for n in order}
    chans, bits = split_knobs(counts)
    b = [int(before[n]) for n in order]
    a = [int(chans.get(l2g.get(n, n), before[n])) for n in order]
    model_layers = list(spec.model_layers) if spec.model_layers is not None else None
    layers = scale_layers(list(spec.layers), b, a, model_layers, dict(spec.acc_contributions))
    changed = {order.index(n): v for n, v in bits.items() if spec.base_bits.get(n) != v}
    if changed:
        layers = _with_bits(spec, layers, changed)
    try:
        res = _solve_proven(optimise, layers, spec)
    except SolverTimeLimitError:
        raise  # not "does not fit": unknown
    except InfeasibleError:
        return HwPoint(0.0, Resources(), False)
    total = res.total
    budget = getattr(res, "budget", None) or spec.board.budget
    return HwPoint(float(res.fps), total, bool(total.fits_in(budget)), res.bottleneck, res.plan)


def _with_bits(spec: PredictorSpec, layers: list[Any], changed: Mapping[int, int]) -> list[Any]:
    """``layers`` with the changed operand bits: MVAU by MVAU on a chain (``bits.apply_operand_bits``), along the
    streams of each activation quantiser on a DAG (``bits.apply_dag_bits``, FINN nodes matched to the model's
    layers on the unscaled specs)."""
    from .bits import apply_dag_bits, apply_operand_bits
    from .plan import match_hw_layers

    if not spec.dag_bits:
        return apply_operand_bits(layers, changed)
    model_layers = list(spec.model_layers) if spec.model_layers is not None else None
    return apply_dag_bits(layers, match_hw_layers(list(spec.layers), model_layers, len(spec.order)), changed)


_WORKER_SPEC: list[PredictorSpec] = []


def _worker_init(spec: PredictorSpec) -> None:
    _WORKER_SPEC[:] = [spec]


def _worker_predict(counts: dict[str, int]) -> HwPoint:
    return predict_point(_WORKER_SPEC[0], counts, _default_optimise())


def _key(counts: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, int(v)) for k, v in counts.items()))


class HwPredictor:
    """``counts -> HwPoint`` for one unpruned model (cached per counts); ``predict_many`` folds a batch in
    ``workers`` spawned processes (each receives the spec) when ``workers > 0``; ``close()`` stops them.
    ``optimise`` replaces ``hapfpga.folding.optimise.optimise`` (called as ``optimise(layers, board, options)``;
    tests). Calling the predictor is ``predict``: the searches take any ``counts -> HwPoint`` callable."""

    def __init__(self, spec: PredictorSpec, *, workers: int = 0, optimise: Callable[..., Any] | None = None):
        self.spec = spec
        self.workers = int(workers)
        self._optimise = optimise
        self._cache: dict[tuple[tuple[str, int], ...], HwPoint] = {}
        self._pool: Any = None

    def predict(self, counts: Mapping[str, int]) -> HwPoint:
        key = _key(counts)
        if key not in self._cache:
            self._cache[key] = predict_point(self.spec, counts, self._optimise or _default_optimise())
        return self._cache[key]

    __call__ = predict

    def predict_many(self, batch: Sequence[Mapping[str, int]]) -> list[HwPoint]:
        todo = [dict(c) for c in batch if _key(c) not in self._cache]
        if len(todo) > 1 and self.workers > 0 and self._optimise is None:
            for c, point in zip(todo, self._executor().map(_worker_predict, todo), strict=True):
                self._cache[_key(c)] = point
        return [self.predict(c) for c in batch]

    def _executor(self) -> Any:
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_worker_init, initargs=(self.spec,))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


@dataclass(frozen=True)
class HwTarget:
    """The hardware a pruned design is for: the board, the fold stage's folding options (the predictor folds as
    they say, ``FoldingOptions.for_predictor``) and, for tests and benchmarks, a predictor that replaces the
    built-in one (any ``counts -> HwPoint`` callable)."""

    board: Any = None
    folding: FoldingOptions = FoldingOptions()
    predictor: Callable[[Mapping[str, int]], HwPoint] | None = None

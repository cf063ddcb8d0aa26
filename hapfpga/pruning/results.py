"""The values the pruning searches pass around and return (pure): a predicted hardware point, a search step,
a search's result, the batch protocols of the predictor and the accuracy oracle, and the Pareto front."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..types import Resources

__all__ = [
    "HwPoint", "Step", "SearchResult", "SearchOutcome", "UniformPick", "SparseModel", "BatchPredictor",
    "BatchAccuracy", "pareto_front", "non_dominated",
]

T = TypeVar("T")


@dataclass(frozen=True)
class HwPoint:
    """Predicted hardware for one set of channel counts: FPS of the best folding within budget (0 if none fits)."""

    fps: float
    resources: Resources = field(default_factory=Resources)
    fits: bool = True
    bottleneck: str | None = None
    plan: Any = None  # FoldingPlan, when the evaluator has one

    def as_dict(self) -> dict[str, Any]:
        return {"fps": self.fps, "fits": self.fits, "bottleneck": self.bottleneck, **self.resources.as_dict()}


@dataclass(frozen=True)
class Step:
    """One committed step of a search: counts, predicted hardware and accuracy (after any fine-tune)."""

    counts: Mapping[str, int]
    hw: HwPoint
    accuracy: float
    changed: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "accuracy": self.accuracy, "changed": self.changed, **self.hw.as_dict()}


@dataclass(frozen=True)
class SearchResult:
    """The chosen counts plus the whole trajectory (or Pareto front for NSGA-II)."""

    best: Step
    history: tuple[Step, ...]
    pareto: tuple[Step, ...] = ()
    rejected: tuple[Step, ...] = ()  # greedy steps undone (drop beyond the step tolerance); their knob was frozen

    def as_dict(self) -> dict[str, Any]:
        return {
            "best": self.best.as_dict(),
            "history": [s.as_dict() for s in self.history],
            "rejected": [s.as_dict() for s in self.rejected],
            "pareto": [{"accuracy": s.accuracy, "fps": s.hw.fps, "LUT": s.hw.resources.LUT} for s in self.pareto],
        }


@dataclass(frozen=True)
class SearchOutcome:
    """What a search on the model returns: the chosen (pruned) model and knobs, the search's result, and what
    the report needs of its training: whether it already gave the model its final fine-tune (backtracking), the
    fine-tune epochs in the chosen model's own lineage, the steps backtracking tried, and the method's own entry
    (``ratio``: uniform; ``storage``: NSGA-II's Optuna storage)."""

    model: Any
    counts: dict[str, int]
    result: SearchResult | None = None
    finetuned: bool = False
    lineage_epochs: float = 0.0
    backtracked: tuple[dict[str, Any], ...] = ()
    ratio: float | None = None
    storage: str | None = None


@dataclass(frozen=True)
class UniformPick:
    """The uniform search's pick under the accuracy rule, from an earlier ``method: uniform, target: max_fps`` run
    on the same model, data, seed and rule (a benchmark's uniform-under-the-rule arm): ``pruning.start: uniform``
    goes on from it instead of running the same search again. ``counts``: the pick's channel counts (the pick at
    keep ratio 1, the unpruned counts, when no ratio below 1 met the rule); ``model``: the pick, fine-tuned;
    ``accuracy``: its validation accuracy; ``ratio``: its keep ratio."""

    counts: Mapping[str, int]
    model: Any
    accuracy: float
    ratio: float


@dataclass(frozen=True)
class SparseModel:
    """The sparse-trained model of ``pruning.sparsify_epochs`` (``hapfpga.pruning.stage.sparse_train``), made once
    and handed to several pruning stages on the same model, data and seed (a benchmark's arms) so that each does
    not train it again. ``model``: the unpruned model after the sparse training; ``settings``: what made it (the
    stage checks them against its own config: epochs, strength, fine-tune lr/distillation/schedule, the groups
    penalised, seed, validation fraction); ``info``: the report's ``sparsify`` entry."""

    model: Any
    settings: Mapping[str, Any]
    info: Mapping[str, Any]


@runtime_checkable
class BatchPredictor(Protocol):
    """A hardware predictor that also predicts a batch at once (``HwPredictor``: in worker processes)."""

    def __call__(self, counts: Mapping[str, int]) -> HwPoint: ...

    def predict_many(self, batch: Sequence[Mapping[str, int]]) -> list[HwPoint]: ...


@runtime_checkable
class BatchAccuracy(Protocol):
    """An accuracy oracle that also measures a batch at once (the greedy stage's: in forked workers)."""

    def __call__(self, counts: Mapping[str, int]) -> float: ...

    def accuracy_many(self, batch: Sequence[Mapping[str, int]]) -> list[float]: ...


def non_dominated(points: Sequence[T], key: Callable[[T], tuple[float, ...]]) -> list[T]:
    """The points no other point dominates (every component of ``key`` at least as large, one larger), in input
    order; equal points are all kept. The one Pareto rule of hapfpga (searches and the report's plot)."""
    keys = [key(p) for p in points]
    return [p for p, kp in zip(points, keys, strict=True)
            if not any(all(a >= b for a, b in zip(kq, kp, strict=True)) and kq != kp for kq in keys)]


def pareto_front(points: Sequence[Step]) -> list[Step]:
    """Non-dominated steps for (accuracy ↑, FPS ↑, LUT ↓), fastest first."""
    front = non_dominated(points, lambda s: (s.accuracy, s.hw.fps, -s.hw.resources.LUT))
    return sorted(front, key=lambda s: -s.hw.fps)

"""The pruning stage's report as a value, and in words: labelled rows and the sentence on a missed FPS target.

Pure. :class:`PruningReport` is what ``run_pruning_stage`` reports; ``as_dict()`` is its JSON form
(``pruning/pruning.json``, the prune stage's result, ``report.json``'s ``pruning``) and ``from_dict`` reads it
back (older reports with fewer keys too). :func:`pruning_rows` and :func:`target_sentence` read a
``PruningReport`` (or its JSON form); ``report_html`` renders them and the summary reads the same keys.
``final_fps`` is the fold stage's FPS of the final design (the summary's figure), shown next to the search's
prediction so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BeforeAfter", "TargetOutcome", "SearchRecord", "PruningReport", "pruning_rows", "target_sentence"]


@dataclass(frozen=True)
class BeforeAfter:
    """One figure of the unpruned and the pruned model (None where it is not known)."""

    before: Any = None
    after: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after}

    @classmethod
    def from_dict(cls, d: Any) -> BeforeAfter:
        return cls(d.get("before"), d.get("after")) if isinstance(d, Mapping) else cls()


@dataclass(frozen=True)
class TargetOutcome:
    """``pruning.target`` and, for ``fps``, the target FPS and whether the pruned design's prediction met it."""

    name: str | None
    fps: float | None = None
    met: bool | None = None


@dataclass(frozen=True)
class SearchRecord:
    """What a channel search leaves in the report: its Pareto rows, trajectory (last 200 steps), rejected steps,
    the chosen model's extra fine-tune epochs and the steps backtracking tried (rows as in ``Step.as_dict``)."""

    pareto: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    extra_epochs: float = 0.0
    backtrack: list[dict[str, Any]] = field(default_factory=list)


#: optional entries, in report order: sensitivity (analysis), ratio (uniform), storage (NSGA-II), mixed bits,
#: sparsity (unstructured), sparsify (the sparse training before a structured search, ``pruning.sparsify_epochs``)
#: ``limited_by``: the bottleneck layer pruning cannot speed up and the knob that would (``limits.PruningLimit``)
_DETAILS = ("sensitivity", "ratio", "storage", "bits", "bits_before", "bits_after", "sparsity", "sparsify", "limited_by")


@dataclass(frozen=True)
class PruningReport:
    """The pruning stage's report. ``search`` is None for unstructured (weight) pruning, which has no channel
    search, no validation figures and no FPS target; ``details`` holds the optional entries (``_DETAILS``)."""

    method: str | None
    target: TargetOutcome
    importance: str | None
    details: dict[str, Any]
    channels: BeforeAfter
    params: BeforeAfter
    macs: BeforeAfter
    accuracy: BeforeAfter
    accuracy_val: BeforeAfter | None
    fps: BeforeAfter
    search: SearchRecord | None
    seconds: float | None = None

    @property
    def compression(self) -> float | None:
        b, a = self.params.before, self.params.after
        return None if b is None or a is None else b / max(1, a)

    @property
    def accuracy_drop(self) -> float | None:
        b, a = self.accuracy.before, self.accuracy.after
        return None if b is None or a is None else b - a

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (the keys and their order as ``pruning.json`` has always had them)."""
        out: dict[str, Any] = {"method": self.method, "target": self.target.name, "importance": self.importance,
                               **self.details}
        if self.search is not None:
            out["accuracy_val"] = self.accuracy_val.as_dict() if self.accuracy_val is not None else None
        out.update(method=self.method, channels_before=self.channels.before, channels_after=self.channels.after)
        if self.search is not None:
            out.update(target_fps=self.target.fps, target_met=self.target.met)
        out.update(params=self.params.as_dict(), macs=self.macs.as_dict(), compression=self.compression,
                   accuracy=self.accuracy.as_dict(), accuracy_drop=self.accuracy_drop,
                   fps_before=self.fps.before, fps_after=self.fps.after,
                   pareto=self.search.pareto if self.search is not None else [])
        if self.search is not None:
            s = self.search
            out.update(history=s.history, rejected=s.rejected, extra_epochs=s.extra_epochs, backtrack=s.backtrack)
        out["seconds"] = self.seconds
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PruningReport:
        """A report's JSON form read back (missing entries are None or empty)."""
        structured = d.get("method") != "unstructured"
        search = SearchRecord(list(d.get("pareto") or []), list(d.get("history") or []),
                              list(d.get("rejected") or []), float(d.get("extra_epochs") or 0.0),
                              list(d.get("backtrack") or [])) if structured else None
        return cls(
            method=d.get("method"), target=TargetOutcome(d.get("target"), d.get("target_fps"), d.get("target_met")),
            importance=d.get("importance"), details={k: d[k] for k in _DETAILS if k in d},
            channels=BeforeAfter(d.get("channels_before"), d.get("channels_after")),
            params=BeforeAfter.from_dict(d.get("params")), macs=BeforeAfter.from_dict(d.get("macs")),
            accuracy=BeforeAfter.from_dict(d.get("accuracy")),
            accuracy_val=BeforeAfter.from_dict(d.get("accuracy_val")) if "accuracy_val" in d else None,
            fps=BeforeAfter(d.get("fps_before"), d.get("fps_after")), search=search, seconds=d.get("seconds"),
        )


def _typed(prun: PruningReport | Mapping[str, Any]) -> PruningReport:
    return prun if isinstance(prun, PruningReport) else PruningReport.from_dict(prun)


def _arrow(d: BeforeAfter, fmt: str) -> str | None:
    if d.before is None or d.after is None:
        return None
    return f"{format(d.before, fmt)} → {format(d.after, fmt)}"


def pruning_rows(prun: PruningReport | Mapping[str, Any], final_fps: float | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows for the pruning table (figures that are missing are left out)."""
    r = _typed(prun)
    drop = r.accuracy_drop
    rows: list[tuple[str, str | None]] = [
        ("method", str(r.method) if r.method else None),
        ("target", _target(r)),
        ("conv/linear weights", _arrow(r.params, ",")),
        ("multiply-accumulates per input", _arrow(r.macs, ",")),
        ("weight compression", f"{r.compression:.2f}×" if r.compression else None),
        ("test accuracy", _arrow(r.accuracy, ".2%")),
        ("accuracy drop", f"{100 * drop:.2f} points" if drop is not None else None),
        ("predicted FPS, search (unpruned → pruned)", _arrow(r.fps, ",.0f")),
        ("FPS of the final design, fold stage", f"{final_fps:,.0f}" if final_fps else None),
    ]
    return [(k, v) for k, v in rows if v is not None]


def _target(r: PruningReport) -> str | None:
    t = r.target
    if t.name == "fps" and t.fps:
        state = "" if t.met is None else (" (met)" if t.met else " (not met)")
        return f"{t.fps:,.0f} FPS{state}"
    return {"budget": "fastest within the accuracy drop", "ratio": "keep ratio"}.get(str(t.name)) if t.name else None


def target_sentence(prun: PruningReport | Mapping[str, Any]) -> str | None:
    """One sentence when the FPS target was not reached, else None."""
    r = _typed(prun)
    if r.target.met is not False:
        return None
    after, before = r.fps.after or 0.0, r.fps.before or 0.0
    what = "kept the unpruned channel counts" if r.channels.after == r.channels.before else \
        f"reached only {after:,.0f} FPS"
    return (f"The pruning search could not reach its target of {r.target.fps or 0:,.0f} FPS on this "
            f"board: it {what} (unpruned: {before:,.0f} FPS).")

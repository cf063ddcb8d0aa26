"""The pruning section of a run's report in words: labelled rows and the sentence on a missed FPS target.

Pure (plain dicts in, strings out); ``report_html`` renders them. The figures come from the pruning stage's
report dict (``hapfpga.pruning.stage.run_pruning_stage``); ``final_fps`` is the fold stage's FPS of the final
design (the summary's figure), shown next to the search's prediction so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["pruning_rows", "target_sentence"]


def _arrow(d: Any, fmt: str) -> str | None:
    if not isinstance(d, Mapping) or d.get("before") is None or d.get("after") is None:
        return None
    return f"{format(d['before'], fmt)} → {format(d['after'], fmt)}"


def pruning_rows(prun: Mapping[str, Any], final_fps: float | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows for the pruning table (figures that are missing are left out)."""
    rows: list[tuple[str, str | None]] = [
        ("method", str(prun.get("method")) if prun.get("method") else None),
        ("target", _target(prun)),
        ("conv/linear weights", _arrow(prun.get("params"), ",")),
        ("multiply-accumulates per input", _arrow(prun.get("macs"), ",")),
        ("weight compression", f"{prun['compression']:.2f}×" if prun.get("compression") else None),
        ("test accuracy", _arrow(prun.get("accuracy"), ".2%")),
        ("accuracy drop", f"{100 * prun['accuracy_drop']:.2f} points" if prun.get("accuracy_drop") is not None
         else None),
        ("predicted FPS, search (unpruned → pruned)",
         _arrow({"before": prun.get("fps_before"), "after": prun.get("fps_after")}, ",.0f")),
        ("FPS of the final design, fold stage", f"{final_fps:,.0f}" if final_fps else None),
    ]
    return [(k, v) for k, v in rows if v is not None]


def _target(prun: Mapping[str, Any]) -> str | None:
    t = prun.get("target")
    if t == "fps" and prun.get("target_fps"):
        met = prun.get("target_met")
        state = "" if met is None else (" (met)" if met else " (not met)")
        return f"{prun['target_fps']:,.0f} FPS{state}"
    return {"budget": "fastest within the accuracy drop", "ratio": "keep ratio"}.get(str(t)) if t else None


def target_sentence(prun: Mapping[str, Any]) -> str | None:
    """One sentence when the FPS target was not reached, else None."""
    if prun.get("target_met") is not False:
        return None
    after, before = prun.get("fps_after") or 0.0, prun.get("fps_before") or 0.0
    unpruned = prun.get("channels_after") == prun.get("channels_before")
    what = "kept the unpruned channel counts" if unpruned else f"reached only {after:,.0f} FPS"
    return (f"The pruning search could not reach its target of {prun.get('target_fps', 0):,.0f} FPS on this "
            f"board: it {what} (unpruned: {before:,.0f} FPS).")

"""FINN's SetFolding at its best: the fastest design it produces that fits the board, judged by FINN's report.

SetFolding (``step_target_fps_parallelization``) folds for a ``target_fps`` without looking at the board's
budget, and whether its result fits is not monotone in the target (REFERENCE.md). The fair baseline is
therefore a scan: a geometric sweep of ``target_fps`` until the designs are well past the budget, then a linear
refinement between the best fitting target and the next ones up. Each target runs finn-plus's estimate-only
fold steps on the specialised model; FINN's own estimate report says the FPS and whether it fits. Every
benchmark that compares with SetFolding calls :func:`setfolding_best_fit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import Resources

__all__ = ["ScanSettings", "FINE", "QUICK", "finn_estimate", "setfolding_best_fit"]

#: Resources a design must fit (FF is not in FINN's estimate report).
FIT_KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")


@dataclass(frozen=True)
class ScanSettings:
    """Geometric sweep from ``start`` by ``factor`` up to ``stop`` (stopping after ``max_misses`` targets in a row
    that do not fit), then ``refine_steps`` targets between the best fitting one and ``factor**2`` times it."""

    start: float = 50.0
    factor: float = 1.1
    max_misses: int = 6
    refine_steps: int = 20
    stop: float = 5e7


FINE = ScanSettings()
QUICK = ScanSettings(factor=1.25, max_misses=3, refine_steps=6)


def finn_estimate(result: Any) -> dict[str, Any]:
    """FPS, bottleneck and resource totals from FINN's estimate reports of a ``FinnBuildResult``."""
    res = result.reports["estimate_layer_resources"]
    perf = result.reports["estimate_network_performance"]
    return {
        "fps": float(perf["estimated_throughput_fps"]),
        "max_cycles": int(perf["max_cycles"]),
        "bottleneck": perf["max_cycles_node_name"],
        "total": Resources.from_dict(res.get("total") or {}),
    }


def setfolding_best_fit(
    spec_model: str | Path,
    work: str | Path,
    board: Any,
    *,
    clock_mhz: float = 100.0,
    settings: ScanSettings = FINE,
) -> dict[str, Any]:
    """The fastest SetFolding design of ``spec_model`` (a model after ``step_specialize_layers``) that fits
    ``board``'s budget by FINN's own estimate: ``{"target_fps", "n_builds", "fps", "max_cycles", "bottleneck",
    "total", "fits"}``. Builds go to ``work/sf_<target>``. Raises ``InfeasibleError`` when no target fits."""
    from ..errors import InfeasibleError
    from .build import FOLD_AND_ESTIMATE_STEPS, run_finn_steps

    work = Path(work)
    seen: dict[int, dict[str, Any]] = {}

    def run(t: int) -> dict[str, Any]:
        if t not in seen:
            res = run_finn_steps(spec_model, work / f"sf_{t}", board=board.finn_board, clock_mhz=clock_mhz,
                                 steps=FOLD_AND_ESTIMATE_STEPS, target_fps=t)
            rep = finn_estimate(res)
            rep["fits"] = not rep["total"].over(board.budget, FIT_KEYS)
            seen[t] = rep
        return seen[t]

    s = settings
    best_t, misses, t = None, 0, s.start
    while t < s.stop:
        rep = run(int(t))
        if rep["fits"]:
            misses = 0
            if best_t is None or rep["fps"] > seen[best_t]["fps"]:
                best_t = int(t)
        else:
            misses += 1
            if misses >= s.max_misses:  # well past the budget
                break
        t *= s.factor
    if best_t is None:
        raise InfeasibleError(f"no SetFolding target_fps from {s.start:g} up gives a design that fits {board.name}.")
    hi = int(best_t * s.factor * s.factor)
    for t in range(best_t, hi + 1, max(1, (hi - best_t) // s.refine_steps)):
        run(t)
    fitting = {t: r for t, r in seen.items() if r["fits"]}
    best = max(fitting, key=lambda k: fitting[k]["fps"])
    return {"target_fps": best, "n_builds": len(seen), **fitting[best]}

"""FINN's SetFolding at its best: the fastest design it produces that fits the board, judged by FINN's report.

SetFolding (``step_target_fps_parallelization``) folds for a ``target_fps`` without looking at the board's
budget, and whether its result fits is not monotone in the target (REFERENCE.md). The fair baseline is
therefore a scan: a geometric sweep of ``target_fps`` until the designs are well past the budget, then a linear
refinement between the best fitting target and the next ones up. Each target runs finn-plus's estimate-only
fold steps on the specialised model; FINN's own estimate report says the FPS and whether it fits. Every
benchmark that compares with SetFolding calls :func:`setfolding_best_fit`.

SetFolding's design depends only on the target's cycles per frame, so many targets of a scan give the same
folded graph, and the same graph gives the same estimate report. The scan therefore runs FINN's own
``step_target_fps_parallelization`` in process for each target (about 0.1 s on CNV-w2a2, a build about 0.5 s,
with the very configuration the build would use), fingerprints the folded model (every byte of it: nodes,
attributes, weights, datatypes, what the later fold/estimate steps read), and runs the whole build only for a
design it has not seen; a repeated design reuses that build's report. The targets visited, the chosen target and
its report are those of one build per target (``dedupe=False``, kept for that comparison). Designs are not shared
between models that differ only in their weights: ``step_minimize_bit_width`` sets widths from the weight values,
and FINN's estimate follows them (bnn_pynq TFC-w2a2 drawn with seeds 0 and 1, same target: 1 LUT apart).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..types import Resources

__all__ = ["ScanSettings", "FINE", "QUICK", "finn_estimate", "setfolding_best_fit", "design_fingerprint"]

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
    dedupe: bool = True,
) -> dict[str, Any]:
    """The fastest SetFolding design of ``spec_model`` (a model after ``step_specialize_layers``) that fits
    ``board``'s budget by FINN's own estimate: ``{"target_fps", "n_targets", "n_builds", "fps", "max_cycles",
    "bottleneck", "total", "fits"}``. ``n_targets``: targets scanned; ``n_builds``: FINN builds run (the distinct
    designs; every target when ``dedupe`` is off). Builds go to ``work/sf_<target>`` (with ``dedupe``, only the
    first target of each design gets one). Raises ``InfeasibleError`` when no target fits."""
    work = Path(work)
    builds: dict[str, dict[str, Any]] = {}  # design fingerprint (or target, without dedupe) -> its report
    fingerprint = _Folder(spec_model, work, board.finn_board, clock_mhz).fingerprint if dedupe else str

    def build(t: int) -> dict[str, Any]:
        key = fingerprint(t)
        if key not in builds:
            builds[key] = _build_report(spec_model, work / f"sf_{t}", board, clock_mhz, t)
        return builds[key]

    seen = _scan(build, settings, board)
    fitting = {t: r for t, r in seen.items() if r["fits"]}
    best = max(fitting, key=lambda k: fitting[k]["fps"])
    return {"target_fps": best, "n_targets": len(seen), "n_builds": len(builds), **fitting[best]}


def _build_report(spec_model: str | Path, out: Path, board: Any, clock_mhz: float, t: int) -> dict[str, Any]:
    """One finn-plus fold-and-estimate build of ``spec_model`` for ``target_fps=t``: FINN's estimate and the fit."""
    from .build import FOLD_AND_ESTIMATE_STEPS, run_finn_steps

    res = run_finn_steps(spec_model, out, board=board.finn_board, clock_mhz=clock_mhz,
                         steps=FOLD_AND_ESTIMATE_STEPS, target_fps=t)
    rep = finn_estimate(res)
    rep["fits"] = not rep["total"].over(board.budget, FIT_KEYS)
    return rep


def _scan(build: Callable[[int], dict[str, Any]], s: ScanSettings, board: Any) -> dict[int, dict[str, Any]]:
    """The targets of the scan and their reports, in the order visited: the geometric sweep, then the refinement
    (module docstring). ``build(t)`` gives the report of ``target_fps=t``."""
    from ..errors import InfeasibleError

    seen: dict[int, dict[str, Any]] = {}

    def run(t: int) -> dict[str, Any]:
        if t not in seen:
            seen[t] = build(t)
        return seen[t]

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
    return seen


class _Folder:
    """SetFolding's folded model of one specialised model for any target, in process, fingerprinted.

    Runs the first resolved step of the fold-and-estimate build (``step_target_fps_parallelization``, plus any of
    our steps :func:`~hapfpga.finn.build.with_hap_steps` would insert after it) with the configuration
    :func:`~hapfpga.finn.build.run_finn_steps` builds for that target; the later steps (apply folding config, which
    has no file here; minimize bit width; estimate reports) are a function of that model and of configuration
    fields that do not depend on the target (clock, part), so equal fingerprints mean equal reports."""

    def __init__(self, spec_model: str | Path, work: Path, finn_board: str, clock_mhz: float) -> None:
        from qonnx.core.modelwrapper import ModelWrapper

        from .build import FOLD_AND_ESTIMATE_STEPS
        from .shim import ensure_finn

        ensure_finn()
        self.model = ModelWrapper(str(Path(spec_model).resolve()))  # as create_model_wrapper loads it
        self.out = (work / "setfolding_folds").resolve()  # SetFolding's auto_folding_config.json goes to its report/
        self.finn_board, self.clock_mhz = finn_board, clock_mhz
        self.steps = FOLD_AND_ESTIMATE_STEPS

    def fold(self, t: int) -> Any:
        """The model after the build's folding steps for ``target_fps=t`` (a new ``ModelWrapper``)."""
        import copy

        from finn.builder.build_dataflow import resolve_build_steps

        from .build import finn_build_config, with_hap_steps
        from .shim import finn_quiet

        cfg = finn_build_config(self.out, board=self.finn_board, clock_mhz=self.clock_mhz, steps=self.steps,
                                target_fps=t)
        fns = with_hap_steps(resolve_build_steps(cfg))
        fold = fns[: [f.__name__ for f in fns].index(self.steps[1])]  # up to the build's second finn step
        model = copy.deepcopy(self.model)
        with finn_quiet(self.out / "build_dataflow.log"):
            for fn in fold:
                model = fn(model, cfg)
        return model

    def fingerprint(self, t: int) -> str:
        """:func:`design_fingerprint` of the folded model for ``target_fps=t``."""
        return design_fingerprint(self.fold(t))


def design_fingerprint(model: Any) -> str:
    """SHA-256 of a whole ONNX model (a qonnx ``ModelWrapper``), deterministically serialised: every node, attribute,
    initializer and tensor annotation, so two models with the same fingerprint are the same input to FINN."""
    return hashlib.sha256(model.model.SerializeToString(deterministic=True)).hexdigest()

"""Which graph the fold stage folds: today's embedded-threshold graph, or the standalone-threshold graph with each
MVAU RTL (DSP-packed) or HLS (``folding/variants.py``); ``folding.variants`` picks, ``auto`` keeps the faster.

``auto`` folds both with the same options and keeps the faster design that fits (a tie keeps the embedded graph,
so nothing changes where the variant does not help); with an FPS target (``folding.mode: fps``) the embedded
graph is kept whenever it reaches the target. The variant is skipped when the standalone-threshold graph has no
RTL MVAU or FINN cannot convert it. The chosen design comes with FINN's two files: the folding under the names FINN
gives after specialising and, for the mixed graph, the ``specialize_layers_config_file`` the build passes so that
FINN builds exactly that design (docs/margin.md, "The default command folds both graphs").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, HapError, InfeasibleError

__all__ = ["VARIANTS", "Design", "choose_design", "specialize_path", "mixed_specialised"]

VARIANTS = ("auto", "embedded", "mixed")


@dataclass(frozen=True)
class Design:
    """A folded design as FINN builds it: ``layers``/``plan`` under FINN's node names after specialising, the
    folding file's ``text``, the ``specialize`` config (None: FINN's default specialisation, embedded
    thresholds) and each folded variant's predicted FPS (``None``: infeasible)."""

    variant: str
    result: Any
    layers: list[Any]
    plan: Any
    text: str
    specialize: dict[str, Any] | None
    fps: dict[str, float | None]
    note: str | None = None
    #: the folded graph's node names -> FINN's after specialising (identity for the embedded graph)
    names: dict[str, str] | None = None

    def report(self) -> dict[str, Any]:
        return {"variant": self.variant, "variant_fps": dict(self.fps),
                **({"variant_note": self.note} if self.note else {}),
                **({"specialize": self.specialize} if self.specialize else {})}


def _embedded(layers: list[Any], board: Any, options: Any, target_fps: float | None, budget: Any = None) -> Design:
    from ..folding import optimise

    res = optimise(layers, board, options, target_fps=target_fps, budget=budget)
    return Design("embedded", res, list(layers), res.plan, res.plan.to_finn_json(), None, {"embedded": res.fps})


def _mixed(layers: list[Any], board: Any, options: Any, target_fps: float | None, budget: Any = None) -> Design:
    from ..folding import optimise
    from ..folding.variants import finn_design, finn_folding, finn_names, specialize_config

    res = optimise(layers, board, replace(options, impl_knob=True), target_fps=target_fps, budget=budget)
    choice = dict(res.plan)
    impl = {n: f.impl_style for n, f in choice.items() if f.impl_style}
    built, plan = finn_design(layers, res.plan)
    text = json.dumps(finn_folding(layers, choice), indent=2) + "\n"
    return Design("mixed", res, built, plan, text, specialize_config(layers, impl), {"mixed": res.fps},
                  names=finn_names(layers, impl))


def _rtl_layers(model_file: Path, work: Path, board: Any, clock: float, variants: str) -> tuple[list[Any], str]:
    """The standalone-threshold graph's layers, or ([], why not) where the variant has no knob."""
    from ..finn.graph import hw_layers_from_qonnx
    from ..folding.variants import rtl_mvaus

    try:
        layers, _ = hw_layers_from_qonnx(model_file, work, board, clock, rtl=True, strict=False)
    except HapError as e:  # FINN cannot convert it, or it holds a layer the estimator does not model
        if variants == "mixed":
            raise
        return [], f"standalone-threshold graph not folded: {e}"
    if not rtl_mvaus(layers):
        if variants == "mixed":
            raise ConfigError("folding.variants is 'mixed' but no MVAU of this model can be FINN's RTL MVAU "
                              "(signed weights, both widths at least 2 bits); use 'auto' or 'embedded'.")
        return [], "no MVAU can be RTL: the standalone-threshold graph has no knob"
    return layers, ""


def choose_design(model_file: Path, layers: list[Any], work: Path, board: Any, options: Any, *,
                  target_fps: float | None = None, variants: str = "auto", budget: Any = None) -> Design:
    """The design the fold stage keeps (module docstring); ``layers``: the embedded-threshold graph's; ``budget``
    (default the board's) is what both graphs are folded into (a caller tightening it until FINN's report fits)."""
    if variants == "embedded" or options.open_simulatable:
        return _embedded(layers, board, options, target_fps, budget)
    clock = float(options.clock_mhz or board.clock_mhz)
    rtl, why = _rtl_layers(model_file, work, board, clock, variants)
    if variants == "mixed":
        return _mixed(rtl, board, options, target_fps, budget)
    emb = err = None
    try:
        emb = _embedded(layers, board, options, target_fps, budget)
    except InfeasibleError as e:
        err = e
    if not rtl:
        if emb is None:
            raise err  # type: ignore[misc]
        return replace(emb, fps={"embedded": emb.result.fps, "mixed": None}, note=why)
    if emb is not None and target_fps is not None:  # the embedded graph reaches the target: keep it
        return replace(emb, fps={"embedded": emb.result.fps, "mixed": None},
                       note="FPS target reached by the embedded-threshold graph")
    try:
        mix = _mixed(rtl, board, options, target_fps, budget)
    except InfeasibleError:
        if emb is None:
            raise err from None  # type: ignore[misc]
        return replace(emb, fps={"embedded": emb.result.fps, "mixed": None})
    fps = {"embedded": emb.result.fps if emb else None, "mixed": mix.result.fps}
    keep = mix if emb is None or mix.result.fps > emb.result.fps else emb
    return replace(keep, fps=fps)


def specialize_path(folding: Path) -> Path:
    """Where ``hapfpga fold`` writes FINN's specialize config of a mixed design: ``F.specialize.json`` next to the
    folding ``F.json``; ``hapfpga build --folding F.json`` reads it from there."""
    return folding.with_name(folding.stem + ".specialize.json")


def read_specialize(folding: str | Path | None) -> dict[str, Any] | None:
    """A mixed design's specialize config, ``F.specialize.json`` next to the folding ``F.json`` (or None)."""
    sib = specialize_path(Path(folding)) if folding else None
    return json.loads(sib.read_text()) if sib is not None and sib.is_file() else None


def mixed_specialised(model_file: Path, spec: dict[str, Any], work: Path, board: Any, clock: float) -> Path:
    """FINN's specialised model of ``model_file`` with standalone thresholds and the per-node config ``spec``:
    the graph a mixed design's folding file names."""
    from ..finn.build import SPECIALIZE_STEPS, FinnStepError, run_finn_steps

    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "specialize_layers_mixed.json"
    cfg.write_text(json.dumps(spec, indent=1))
    try:
        res = run_finn_steps(model_file, work / "mixed", board=board.finn_board, clock_mhz=clock,
                             steps=SPECIALIZE_STEPS, specialize_layers_config_file=cfg, standalone_thresholds=True)
    except FinnStepError as e:
        raise ConfigError(f"FINN could not specialise '{model_file}' with the config next to the folding file at "
                          f"{e.step} (details in {e.log_file}); fold this model again with hapfpga fold.") from None
    return res.step_models["step_specialize_layers"]

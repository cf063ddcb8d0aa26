"""The folding of the design the FINN build stage builds, and our estimate of that design.

``max_fps`` / ``fps``: our optimiser; ``finn``: FINN's SetFolding, run by finn-plus and read back from its
model (``hapfpga.finn.readback``); ``none``: FINN's defaults (PE=SIMD=1); ``file``: a folding file the
user gives, applied by FINN and read back. In every mode ``folding.json`` is the file FINN applies in the
build, and the report's folding and estimate are of that design.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InfeasibleError
from ..runstate import atomic_write_text
from .base import Conf, Context, Stage, StageOutput

__all__ = ["FOLD", "MODES"]


#: What a folding mode returns: (plan, the layers it folds, folding.json's text, extra report keys).
_Choice = tuple[Any, list[Any], str, dict[str, Any]]
_NO_BOUND: dict[str, Any] = {"bound_fps": None, "binding_resource": None}


def _ours(conf: Conf, layers: list[Any], spec_model: Path, work: Path, model_file: Path,
          variants: str | None = None) -> _Choice:
    """``max_fps`` / ``fps``: our optimiser (fastest that fits, or cheapest meeting ``folding.fps``) on the graph
    ``folding.variants`` (or ``variants``) picks (``stages/variant.py``)."""
    from ..folding import FoldingOptions
    from .variant import choose_design

    f = conf.folding
    d = choose_design(model_file, layers, work, conf.board,
                      FoldingOptions.from_config(f, conf.clock_mhz, conf.board.part),
                      target_fps=f.fps if f.mode == "fps" else None, variants=variants or f.variants)
    res = d.result
    return d.plan, d.layers, d.text, {"bound_fps": res.bound_fps, "binding_resource": res.binding_resource,
                                      "margin": dict(res.margin), "budget": res.budget.as_dict(),
                                      "finn_cycles": f.finn_cycles, **d.report()}


def _defaults(conf: Conf, layers: list[Any], spec_model: Path, work: Path, model_file: Path) -> _Choice:
    """``none``: FINN's defaults (PE=SIMD=1)."""
    from ..finn.readback import plan_of_layers

    plan = plan_of_layers(layers)
    return plan, layers, plan.to_finn_json(), dict(_NO_BOUND)


def _finn(conf: Conf, layers: list[Any], spec_model: Path, work: Path, model_file: Path) -> _Choice:
    """``finn``: FINN's SetFolding, read back; the build applies FINN's own auto_folding_config.json."""
    from ..finn.readback import finn_apply_folding, plan_of_layers

    folded, auto = finn_apply_folding(spec_model, work / "setfolding", conf.board, conf.clock_mhz,
                                      target_fps=conf.folding.fps)
    assert auto is not None, "step_target_fps_parallelization ran with a target but wrote no auto_folding_config"
    return plan_of_layers(folded), folded, auto.read_text(), {**_NO_BOUND, "source": "FINN SetFolding, read back"}


def _file(conf: Conf, layers: list[Any], spec_model: Path, work: Path, model_file: Path) -> _Choice:
    """``file``: the user's folding file as it is for FINN; what FINN applied is read back."""
    from ..finn.readback import finn_apply_folding, plan_of_layers
    from .variant import mixed_specialised, specialize_path

    src = Path(conf.folding.file)
    if not src.is_file():
        raise ConfigError(f"Folding file '{src}' does not exist; give FINN's folding JSON or leave it out.")
    extra: dict[str, Any] = {**_NO_BOUND, "source": str(src)}
    sib = specialize_path(src)
    if sib.is_file():  # a mixed design of hapfpga fold: FINN specialises as its config says
        spec = json.loads(sib.read_text())
        spec_model = mixed_specialised(model_file, spec, work / "mixed_file", conf.board, conf.clock_mhz)
        extra.update(variant="mixed", specialize=spec)
    folded, _ = finn_apply_folding(spec_model, work / "apply_file", conf.board, conf.clock_mhz, folding_file=src)
    return plan_of_layers(folded), folded, src.read_text(), extra


#: ``folding.mode`` -> how the fold stage chooses the folding.
MODES: dict[str, Callable[[Conf, list[Any], Path, Path, Path], _Choice]] = {
    "max_fps": _ours, "fps": _ours, "none": _defaults, "finn": _finn, "file": _file,
}


def open_tool_stages(cfg: Any) -> list[str]:
    """The later stages a run config enables that simulate or synthesise the design with open tools (Verilator,
    Yosys), which read no HLS MVAU/VVAU (``rtlsim.prepare``)."""
    on = {"rtlsim": cfg.rtlsim is not None or cfg.build.rtlsim, "deploy.emulate": cfg.deploy.emulate,
          "synth": cfg.synth is not None}
    return [k for k, v in on.items() if v]


def _for_open_tools(ctx: Context, conf: Conf, choice: _Choice, redo: Callable[[], _Choice]) -> _Choice:
    """Where this run simulates or synthesises the design and the fold kept a mixed design with an HLS MVAU:
    under ``variants: auto`` keep the embedded-threshold design instead (its RTL stand-in is what those stages
    simulate), saying so; under ``mixed`` refuse now, in one sentence, not after the FINN build."""
    from ..rtlsim.prepare import SIMULATION, SYNTHESIS, check_chosen_design, chosen_hls_layers

    tools, (_, _, text, extra) = open_tool_stages(ctx.cfg), choice
    if not tools or not extra.get("specialize"):
        return choice
    folding, spec = json.loads(text), extra["specialize"]
    hls = chosen_hls_layers(folding, spec)
    if not hls:
        return choice
    use = SYNTHESIS if tools == ["synth"] else SIMULATION
    if conf.folding.variants == "mixed":
        check_chosen_design(folding, spec, use)
    try:
        plan, layers, text2, extra2 = redo()
    except InfeasibleError:  # only the mixed design fits: the open tools cannot take it
        check_chosen_design(folding, spec, use)
        raise
    note = (f"kept the embedded-threshold graph: the mixed design ({extra['variant_fps'].get('mixed'):,.0f} FPS "
            f"predicted) has HLS layer {hls[0]}, which {' and '.join(tools)} cannot take (an HLS layer becomes RTL only "
            "through Vitis HLS)")
    return plan, layers, text2, {**extra2, "variant_fps": dict(extra["variant_fps"]), "variant_note": note}


def fold(ctx: Context, conf: Conf) -> StageOutput:
    from ..estimate import estimate_network
    from ..finn.graph import hw_layers_from_qonnx

    work = ctx.path("work") / "hw"
    layers, spec_model = hw_layers_from_qonnx(
        ctx.model_file, work, conf.board, conf.clock_mhz, rtl=conf.folding.open_simulatable
    )
    choice = MODES[conf.folding.mode](conf, layers, spec_model, work, ctx.model_file)
    if conf.folding.mode in ("max_fps", "fps"):
        choice = _for_open_tools(ctx, conf, choice,
                                 lambda: _ours(conf, layers, spec_model, work, ctx.model_file, "embedded"))
    plan, folded_layers, text, extra = choice
    est = estimate_network(folded_layers, plan, conf.board, conf.clock_mhz)
    out = ctx.path("folding.json")
    atomic_write_text(out, text)
    return [out], {
        "mode": conf.folding.mode,
        "open_simulatable": conf.folding.open_simulatable,
        "variant": "embedded",  # unless the mode says otherwise (ours; a file with its specialize config)
        "predicted_fps": est.fps,
        **extra,
        "layers": {k: v for k, v in plan.to_finn_dict().items() if k != "Defaults"},
        "estimate": est.as_json(),
    }


def _file_digest(ctx: Context) -> str | None:
    """``folding.mode: file``: the file's content is part of the key, not only its name."""
    from ..runstate import stage_key
    from .variant import specialize_path

    f = ctx.cfg.folding
    if f.mode != "file" or not Path(f.file).is_file():
        return None
    sib = specialize_path(Path(f.file))
    return stage_key(Path(f.file).read_text() + (sib.read_text() if sib.is_file() else ""))


def _key_extra(ctx: Context) -> tuple[str | None, bool]:
    """The folding file's content, and whether open tools take the design where that can change our fold's choice
    (:func:`_for_open_tools`; elsewhere, e.g. ``hapfpga build --folding F --emulate``, adding them resumes)."""
    f = ctx.cfg.folding
    ours = f.mode in ("max_fps", "fps") and f.variants != "embedded" and not f.open_simulatable
    return _file_digest(ctx), ours and bool(open_tool_stages(ctx.cfg))


FOLD = Stage(
    "fold", fold, inputs=("export",), outputs=("folding.json",), config=("folding", "board", "clock_mhz"),
    key_extra=_key_extra, produces="the folding",
)

"""Run finn-plus dataflow build steps without Vivado and read FINN's reports.

We drive finn-plus's step functions ourselves (``resolve_build_steps`` + ``step(model, cfg)``)
instead of ``build_dataflow_cfg``: the latter ends in an exit handler that raises for the missing
Vivado version after the reports are written, and prints to the terminal. Each step's output model is
saved to ``OUT/intermediate_models/<step>.onnx`` as FINN does, which the verification chain and the
graph adapter read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HapError
from .shim import ensure_finn, finn_quiet

__all__ = [
    "RTL_PREFERRED",
    "rtl_build_kwargs",
    "ESTIMATE_STEPS",
    "RESIDUAL_STEPS",
    "with_residual_steps",
    "HW_CODEGEN_STEPS",
    "FOLD_AND_ESTIMATE_STEPS",
    "FinnBuildResult",
    "run_finn_steps",
    "read_estimate_reports",
]

#: FINN's specialize-layers config asking for RTL wherever a layer has an RTL variant (an "open-simulatable"
#: design: hapfpga.rtlsim simulates RTL layers with Verilator; finn-plus simulates HLS layers only through
#: Vivado).
RTL_PREFERRED: dict[str, Any] = {"Defaults": {"preferred_impl_style": ["rtl", "all"]}}


def rtl_build_kwargs(folder: str | Path) -> dict[str, Any]:
    """``run_finn_steps`` keywords for an open-simulatable build: RTL layers preferred, standalone thresholds
    (an RTL MVAU has no embedded activation, ``_mvu_rtl_possible`` in finn-plus's specialize_layers.py)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "specialize_layers_rtl.json"
    cfg.write_text(json.dumps(RTL_PREFERRED, indent=1))
    return {"specialize_layers_config_file": cfg, "standalone_thresholds": True}


#: finn-plus 1.6.1's ``estimate_only_dataflow_steps`` (copied so that we do not import finn to list them).
ESTIMATE_STEPS: tuple[str, ...] = (
    "step_qonnx_to_finn",
    "step_tidy_up",
    "step_streamline",
    "step_convert_to_hw",
    "step_minimize_bit_width_initial",
    "step_create_dataflow_partition",
    "step_specialize_layers",
    "step_target_fps_parallelization",
    "step_apply_folding_config",
    "step_minimize_bit_width",
    "step_generate_estimate_reports",
)
#: hapfpga's fork/join streamlining around step_streamline (``hapfpga.finn.streamline``; no-ops on chains)
RESIDUAL_STEPS: tuple[str, str] = (
    "hapfpga.finn.streamline.step_streamline_forks",
    "hapfpga.finn.streamline.step_streamline_fork_layouts",
)


def with_residual_steps(steps: Sequence[str]) -> tuple[str, ...]:
    """``steps`` with ``RESIDUAL_STEPS`` placed just before and just after ``step_streamline``."""
    steps = [s for s in steps if s not in RESIDUAL_STEPS]
    if "step_streamline" not in steps:
        return tuple(steps)
    i = steps.index("step_streamline")
    return (*steps[:i], RESIDUAL_STEPS[0], steps[i], RESIDUAL_STEPS[1], *steps[i + 1 :])


ESTIMATE_STEPS = with_residual_steps(ESTIMATE_STEPS)
HW_CODEGEN_STEPS: tuple[str, ...] = (*ESTIMATE_STEPS, "step_hw_codegen")
#: The estimate-only steps after step_specialize_layers: fold a specialised model and report its estimates.
FOLD_AND_ESTIMATE_STEPS: tuple[str, ...] = ESTIMATE_STEPS[
    ESTIMATE_STEPS.index("step_target_fps_parallelization") :
]


@dataclass
class FinnBuildResult:
    """Where a build put its outputs, and FINN's estimate reports when they were generated."""

    output_dir: Path
    log_file: Path
    step_models: dict[str, Path] = field(default_factory=dict)  # step name -> saved model
    step_seconds: dict[str, float] = field(default_factory=dict)
    reports: dict[str, Any] = field(default_factory=dict)  # report name (no .json) -> content

    @property
    def final_model(self) -> Path:
        return list(self.step_models.values())[-1]


def read_estimate_reports(output_dir: str | Path) -> dict[str, Any]:
    """FINN's JSON reports under ``OUT/report`` keyed by file stem (``estimate_layer_resources``...)."""
    rep = Path(output_dir) / "report"
    return {p.stem: json.loads(p.read_text()) for p in sorted(rep.glob("*.json"))}


def run_finn_steps(
    model_file: str | Path,
    output_dir: str | Path,
    *,
    board: str = "Pynq-Z2",
    clock_mhz: float = 100.0,
    folding_config_file: str | Path | None = None,
    target_fps: int | None = None,
    steps: Sequence[str] | None = None,
    specialize_layers_config_file: str | Path | None = None,
    standalone_thresholds: bool = False,
    extra_cfg: dict[str, Any] | None = None,
    progress: Any = None,
) -> FinnBuildResult:
    """Run finn-plus build ``steps`` (default: the estimate-only flow) on a QONNX/FINN model file.

    ``board`` is FINN's board name (``BoardSpec.finn_board``). FINN's prints go to
    ``OUT/build_dataflow.log``. Returns the saved model of every step and FINN's reports.
    ``progress`` is an optional callable ``(step_index, n_steps, step_name)``.
    """
    ensure_finn()
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    log_file = output_dir / "build_dataflow.log"
    steps = list(steps or ESTIMATE_STEPS)

    import finn.builder.build_dataflow_config as bc
    from finn.builder.build_dataflow import create_model_wrapper, resolve_build_steps

    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        synth_clk_period_ns=1000.0 / clock_mhz,
        board=board,
        shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ,
        steps=steps,
        generate_outputs=[bc.DataflowOutputType.ESTIMATE_REPORTS],
        standalone_thresholds=standalone_thresholds,
        save_intermediate_models=True,
    )
    if folding_config_file is not None:
        kwargs["folding_config_file"] = str(Path(folding_config_file).resolve())
    if target_fps is not None:
        kwargs["target_fps"] = int(target_fps)
    if specialize_layers_config_file is not None:
        kwargs["specialize_layers_config_file"] = str(Path(specialize_layers_config_file).resolve())
    kwargs.update(extra_cfg or {})
    cfg = bc.DataflowBuildConfig(**kwargs)

    result = FinnBuildResult(output_dir=output_dir, log_file=log_file)
    inter = output_dir / "intermediate_models"
    inter.mkdir(exist_ok=True)
    with finn_quiet(log_file):
        model = create_model_wrapper(str(Path(model_file).resolve()), cfg)
        step_fns = resolve_build_steps(cfg)
        for i, fn in enumerate(step_fns):
            name = fn.__name__
            if progress is not None:
                progress(i, len(step_fns), name)
            print(f"hapfpga: running FINN step {name} [{i + 1}/{len(step_fns)}]")
            t0 = time.perf_counter()
            try:
                model = fn(model, cfg)
            except HapError:
                raise
            except Exception as e:
                # FINN's own errors: keep them in the log, surface the step and message.
                import traceback

                traceback.print_exc()
                raise FinnStepError(name, e, log_file) from e
            result.step_seconds[name] = time.perf_counter() - t0
            path = inter / f"{name}.onnx"
            model.save(str(path))
            result.step_models[name] = path
    result.reports = read_estimate_reports(output_dir)
    return result


class FinnStepError(RuntimeError):
    """A finn-plus step failed; the traceback is in the build log."""

    def __init__(self, step: str, cause: Exception, log_file: Path):
        super().__init__(f"FINN step {step} failed: {type(cause).__name__}: {cause} (log: {log_file})")
        self.step = step
        self.cause = cause
        self.log_file = log_file

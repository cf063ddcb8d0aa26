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

from ..errors import HapError, ToolMissingError, UnsupportedLayerError
from .shim import ensure_finn, finn_quiet

__all__ = [
    "RTL_PREFERRED",
    "rtl_build_kwargs",
    "ESTIMATE_STEPS",
    "HW_CODEGEN_STEPS",
    "FULL_STEPS",
    "RTLSIM_STEPS",
    "FOLD_AND_ESTIMATE_STEPS",
    "SPECIALIZE_STEPS",
    "FinnBuildResult",
    "run_finn_steps",
    "finn_build_config",
    "read_estimate_reports",
    "step_hap_1d_to_4d",
    "step_hap_round_thresholds",
    "with_hap_steps",
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


def _finn_step_lists() -> dict[str, tuple[str, ...]]:
    """finn-plus's own step lists, read from the source of ``finn.builder.build_dataflow_config``
    (``default_build_dataflow_steps``, ``estimate_only_dataflow_steps``, ``hw_codegen_dataflow_steps``).

    Read with :mod:`ast` rather than imported: importing that module loads onnx and qonnx and needs finn's
    settings, and these lists are needed by modules that must stay cheap to import. ``tests/finn/test_steps.py`` checks
    that the lists read here are the ones finn-plus itself uses, and that they are still finn-plus 1.6.1's.
    """
    import ast
    import importlib.util

    spec = importlib.util.find_spec("finn.builder.build_dataflow_config")
    if spec is None or spec.origin is None:  # pragma: no cover - install problem
        raise ToolMissingError("finn-plus is not installed (finn.builder not found); run 'make install'.")
    tree = ast.parse(Path(spec.origin).read_text())
    values: dict[str, tuple[str, ...]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if not name.endswith("_dataflow_steps") or not isinstance(node.value, ast.List):
                continue
            items: list[str] = []
            for elt in node.value.elts:
                if isinstance(elt, ast.Starred) and isinstance(elt.value, ast.Name):
                    items.extend(values[elt.value.id])  # [*estimate_only_dataflow_steps, ...]
                else:
                    items.append(ast.literal_eval(elt))
            values[name] = tuple(items)
    return values


_FINN_LISTS = _finn_step_lists()
#: finn-plus's ``estimate_only_dataflow_steps``: QONNX -> folded FINN HW graph + estimate reports.
ESTIMATE_STEPS: tuple[str, ...] = _FINN_LISTS["estimate_only_dataflow_steps"]
#: finn-plus's ``hw_codegen_dataflow_steps``: the estimate steps + HLS/RTL code generation (no Xilinx tool).
HW_CODEGEN_STEPS: tuple[str, ...] = _FINN_LISTS["hw_codegen_dataflow_steps"]
#: finn-plus's ``default_build_dataflow_steps``: the whole flow to a bitfile and a deployment package (Vivado).
FULL_STEPS: tuple[str, ...] = _FINN_LISTS["default_build_dataflow_steps"]
#: The full flow up to FINN's own stitched-IP RTL simulation.
RTLSIM_STEPS: tuple[str, ...] = FULL_STEPS[: FULL_STEPS.index("step_measure_rtlsim_performance") + 1]
#: The estimate-only steps after step_specialize_layers: fold a specialised model and report its estimates.
FOLD_AND_ESTIMATE_STEPS: tuple[str, ...] = ESTIMATE_STEPS[
    ESTIMATE_STEPS.index("step_target_fps_parallelization") :
]
#: The estimate-only steps up to and including step_specialize_layers: a FINN HW graph, not yet folded.
SPECIALIZE_STEPS: tuple[str, ...] = ESTIMATE_STEPS[: ESTIMATE_STEPS.index("step_specialize_layers") + 1]


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


def finn_build_config(
    output_dir: Path,
    *,
    board: str,
    clock_mhz: float,
    steps: Sequence[str],
    folding_config_file: str | Path | None = None,
    target_fps: int | None = None,
    specialize_layers_config_file: str | Path | None = None,
    standalone_thresholds: bool = False,
    extra_cfg: dict[str, Any] | None = None,
) -> Any:
    """The ``DataflowBuildConfig`` :func:`run_finn_steps` builds with (one place, so that code running a single
    finn-plus step in process, as ``hapfpga.finn.setfolding`` does, uses exactly the build's configuration)."""
    import finn.builder.build_dataflow_config as bc

    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        synth_clk_period_ns=1000.0 / clock_mhz,
        board=board,
        shell_flow_type=bc.ShellFlowType.VIVADO_ZYNQ,
        steps=list(steps),
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
    return bc.DataflowBuildConfig(**kwargs)


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

    from finn.builder.build_dataflow import create_model_wrapper, resolve_build_steps

    cfg = finn_build_config(
        output_dir,
        board=board,
        clock_mhz=clock_mhz,
        folding_config_file=folding_config_file,
        target_fps=target_fps,
        steps=steps,
        specialize_layers_config_file=specialize_layers_config_file,
        standalone_thresholds=standalone_thresholds,
        extra_cfg=extra_cfg,
    )

    result = FinnBuildResult(output_dir=output_dir, log_file=log_file)
    inter = output_dir / "intermediate_models"
    inter.mkdir(exist_ok=True)
    with finn_quiet(log_file):
        model = create_model_wrapper(str(Path(model_file).resolve()), cfg)
        step_fns = with_hap_steps(resolve_build_steps(cfg))
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


def step_hap_1d_to_4d(model: Any, cfg: Any) -> Any:
    """1D networks (N×C×L tensors) onto FINN's 2D dataflow layers: qonnx's ``Change3DTo4DTensors`` makes every
    tensor N×C×L×1 and every Conv/MaxPool window (k, 1), as finn-examples' VGG10-1D build does before
    streamlining (its ``step_pre_streamline``). A graph without 3D input is returned unchanged; one whose nodes
    the transformation does not handle is refused (qonnx would only warn and leave it 3D). The input and the
    MultiThresholds are re-annotated NCHW (docs/flatten.md: a stale 3D layout made an input quantiser's
    transpose a Shuffle)."""
    import qonnx.core.data_layout as DataLayout
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.change_3d_tensors_to_4d import Change3DTo4DTensors, _find_invalid_nodes
    from qonnx.transformation.infer_data_layouts import InferDataLayouts

    if len(model.get_tensor_shape(model.graph.input[0].name)) != 3:
        return model
    bad = sorted(set(_find_invalid_nodes(model)))
    if bad:
        raise UnsupportedLayerError(
            f"This 1D network has {', '.join(bad)} node(s), which qonnx's Change3DTo4DTensors cannot turn into "
            "FINN's 2D layers (FINN step step_hap_1d_to_4d); use only QuantConv1d, BatchNorm1d, MaxPool1d, "
            "quantised activations and QuantLinear."
        )
    model = model.transform(Change3DTo4DTensors())
    # the input's layout annotation (qonnx guessed "NWC" for the 3D input) is stale on the N×C×L×1 tensor: without
    # this, InferThresholdingLayer keeps an input quantiser's thresholds in front of the NCHW->NHWC Transpose,
    # which becomes a Shuffle (a frame buffer) instead of the graph's input transpose as in 2D
    model.set_tensor_layout(model.graph.input[0].name, DataLayout.NCHW)
    for node in model.get_nodes_by_op_type("MultiThreshold"):  # a 3D layout copied from that guess or the 3D shape
        inst = getCustomOp(node)
        if len(model.get_tensor_shape(node.input[0])) == 4 and inst.get_nodeattr("data_layout") in ("NCW", "NWC"):
            inst.set_nodeattr("data_layout", "NCHW")
    model = model.transform(InferDataLayouts())
    for node in model.get_nodes_by_op_type("MaxPool"):  # qonnx extends kernel/pads/strides, not dilations
        for attr in node.attribute:
            if attr.name == "dilations" and len(attr.ints) == 1:
                attr.ints.append(1)
    return model


def step_hap_round_thresholds(model: Any, cfg: Any) -> Any:
    """FINN's own ``RoundAndClipThresholds`` right after ``step_convert_to_hw``: thresholds on integer inputs
    rounded up and clipped to the input's range, which does not change any output (an integer ``x >= t`` iff
    ``x >= ceil(t)``; below the range is always true, above never). finn-plus 1.6.1 runs it only after
    ``MinimizeWeightBitWidth``, whose ``Thresholding`` asserts non-negative thresholds on unsigned inputs: a
    signed input quantiser (Brevitas ``QuantIdentity(bit_width=8)`` on the UINT8 pixels) has negative
    thresholds and failed there (``step_minimize_bit_width_initial``)."""
    from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds

    return model.transform(RoundAndClipThresholds())


from .avgpool import step_hap_avgpool_shift  # noqa: E402  (no finn import)
from .streamline import (  # noqa: E402  (no finn import)
    step_streamline_dwconv,
    step_streamline_fork_layouts,
    step_streamline_forks,
)

#: Our steps and the finn-plus step each runs right after (when that step is in the list).
HAP_STEPS_AFTER: dict[str, tuple[Any, ...]] = {
    "step_qonnx_to_finn": (step_hap_avgpool_shift,),  # TruncAvgPool2d's shift when the kernel area is not 2^n
    # 1D convolutions as 2D (qonnx Change3DTo4DTensors); then float scales moved through forks and joins, and
    # channelwise scales past depthwise convolutions (finn-examples' MobileNet-v1 streamlining)
    "step_tidy_up": (step_hap_1d_to_4d, step_streamline_forks, step_streamline_dwconv),
    "step_streamline": (step_streamline_fork_layouts,),  # NCHW<->NHWC transposes around forks cancelled
    "step_convert_to_hw": (step_hap_round_thresholds,),
}


def with_hap_steps(step_fns: Sequence[Any]) -> list[Any]:
    """finn-plus's resolved steps with ours (:data:`HAP_STEPS_AFTER`) inserted after the step each follows."""
    out: list[Any] = []
    for fn in step_fns:
        out.append(fn)
        out.extend(HAP_STEPS_AFTER.get(fn.__name__, ()))
    return out


class FinnStepError(RuntimeError):
    """A finn-plus step failed; the traceback is in the build log."""

    def __init__(self, step: str, cause: Exception, log_file: Path):
        super().__init__(f"FINN step {step} failed: {type(cause).__name__}: {cause} (log: {log_file})")
        self.step = step
        self.cause = cause
        self.log_file = log_file

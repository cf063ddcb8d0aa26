"""``hapfpga build``: FINN build from a QONNX model, up to where the installed tools allow.

Without Vivado (this repository's CI) we run finn-plus's estimate-only steps, then its HW code
generation (``step_hw_codegen``: HLS C++ and filled RTL templates, which needs no Xilinx tool), and
assemble the deployment package with the simulated backend. With ``bitstream``/``rtlsim`` we need
Vivado and Vitis HLS in a version finn-plus 1.6.1 supports (its README: 2022.2 or 2024.2; it reads
the version from ``XILINX_VIVADO`` like ``finn.util.basic.get_vivado_version``) and run finn-plus's
``default_build_dataflow_steps``: HLS IP generation, FIFO sizing, stitched IP, RTL simulation
performance, synthesis, bitfile, driver (``settings.json`` for finn-plus-driver) and FINN's
deployment package, which our package then wraps. When the tools are missing we still do the
Vivado-free part, then raise ``ToolMissingError`` with one sentence naming what is missing and
what the user got; there is no fake success.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ToolMissingError
from .build import (
    ESTIMATE_STEPS,
    HW_CODEGEN_STEPS,
    FinnBuildResult,
    rtl_build_kwargs,
    run_finn_steps,
    with_residual_steps,
)

__all__ = [
    "SUPPORTED_VIVADO",
    "FULL_STEPS",
    "RTLSIM_STEPS",
    "XilinxTools",
    "detect_xilinx",
    "BuildOutputs",
    "build",
    "finn_build_dir",
]

#: Vivado/Vitis versions finn-plus 1.6.1 supports (its README, "Xilinx Tools").
SUPPORTED_VIVADO: tuple[tuple[int, int], ...] = ((2022, 2), (2024, 2))

#: finn-plus 1.6.1's ``default_build_dataflow_steps`` (copied so that listing them imports no finn).
FULL_STEPS: tuple[str, ...] = (
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
    "step_transpose_decomposition",
    "step_generate_estimate_reports",
    "step_assign_ddr_weight_offsets",
    "step_generate_hardware",
    "step_create_stitched_ip",
    "step_measure_rtlsim_performance",
    "step_out_of_context_synthesis",
    "step_prepare_synthesis",
    "step_synthesize_bitfile",
    "step_make_driver",
    "step_deployment_package",
)
FULL_STEPS = with_residual_steps(FULL_STEPS)  # fork/join streamlining (hapfpga.finn.streamline)
#: The full flow up to FINN's RTL simulation of the stitched IP (``--rtlsim`` without ``--bitstream``).
RTLSIM_STEPS: tuple[str, ...] = FULL_STEPS[: FULL_STEPS.index("step_measure_rtlsim_performance") + 1]


@dataclass(frozen=True)
class XilinxTools:
    """What of Vivado / Vitis HLS this environment has."""

    vivado_dir: Path | None
    vivado_bin: Path | None
    version: tuple[int, int] | None
    hls_bin: Path | None

    @property
    def version_str(self) -> str:
        return "unknown version" if self.version is None else f"{self.version[0]}.{self.version[1]}"

    @property
    def supported(self) -> bool:
        return self.vivado_bin is not None and self.hls_bin is not None and self.version in SUPPORTED_VIVADO

    def missing(self) -> str | None:
        """What is missing, as a phrase for the user (None when the full flow can run)."""
        want = " or ".join(f"{y}.{m}" for y, m in SUPPORTED_VIVADO)
        if self.vivado_dir is None:
            return f"Vivado and Vitis HLS {want} (XILINX_VIVADO is not set)"
        if self.vivado_bin is None:
            return f"the vivado executable (XILINX_VIVADO={self.vivado_dir} has no bin/vivado)"
        if self.version not in SUPPORTED_VIVADO:
            return f"a Vivado version finn-plus 1.6.1 supports ({want}; XILINX_VIVADO points to {self.version_str})"
        if self.hls_bin is None:
            return f"Vitis HLS {self.version_str} (XILINX_HLS is not set or has no bin/vitis_hls or bin/vitis-run)"
        return None


def detect_xilinx(env: Mapping[str, str] | None = None) -> XilinxTools:
    """Vivado and Vitis HLS as finn-plus finds them: ``XILINX_VIVADO``, ``XILINX_HLS``, version from the path."""
    env = os.environ if env is None else env
    vdir = env.get("XILINX_VIVADO") or None
    vivado_dir = Path(vdir) if vdir else None
    vivado_bin = None
    version = None
    if vivado_dir is not None:
        cand = vivado_dir / "bin" / "vivado"
        vivado_bin = cand if cand.is_file() else None
        # finn.util.basic.get_vivado_version: r"\b(20\d{2})\.(1|2)\b" on XILINX_VIVADO
        m = re.search(r"\b(20\d{2})\.(1|2)\b", str(vivado_dir))
        version = (int(m.group(1)), int(m.group(2))) if m else None
    hls_bin = None
    hdir = env.get("XILINX_HLS")
    if hdir:
        for name in ("vitis_hls", "vitis-run"):  # vitis-run replaces vitis_hls after 2024.2 (finn.util.hls)
            for base in (Path(hdir), Path(hdir.replace("Vitis", "Vitis_HLS"))):
                if (base / "bin" / name).is_file():
                    hls_bin = base / "bin" / name
                    break
            if hls_bin:
                break
    return XilinxTools(vivado_dir=vivado_dir, vivado_bin=vivado_bin, version=version, hls_bin=hls_bin)


@contextlib.contextmanager
def finn_build_dir(path: str | Path) -> Iterator[Path]:
    """Point FINN's ``FINN_BUILD_DIR`` (where ``make_build_dir`` puts generated code) at ``path``."""
    from .shim import ensure_finn

    ensure_finn()
    from finn.util.settings import get_settings

    path = Path(path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    s = get_settings()
    old, old_env = s.finn_build_dir, os.environ.get("FINN_BUILD_DIR")
    s.finn_build_dir = path
    os.environ["FINN_BUILD_DIR"] = str(path)
    try:
        yield path
    finally:
        s.finn_build_dir = old
        if old_env is None:
            os.environ.pop("FINN_BUILD_DIR", None)
        else:
            os.environ["FINN_BUILD_DIR"] = old_env


@dataclass
class BuildOutputs:
    """What ``build`` produced under ``out_dir``."""

    out_dir: Path
    finn: FinnBuildResult
    finn_estimate: dict[str, Any]
    hw_code_dir: Path | None = None
    deploy: Any = None  # hapfpga.deploy.DeployPackage
    bitfile: Path | None = None
    rtlsim: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    report_html: Path | None = None

    def summary(self) -> dict[str, Any]:
        fe = self.finn_estimate
        return {
            "out_dir": str(self.out_dir),
            "finn_dir": str(self.finn.output_dir),
            "fps": fe.get("fps"),
            "bottleneck": fe.get("max_cycles_node"),
            "total": fe.get("total"),
            "fits": fe.get("fits"),
            "hw_code_dir": None if self.hw_code_dir is None else str(self.hw_code_dir),
            "deploy": None if self.deploy is None else str(self.deploy.path),
            "deploy_zip": None if self.deploy is None else str(self.deploy.zip_path),
            "bitfile": None if self.bitfile is None else str(self.bitfile),
            "rtlsim": self.rtlsim,
            "timings": self.timings,
        }


def _full_flow_cfg(board: Any, rtlsim: bool, bitstream: bool) -> dict[str, Any]:
    import finn.builder.build_dataflow_config as bc

    outs = [bc.DataflowOutputType.ESTIMATE_REPORTS, bc.DataflowOutputType.STITCHED_IP]
    if rtlsim:
        outs.append(bc.DataflowOutputType.RTLSIM_PERFORMANCE)
    if bitstream:
        outs += [bc.DataflowOutputType.BITFILE, bc.DataflowOutputType.PYNQ_DRIVER,
                 bc.DataflowOutputType.DEPLOYMENT_PACKAGE]
    flow = bc.ShellFlowType.VITIS_ALVEO if board.shell_flow == "vitis_alveo" else bc.ShellFlowType.VIVADO_ZYNQ
    return {"generate_outputs": outs, "shell_flow_type": flow, "auto_fifo_depths": True}


def _verilator_rtlsim(model_file: Path, folding_file: str | Path | None, board: Any, out: Path, clock: float,
                      manifest: Mapping[str, Any], x: Any, frames: int) -> dict[str, Any]:
    """``hapfpga.rtlsim`` on ``frames`` samples in the graph's input domain (test data × input scale, or random)."""
    import numpy as np

    from ..rtlsim.stage import run_rtlsim_stage

    shape = tuple(manifest["input_shape"][1:])
    if x is not None:
        xs = np.asarray(x[:frames], np.float32).reshape((-1, *shape)) * np.float32(manifest["input_scale"])
        if manifest.get("input_integer"):
            xs = np.round(xs)
    else:
        rng = np.random.default_rng(0)
        xs = (rng.integers(0, 256, (frames, *shape)).astype(np.float32) if manifest.get("input_dtype") == "UINT8"
              else rng.random((frames, *shape), dtype=np.float32))
    return run_rtlsim_stage(model_file, folding_file, board, out, xs, n=len(xs), clock_mhz=clock)


def build(
    model_file: str | Path,
    out_dir: str | Path,
    board: Any,
    *,
    folding_file: str | Path | None = None,
    target_fps: int | None = None,
    clock_mhz: float | None = None,
    bitstream: bool = False,
    rtlsim: bool = False,
    codegen: bool = True,
    test_data: tuple[Any, Any] | None = None,
    input_scale: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    env: Mapping[str, str] | None = None,
    rtlsim_frames: int = 8,
    open_simulatable: bool = False,
) -> BuildOutputs:
    """FINN build of ``model_file`` (QONNX) for ``board`` into ``out_dir``.

    Writes ``out_dir/finn`` (FINN's output dir), ``out_dir/hw_code`` (generated HLS/RTL when
    ``codegen``), ``out_dir/deploy`` + ``deploy.zip``, ``out_dir/build.json`` and ``report.html``.
    With ``bitstream`` and no supported Vivado, everything Vivado-free is still built and
    ``ToolMissingError`` is raised afterwards. ``rtlsim`` without Vivado runs hapfpga's Verilator
    simulation of FINN's RTL instead (``hapfpga.rtlsim``; bit-exact check against FINN's Python
    execution and measured cycles on ``rtlsim_frames`` test samples); it raises ``ToolMissingError``
    itself when Verilator or a C++ compiler is missing. ``folding_file`` (FINN's folding JSON) wins over
    ``target_fps`` (FINN's SetFolding). ``open_simulatable``: RTL variants wherever FINN has one, with
    standalone thresholds (``rtl_build_kwargs``), as ``folding.open_simulatable`` in ``hapfpga run``.
    """
    from ..pipeline import finn_estimate_summary

    model_file = Path(model_file)
    if not model_file.is_file():
        raise ConfigError(f"Model file '{model_file}' does not exist; give the QONNX .onnx file to build.")
    if folding_file is not None and not Path(folding_file).is_file():
        raise ConfigError(f"Folding file '{folding_file}' does not exist; give FINN's folding JSON or leave it out.")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    clock = float(clock_mhz or board.clock_mhz)
    tools = detect_xilinx(env)
    want_full = bitstream or rtlsim
    full_ok = want_full and tools.supported
    finn_dir = out / "finn"
    if finn_dir.exists():
        shutil.rmtree(finn_dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if full_ok:
        steps = FULL_STEPS if bitstream else RTLSIM_STEPS
        extra = _full_flow_cfg(board, rtlsim, bitstream)
    else:
        steps = HW_CODEGEN_STEPS if codegen else ESTIMATE_STEPS
        extra = None
    hw_code = out / "hw_code"
    rtl_kw = rtl_build_kwargs(out) if open_simulatable else {}
    with finn_build_dir(hw_code):
        res = run_finn_steps(model_file, finn_dir, board=board.finn_board, clock_mhz=clock,
                             folding_config_file=folding_file, target_fps=target_fps, steps=steps,
                             extra_cfg=extra, progress=progress, **rtl_kw)
    timings["finn"] = time.perf_counter() - t0
    est = finn_estimate_summary(res.reports, board)
    outputs = BuildOutputs(out_dir=out, finn=res, finn_estimate=est, timings=timings,
                           hw_code_dir=hw_code if (codegen or full_ok) and any(hw_code.iterdir()) else None)
    if full_ok:
        bits = sorted((finn_dir / "bitfile").glob("*.bit")) if (finn_dir / "bitfile").is_dir() else []
        outputs.bitfile = bits[0] if bits else None
        perf = finn_dir / "report" / "rtlsim_performance.json"
        if perf.is_file():
            outputs.rtlsim = json.loads(perf.read_text())
        if bitstream and outputs.bitfile is None:
            raise ToolMissingError(f"FINN's synthesis ran but wrote no bitfile under {finn_dir / 'bitfile'}; "
                                   f"see {res.log_file} for Vivado's errors.")

    # deployment package (simulated backend always; board backend when a bitfile exists)
    from ..deploy.package import make_deployment_package

    t1 = time.perf_counter()
    x, y = (None, None) if test_data is None else test_data
    outputs.deploy = make_deployment_package(out / "deploy", finn_dir, board=board, clock_mhz=clock, x_test=x,
                                             y_test=y, input_scale=input_scale, estimated_fps=est["fps"])
    timings["deploy_package"] = time.perf_counter() - t1

    # RTL simulation without Vivado: hapfpga's Verilator simulation of FINN's RTL (bit-exact check + cycles)
    if rtlsim and not full_ok:
        outputs.rtlsim = _verilator_rtlsim(model_file, folding_file, board, out, clock, outputs.deploy.manifest,
                                           None if test_data is None else test_data[0], rtlsim_frames)
        timings["rtlsim"] = float(outputs.rtlsim.get("build_seconds", 0.0) or 0.0)

    # build.json + report.html
    report = {"board": board.as_dict(), "clock_mhz": clock, "model": {"name": model_file.stem},
              "finn_estimate": est, "timings": {**res.step_seconds, **timings}}
    if outputs.rtlsim is not None:
        report["rtlsim"] = outputs.rtlsim
    (out / "build.json").write_text(json.dumps({**report, "outputs": outputs.summary()}, indent=2, default=str))
    from ..report_html import write_report_html

    outputs.report_html = write_report_html(report, out / "report.html")

    if bitstream and not full_ok:
        what = "a bitstream"
        raise ToolMissingError(
            f"{what[0].upper()}{what[1:]} needs {tools.missing()}, so {out} holds only the estimate-only FINN "
            f"build{', the generated HLS/RTL code' if outputs.hw_code_dir else ''}"
            f"{', a Verilator RTL simulation' if outputs.rtlsim else ''} and a deployment package with the "
            "simulated backend."
        )
    return outputs

"""The FINN flows of the ``finn_build`` stage, up to where the installed tools allow.

Without Vivado (this repository's CI) we run finn-plus's estimate-only steps, optionally with its HW code
generation (``step_hw_codegen``: HLS C++ and filled RTL templates, which needs no Xilinx tool); the
deployment package with the simulated backend is the ``deploy`` stage's. With ``bitstream``/``rtlsim`` we need
Vivado and Vitis HLS in a version finn-plus 1.6.1 supports (its README: 2022.2 or 2024.2; it reads
the version from ``XILINX_VIVADO`` like ``finn.util.basic.get_vivado_version``) and run finn-plus's
``default_build_dataflow_steps``: HLS IP generation, FIFO sizing, stitched IP, RTL simulation
performance, synthesis, bitfile, driver (``settings.json`` for finn-plus-driver) and FINN's
deployment package, which our package then wraps. When the tools are missing the flow still does the
Vivado-free part, then raises ``ToolMissingError`` with one sentence naming what is missing and what the user
got (``hapfpga.stages.runner``); there is no fake success. This module orchestrates nothing: the stage
registry (``hapfpga.stages``) decides what runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import (
    ESTIMATE_STEPS,
    FULL_STEPS,
    HW_CODEGEN_STEPS,
    RTLSIM_STEPS,
    FinnBuildResult,
    rtl_build_kwargs,
    run_finn_steps,
)

__all__ = [
    "SUPPORTED_VIVADO",
    "FULL_STEPS",
    "RTLSIM_STEPS",
    "FLOW_STEPS",
    "XilinxTools",
    "detect_xilinx",
    "choose_flow",
    "run_flow",
    "flow_outputs",
    "finn_build_dir",
]

#: Vivado/Vitis versions finn-plus 1.6.1 supports (its README, "Xilinx Tools").
SUPPORTED_VIVADO: tuple[tuple[int, int], ...] = ((2022, 2), (2024, 2))

# FULL_STEPS / RTLSIM_STEPS: finn-plus's own ``default_build_dataflow_steps`` (see build.py).


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


#: The FINN flows the finn_build stage runs, by name: finn-plus's step list for each.
FLOW_STEPS: dict[str, tuple[str, ...]] = {
    "estimate": ESTIMATE_STEPS,  # estimate reports only
    "codegen": HW_CODEGEN_STEPS,  # + FINN's HLS/RTL code generation (no Xilinx tool needed)
    "rtlsim": RTLSIM_STEPS,  # Vivado: stitched IP + FINN's RTL simulation of it
    "full": FULL_STEPS,  # Vivado: up to the bitfile, driver and FINN's deployment package
}


def choose_flow(*, bitstream: bool, rtlsim: bool, codegen: bool, tools: XilinxTools) -> str:
    """The FINN flow for what was asked and what is installed (a key of ``FLOW_STEPS``).

    Without a supported Vivado the Vivado-free part runs; ``bitstream`` then ends in ``ToolMissingError``
    after the rest of the flow, and ``rtlsim`` runs hapfpga's Verilator simulation instead.
    """
    if tools.supported and bitstream:
        return "full"
    if tools.supported and rtlsim:
        return "rtlsim"
    return "codegen" if codegen else "estimate"


def run_flow(
    flow: str,
    model_file: str | Path,
    finn_dir: str | Path,
    board: Any,
    clock_mhz: float,
    *,
    folding_file: str | Path | None,
    hw_code_dir: str | Path,
    work_dir: str | Path,
    open_simulatable: bool = False,
    specialize: dict[str, Any] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> FinnBuildResult:
    """Run FINN's ``flow`` on ``model_file`` into ``finn_dir``; generated code goes to ``hw_code_dir``
    (``FINN_BUILD_DIR``). ``open_simulatable``: RTL variants, standalone thresholds (``rtl_build_kwargs``);
    ``specialize``: FINN's per-node ``specialize_layers_config_file`` of the fold stage's mixed design, with
    standalone thresholds (``folding/variants.py``)."""
    extra = _full_flow_cfg(board, flow == "rtlsim", flow == "full") if flow in ("rtlsim", "full") else None
    rtl_kw = rtl_build_kwargs(work_dir) if open_simulatable else {}
    if specialize is not None and not open_simulatable:
        cfg = Path(work_dir) / "specialize_layers_mixed.json"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(json.dumps(specialize, indent=1))
        rtl_kw = {"specialize_layers_config_file": cfg, "standalone_thresholds": True}
    with finn_build_dir(hw_code_dir):
        return run_finn_steps(model_file, finn_dir, board=board.finn_board, clock_mhz=clock_mhz,
                              folding_config_file=folding_file, steps=FLOW_STEPS[flow], extra_cfg=extra,
                              progress=progress, **rtl_kw)


def flow_outputs(finn_dir: str | Path) -> dict[str, Any]:
    """What a Vivado flow left in FINN's output dir: the bitfile and FINN's RTL simulation performance."""
    finn_dir = Path(finn_dir)
    bits = sorted((finn_dir / "bitfile").glob("*.bit")) if (finn_dir / "bitfile").is_dir() else []
    perf = finn_dir / "report" / "rtlsim_performance.json"
    return {"bitfile": str(bits[0]) if bits else None,
            "finn_rtlsim": json.loads(perf.read_text()) if perf.is_file() else None}

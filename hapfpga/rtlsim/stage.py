"""The ``rtlsim`` verification stage: QONNX + folding -> Verilator simulation -> dict for report.json.

``run_rtlsim_stage`` is what ``hapfpga run`` / ``hapfpga build --rtlsim`` call (the lead wires it in) and
what ``hapfpga rtlsim`` runs. It fails fast with ``ToolMissingError`` (one sentence, exit 2) when the
``verilator`` package or a C++ compiler is missing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..boards import BoardSpec
from ..errors import ConfigError
from .tools import find_toolchain

__all__ = ["SIMULATED_DESIGN", "run_rtlsim_stage", "partition_input", "rtllib_fixes", "write_design_folding"]

#: report.json ``rtlsim.design``: which graph was simulated.
SIMULATED_DESIGN = {
    "chosen": "the design FINN builds (the fold stage's specialize config, standalone thresholds)",
    "rtl_preferred": "FINN's RTL variant of every layer that has one, standalone thresholds, the build's folding",
}


def partition_input(parent_path: str | Path | None, x: np.ndarray) -> np.ndarray:
    """Run FINN's dataflow parent up to the partition (e.g. CNV's NCHW->NHWC Transpose) on N samples."""
    if parent_path is None:
        return x
    from qonnx.core.modelwrapper import ModelWrapper

    from .sim import run_python

    parent = ModelWrapper(str(parent_path))
    sdp = next(n for n in parent.graph.node if n.op_type == "StreamingDataflowPartition")
    head = []
    for n in parent.graph.node:
        if n is sdp or n.name == sdp.name:
            break
        head.append(n.name)
    if not head:
        return x
    gin = parent.graph.input[0].name
    shape = parent.get_tensor_shape(gin)
    outs = []
    for i in range(x.shape[0]):
        ctx = run_python(parent, head, {gin: np.asarray(x[i : i + 1], np.float32).reshape(shape)})
        outs.append(ctx[sdp.input[0]])
    return np.concatenate(outs)


def rtllib_fixes(model: Any) -> list[dict[str, Any]]:
    """The behaviour-changing finn-rtllib fixes (``sources.RTLLIB_BUG_FIXES``) and the nodes they matter for."""
    from finn.util.basic import getHWCustomOp

    from .sources import RTLLIB_BUG_FIXES, mvu_rtl_queue_overflows

    hit = []
    for n in model.graph.node:
        if n.op_type == "MVAU_rtl":
            inst = getHWCustomOp(n)
            if mvu_rtl_queue_overflows(inst.get_nodeattr("MW"), inst.get_nodeattr("SIMD")):
                hit.append(n.name)
    if not hit:
        return []
    return [{"file": "mvu_vvu_axi.sv", "fix": RTLLIB_BUG_FIXES["mvu_vvu_axi.sv"], "nodes": hit}]


def write_design_folding(
    work: Path, folding_json: str | Path | None, specialize: dict[str, Any] | None, use: tuple[str, str, str] | None = None
) -> Path | None:
    """The folding config of the design to simulate (or synthesise: ``use`` = ``prepare.SYNTHESIS``), written next
    to it (or None): a chosen design's (``specialize`` given) as it is, after refusing in seconds an HLS MVAU/VVAU
    it names; otherwise mapped onto the RTL-specialised graph (``prepare.design_folding``)."""
    from .prepare import SIMULATION, check_chosen_design, design_folding

    if folding_json is None:
        return None
    if not Path(folding_json).is_file():
        raise ConfigError(f"folding file '{folding_json}' does not exist; give FINN's folding JSON or leave it out.")
    folding = json.loads(Path(folding_json).read_text())
    check_chosen_design(folding, specialize, use or SIMULATION)
    fold_file = work / "folding_rtl.json"
    fold_file.write_text(json.dumps(design_folding(folding, specialize), indent=1))
    return fold_file


def _summary(
    tc: Any, design: Any, model: Any, xs: np.ndarray, res: Any, clock: float, stall: float
) -> dict[str, Any]:
    """The stitched simulation's section: bit-exactness against FINN's Python execution, rate, latency."""
    from .sim import reference

    ref = reference(model, xs, list(res.segment_outputs))
    diffs = [float(np.max(np.abs(res.segment_outputs[t] - ref[t]))) for t in res.segment_outputs]
    diffs += [float(np.max(np.abs(res.outputs[t] - ref[t]))) for t in res.outputs]
    exact = all(d == 0.0 for d in diffs)
    finn_perf = design.finn_reports.get("estimate_network_performance", {})
    return {
        "simulator": f"verilator {tc.version}",
        "frames": int(len(xs)),
        "exact": exact,
        "max_abs_diff": max(diffs) if diffs else 0.0,
        "passed": exact,
        "simulated_nodes": len(res.design.nodes),
        "software_head": res.design.head,
        "software_tail": res.design.tail,
        "clock_mhz": clock,
        "cycles_per_frame": res.cycles_per_frame,
        "latency_cycles": res.latency_cycles,
        "fps": clock * 1e6 / res.cycles_per_frame,
        "latency_us": res.latency_cycles / clock,
        "finn_estimate": {
            "max_cycles": finn_perf.get("max_cycles"),
            "bottleneck": finn_perf.get("max_cycles_node_name"),
            "fps": finn_perf.get("estimated_throughput_fps"),
        },
        "rtllib_fixes": rtllib_fixes(model),
        "build_seconds": res.build_seconds,
        "sim_cycles_per_second": res.cycles_per_second,
        "stall_probability": stall,
    }


def _add_layers(out: dict[str, Any], layers: list[Any]) -> None:
    """Per-layer measurements into ``out``: each layer's rate against the estimate, and exactness."""
    from .perf import matches_estimate

    # FIFOs are not compared: a FIFO has no rate of its own, it passes on its producer's
    compared = [m for m in layers if not m.op_type.startswith("StreamingFIFO")]
    out["layers"] = {m.name: m.as_dict() for m in compared}
    worst = 0.0
    for m in compared:
        if m.estimate_cycles:
            worst = max(worst, abs(m.cycles_per_frame - m.estimate_cycles) / m.estimate_cycles)
    out["max_rel_error_vs_estimate"] = worst
    out["estimate_outliers"] = [
        m.name for m in compared
        if m.estimate_cycles is not None and not matches_estimate(m.cycles_per_frame, m.estimate_cycles)
    ]
    out["not_estimated"] = [m.name for m in compared if m.estimate_cycles is None]
    out["layers_exact"] = all(m.exact for m in layers)
    out["passed"] = out["passed"] and out["layers_exact"]


def _fifo_sizing(
    out: dict[str, Any],
    timings: dict[str, float],
    model: Any,
    xs: np.ndarray,
    design: Any,
    before: float,
    work: Path,
    clock: float,
    cache_dir: str | Path | None,
) -> None:
    """Size the FIFOs in simulation; save the sized model and FINN's FIFO depth config; record both in ``out``."""
    from .fifos import size_fifos

    t0 = time.perf_counter()
    model, sizing = size_fifos(
        model,
        xs,
        fpgapart=design.fpgapart,
        clock_mhz=clock,
        codegen_dir=work / "codegen",
        cache_dir=cache_dir,
        before=before,
    )
    timings["fifo_sizing"] = time.perf_counter() - t0
    sized_path = work / "rtlsim_model_sized_fifos.onnx"
    model.save(str(sized_path))
    # FINN's ApplyFIFODepthsFromFile format, covering every FIFO (software-tail ones keep their depth)
    from finn.util.basic import getHWCustomOp

    all_depths = {
        n.name: int(sizing.depths.get(n.name, getHWCustomOp(n).get_nodeattr("depth")))
        for n in model.graph.node
        if n.op_type.startswith("StreamingFIFO")
    }
    fifo_file = work / "fifo_depths.json"
    fifo_file.write_text(
        json.dumps({"fifo_depths": all_depths, "impl_style": {k: "rtl" for k in all_depths}}, indent=1)
    )
    out["fifo_sizing"] = {
        **sizing.as_dict(),
        "model": str(sized_path),
        "finn_fifo_config": str(fifo_file),
    }
    out["fps_sized_fifos"] = clock * 1e6 / sizing.cycles_per_frame_after


def run_rtlsim_stage(
    qonnx_path: str | Path,
    folding_json: str | Path | None,
    board: BoardSpec,
    run_dir: str | Path,
    x: np.ndarray,
    n: int = 16,
    *,
    clock_mhz: float | None = None,
    fifo_sizing: bool = True,
    per_layer: bool = True,
    stall: float = 0.0,
    cache_dir: str | Path | None = None,
    progress: Any = None,
    specialize: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Simulate the FINN design of ``qonnx_path`` on the first ``n`` samples of ``x``; return report.json's
    ``"rtlsim"`` section.

    ``folding_json``: a FINN folding config (HLS- or RTL-named; ``folding_for_rtl`` maps it onto the
    RTL-specialised graph). Bit-exactness is checked against FINN's Python execution of the same graph on
    the same samples; a float tail after the last integer layer runs in software (as FINN's PYNQ driver
    does) and is named in ``software_tail``. ``specialize``: the chosen design's per-node specialize config
    (the fold stage's mixed design; ``hapfpga fold``'s ``F.specialize.json``): the design FINN builds is
    simulated, under ``folding_json``'s names; one with an HLS MVAU/VVAU is refused in one sentence.
    """
    from qonnx.core.modelwrapper import ModelWrapper

    from ..finn.shim import ensure_finn
    from .perf import measure_layers
    from .prepare import prepare_design
    from .sim import simulate

    def step(msg: str) -> None:
        if progress is not None:
            progress(msg)

    tc = find_toolchain()  # fail fast: one sentence, exit 2
    ensure_finn()
    run_dir = Path(run_dir)
    work = run_dir / "rtlsim"
    work.mkdir(parents=True, exist_ok=True)
    clock = float(clock_mhz or board.clock_mhz)
    timings: dict[str, float] = {}
    fold_file = write_design_folding(work, folding_json, specialize)

    t0 = time.perf_counter()
    step("FINN: RTL layers, width converters, FIFOs, HDL")
    design = prepare_design(qonnx_path, work, finn_board=board.finn_board, fpgapart=board.part, clock_mhz=clock,
                            folding_config_file=fold_file, specialize=specialize)
    timings["prepare"] = time.perf_counter() - t0
    model = ModelWrapper(str(design.model_path))
    xs = partition_input(design.parent_path, np.asarray(x[:n], np.float32))

    t0 = time.perf_counter()
    step(f"Verilator: stitched design, {len(xs)} frames")
    res = simulate(model, xs, cache_dir=cache_dir, stall_in=stall, stall_out=stall)
    timings["simulate"] = time.perf_counter() - t0
    out = _summary(tc, design, model, xs, res, clock, stall)
    out["design"] = SIMULATED_DESIGN["chosen" if specialize is not None else "rtl_preferred"]
    if per_layer:
        t0 = time.perf_counter()
        step("Verilator: every layer alone")
        layers = measure_layers(
            model, xs[: min(3, len(xs))], model_path=design.folded_path, cache_dir=cache_dir
        )
        timings["per_layer"] = time.perf_counter() - t0
        _add_layers(out, layers)
    if fifo_sizing:
        step("Verilator: FIFO sizing")
        _fifo_sizing(out, timings, model, xs, design, res.cycles_per_frame, work, clock, cache_dir)
    out["timings"] = timings
    (work / "rtlsim.json").write_text(json.dumps(out, indent=1, default=float))
    return out

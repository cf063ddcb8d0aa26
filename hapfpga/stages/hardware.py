"""The hardware stages: FINN build, verification of the graphs FINN made, RTL simulation, PYNQ package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError, VerificationError
from ..runstate import atomic_dir
from .base import Conf, Context, Stage, StageOutput

__all__ = ["FINN_BUILD", "VERIFY", "RTLSIM", "DEPLOY", "finn_estimate_summary", "finn_result", "chosen_specialize"]


def finn_estimate_summary(reports: dict[str, Any], board: Any) -> dict[str, Any]:
    """FINN's estimate reports, condensed: fps, per-node costs, totals, and whether they fit the budget."""
    from ..types import RESOURCE_KEYS, Resources

    res = reports["estimate_layer_resources"]
    cyc = reports["estimate_layer_cycles"]
    perf = reports["estimate_network_performance"]
    layers = {}
    for node, r in res.items():
        if node == "total":
            continue
        layers[node] = {k: float(r.get(k, 0.0)) for k in RESOURCE_KEYS if k in r or k != "FF"}
        layers[node]["cycles"] = int(cyc.get(node, 0))
    total = Resources.from_dict(res.get("total", {}))
    over = total.over(board.budget, ("LUT", "BRAM_18K", "URAM", "DSP"))
    return {
        "fps": float(perf["estimated_throughput_fps"]),
        "max_cycles": int(perf["max_cycles"]),
        "max_cycles_node": perf["max_cycles_node_name"],
        "latency_ns": float(perf.get("estimated_latency_ns", 0.0)),
        "total": {k: total.as_dict()[k] for k in ("LUT", "BRAM_18K", "URAM", "DSP")},
        "fits": not over,
        "over_budget": over,
        "layers": layers,
        "order": list(layers),  # graph order, as FINN wrote its report (report.json sorts its keys)
    }


def _tools(ctx: Context) -> Any:
    from ..finn.fullbuild import detect_xilinx

    return detect_xilinx(ctx.env)


def _flow(ctx: Context) -> str:
    from ..finn.fullbuild import choose_flow

    b = ctx.cfg.build
    return choose_flow(bitstream=b.bitstream, rtlsim=b.rtlsim, codegen=b.codegen, tools=_tools(ctx))


def finn_build(ctx: Context, conf: Conf) -> StageOutput:
    from ..finn.fullbuild import flow_outputs, run_flow

    flow = _flow(ctx)
    finn_dir, hw_code = ctx.path("finn"), ctx.path("hw_code")
    with atomic_dir(finn_dir) as tmp:
        res = run_flow(flow, ctx.model_file, tmp, conf.board, conf.clock_mhz, folding_file=ctx.path("folding.json"),
                       hw_code_dir=hw_code, work_dir=ctx.path("work"),
                       open_simulatable=conf.folding.open_simulatable,
                       specialize=chosen_specialize(ctx), progress=ctx.progress)
        est = finn_estimate_summary(res.reports, conf.board)
    outs = flow_outputs(finn_dir)
    return [finn_dir], {
        "flow": flow,
        "estimate": est,
        "hw_code": str(hw_code) if flow != "estimate" and any(hw_code.iterdir()) else None,
        "step_seconds": {k: round(v, 2) for k, v in res.step_seconds.items()},
        **outs,
    }


def finn_result(ctx: Context) -> Any:
    """The finn_build stage's outputs as FINN's ``FinnBuildResult`` (its log and every step's model)."""
    from ..finn.build import FinnBuildResult, read_estimate_reports

    finn_dir = ctx.path("finn")
    inter = finn_dir / "intermediate_models"
    return FinnBuildResult(
        output_dir=finn_dir, log_file=finn_dir / "build_dataflow.log",
        step_models={p.stem: p for p in sorted(inter.glob("*.onnx"))}, reports=read_estimate_reports(finn_dir),
    )


def _finn_built(result: dict[str, Any]) -> str:
    flow = "estimate-only FINN build" if result.get("flow") in ("estimate", "codegen") else "FINN build"
    return f"the {flow}" + (", the generated HLS/RTL code" if result.get("hw_code") else "")


def verify(ctx: Context, conf: Conf) -> StageOutput:
    """The verification chain; what it had to fix in FINN's graphs to execute them goes to ``DIR/verify.log``
    (ours to know, not the user's report)."""
    import logging

    from ..verify import verify_chain
    from .model import final_model_file, load_model

    ds = ctx.dataset
    n = min(conf.verify.n_samples, len(ds.x_test))
    log, handler = logging.getLogger("hapfpga.verify"), logging.FileHandler(ctx.path("verify.log"), mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        rep = verify_chain(load_model(final_model_file(ctx)), ctx.model_file, finn_result(ctx), ds.x_test[:n],
                           y=ds.y_test[:n], float_tol=conf.verify.float_tol)
    finally:
        log.removeHandler(handler)
        handler.close()
    return [], rep.as_dict()


def verify_gate(ctx: Context, result: dict[str, Any]) -> None:
    if not result.get("passed", False):
        failed = [s["name"] for s in result.get("stages", []) if not s.get("passed")]
        raise VerificationError(
            f"Verification failed at stage(s) {', '.join(failed) or '?'} (figures in {ctx.path('report.json')}); "
            "the exported or converted graph does not compute what the trained model computes."
        )


def _rtlsim_frames(ctx: Context, n: int) -> Any:
    """``n`` inputs in the accelerator's domain: test data × the package's input scale (integers rounded), or
    random ones when no test data is known."""
    import numpy as np

    m = json.loads(ctx.path("deploy/manifest.json").read_text())
    shape = tuple(m["input_shape"][1:])
    if ctx.test_set is not None:
        xs = np.asarray(ctx.test_set[0][:n], np.float32).reshape((-1, *shape)) * np.float32(m["input_scale"])
        return np.clip(np.rint(xs), 0, 255) if m.get("input_dtype") == "UINT8" else (
            np.rint(xs) if m.get("input_integer") else xs)
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, *shape)).astype(np.float32) if m.get("input_dtype") == "UINT8"
            else rng.random((n, *shape), dtype=np.float32))


def chosen_specialize(ctx: Context) -> dict[str, Any] | None:
    """The fold stage's specialize config (a mixed design), which FINN builds with: the FINN build uses it, and
    rtlsim, deploy.emulate and synth simulate or synthesise that design or refuse it
    (``rtlsim.prepare.refuse_hls_layers``), never the all-RTL one instead."""
    return ctx.results.get("fold", {}).get("specialize")


def rtlsim(ctx: Context, conf: Conf) -> StageOutput:
    from ..rtlsim.stage import run_rtlsim_stage
    from ..runconfig import RtlsimConfig

    finn = ctx.results["finn_build"]
    if finn.get("finn_rtlsim") is not None:  # Vivado ran FINN's own RTL simulation of the stitched IP
        return [], {"simulator": "finn (vivado xsim)", **finn["finn_rtlsim"]}
    rc = conf.rtlsim or RtlsimConfig()
    x = _rtlsim_frames(ctx, rc.n)
    rep = run_rtlsim_stage(ctx.model_file, ctx.path("folding.json"), conf.board, ctx.run_dir, x, len(x),
                           clock_mhz=conf.clock_mhz, fifo_sizing=rc.fifo_sizing, per_layer=rc.per_layer,
                           stall=rc.stall, specialize=chosen_specialize(ctx))
    return [ctx.path("rtlsim")], rep


def rtlsim_gate(ctx: Context, result: dict[str, Any]) -> None:
    if "exact" in result and not result["exact"]:
        raise VerificationError(
            f"RTL simulation does not match FINN's Python execution (max |diff| {result.get('max_abs_diff')}, "
            f"figures in {ctx.path('report.json')}); the generated hardware would compute wrong results."
        )


def deploy(ctx: Context, conf: Conf) -> StageOutput:
    from ..deploy import make_deployment_package

    x, y = ctx.test_set if ctx.test_set is not None else (None, None)
    pkg = make_deployment_package(
        ctx.path("deploy"), ctx.path("finn"), board=conf.board, clock_mhz=conf.clock_mhz, x_test=x, y_test=y,
        input_scale=ctx.input_scale, estimated_fps=ctx.results["finn_build"]["estimate"]["fps"],
        batch_size=conf.deploy.batch_size, zip_package=not conf.deploy.emulate,
    )
    result = {
        "path": str(Path(pkg.path).relative_to(ctx.run_dir)),
        "zip": str(Path(pkg.zip_path).relative_to(ctx.run_dir)),
        "has_bitfile": pkg.has_bitfile,
    }
    if conf.deploy.emulate:
        result["emulate"] = _emulate(ctx, conf, Path(pkg.path))
    return [Path(pkg.path), Path(pkg.zip_path)], result


def _emulate(ctx: Context, conf: Conf, pkg: Path) -> dict[str, Any]:
    """The emulated board into the package (FINN's RTL design, as rtlsim builds it), then the package's test
    data through FINN's driver on it, compared with the simulated backend; the package is zipped after."""
    import shutil

    from ..deploy.emulate import emulate_report
    from ..deploy.emulate_build import build_emulated_board

    if ctx.test_set is None:
        raise ConfigError("deploy.emulate runs the package's test data on the emulated board; give test data "
                          "(hapfpga build --test-data, or the run's dataset).")
    build_emulated_board(pkg, ctx.model_file, ctx.path("folding.json"), conf.board, conf.clock_mhz,
                         ctx.path("work") / "emulate", specialize=chosen_specialize(ctx))
    rep = emulate_report(pkg)
    (pkg / "measurement_emulate.json").write_text(json.dumps(rep, indent=2) + "\n")
    shutil.make_archive(str(pkg), "zip", root_dir=str(pkg.parent), base_dir=pkg.name)
    return rep


def deploy_gate(ctx: Context, result: dict[str, Any]) -> None:
    rep = result.get("emulate")
    if rep is not None and rep.get("equal_to_sim") != rep.get("n"):
        raise VerificationError(
            f"FINN's driver on the emulated board returned outputs equal to the simulated backend on only "
            f"{rep.get('equal_to_sim')} of {rep.get('n')} test samples (figures in {ctx.path('report.json')}); "
            "the driver, the DMAs and the RTL disagree with FINN's graph."
        )


def _rtlsim_enabled(cfg: Any) -> bool:
    return cfg.rtlsim is not None or cfg.build.rtlsim


FINN_BUILD = Stage(
    "finn_build", finn_build, inputs=("export", "fold"), outputs=("finn",),
    config=("build", "folding", "board", "clock_mhz"), key_extra=_flow, produces=_finn_built,
)
VERIFY = Stage(
    "verify", verify, inputs=("train", "prune", "export", "finn_build"), config=("verify",), gate=verify_gate,
    produces="the verification",
)
DEPLOY = Stage(
    "deploy", deploy, inputs=("finn_build",), outputs=("deploy", "deploy.zip"),
    config=("board", "clock_mhz", "deploy"), key_extra=lambda ctx: (ctx.input_scale, ctx.data_key),
    gate=deploy_gate, produces="a deployment package with the simulated backend",
)
RTLSIM = Stage(
    "rtlsim", rtlsim, inputs=("fold", "finn_build", "deploy"), outputs=("rtlsim",),
    config=("rtlsim", "board", "clock_mhz"), enabled=_rtlsim_enabled, gate=rtlsim_gate,
    produces="a Verilator RTL simulation",
)

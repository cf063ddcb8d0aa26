"""``hapfpga run``: the main job, as named, resumable stages.

model -> QAT -> [prune + fine-tune] -> export QONNX -> FINN HW graph -> folding -> FINN estimate build
-> verification -> [RTL simulation] -> report.

Every stage writes its outputs atomically and is recorded in ``DIR/manifest.json`` with a key derived
from the config sections it depends on (``hapfpga.runstate``), so re-running the same command resumes
after the last finished stage and a changed config re-runs only what it affects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .boards import BoardSpec, load_board
from .config import to_dict
from .errors import VerificationError
from .runconfig import RunConfig
from .runstate import RunState, atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text, stage_key

__all__ = ["run_pipeline", "PipelineResult"]


@dataclass
class PipelineResult:
    run_dir: Path
    report: dict[str, Any]
    resumed: list[str] = field(default_factory=list)  # stages skipped because they were already done


class _Runner:
    """Runs stages with resume-by-key and collects per-stage timings."""

    def __init__(self, state: RunState, console: Any):
        self.state = state
        self.console = console
        self.timings: dict[str, float] = {}
        self.resumed: list[str] = []

    def stage(self, name: str, key: str, fn: Callable[[], tuple[list[Path], dict[str, Any]]]) -> dict[str, Any]:
        done = self.state.done(name, key)
        if done is not None:
            self.resumed.append(name)
            self.console.print(f"[dim]✓ {name}: already done (resumed)[/dim]")
            return done
        t0 = time.perf_counter()
        self.console.print(f"[bold]▶ {name}[/bold]")
        outputs, result = fn()
        self.timings[name] = round(time.perf_counter() - t0, 2)
        self.state.finish(name, key, outputs, result)
        self.console.print(f"✓ {name} ({self.timings[name]:.1f} s)")
        return result


def _save_model(model: Any, path: Path) -> None:
    """Save as rebuild spec + state_dict (Brevitas models cannot be pickled whole), atomically."""
    from .zoo import save_model

    with atomic_path(path) as tmp:
        save_model(model, tmp)


def _load_model(path: Path) -> Any:
    from .zoo import load_model

    return load_model(path)


def run_pipeline(cfg: RunConfig, out_dir: str | Path, console: Any = None) -> PipelineResult:
    """Run (or resume) the whole job of ``cfg`` into ``out_dir``; returns the report dict."""
    if console is None:
        from rich.console import Console

        console = Console(stderr=True)
    board: BoardSpec = load_board(cfg.board)
    clock = cfg.clock_mhz or board.clock_mhz
    run_dir = Path(out_dir).resolve()
    state = RunState(run_dir)
    runner = _Runner(state, console)
    atomic_write_text(run_dir / "config.json", json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")

    # -- validate optional sections now, not after minutes of training ---------------------------
    if cfg.pruning is not None:
        from .pruning.config import parse_pruning_config

        parse_pruning_config(cfg.pruning)

    # -- data (cheap, never cached: always load and validate) ------------------------------------
    from .data import load_dataset

    dataset = load_dataset(cfg.data, seed=cfg.seed)

    # -- train ------------------------------------------------------------------------------------
    k_train = stage_key("train", to_dict(cfg.model), to_dict(cfg.data), to_dict(cfg.train), cfg.seed)
    baseline_pt = run_dir / "baseline.pt"

    def do_train():
        from .modelcheck import check_model
        from .train import train
        from .zoo import build_model

        model = build_model(cfg.model, dataset.input_shape, dataset.num_classes, seed=cfg.seed)
        check_model(model, dataset.input_shape, dataset.num_classes, name=f"model '{cfg.model.name}'")
        res = train(model, dataset, cfg.train, seed=cfg.seed, run_dir=run_dir, progress=True, console=console)
        _save_model(model, baseline_pt)
        return [baseline_pt], {"accuracy": float(res.accuracy)}

    train_res = runner.stage("train", k_train, do_train)
    baseline_model = _load_model(baseline_pt)
    acc_baseline = float(train_res["accuracy"])

    # -- prune (optional) -----------------------------------------------------------------------
    final_model = baseline_model
    final_pt = baseline_pt
    pruning_report: dict[str, Any] | None = None
    k_final = k_train
    if cfg.pruning:
        from .pruning import run_pruning_stage

        k_prune = stage_key("prune", k_train, cfg.pruning, board.as_dict(), clock, cfg.folding.open_simulatable)
        pruned_pt = run_dir / "pruned.pt"

        def do_prune():
            model, rep = run_pruning_stage(
                cfg.pruning, baseline_model, dataset, board, run_dir, clock_mhz=clock, train_cfg=cfg.train,
                seed=cfg.seed, open_simulatable=cfg.folding.open_simulatable,
            )
            _save_model(model, pruned_pt)
            return [pruned_pt], rep

        pruning_report = runner.stage("prune", k_prune, do_prune)
        final_model = _load_model(pruned_pt)
        final_pt = pruned_pt
        k_final = k_prune

    # -- export -----------------------------------------------------------------------------------
    baseline_onnx = run_dir / "baseline.qonnx.onnx"
    final_onnx = run_dir / "final.qonnx.onnx"
    k_export = stage_key("export", k_final)

    def do_export():
        from .export import export_qonnx
        from .summary import model_summary
        from .train import evaluate

        with atomic_path(baseline_onnx) as tmp:
            export_qonnx(baseline_model, dataset.input_shape, tmp)
        if final_pt == baseline_pt:
            atomic_write_bytes(final_onnx, baseline_onnx.read_bytes())
            acc_final = acc_baseline
        else:
            with atomic_path(final_onnx) as tmp:
                export_qonnx(final_model, dataset.input_shape, tmp)
            acc_final = float(evaluate(final_model, dataset.x_test, dataset.y_test))
        return [baseline_onnx, final_onnx], {
            "accuracy_final": acc_final,
            "summary_baseline": model_summary(baseline_model, dataset.input_shape),
            "summary_final": model_summary(final_model, dataset.input_shape),
        }

    export_res = runner.stage("export", k_export, do_export)

    # -- FINN HW graph + folding --------------------------------------------------------------
    k_fold = stage_key("fold", k_export, to_dict(cfg.folding), board.as_dict(), clock)
    folding_json = run_dir / "folding.json"

    def do_fold():
        fold_rep = _fold(cfg, board, clock, final_onnx, run_dir / "work" / "hw", folding_json)
        return [folding_json], fold_rep

    fold_res = runner.stage("fold", k_fold, do_fold)

    # -- FINN estimate-only build -------------------------------------------------------------
    k_build = stage_key("finn_build", k_fold)
    finn_dir = run_dir / "finn"

    def do_build():
        from .finn.build import rtl_build_kwargs, run_finn_steps

        extra = rtl_build_kwargs(run_dir / "work") if cfg.folding.open_simulatable else {}
        with atomic_dir(finn_dir) as tmp:
            res = run_finn_steps(
                final_onnx, tmp, board=board.finn_board, clock_mhz=clock,
                folding_config_file=folding_json if cfg.folding.mode != "finn" else None,
                target_fps=int(cfg.folding.fps) if cfg.folding.mode == "finn" else None,
                **extra,
            )
            est = finn_estimate_summary(res.reports, board)
        return [finn_dir], est

    finn_est = runner.stage("finn_build", k_build, do_build)

    # -- verification --------------------------------------------------------------------------
    k_verify = stage_key("verify", k_build, to_dict(cfg.verify))

    def do_verify():
        from .finn.build import FinnBuildResult
        from .verify import verify_chain

        inter = finn_dir / "intermediate_models"
        fr = FinnBuildResult(
            output_dir=finn_dir, log_file=finn_dir / "build_dataflow.log",
            step_models={p.stem: p for p in sorted(inter.glob("*.onnx"))},
        )
        n = min(cfg.verify.n_samples, len(dataset.x_test))
        rep = verify_chain(final_model, final_onnx, fr, dataset.x_test[:n], y=dataset.y_test[:n], float_tol=cfg.verify.float_tol)
        return [], rep.as_dict()

    verification = runner.stage("verify", k_verify, do_verify)

    # -- RTL simulation (optional) -------------------------------------------------------------
    rtlsim_rep = None
    if cfg.rtlsim is not None or cfg.build.rtlsim:
        from .data import to_uint8
        from .rtlsim.stage import run_rtlsim_stage
        from .rtlsim.tools import find_toolchain
        from .runconfig import RtlsimConfig

        find_toolchain()  # no verilator / C++ compiler: one sentence, exit 2
        rcfg = cfg.rtlsim or RtlsimConfig()
        k_rtl = stage_key("rtlsim", k_build, to_dict(rcfg))

        def do_rtlsim():
            n = min(rcfg.n, len(dataset.x_test))
            x = to_uint8(dataset.x_test[:n]).astype("float32")  # the accelerator's UINT8 pixels
            rep = run_rtlsim_stage(
                final_onnx, folding_json, board, run_dir / "rtlsim", x, n, clock_mhz=clock,
                fifo_sizing=rcfg.fifo_sizing, per_layer=rcfg.per_layer, stall=rcfg.stall,
            )
            return [], rep

        rtlsim_rep = runner.stage("rtlsim", k_rtl, do_rtlsim)

    # -- PYNQ deployment package (simulated backend without a bitfile) -------------------------
    k_deploy = stage_key("deploy", k_verify)
    deploy_dir = run_dir / "deploy"

    def do_deploy():
        from .deploy import make_deployment_package

        pkg = make_deployment_package(
            deploy_dir, finn_dir, board=board, clock_mhz=clock, x_test=dataset.x_test, y_test=dataset.y_test,
            estimated_fps=finn_est["fps"],
        )
        return [deploy_dir, pkg.zip_path], {"path": str(Path(pkg.path).relative_to(run_dir)),
                                            "zip": str(Path(pkg.zip_path).relative_to(run_dir)),
                                            "has_bitfile": pkg.has_bitfile}

    deploy_res = runner.stage("deploy", k_deploy, do_deploy)

    # -- report ----------------------------------------------------------------------------------
    s_base, s_final = export_res["summary_baseline"], export_res["summary_final"]
    report: dict[str, Any] = {
        "board": board.as_dict(),
        "clock_mhz": clock,
        "dataset": {
            "name": dataset.name,
            "n_train": int(len(dataset.x_train)),
            "n_test": int(len(dataset.x_test)),
            "input_shape": list(dataset.input_shape),
            "num_classes": int(dataset.num_classes),
        },
        "accuracy": {"baseline": acc_baseline, "final": export_res["accuracy_final"]},
        "model": {"name": cfg.model.name, **s_final, "baseline": s_base},
        "folding": {k: v for k, v in fold_res.items() if k != "estimate"},
        "estimate": fold_res.get("estimate"),
        "finn_estimate": finn_est,
        "verification": verification,
        "deploy": deploy_res,
        "timings": dict(runner.timings),
        "resumed_stages": list(runner.resumed),
    }
    if pruning_report is not None:
        report["pruning"] = pruning_report
    if rtlsim_rep is not None:
        report["rtlsim"] = rtlsim_rep
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    try:
        from .report_html import write_report_html
    except ImportError:  # the HTML report lands with its own issue
        write_report_html = None
    if write_report_html is not None:
        write_report_html(report, run_dir / "report.html")

    if rtlsim_rep is not None and not rtlsim_rep.get("exact", False):
        raise VerificationError(
            f"RTL simulation does not match FINN's Python execution (max |diff| {rtlsim_rep.get('max_abs_diff')}, "
            f"figures in {run_dir / 'report.json'}); the generated hardware would compute wrong results."
        )
    if not verification.get("passed", False):
        failed = [s["name"] for s in verification.get("stages", []) if not s.get("passed")]
        raise VerificationError(
            f"Verification failed at stage(s) {', '.join(failed) or '?'} (figures in {run_dir / 'report.json'}); "
            "the exported or converted graph does not compute what the trained model computes."
        )
    if cfg.build.bitstream:
        _bitstream(final_onnx, folding_json, board, clock, run_dir, dataset, cfg.folding.open_simulatable)
    return PipelineResult(run_dir=run_dir, report=report, resumed=runner.resumed)


# -- helpers ----------------------------------------------------------------------------------------


def _bitstream(
    onnx_path: Path, folding_json: Path, board: BoardSpec, clock: float, run_dir: Path, dataset, rtl: bool = False
) -> None:
    """The Vivado part of the flow: stitched IP, synthesis, bitfile, driver (needs Vivado; else exit 2)."""
    from .errors import ToolMissingError
    from .finn.shim import vivado_available

    if not vivado_available():
        raise ToolMissingError(
            "A bitstream needs Vivado (XILINX_VIVADO is not set and vivado is not on PATH), so "
            f"{run_dir} holds everything short of it: the trained and exported models, folding, FINN estimate "
            "build, verification, report and a deployment package with the simulated backend."
        )
    from .finn.fullbuild import build

    build(onnx_path, run_dir / "hw", board, folding_file=folding_json, clock_mhz=clock, bitstream=True,
          test_data=(dataset.x_test, dataset.y_test), open_simulatable=rtl)


def finn_estimate_summary(reports: dict[str, Any], board: BoardSpec) -> dict[str, Any]:
    """FINN's estimate reports, condensed: fps, per-node costs, totals, and whether they fit the budget."""
    from .types import RESOURCE_KEYS, Resources

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
    }


def _fold(cfg: RunConfig, board: BoardSpec, clock: float, onnx_path: Path, work: Path, out_json: Path) -> dict:
    """Choose the folding: our optimiser (``max_fps`` / ``fps``), FINN's SetFolding, or PE=SIMD=1."""
    from .estimate import estimate_network
    from .finn.graph import hw_layers_from_qonnx
    from .types import FoldingPlan

    layers, _ = hw_layers_from_qonnx(onnx_path, work, board, clock, rtl=cfg.folding.open_simulatable)
    mode = cfg.folding.mode
    if mode in ("max_fps", "fps"):
        from .folding import optimise

        res = optimise(layers, board, clock_mhz=clock, target_fps=cfg.folding.fps if mode == "fps" else None)
        plan, est = res.plan, res.estimate
        extra = {"bound_fps": res.bound_fps, "binding_resource": res.binding_resource}
    else:
        # "none": FINN's defaults (PE=SIMD=1); "finn": FINN's SetFolding chooses during the build,
        # our file then only records the defaults we estimated from.
        plan = FoldingPlan(tuple((layer.name, layer.default_folding) for layer in layers))
        est = estimate_network(layers, plan, board, clock)
        extra = {"bound_fps": None, "binding_resource": None}
    atomic_write_text(out_json, plan.to_finn_json())
    return {
        "mode": mode,
        "open_simulatable": cfg.folding.open_simulatable,
        "predicted_fps": est.fps,
        **extra,
        "estimate": est.as_json(),
    }

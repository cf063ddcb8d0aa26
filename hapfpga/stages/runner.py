"""Run a list of registered stages over one run directory, resuming by cache key.

``run_stages`` is the only orchestrator: ``hapfpga run`` (``run_config``) and ``hapfpga build``
(``build_model``) are the same loop over two lists of stage names (``RUN_STAGES``, ``BUILD_STAGES``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..boards import BoardSpec, load_board
from ..config import to_dict
from ..errors import ConfigError, ToolMissingError
from ..runconfig import BuildConfig, DeployConfig, FoldingConfig, RtlsimConfig, RunConfig
from ..runstate import RunState, atomic_write_text
from .base import Context, Stage

__all__ = ["FlowResult", "select_stages", "run_stages", "run_config", "build_model", "BuildOutputs"]


@dataclass
class FlowResult:
    """What one run of a flow did: the report (when the report stage ran) and which stages resumed."""

    run_dir: Path
    report: dict[str, Any] | None
    resumed: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def _registry() -> dict[str, Stage]:
    from . import REGISTRY

    return REGISTRY


def select_stages(
    flow: Sequence[str], cfg: RunConfig, *, only: Sequence[str] | None = None,
    first: str | None = None, last: str | None = None,
) -> tuple[list[Stage], list[str]]:
    """(the stages of ``flow`` the config enables, in order; the names to run: ``only`` ∩ ``first``..``last``).

    Unknown names and stages the config does not enable are ``ConfigError`` naming the choices.
    """
    reg = _registry()
    stages = [reg[n] for n in flow if reg[n].enabled(cfg)]
    names = [s.name for s in stages]
    for what, asked in (("stages", list(only or ())), ("--from", [first] if first else []),
                        ("--to", [last] if last else [])):
        for n in asked:
            if n not in flow:
                raise ConfigError(f"Unknown stage '{n}' in {what}; choose from {', '.join(flow)}.")
            if n not in names:
                raise ConfigError(f"Stage '{n}' in {what} is not enabled by this config (an optional stage runs "
                                  f"only when its config section is present); enabled: {', '.join(names)}.")
    lo = names.index(first) if first else 0
    hi = names.index(last) if last else len(names) - 1
    if lo > hi:
        raise ConfigError(f"--from {first} comes after --to {last}; stages run in the order {', '.join(names)}.")
    chosen = [n for n in names[lo : hi + 1] if only is None or n in only]
    return stages, chosen


def _needed(stages: list[Stage], chosen: list[str], available: set[str]) -> dict[str, str]:
    """Stages not chosen whose results a chosen stage reads (transitively): name -> the stage that needs it."""
    by_name = {s.name: s for s in stages}
    need: dict[str, str] = {}
    todo = list(chosen)
    while todo:
        s = by_name[todo.pop()]
        for i in s.inputs:
            if i in by_name and i not in chosen and i not in need and i not in available:
                need[i] = s.name
                todo.append(i)
    return need


def _inputs(stage: Stage, flow_names: set[str], ctx: Context) -> tuple[str, ...]:
    return tuple(i for i in stage.inputs if i in flow_names or i in ctx.keys)


def run_stages(ctx: Context, stages: list[Stage], chosen: list[str], *, force: bool = False) -> FlowResult:
    """Run ``chosen`` of ``stages`` (each resumed when the run directory holds it with the same key; all
    re-run when ``force``), reading the other stages they need from the run directory; then the gates."""
    state = RunState(ctx.run_dir)
    flow_names = {s.name for s in stages}
    need = _needed(stages, chosen, set(ctx.keys))
    ran: list[str] = []
    for st in stages:
        if st.name not in chosen and st.name not in need:
            continue
        key = ctx.key(st, _inputs(st, flow_names, ctx))
        ctx.keys[st.name] = key
        done = state.done(st.name, key) if st.cached else None
        if st.name in need:
            if done is None:
                raise ConfigError(
                    f"Stage '{need[st.name]}' needs the outputs of stage '{st.name}', which {ctx.run_dir} does not "
                    f"hold for this config; run the flow from '{st.name}' first (or without --from/stages)."
                )
        elif done is None or force:
            ctx.console.print(f"[bold]▶ {st.name}[/bold]")
            t0 = time.perf_counter()
            outputs, done = st.fn(ctx, ctx.conf(st))
            if st.cached:  # the report (not cached) is written with the timings of the others
                ctx.timings[st.name] = round(time.perf_counter() - t0, 2)
                state.finish(st.name, key, outputs, done)
            ctx.console.print(f"✓ {st.name} ({time.perf_counter() - t0:.1f} s)")
            ran.append(st.name)
            ctx.results[st.name] = done
            continue
        ctx.console.print(f"[dim]✓ {st.name}: already done (resumed)[/dim]")
        ctx.resumed.append(st.name)
        ctx.results[st.name] = done
    for st in stages:
        if st.gate is not None and st.name in ctx.results:
            st.gate(ctx, ctx.results[st.name])
    _bitstream_check(ctx, stages)
    return FlowResult(run_dir=ctx.run_dir, report=ctx.results.get("report"), resumed=list(ctx.resumed), ran=ran,
                      results=ctx.results)


def _bitstream_check(ctx: Context, stages: list[Stage]) -> None:
    """A bitstream was asked for and FINN wrote none: say what is missing and what the user has instead."""
    fb = ctx.results.get("finn_build")
    if not ctx.cfg.build.bitstream or fb is None or fb.get("bitfile"):
        return
    if fb.get("flow") == "full":
        raise ToolMissingError(f"FINN's synthesis ran but wrote no bitfile under {ctx.path('finn/bitfile')}; "
                               f"see {ctx.path('finn/build_dataflow.log')} for Vivado's errors.")
    from ..finn.fullbuild import detect_xilinx

    got = [s.describe(ctx.results[s.name]) for s in stages if s.name in ctx.results]
    got = [g for g in got if g]
    have = got[0] if len(got) == 1 else f"{', '.join(got[:-1])} and {got[-1]}"
    raise ToolMissingError(f"A bitstream needs {detect_xilinx(ctx.env).missing()}, so {ctx.run_dir} holds "
                           f"everything short of it: {have}.")


def _console(console: Any) -> Any:
    if console is not None:
        return console
    from rich.console import Console

    return Console(stderr=True)


def run_config(
    cfg: RunConfig, out_dir: str | Path, console: Any = None, *, first: str | None = None, last: str | None = None,
    baseline: Path | None = None,
) -> FlowResult:
    """``hapfpga run``: the ``RUN_STAGES`` the config enables (``stages:``, ``--from``/``--to``: a part of them)
    into ``out_dir``, resuming every stage the directory already holds with the same key. ``baseline``: a trained
    model given from outside takes the train stage's place (``hapfpga prune --model``, ``model.given_model``)."""
    from . import RUN_STAGES

    stages, chosen = select_stages(RUN_STAGES, cfg, only=cfg.stages, first=first, last=last)
    board: BoardSpec = load_board(cfg.board)
    run_dir = Path(out_dir).resolve()
    RunState(run_dir)  # not writable: one sentence before anything else
    atomic_write_text(run_dir / "config.json", json.dumps(to_dict(cfg), indent=2, sort_keys=True) + "\n")
    _preflight(cfg, chosen)
    from ..data import load_dataset

    dataset = load_dataset(cfg.data, seed=cfg.seed)  # cheap, never cached: always loaded and checked
    ctx = Context(cfg=cfg, run_dir=run_dir, board=board, clock_mhz=float(cfg.clock_mhz or board.clock_mhz),
                  console=_console(console), model_file=run_dir / "final.qonnx.onnx", dataset=dataset,
                  test_set=(dataset.x_test, dataset.y_test))
    if baseline is not None:
        from .model import given_model

        ctx.keys["train"], ctx.results["train"] = given_model(ctx, Path(baseline))
        chosen = [n for n in chosen if n != "train"]
    return run_stages(ctx, stages, chosen, force=first is not None)


def _preflight(cfg: RunConfig, chosen: list[str]) -> None:
    """What can be checked in seconds, before minutes of training: optional sections, the simulator."""
    if cfg.pruning is not None:
        from ..pruning.config import parse_pruning_config

        if parse_pruning_config(cfg.pruning).bits:
            from ..pruning.mixed import check_bits_model

            check_bits_model(cfg.model.name)
    if "rtlsim" in chosen or ("deploy" in chosen and cfg.deploy.emulate):
        from ..rtlsim.tools import find_toolchain

        find_toolchain()  # no verilator / C++ compiler: one sentence, exit 2
    if "deploy" in chosen and cfg.deploy.emulate:
        import importlib.util

        if importlib.util.find_spec("finn_plus_driver") is None:
            raise ToolMissingError("deploy.emulate runs FINN's own PYNQ driver; install it with "
                                   "`pip install --no-deps finn-plus-driver==1.6.1`.")


# -- hapfpga build --------------------------------------------------------------------------------------


@dataclass
class BuildOutputs:
    """What ``build_model`` produced under ``out_dir`` (``build.json`` holds the same as JSON)."""

    out_dir: Path
    finn: Any  # hapfpga.finn.build.FinnBuildResult
    finn_estimate: dict[str, Any]
    folding: dict[str, Any]
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
            "folding": self.folding.get("mode"),
            "hw_code_dir": None if self.hw_code_dir is None else str(self.hw_code_dir),
            "deploy": None if self.deploy is None else str(self.deploy.path),
            "deploy_zip": None if self.deploy is None else str(self.deploy.zip_path),
            "bitfile": None if self.bitfile is None else str(self.bitfile),
            "rtlsim": self.rtlsim,
            "timings": self.timings,
        }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_model(
    model_file: str | Path,
    out_dir: str | Path,
    board: BoardSpec,
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
    console: Any = None,
    emulate: bool = False,
    max_fps: bool = False,
    margin: float | dict[str, float] | None = None,
) -> BuildOutputs:
    """``hapfpga build``: the ``BUILD_STAGES`` (fold, finn_build, deploy, [rtlsim], report) on a QONNX file.

    The folding is ``folding_file`` (FINN applies it), else FINN's SetFolding for ``target_fps`` read back
    from FINN's model, else (``max_fps``) hapfpga's optimiser keeping ``margin`` free (``folding.margin``), else
    FINN's defaults; every later stage (RTL simulation included) uses that design.
    ``bitstream``/``rtlsim`` run FINN's Vivado flow when a supported Vivado is installed; without it
    ``rtlsim`` is hapfpga's Verilator simulation (``rtlsim_frames`` samples) and ``bitstream`` ends in
    ``ToolMissingError`` after everything Vivado-free was built. ``emulate``: the package gets the emulated board
    and its test data runs through FINN's driver on it (``deploy: {emulate: true}``). Writes ``out_dir/build.json`` too.
    """
    from . import BUILD_STAGES

    model_file = Path(model_file)
    if not model_file.is_file():
        raise ConfigError(f"Model file '{model_file}' does not exist; give the QONNX .onnx file to build.")
    if folding_file is not None and not Path(folding_file).is_file():
        raise ConfigError(f"Folding file '{folding_file}' does not exist; give FINN's folding JSON or leave it out.")
    if folding_file is not None:
        folding = FoldingConfig(mode="file", file=str(Path(folding_file).resolve()),
                                open_simulatable=open_simulatable)
    elif target_fps is not None:
        folding = FoldingConfig(mode="finn", fps=float(target_fps), open_simulatable=open_simulatable)
    elif max_fps:
        folding = FoldingConfig(mode="max_fps", open_simulatable=open_simulatable, margin=margin)
    else:
        folding = FoldingConfig(mode="none", open_simulatable=open_simulatable)
    cfg = RunConfig(board=board.key, clock_mhz=clock_mhz, folding=folding,
                    build=BuildConfig(bitstream=bitstream, rtlsim=rtlsim, codegen=codegen),
                    rtlsim=RtlsimConfig(n=rtlsim_frames) if rtlsim else None, deploy=DeployConfig(emulate=emulate))
    out = Path(out_dir).resolve()
    data_key = None
    if test_data is not None:
        data_key = hashlib.sha256(b"".join(bytes(memoryview(a).cast("B")) for a in test_data)).hexdigest()[:16]
    ctx = Context(cfg=cfg, run_dir=out, board=board, clock_mhz=float(clock_mhz or board.clock_mhz),
                  console=_console(console), model_file=model_file.resolve(), test_set=test_data,
                  input_scale=input_scale, data_key=data_key, env=env, progress=progress,
                  keys={"export": _digest(model_file)})
    stages, chosen = select_stages(BUILD_STAGES, cfg)
    _preflight(cfg, [c for c in chosen if c == "deploy" or (c == "rtlsim" and not _vivado_flow(ctx))])
    try:
        run_stages(ctx, stages, chosen)
    finally:
        if "finn_build" in ctx.results:
            _write_build_json(ctx)
    return _build_outputs(ctx)


def _vivado_flow(ctx: Context) -> bool:
    from ..finn.fullbuild import detect_xilinx

    return detect_xilinx(ctx.env).supported


def _build_outputs(ctx: Context) -> BuildOutputs:
    from ..deploy.package import DeployPackage
    from .hardware import finn_result

    r = ctx.results
    fb = r["finn_build"]
    dep = None
    if "deploy" in r:
        d = ctx.path(r["deploy"]["path"])
        dep = DeployPackage(path=d, zip_path=ctx.path(r["deploy"]["zip"]), has_bitfile=r["deploy"]["has_bitfile"],
                            manifest=json.loads((d / "manifest.json").read_text()))
    html = ctx.path("report.html")
    return BuildOutputs(
        out_dir=ctx.run_dir, finn=finn_result(ctx), finn_estimate=fb["estimate"], folding=r.get("fold", {}),
        hw_code_dir=Path(fb["hw_code"]) if fb.get("hw_code") else None, deploy=dep,
        bitfile=Path(fb["bitfile"]) if fb.get("bitfile") else None, rtlsim=r.get("rtlsim"),
        timings=dict(ctx.timings), report_html=html if html.is_file() else None,
    )


def _write_build_json(ctx: Context) -> None:
    from .report import assemble_report

    rep = ctx.results.get("report") or assemble_report(ctx, ctx.timings, ctx.resumed)
    body = {**rep, "outputs": _build_outputs(ctx).summary()}
    atomic_write_text(ctx.path("build.json"), json.dumps(body, indent=2, default=str) + "\n")

"""Our resource-constrained folding vs FINN's SetFolding, judged by FINN's own estimate report.

For CNV-w2a2 and TFC-w2a2 (``brevitas_examples``, untrained: FINN's resource estimates do not depend
on weight values) on Pynq-Z2 at 100 MHz, in one process:

1. export QONNX, run finn-plus's estimate-only build once with FINN's default folding (the
   specialised and bit-width-minimised HW models are reused below);
2. **ours**: ``hapfpga.folding.optimise`` → folding JSON → finn-plus steps
   ``step_apply_folding_config`` … ``step_generate_estimate_reports`` with ``folding_config_file``;
   if FINN's report says a resource is over budget, tighten that resource and re-solve (at most 5 times);
3. **FINN**: ``step_target_fps_parallelization`` (SetFolding) over a geometric scan of ``target_fps``
   refined linearly around the best, keeping the fastest design that fits by FINN's report.

Both sides are scored only by FINN's ``estimate_network_performance.json`` / ``estimate_layer_resources.json``.
``ours`` optimises with our estimator as ``hapfpga fold`` does by default (FIFOs and width converters
charged against the budget, although FINN's report does not count them); the reference optimises
with FINN's own per-node costs (the judge's accounting) and, for CNV, shows whether 3,050 FPS (2x the
best SetFolding design) is reachable at all. Last line: ``fold_speedup_vs_setfolding_cnv <ratio>``
(ours, default settings).

Usage: ``.venv/bin/python benchmarks/folding_vs_finn.py [--work DIR] [--costs auto|finn|hapfpga] [--quick]``

``--all-boards``: CNV-w2a2, the zoo's ResNet-8 (residual) and DS-CNN (depthwise), 2-bit, on every board in
``boards/``: ours exactly as ``hapfpga fold`` folds by default (same layers, same defaults: margin, cycles,
FIFOs and width converters) against SetFolding's best fitting design, both judged by FINN's estimate report at
the board's budget. A design of ours "fits" when it fits by our estimate *and* by FINN's report; the layers where
FINN's report counts less than ours (0 LUT for RTL MVAUs, fewer cycles) are listed per board. Last line:
``fold_speedup_vs_setfolding_min <r>`` (the smallest ratio over CNV-w2a2's boards: the acceptance figure).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scratch import work_dir  # noqa: E402  (benchmarks/scratch.py)

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.finn.build import FOLD_AND_ESTIMATE_STEPS as TAIL_STEPS  # noqa: E402
from hapfpga.finn.setfolding import FINE, QUICK, setfolding_best_fit  # noqa: E402
from hapfpga.finn.setfolding import finn_estimate as finn_report  # noqa: E402
from hapfpga.types import Resources  # noqa: E402

KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")
MODELS = {"cnv": ("cnv_2w2a", (1, 3, 32, 32)), "tfc": ("tfc_2w2a", (1, 1, 28, 28))}


def export(name: str, shape: tuple[int, ...], out: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from qonnx.util.cleanup import cleanup

    path = out / f"{name}.qonnx.onnx"
    if not path.exists():
        model, _ = model_with_cfg(name, pretrained=False)
        model.eval()
        export_qonnx(model, torch.randn(*shape), str(path))
        cleanup(str(path), out_file=str(path))
    return path


def fits(total: Resources, budget: Resources) -> list[str]:
    return total.over(budget, KEYS)


def run_tail(model: Path, out: Path, **kw):
    from hapfpga.finn.build import run_finn_steps

    return run_finn_steps(model, out, board="Pynq-Z2", clock_mhz=100.0, steps=TAIL_STEPS, **kw)


def aim_analysis(layers, cost_fn, board, clock: float, aim_fps: float) -> dict:
    """Why ``aim_fps`` is out of reach under FINN's own costs: among all legal designs reaching it (every
    folding-file knob), the one whose most-used resource is least used — if that exceeds 100 %, none fits."""
    from hapfpga.folding.optimise import build_problem
    from hapfpga.folding.solver import solve_min_max_utilisation

    p = build_problem(layers, board.budget, cost_fn)
    limit = math.floor(clock * 1e6 / aim_fps)
    sol, frac, key = solve_min_max_utilisation(p, limit)
    util = {k: getattr(sol.total, k) / getattr(board.budget, k) for k in ("LUT", "BRAM_18K", "DSP")}
    print(
        f"  aim {aim_fps:,.0f} FPS (<= {limit:,} cycles): the least-loaded legal design needs {fmt(sol.total)} "
        f"= {', '.join(f'{k} {v:.0%}' for k, v in util.items())} of the budget -> "
        + ("does not fit: " + key + " binds" if frac > 1 else "fits")
    )
    return {"aim_fps": aim_fps, "max_utilisation": frac, "binding": key, "total": sol.total.as_dict()}


def ours(name: str, base, work: Path, board, costs: str, aim_fps: float | None = None) -> dict:
    """Optimise, check with FINN's report, tighten what FINN says is over, re-solve.

    ``costs="hapfpga"``: our estimator in its default mode, FIFOs and width converters counted against
    the budget (what ``hapfpga fold`` does). ``costs="finn"``: FINN's own per-node numbers and no
    infrastructure — exactly the judge's accounting, for reference.
    """
    from hapfpga.finn.costs import FinnCosts
    from hapfpga.finn.graph import load_layers
    from hapfpga.folding.optimise import FoldingOptions, optimise, tightened

    clock = 100.0
    minbits = base.step_models["step_minimize_bit_width"]
    t0 = time.perf_counter()
    if costs == "finn":
        fc = FinnCosts(minbits, board.part)
        layers, kw, label = (
            fc.layers,
            {"cost_fn": fc.cost, "infrastructure": False, "estimate": False},
            "FINN costs",
        )
    else:
        layers, kw, label = load_layers(minbits), {}, "hapfpga estimator + FIFOs/DWCs"
    t_load = time.perf_counter() - t0
    budget = board.budget
    history = []
    for it in range(6):
        t1, c1 = time.perf_counter(), time.process_time()
        r = optimise(layers, board, FoldingOptions(clock_mhz=clock, **kw), budget=budget)
        t_opt, c_opt = time.perf_counter() - t1, time.process_time() - c1
        fold = work / f"{name}_ours_{costs}_{it}.json"
        fold.write_text(r.plan.to_finn_json())
        rep = finn_report(
            run_tail(
                base.step_models["step_specialize_layers"],
                work / f"{name}_ours_{costs}_{it}",
                folding_config_file=fold,
            )
        )
        over = fits(rep["total"], board.budget)
        history.append(
            {
                "iteration": it,
                "budget": budget.as_dict(),
                "predicted_fps": r.fps,
                "predicted_total": r.total.as_dict(),
                "finn_fps": rep["fps"],
                "finn_total": rep["total"].as_dict(),
                "over": over,
            }
        )
        print(
            f"  ours[{label}, iteration {it}]: predicted {r.fps:,.0f} FPS with {fmt(r.total)}; proved bound "
            f"{r.bound_fps:,.0f} FPS (binding {r.binding_resource}); optimise {t_opt:.2f}s wall, {c_opt:.2f}s CPU (solver {r.solve_seconds:.2f}s wall)"
        )
        print(
            f"      FINN's report: {rep['fps']:,.0f} FPS, {fmt(rep['total'])}{' OVER ' + ','.join(over) if over else ', fits'}"
        )
        if not over:
            aim = None
            if costs == "finn" and aim_fps:
                aim = aim_analysis(layers, fc.cost, board, clock, aim_fps)
            return {
                "aim": aim,
                "fps": rep["fps"],
                "total": rep["total"],
                "folding": str(fold),
                "predicted": r.fps,
                "bound_fps": r.bound_fps,
                "binding": r.binding_resource,
                "solve_s": r.solve_seconds,
                "optimise_s": t_opt,
                "optimise_cpu_s": c_opt,
                "load_s": t_load,
                "costs": label,
                "history": history,
            }
        budget = tightened(budget, r.total, rep["total"], KEYS, board.budget)
        print(f"      tightened budget to {fmt(budget)} and re-solving")
    raise SystemExit(f"{name}: our folding did not fit FINN's report after {len(history)} tightenings")


def fmt(r: Resources) -> str:
    return f"LUT {r.LUT:,.0f} BRAM18 {r.BRAM_18K:,.0f} DSP {r.DSP:,.0f} URAM {r.URAM:,.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="work directory, kept (default: a temporary one, deleted at exit)")
    ap.add_argument(
        "--costs",
        default="hapfpga",
        choices=("finn", "hapfpga"),
        help="cost model the optimiser uses (default: our estimator)",
    )
    ap.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference optimum computed with FINN's own per-node costs",
    )
    ap.add_argument("--models", default=None, help="tfc,cnv (default); with --all-boards cnv,resnet8,ds_cnn")
    ap.add_argument("--quick", action="store_true", help="coarser SetFolding scan")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--all-boards", action="store_true", help="every board in boards/, hapfpga fold's defaults")
    ap.add_argument("--boards", default=None, help="with --all-boards: a comma list of board keys instead")
    ap.add_argument("--compare-finn-cycles", action="store_true",
                    help="with --all-boards: also fold with folding.finn_cycles off and show both predictions")
    args = ap.parse_args(argv)
    if args.all_boards:
        return main_all_boards(args)
    from hapfpga.finn.build import run_finn_steps

    board = load_board("pynq-z2")
    work = work_dir(args.work, "fold_vs_finn_")
    print(f"board {board.name} budget: {fmt(board.budget)}; work dir {work}")
    results = {}
    args.models = args.models or "tfc,cnv"
    for key in args.models.split(","):
        name, shape = MODELS[key]
        print(f"{name}:")
        q = export(name, shape, work)
        base = run_finn_steps(q, work / f"{name}_base", board="Pynq-Z2", clock_mhz=100.0)
        o = ours(name, base, work, board, args.costs)
        aim = 3050.0 if key == "cnv" else None  # issue 4's aim: 2x the best SetFolding design
        ref = (
            None if args.no_reference or args.costs == "finn" else ours(name, base, work, board, "finn", aim)
        )
        t0 = time.perf_counter()
        s = setfolding_best_fit(base.step_models["step_specialize_layers"], work / f"{name}_setfolding", board,
                                settings=QUICK if args.quick else FINE)
        print(
            f"  SetFolding best fit: target_fps {s['target_fps']:,} -> {s['fps']:,.0f} FPS, {fmt(s['total'])} "
            f"({s['n_targets']} targets, {s['n_builds']} builds, {time.perf_counter() - t0:.0f}s)"
        )
        ratio = o["fps"] / s["fps"]
        print(
            f"  ours {o['fps']:,.0f} FPS vs SetFolding {s['fps']:,.0f} FPS: {ratio:.3f}x; "
            f"proved bound {o['bound_fps']:,.0f} FPS (binding {o['binding']})"
        )
        if ref is not None:
            print(
                f"  reference: exact optimum with FINN's own per-node costs {ref['fps']:,.0f} FPS "
                f"(ours, with our estimator, reaches {o['fps'] / ref['fps']:.1%} of it)"
            )
        results[key] = {
            "ours": {**o, "total": o["total"].as_dict()},
            "reference_finn_costs": None if ref is None else {**ref, "total": ref["total"].as_dict()},
            "setfolding": {**s, "total": s["total"].as_dict()},
            "ratio": ratio,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    for key in args.models.split(","):
        ref = results[key].get("reference_finn_costs")
        if ref is not None:  # same judge, optimised against the judge's own accounting (no FIFOs/DWCs)
            sf = results[key]["setfolding"]["fps"]
            print(f"fold_speedup_vs_setfolding_{key}_finn_costs {ref['fps'] / sf:.4f}")
    for key in args.models.split(","):
        if key != "cnv":
            print(f"fold_speedup_vs_setfolding_{key} {results[key]['ratio']:.4f}")
    if "cnv" in results:
        print(f"fold_speedup_vs_setfolding_cnv {results['cnv']['ratio']:.4f}")
    return 0 if all(math.isfinite(r["ratio"]) for r in results.values()) else 1


ZOO = {"resnet8": ((3, 32, 32), 10), "ds_cnn": ((1, 49, 10), 12)}


def export_any(key: str, work: Path) -> Path:
    """CNV-w2a2 from brevitas_examples, or a 2-bit zoo model (untrained, seed 0) exported as ``hapfpga run`` does."""
    if key in MODELS:
        return export(*MODELS[key], work)
    from hapfpga.export import export_qonnx
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    path = work / f"{key}.qonnx.onnx"
    if not path.exists():
        shape, classes = ZOO[key]
        export_qonnx(build_model(ModelConfig(name=key), shape, classes, seed=0), shape, path)
    return path


def _cached(path: Path, make):  # noqa: ANN001, ANN202
    """JSON memo of a slow FINN result at ``path`` (the work dir is keyed by model hash and board)."""
    if path.is_file():
        d = json.loads(path.read_text())
    else:
        d = make()
        path.write_text(json.dumps(d, default=lambda r: r.as_dict()))
    if not isinstance(d["total"], Resources):
        d["total"] = Resources.from_dict(d["total"])
    return d


def undercounts(finn_run, res, names: dict[str, str] | None = None) -> list[str]:  # noqa: ANN001
    """Layers whose LUTs or cycles FINN's report counts below ours (its known gaps: 0 LUT for RTL MVAUs, D10);
    ``names``: our node names -> FINN's after specialising (a mixed design)."""
    per = finn_run.reports["estimate_layer_resources"]
    cyc = finn_run.reports.get("estimate_layer_cycles", {})
    out = []
    for ours, (r, c) in res.layer_costs.items():
        name = (names or {}).get(ours, ours)
        f = per.get(name) or {}
        if f.get("LUT", 0) < 0.5 * r.LUT and r.LUT > 100:
            out.append(f"{name} LUT {f.get('LUT', 0):,.0f} < ours {r.LUT:,.0f}")
        if name in cyc and int(cyc[name]) < c:
            out.append(f"{name} cycles {int(cyc[name]):,} < ours {c:,}")
    return out


def ours_default(q: Path, board, work: Path, **kw) -> dict:  # noqa: ANN001
    """``hapfpga fold``'s design with its defaults (``kw`` overrides one): the same ``choose_design`` (both graphs,
    the faster kept), then FINN's report of it, built with the design's specialize config (judged twice)."""
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions
    from hapfpga.stages.variant import choose_design

    layers, spec = hw_layers_from_qonnx(q, work / "hw", board)
    d = choose_design(q, layers, work / "hw", board, FoldingOptions(**kw))
    r = d.result
    tag = f"{q.stem}_{board.key}_ours" + "".join(f"_{k}{v}" for k, v in kw.items())
    fold = work / f"{tag}.json"
    fold.write_text(d.text)
    if d.specialize:  # the mixed graph: FINN's whole estimate flow with the per-node specialize config
        (work / f"{tag}.specialize.json").write_text(json.dumps(d.specialize, indent=1))
        run = run_finn_steps(q, work / tag, board=board.finn_board, clock_mhz=board.clock_mhz,
                             specialize_layers_config_file=work / f"{tag}.specialize.json",
                             standalone_thresholds=True, folding_config_file=fold)
    else:
        run = run_finn_steps(spec, work / tag, board=board.finn_board, clock_mhz=board.clock_mhz,
                             steps=TAIL_STEPS, folding_config_file=fold)
    rep = finn_report(run)
    ours_total = r.estimate.total if r.estimate is not None else r.total
    return {"predicted_fps": r.fps, "finn_fps": rep["fps"], "finn_total": rep["total"], "ours_total": ours_total,
            "fits_ours": not ours_total.over(board.budget, KEYS), "fits_finn": not rep["total"].over(board.budget, KEYS),
            "binding": r.binding_resource, "margin": r.margin, "undercounts": undercounts(run, r, d.names),
            "spec": spec, "layers": layers, "variant": d.variant, "variant_fps": d.fps}


def ceiling_rows(layers, board, fps: float) -> list[dict]:  # noqa: ANN001
    """The least-loaded legal design reaching ``fps`` in ``hapfpga fold``'s problem (``least_loaded``), at the default
    margin and at margin 0: a utilisation above 100 % proves no folding in the knob space reaches ``fps``."""
    from hapfpga.errors import InfeasibleError
    from hapfpga.folding import FoldingOptions, least_loaded

    out = []
    for label, margin in (("default margin", None), ("margin 0", 0.0)):
        try:
            c = least_loaded(layers, board, fps, FoldingOptions(margin=margin))
        except InfeasibleError as e:  # faster than every layer's fastest legal folding
            print(f"      {fps:,.0f} FPS, {label}: {e}")
            out.append({"margin": label, "utilisation": math.inf, "binding": "no legal folding at any budget",
                        "reachable": False, "optimal": True})
            continue
        out.append({"margin": label, **c.as_json()})
        verdict = "reachable" if c.reachable else "out of reach" + (" (proved)" if c.optimal else "")
        print(f"      {fps:,.0f} FPS ({c.cycle_limit:,} cycles), {label}: the least-loaded legal design needs "
              f"{c.utilisation:.1%} of the {c.binding} budget ({fmt(c.total)}) -> {verdict}")
    return out


def board_row(key: str, board, work: Path, settings, compare_cycles: bool = False) -> dict:  # noqa: ANN001
    q = export_any(key, work)
    o = ours_default(q, board, work)
    if compare_cycles:
        off = ours_default(q, board, work, finn_cycles=False)
        print(f"  {board.name}: finn_cycles off: predicted {off['predicted_fps']:,.0f}, FINN's report "
              f"{off['finn_fps']:,.0f}; on (default): predicted {o['predicted_fps']:,.0f}, FINN's report {o['finn_fps']:,.0f}")
    sf = _cached(work / f"{q.stem}_{board.key}_setfolding.json",
                 lambda: setfolding_best_fit(o["spec"], work / f"{q.stem}_{board.key}_sf", board,
                                             clock_mhz=board.clock_mhz, settings=settings))
    ok = o["fits_ours"] and o["fits_finn"]
    ratio = o["finn_fps"] / sf["fps"] if ok else 0.0
    print(f"  {board.name}: ours ({o['variant']} graph; folded: "
          + ", ".join(f"{k} {v:,.0f}" if v else f"{k} -" for k, v in o["variant_fps"].items())
          + f") {o['finn_fps']:,.0f} FPS by FINN (predicted {o['predicted_fps']:,.0f}; "
          f"fits: ours {o['fits_ours']}, FINN {o['fits_finn']}; FINN {fmt(o['finn_total'])}; binding {o['binding']}); "
          f"SetFolding best fit {sf['fps']:,.0f} FPS (target {sf['target_fps']:,}, {fmt(sf['total'])}) -> {ratio:.2f}x")
    for u in o["undercounts"]:
        print(f"      FINN's report undercounts: {u}")
    ceiling = ceiling_rows(o["layers"], board, 2 * sf["fps"])
    return {"ceiling_2x": ceiling, "board": board.name, "variant": o["variant"], "ours": o["finn_fps"], "predicted": o["predicted_fps"], "setfolding": sf["fps"],
            "ratio": ratio, "fits_ours": o["fits_ours"], "fits_finn": o["fits_finn"], "undercounts": o["undercounts"]}


def main_all_boards(args) -> int:  # noqa: ANN001
    from hapfpga.boards import list_boards

    work = work_dir(args.work, "fold_all_boards_")
    keys = (args.boards or ",".join(list_boards())).split(",")
    settings = QUICK if args.quick else FINE
    rows: dict[str, list[dict]] = {}
    for model in (args.models or "cnv,resnet8,ds_cnn").split(","):
        print(f"{model} (work dir {work}):")
        rows[model] = [board_row(model, load_board(k), work, settings, args.compare_finn_cycles) for k in keys]
    print("| model | board | ours, hapfpga fold defaults (FINN report) | graph | SetFolding best fit | ratio "
          "| 2x SetFolding needs, embedded graph (default margin / margin 0) |")
    print("|---|---|---|---|---|---|---|")
    for model, rs in rows.items():
        for r in rs:
            need = " / ".join(f"{c['utilisation']:.0%} {c['binding']}" if math.isfinite(c["utilisation"])
                              else c["binding"] for c in r["ceiling_2x"])
            print(f"| {model} | {r['board']} | {r['ours']:,.0f} | {r['variant']} | {r['setfolding']:,.0f} | "
                  f"{r['ratio']:.2f}x | {need} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    for model, rs in rows.items():
        print(f"fold_speedup_vs_setfolding_min_{model} {min(r['ratio'] for r in rs):.4f}")
    head = rows.get("cnv") or next(iter(rows.values()))
    print(f"fold_speedup_vs_setfolding_min {min(r['ratio'] for r in head):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hardware-aware pruning + our folding vs FINN's SetFolding on the unpruned model, judged by FINN's estimates.

FINN's CNV topology (``brevitas_examples`` ``cnv_2w2a``: 2-bit weights and activations), trained on scikit-learn
digits upsampled to 3×32×32 (``hapfpga.data.load_digits(size=32, channels=3)``), Pynq-Z2 at 100 MHz. In one run:

1. train the unpruned model (QAT, seeded) and measure its test accuracy;
2. **FINN**: SetFolding (``step_target_fps_parallelization``) over a scan of ``target_fps`` on the unpruned
   model, keeping the fastest design whose FINN estimate fits the board budget;
3. **ours**: ``hapfpga.pruning.run_pruning_stage`` (greedy NetAdapt-style, FPS target = ``--speedup-target`` ×
   SetFolding's FPS, predicted with scaled FINN layer specs + the folding optimiser), fine-tune, export, FINN
   conversion of the pruned model, ``hapfpga.folding.optimise`` → folding file → finn-plus estimate-only build
   (tightening the budget and re-solving if FINN's report is over budget);
4. **uniform baseline**: the same keep ratio in every layer, the largest whose predicted FPS reaches our pruned
   model's predicted FPS, fine-tuned the same way, test accuracy (what hardware awareness buys).

Both FPS figures come from finn-plus's ``estimate_network_performance.json``; fit from
``estimate_layer_resources.json`` against FINN's default utilisation limits (LUT 0.7, BRAM/DSP 0.8).
Last line: ``prune_fold_speedup_vs_setfolding <ratio> accuracy_drop_pts <x>``.

Usage: ``.venv/bin/python benchmarks/pruning_vs_finn.py [--work DIR] [--epochs N] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.finn.build import FOLD_AND_ESTIMATE_STEPS as TAIL_STEPS  # noqa: E402
from hapfpga.finn.setfolding import FINE, QUICK, setfolding_best_fit  # noqa: E402
from hapfpga.types import Resources  # noqa: E402

KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")
T0 = time.perf_counter()


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.0f}s] {msg}", flush=True)


def fmt(r: Resources) -> str:
    return f"LUT {r.LUT:,.0f} BRAM18 {r.BRAM_18K:,.0f} DSP {r.DSP:,.0f}"


def finn_report(result) -> dict:
    res = result.reports["estimate_layer_resources"]
    perf = result.reports["estimate_network_performance"]
    return {
        "fps": float(perf["estimated_throughput_fps"]),
        "bottleneck": perf["max_cycles_node_name"],
        "total": Resources.from_dict(res.get("total") or {}),
    }


def run_tail(model: Path, out: Path, **kw):
    from hapfpga.finn.build import run_finn_steps

    return run_finn_steps(model, out, board="Pynq-Z2", clock_mhz=100.0, steps=TAIL_STEPS, **kw)


def setfolding_job(qonnx: Path, work: Path, board, quick: bool, smoke: bool = False) -> dict:
    """SetFolding's best fit on the unpruned model (cached in ``WORK/setfolding.json`` for resumed runs)."""
    from hapfpga.finn.build import run_finn_steps

    cache = work / "setfolding.json"
    if cache.is_file():
        d = json.loads(cache.read_text())
        return {**d, "total": Resources.from_dict(d["total"])}
    base = run_finn_steps(qonnx, work / "finn_base", board="Pynq-Z2", clock_mhz=100.0)
    if smoke:
        rep = finn_report(run_tail(base.step_models["step_specialize_layers"], work / "sf_smoke", target_fps=1000))
        out = {"target_fps": 1000, "n_builds": 1, "fits": True, **rep}
    else:
        out = setfolding_best_fit(base.step_models["step_specialize_layers"], work, board,
                                  settings=QUICK if quick else FINE)
    cache.write_text(json.dumps({**out, "total": out["total"].as_dict()}))
    return out


def our_folding(qonnx: Path, work: Path, board) -> dict:
    """FINN conversion of the (pruned) model, our folding, FINN's estimate-only report (tighten until it fits)."""
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import load_layers
    from hapfpga.folding.optimise import optimise, tightened

    base = run_finn_steps(qonnx, work / "ours_base", board="Pynq-Z2", clock_mhz=100.0)
    layers = load_layers(base.step_models["step_minimize_bit_width"])
    budget = board.budget
    for it in range(6):
        r = optimise(layers, board, clock_mhz=100.0, budget=budget, estimate=False, time_limit=120)
        fold = work / f"ours_folding_{it}.json"
        fold.write_text(r.plan.to_finn_json())
        rep = finn_report(run_tail(base.step_models["step_specialize_layers"], work / f"ours_{it}",
                                   folding_config_file=fold))
        over = rep["total"].over(board.budget, KEYS)
        say(f"  ours[{it}]: predicted {r.fps:,.0f} FPS; FINN {rep['fps']:,.0f} FPS, {fmt(rep['total'])}"
            f"{' OVER ' + ','.join(over) if over else ''}")
        if not over:
            return {**rep, "predicted_fps": r.fps, "folding": str(fold), "iterations": it + 1}
        budget = tightened(budget, r.total, rep["total"], KEYS)
    raise SystemExit("our folding of the pruned model did not fit FINN's report after 6 tightenings")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None)
    ap.add_argument("--epochs", type=float, default=3.0, help="QAT epochs of the unpruned model")
    ap.add_argument("--finetune-epochs", type=float, default=2.0, help="fine-tune epochs after pruning")
    ap.add_argument("--speedup-target", type=float, default=4.5, help="greedy FPS target, × SetFolding FPS")
    ap.add_argument("--setfolding-hint", type=float, default=1526.0,
                    help="SetFolding FPS used to set the search target while the real scan runs in parallel")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="coarser SetFolding scan")
    ap.add_argument("--max-steps", type=int, default=25, help="greedy steps at most")
    ap.add_argument("--candidate-steps", type=int, default=6, help="fold-friendly counts per group (step size)")
    ap.add_argument("--workers", type=int, default=4, help="processes for the FPS predictor")
    ap.add_argument("--step-finetune", type=float, default=0.1, help="fine-tune epochs after each greedy step")
    ap.add_argument("--smoke", action="store_true", help="plumbing check: one SetFolding target only")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    from hapfpga.data import load_digits
    from hapfpga.pruning.apply import ChannelGraph, prune_to_counts
    from hapfpga.pruning.finetune import FinetuneConfig, finetune
    from hapfpga.pruning.importance import make_importance
    from hapfpga.pruning.plan import uniform_counts
    from hapfpga.pruning.sensitivity import evaluate_accuracy
    from hapfpga.pruning.stage import build_hw_evaluator, export_for_finn, run_pruning_stage, split_validation

    board = load_board("pynq-z2")
    work = Path(args.work or tempfile.mkdtemp(prefix="prune_vs_finn_"))
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    data = load_digits(size=32, channels=3)
    say(f"data {data.name}: train {len(data.x_train)}, test {len(data.x_test)}; board {board.name} "
        f"budget {fmt(board.budget)}; work {work}")

    # 1. the unpruned model
    x_fit, y_fit, _, _ = split_validation(data.x_train, data.y_train, 0.15, args.seed)
    base_pt = work / "baseline_state.pt"  # cached: re-running with the same --work resumes after training
    model, _ = model_with_cfg("cnv_2w2a", pretrained=False)
    if base_pt.is_file():
        model.load_state_dict(torch.load(base_pt))
    else:
        finetune(model, data.x_train, data.y_train, FinetuneConfig(epochs=args.epochs, lr=2e-3, batch_size=32),
                 seed=args.seed)
        torch.save(model.state_dict(), base_pt)  # Brevitas injectors do not pickle: save the state only
    model.eval()
    acc_base = evaluate_accuracy(model, data.x_test, data.y_test)
    say(f"unpruned CNV-w2a2: test accuracy {100 * acc_base:.2f}%")
    base_onnx = export_for_finn(model, (3, 32, 32), work / "baseline.qonnx.onnx")

    # 2. FINN SetFolding on the unpruned model — in a worker process, concurrently with the pruning search
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"))
    sf_future = pool.submit(setfolding_job, base_onnx, work, board, args.quick, args.smoke)

    # 3. our hardware-aware pruning; FPS target = speedup-target × the SetFolding reference FPS of REFERENCE.md
    # (1,526 FPS for CNV-w2a2 on Pynq-Z2) — the measured SetFolding FPS of this run is what the ratio uses
    target = args.speedup_target * args.setfolding_hint
    cfg = {
        "method": "greedy", "target": "fps", "target_fps": target, "importance": "l1",
        "candidate_steps": args.candidate_steps, "min_ratio": 0.125, "predictor_workers": args.workers, "max_steps": args.max_steps, "step_finetune_epochs": args.step_finetune,
        "finetune_epochs": args.finetune_epochs, "lr": 1e-3, "sensitivity": False, "folding_time_limit": 30.0,
        "val_fraction": 0.15,
    }
    pruned, rep = run_pruning_stage(cfg, model, data, board, work / "prune", clock_mhz=100.0, seed=args.seed,
                                    log=lambda s: say("  " + s))
    acc_pruned = evaluate_accuracy(pruned, data.x_test, data.y_test)
    say(f"pruned: channels {rep['channels_after']}; predicted {rep['fps_after']:,.0f} FPS; test accuracy "
        f"{100 * acc_pruned:.2f}%; params {rep['params']['before']:,} -> {rep['params']['after']:,}")
    pruned_onnx = export_for_finn(pruned, (3, 32, 32), work / "final.qonnx.onnx")
    ours_future = pool.submit(our_folding, pruned_onnx, work, board)

    # 4. uniform baseline at the same predicted FPS
    example = torch.as_tensor(x_fit[:2], dtype=torch.float32)
    graph = ChannelGraph(model.eval(), example)
    full = rep["channels_before"]
    hw, _, _ = build_hw_evaluator(model, graph, (3, 32, 32), board, work / "prune" / "pruning", clock_mhz=100.0,
                                  time_limit=30.0)
    # largest keep ratio (1/32 grid) whose predicted FPS reaches ours: bisection (FPS falls as the ratio grows)
    lo, hi = 1, 32  # ratio = k/32; invariant: fps(lo/32) >= target (assumed), fps(hi/32) < target unless k=32
    if hw(uniform_counts(full, 1.0)).fps >= rep["fps_after"]:
        lo = 32
    while hi - lo > 1 and lo < 32:
        mid = (lo + hi) // 2
        if hw(uniform_counts(full, mid / 32)).fps >= rep["fps_after"]:
            lo = mid
        else:
            hi = mid
    ratio = lo / 32
    ucounts = uniform_counts(full, ratio)
    imp = make_importance("l1")
    uni, _ = prune_to_counts(model, example, ucounts, imp, graph=graph)
    finetune(uni, x_fit, y_fit, FinetuneConfig(epochs=args.finetune_epochs, lr=1e-3), seed=args.seed)
    acc_uni = evaluate_accuracy(uni, data.x_test, data.y_test)
    say(f"uniform keep ratio {ratio:.3f}: channels {ucounts}; predicted {hw(ucounts).fps:,.0f} FPS; "
        f"test accuracy {100 * acc_uni:.2f}%")

    sf = sf_future.result()
    say(f"SetFolding best fit: target_fps {sf['target_fps']:,} -> {sf['fps']:,.0f} FPS, {fmt(sf['total'])} "
        f"({sf['n_builds']} builds)")
    ours = ours_future.result()
    pool.shutdown()
    speedup = ours["fps"] / sf["fps"]
    drop = 100 * (acc_base - acc_pruned)
    result = {
        "unpruned": {"accuracy": acc_base, "setfolding": {**sf, "total": sf["total"].as_dict()}},
        "pruned": {"accuracy": acc_pruned, "finn": {**ours, "total": ours["total"].as_dict()}, "pruning": rep},
        "uniform": {"ratio": ratio, "channels": ucounts, "accuracy": acc_uni,
                    "predicted_fps": hw(ucounts).fps},
        "speedup": speedup,
        "accuracy_drop_pts": drop,
        "seconds": time.perf_counter() - T0,
    }
    (work / "pruning_vs_finn.json").write_text(json.dumps(result, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    print(f"unpruned + FINN SetFolding: {sf['fps']:,.0f} FPS (FINN estimate), test accuracy {100 * acc_base:.2f}%")
    print(f"pruned + our folding:       {ours['fps']:,.0f} FPS (FINN estimate, fits: {fmt(ours['total'])}), "
          f"test accuracy {100 * acc_pruned:.2f}%")
    print(f"uniform pruning, same predicted FPS (ratio {ratio:.3f}): test accuracy {100 * acc_uni:.2f}% "
          f"({100 * (acc_base - acc_uni):+.2f} pts drop vs ours {drop:+.2f})")
    print(f"total time {time.perf_counter() - T0:.0f}s")
    print(f"prune_fold_speedup_vs_setfolding {speedup:.3f} accuracy_drop_pts {drop:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

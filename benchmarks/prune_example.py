"""The documented pruning example through the user path, per seed: time, CPU, FPS and accuracy vs SetFolding.

Issue 24's acceptance for ``examples/prune_cnv_digits.yaml``: the whole ``hapfpga run`` in at most 10 minutes on
this 2-core machine alone, within 1 point of the unpruned model's test accuracy, at least 5× SetFolding's best fit
of the unpruned model — on every seed. Per seed this benchmark

1. writes a copy of the config with ``seed: N`` and runs ``python -m hapfpga.cli run COPY --out WORK/seedN`` as a
   child process (what a user gets), with a cold FPS-predictor cache (``HAPFPGA_PREDICTOR_CACHE`` set to a new,
   empty folder: that cache is the only state a run reads from outside its out dir) and a fresh out dir;
2. measures the child's wall time, its CPU seconds (``getrusage(RUSAGE_CHILDREN)`` deltas, user + sys, the
   child's own processes included) and the load average at start and end;
3. reads ``WORK/seedN/report.json``: the FPS of the delivered design by finn-plus's estimate report, whether it
   fits by our estimate and by FINN's report, test accuracy unpruned vs pruned, channels removed; and re-scores
   the run's ``baseline.pt`` and ``pruned.pt`` per test sample (``test_paired``: the samples the pruned model
   lost and gained, kept only when they reproduce the report's two accuracies exactly), so the row prints the
   drop's paired 95 % interval as ``pruning_vs_finn.py`` does (its docstring, "How sure a seed's drop is");
4. takes the denominator from the run's own unpruned export (``WORK/seedN/baseline.qonnx.onnx``: same
   architecture and bits, that seed's weights): SetFolding's best fitting design, judged by FINN's report
   (``hapfpga.finn.setfolding.setfolding_best_fit``, the scan ``pruning_vs_finn.py`` uses, started at 400 FPS as
   there), cached under a hash of the ONNX bytes, the board, the scan grid, finn-plus's version and the source
   of ``hapfpga/finn``.

Why CPU seconds bound the wall time alone on 2 cores: the run is one process except the FPS predictor's pool
(``hapfpga/pruning/predictor.py``, ``pruning.predictor_workers`` spawned processes folding a greedy step's
trials) and ``pruning.search.workers`` forked accuracy trials (``hapfpga/pruning/parallel.py``; 1 in the
example, so none); training runs on one torch thread (``hapfpga.train.TRAIN_THREADS``). With at most two
processes busy at once on two otherwise idle cores, the wall time is at most the CPU time (less by the overlap).

Usage: ``python benchmarks/prune_example.py [CONFIG] --seeds 0 1 2 [--json F]``; seeds run one after another
(one heavy process at a time); seeds run as separate invocations (``--seeds N --json sN.json``) are summarised by
``--combine s0.json s1.json s2.json``. Last line: ``prune_example_worst_seed_speedup <r> worst_seed_drop_pts <x>
max_cpu_s <s> max_wall_s <w>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pruning_vs_finn import (  # noqa: E402  (benchmarks/ is on sys.path when run)
    Cache,
    code_version,
    drop_interval_pts,
    held_out_correct,
    interval_text,
    seed_verdict,
)
from scratch import work_dir  # noqa: E402  (benchmarks/scratch.py)

from hapfpga.finn.setfolding import FINE, QUICK, setfolding_best_fit  # noqa: E402

DEFAULT_CONFIG = ROOT / "examples" / "prune_cnv_digits.yaml"
#: issue 24's acceptance, per seed
MIN_SPEEDUP, MAX_DROP_PTS, MAX_CPU_S = 5.0, 1.0, 600.0
SF_START = 400.0  # pruning_vs_finn.py's start for the unpruned model


# ----------------------------------------------------------------------------------------------- the denominator


def setfolding_key(onnx: Path, board, settings) -> dict:
    """Everything that produces a SetFolding best fit: the model's bytes, the board, the scan grid, FINN's code."""
    return {"onnx": hashlib.sha256(Path(onnx).read_bytes()).hexdigest(), "board": board.key,
            "budget": board.budget.as_dict(), "clock_mhz": board.clock_mhz, "scan": dataclasses.asdict(settings),
            "finn_code": code_version(("hapfpga/finn",))}


def setfolding_cached(onnx: Path, work: Path, board, settings, cache: Path) -> dict:
    """SetFolding's best fit of ``onnx`` by FINN's report (FPS, target, fit), from ``cache`` when the key matches
    (``pruning_vs_finn.Cache``: one file per result, named by the key's hash)."""
    from hapfpga.finn.build import run_finn_steps

    key, store = setfolding_key(onnx, board, settings), Cache(cache)
    hit = store.get("setfolding", key)
    if hit is not None:
        return {**hit, "cached": True}
    base = run_finn_steps(onnx, work / "finn_base", board=board.finn_board, clock_mhz=board.clock_mhz)
    best = setfolding_best_fit(base.step_models["step_specialize_layers"], work, board, clock_mhz=board.clock_mhz,
                               settings=settings)
    value = {"fps": best["fps"], "target_fps": best["target_fps"], "n_builds": best["n_builds"],
             "n_targets": best["n_targets"], "fits": best["fits"], "total": best["total"].as_dict()}
    store.put("setfolding", key, value)
    return {**value, "cached": False}


# ----------------------------------------------------------------------------------------------- one seed


def seed_config(config: Path, seed: int, dest: Path) -> Path:
    """A copy of ``config`` at ``dest`` with ``seed: N`` (runs from the repository root, as the example's docs do)."""
    cfg = yaml.safe_load(Path(config).read_text())
    cfg["seed"] = seed
    dest.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def run_child(cfg: Path, out: Path, log: Path, predictor_cache: Path) -> dict:
    """``python -m hapfpga.cli run cfg --out out`` with a cold predictor cache; wall, CPU seconds, load."""
    env = {**os.environ, "HAPFPGA_PREDICTOR_CACHE": str(predictor_cache), "PYTHONUNBUFFERED": "1"}
    load0, r0, t0 = os.getloadavg(), resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run([sys.executable, "-m", "hapfpga.cli", "run", str(cfg), "--out", str(out)], cwd=ROOT,
                            env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    wall, r1, load1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()
    if rc != 0:
        tail = log.read_text()[-2000:]
        raise SystemExit(f"hapfpga run {cfg} exited {rc}; the end of {log}:\n{tail}")
    return {"wall_s": wall, "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
            "load_start": load0[0], "load_end": load1[0]}


def report_figures(out: Path) -> dict:
    """The figures of a run's ``report.json``: FINN-estimate FPS, fits (ours, FINN's), test accuracies, channels."""
    rep = json.loads((out / "report.json").read_text())
    p = rep["pruning"]
    before, after = p["channels_before"], p["channels_after"]
    return {"fps": float(rep["finn_estimate"]["fps"]), "fits_ours": bool(rep["estimate"]["fits"]),
            "fits_finn": bool(rep["finn_estimate"]["fits"]), "acc_unpruned": 100 * p["accuracy"]["before"],
            "acc_pruned": 100 * p["accuracy"]["after"],
            "drop_pts": 100 * (p["accuracy"]["before"] - p["accuracy"]["after"]),
            "channels_before": sum(before.values()), "channels_removed": sum(before[k] - after[k] for k in before),
            "timings": rep.get("timings", {})}


def paired_on_test(cfg: Path, out: Path, figs: dict) -> dict | None:
    """The run's unpruned and pruned models (``baseline.pt`` and ``pruned.pt`` in its out dir) scored per sample
    on the config's test split (``load_dataset`` as ``hapfpga run`` loads it): ``{n, lost, gained}`` of the pruned
    model against the unpruned one. None when these scores do not reproduce the report's two accuracies exactly
    (then they are not the run's own figures, e.g. a run that scored on another device)."""
    import contextlib

    from hapfpga.data import load_dataset
    from hapfpga.pruning.selection import Paired
    from hapfpga.runconfig import load_run_config
    from hapfpga.zoo import load_model

    with contextlib.chdir(ROOT):  # the child ran from the repository root
        conf = load_run_config(cfg)
        data = load_dataset(conf.data, seed=conf.seed)
    base, pruned = (held_out_correct(load_model(out / f), data) for f in ("baseline.pt", "pruned.pt"))
    if (100 * float(base.mean()), 100 * float(pruned.mean())) != (figs["acc_unpruned"], figs["acc_pruned"]):
        print(f"note: {out}'s models re-scored on the test split give {100 * base.mean():.2f} / "
              f"{100 * pruned.mean():.2f} %, its report {figs['acc_unpruned']:.2f} / {figs['acc_pruned']:.2f} %: "
              f"no paired interval for this seed", flush=True)
        return None
    p = Paired.of(base, pruned)
    return {"n": p.n, "lost": p.lost, "gained": p.gained}


def run_seed(seed: int, args, board, work: Path) -> dict:
    out = work / f"seed{seed}"
    if out.exists():
        raise SystemExit(f"{out} exists; give a new --work folder (each seed needs a fresh out dir).")
    cfg = seed_config(Path(args.config), seed, work / f"seed{seed}.yaml")
    pcache = Path(tempfile.mkdtemp(prefix=f"predictor_seed{seed}_", dir=work))
    print(f"seed {seed}: hapfpga run {cfg} --out {out} (log {work / f'seed{seed}.log'})", flush=True)
    timing = run_child(cfg, out, work / f"seed{seed}.log", pcache)
    figs = report_figures(out)
    figs["test_paired"] = paired_on_test(cfg, out, figs)
    t0 = time.perf_counter()
    sf = setfolding_cached(out / "baseline.qonnx.onnx", work / f"sf_seed{seed}", board, scan_settings(args),
                           Path(args.cache))
    figs["setfolding_s"] = time.perf_counter() - t0  # not part of the run's time: the benchmark's denominator
    row = {"seed": seed, **timing, **figs, "setfolding_fps": sf["fps"], "setfolding_target": sf["target_fps"],
           "setfolding_builds": sf["n_builds"], "setfolding_cached": sf["cached"], "ratio": figs["fps"] / sf["fps"]}
    row["checks"] = {"speedup": row["ratio"] >= MIN_SPEEDUP, "drop": row["drop_pts"] <= MAX_DROP_PTS + 1e-9,
                     "cpu": row["cpu_s"] <= MAX_CPU_S, "fits": row["fits_finn"]}
    return row


def scan_settings(args):
    base = QUICK if args.scan == "quick" else FINE
    return dataclasses.replace(base, start=args.sf_start, **({"stop": args.sf_stop} if args.sf_stop else {}))


# ----------------------------------------------------------------------------------------------- output


def print_row(r: dict) -> None:
    """One seed: FPS, ratio, test accuracies and the drop with its paired 95 % interval (``[-]`` for a row from
    before ``test_paired``), the acceptance checks; a failed drop check whose interval reaches down to the rule
    says ``(within test noise)`` (``pruning_vs_finn.seed_verdict``'s reading; the check stays on the observed
    drop)."""
    c = r["checks"]
    ci = drop_interval_pts(r)
    noise = (" (within test noise)" if seed_verdict(r["drop_pts"], ci, True, MAX_DROP_PTS) == "fails (within test noise)"
             else "")
    ok = "meets" if all(c.values()) else "FAILS " + ", ".join(k + (noise if k == "drop" else "")
                                                                for k, v in c.items() if not v)
    print(f"seed {r['seed']}: {r['fps']:,.0f} FPS (FINN estimate; fits ours {'yes' if r['fits_ours'] else 'NO'}, "
          f"FINN {'yes' if r['fits_finn'] else 'NO'}) = {r['ratio']:.2f}x SetFolding's best fit "
          f"{r['setfolding_fps']:,.0f} FPS (target {r['setfolding_target']}); test {r['acc_pruned']:.2f}% vs "
          f"unpruned {r['acc_unpruned']:.2f}% (drop {r['drop_pts']:.2f} pt, 95 % interval {interval_text(ci)}); "
          f"{r['channels_removed']} of "
          f"{r['channels_before']} channels removed; {r['cpu_s']:.0f} CPU-s, {r['wall_s']:.0f} s wall, load "
          f"{r['load_start']:.1f} -> {r['load_end']:.1f}; acceptance (>= {MIN_SPEEDUP:g}x, <= {MAX_DROP_PTS:g} pt, "
          f"<= {MAX_CPU_S:g} CPU-s, fits): {ok}", flush=True)


def last_line(rows: list[dict]) -> str:
    worst = min(rows, key=lambda r: r["ratio"])
    drop = max(r["drop_pts"] for r in rows)
    return (f"prune_example_worst_seed_speedup {worst['ratio']:.3f} worst_seed_drop_pts {drop:.2f} "
            f"max_cpu_s {max(r['cpu_s'] for r in rows):.0f} max_wall_s {max(r['wall_s'] for r in rows):.0f}")


def summarise(rows: list[dict], show_rows: bool = True) -> None:
    rows = sorted(rows, key=lambda r: r["seed"])
    for r in rows if show_rows else []:
        print_row(r)
    n = len(rows)
    print(f"{n} seed(s): mean {sum(r['ratio'] for r in rows) / n:.2f}x at {sum(r['drop_pts'] for r in rows) / n:.2f} "
          f"pt; worst seed {min(rows, key=lambda r: r['ratio'])['seed']} (lowest ratio); every seed meets the "
          f"acceptance: {'yes' if all(all(r['checks'].values()) for r in rows) else 'NO'}")
    print(last_line(rows))


def combine(paths: list[str]) -> int:
    """Rows of several ``--json`` files (same config, different seeds) summarised as one run."""
    results = [json.loads(Path(p).read_text()) for p in paths]
    configs = {r["config_sha256"] for r in results}
    if len(configs) > 1:
        raise SystemExit("--combine: the runs used different configs; combine runs of one config only.")
    rows = [row for r in results for row in r["rows"]]
    if len({r["seed"] for r in rows}) < len(rows):
        raise SystemExit("--combine: a seed appears in more than one file.")
    summarise(rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--work", default=None, help="out dirs, logs, seed configs, kept (default: a new temporary folder, deleted at exit)")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench_cache" / "prune_example"),
                    help="SetFolding results by hash")
    ap.add_argument("--scan", choices=("fine", "quick"), default="fine", help="SetFolding scan grid")
    ap.add_argument("--sf-start", type=float, default=SF_START, help="first SetFolding target_fps")
    ap.add_argument("--sf-stop", type=float, default=None, help="last SetFolding target_fps (default the grid's)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--combine", nargs="+", default=None, metavar="JSON")
    args = ap.parse_args(argv)
    if args.combine:
        return combine(args.combine)
    from hapfpga.boards import load_board

    cfg_text = Path(args.config).read_bytes()
    board = load_board(yaml.safe_load(cfg_text).get("board", "pynq-z2"))
    work = work_dir(args.work, "prune_example_")
    rows = []
    for s in args.seeds:
        rows.append(run_seed(s, args, board, work))
        print_row(rows[-1])
    if args.json:
        Path(args.json).write_text(json.dumps({"config": args.config, "rows": rows, "args": vars(args),
                                               "config_sha256": hashlib.sha256(cfg_text).hexdigest()}, indent=1))
    summarise(rows, show_rows=False)  # each row was printed when its seed ended
    return 0


if __name__ == "__main__":
    sys.exit(main())

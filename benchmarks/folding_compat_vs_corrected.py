"""What the corrected costs change in the folding the optimiser picks: ``--finn-compat`` costs vs ours.

For an open-simulatable design (FINN's RTL layers; default CNV-w2a2 from ``brevitas_examples``, untrained, on
Pynq-Z2 at 100 MHz, or ``--qonnx`` any QONNX export such as the demo's ``final.qonnx.onnx``), the optimiser
(``hapfpga fold --open-simulatable --max-fps``) runs twice: with FINN's own per-node costs (``finn_compat``) and
with ours (the RTL-MVAU DSP packing rule, the memory_libmap BRAM rule, the structural LUT models). Prints the
per-layer PE/SIMD/ram_style differences and judges both designs the same ways: FINN's per-node estimates and
cycles (``node_res_estimation`` / ``get_exp_cycles`` on the prepared design, the numbers FINN's estimate report
sums, over the compute layers as that report does), our estimate (the same layers; and over all RTL layers,
FIFOs and width converters included, next to Yosys), and Yosys (``synth_tables.py``'s content-keyed cache; rows not synthesised say so).

Usage: ``.venv/bin/python benchmarks/folding_compat_vs_corrected.py [--qonnx M --name demo] [--synth]``
(``--synth``: also synthesise every RTL layer of both designs, one Yosys process at a time).
Last line: ``folding_compat_vs_corrected <name> fps_ours_over_compat <x> (FINN's cycle estimate)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import synth_tables  # noqa: E402

KNOBS = ("PE", "SIMD", "ram_style", "parallel_window")


def fold(qonnx: Path, board, work: Path, finn_compat: bool) -> tuple[dict, object]:
    from hapfpga.finn.graph import layers_for_model_file
    from hapfpga.folding import FoldingOptions, optimise

    layers = layers_for_model_file(qonnx, work / "fold-cache", board, board.clock_mhz, rtl=True)
    t0 = time.perf_counter()
    res = optimise(layers, board, FoldingOptions(clock_mhz=board.clock_mhz, finn_compat=finn_compat))
    print(f"optimise ({'FINN costs' if finn_compat else 'our costs'}): {time.perf_counter() - t0:.1f} s, "
          f"predicted {res.fps:,.0f} FPS, binding {res.binding_resource}", flush=True)
    return json.loads(res.plan.to_finn_json()), res


def diff_table(a: dict, b: dict) -> str:
    lines = ["| layer | FINN costs (`--finn-compat`) | our costs |", "|---|---|---|"]
    for name in a:
        if name == "Defaults":
            continue
        x = {k: v for k, v in a[name].items() if k in KNOBS}
        y = {k: v for k, v in b.get(name, {}).items() if k in KNOBS}
        if x != y:
            fmt = lambda d: ", ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
            lines.append(f"| {name} | {fmt(x)} | {fmt(y)} |")
    return "\n".join(lines)


def judge(label: str, qonnx: Path, folding: dict, board, synth: bool) -> dict:
    work = synth_tables.WORK / f"{label}-{board.key}"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "folding_in.json"
    path.write_text(json.dumps(folding, indent=1))
    model = synth_tables.prepare(qonnx, path, board, work)
    return synth_tables.run(model, board, cached_only=not synth, whole=False, max_minutes=None)


def summary(sec: dict) -> dict:
    compute = [r for r in sec["layers"] if not r["op_type"].startswith(("StreamingFIFO", "StreamingDataWidth"))]
    rtl = [r for r in sec["layers"] if "HLS-only" not in r.get("note", "")]
    out = {"finn_fps": sec["finn_fps"], "bottleneck": sec["finn_bottleneck"]}
    for who in ("finn", "ours"):
        out[who] = {k: sum(r[k][who] or 0 for r in compute) for k in ("LUT", "BRAM18", "DSP")}
    done = [r for r in rtl if r["LUT"]["yosys"] is not None]
    out["yosys_layers"] = f"{len(done)}/{len(rtl)}"
    full = len(done) == len(rtl)
    for who in ("yosys", "ours_rtl"):  # the same RTL layers (FIFOs and width converters included) both ways
        key = "yosys" if who == "yosys" else "ours"
        out[who] = {k: sum(r[k][key] for r in done) for k in ("LUT", "BRAM18", "DSP")} if full else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qonnx", default=None, help="QONNX export (default: CNV-w2a2, untrained)")
    ap.add_argument("--name", default="cnv")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--synth", action="store_true", help="synthesise the RTL layers of both designs")
    a = ap.parse_args()
    from hapfpga.boards import load_board

    board = load_board(a.board)
    base = synth_tables.WORK / f"{a.name}-{board.key}"
    base.mkdir(parents=True, exist_ok=True)
    qonnx = Path(a.qonnx) if a.qonnx else synth_tables._cnv_qonnx(base)
    compat, _ = fold(qonnx, board, base, True)
    ours, _ = fold(qonnx, board, base, False)
    print(diff_table(compat, ours))
    rows = {}
    for label, f in (("compat", compat), ("ours", ours)):
        rows[label] = summary(judge(f"{a.name}-{label}", qonnx, f, board, a.synth))
    b = board.budget
    print("\n| costs | FPS (FINN cycles) | bottleneck | LUT / BRAM18 / DSP, compute layers: by FINN | by ours | "
          "all RTL layers: by ours | by Yosys |\n|---|---|---|---|---|---|---|")

    def trio(d: dict | None) -> str:
        return "–" if d is None else f"{d['LUT']:,.0f} / {d['BRAM18']:,.0f} / {d['DSP']:,.0f}"

    for label, r in rows.items():
        print(f"| {label} | {r['finn_fps']:,.0f} | {r['bottleneck']} | {trio(r['finn'])} | {trio(r['ours'])} | "
              f"{trio(r['ours_rtl'])} | {trio(r['yosys'])} ({r['yosys_layers']} synthesised) |")
    print(f"budget (Pynq-Z2 utilisation limits): LUT {b.LUT:,.0f}, BRAM18 {b.BRAM_18K:,.0f}, DSP {b.DSP:,.0f}")
    print(f"folding_compat_vs_corrected {a.name} fps_ours_over_compat "
          f"{rows['ours']['finn_fps'] / rows['compat']['finn_fps']:.3f} (FINN's cycle estimate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

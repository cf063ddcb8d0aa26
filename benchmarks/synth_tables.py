"""Per-layer and total resource tables, ours / FINN / Yosys, for a whole model's open-simulatable FINN design.

Models: ``cnv`` (CNV-w2a2 from ``brevitas_examples``, untrained, with finn-examples' folding
``tests/data/cnv-w2a2_finn-examples_folding.json`` mapped to RTL MVAUs by ``folding_for_rtl``) and ``demo`` (any
QONNX + folding pair given with ``--qonnx``/``--folding``, e.g. the run folder of ``examples/rtlsim_digits.yaml``).
FINN prepares the design exactly as ``hapfpga synth`` does (``prepare_design``); each RTL node is synthesised
alone by Yosys (``synth_xilinx``), biggest layers first (MVAUs, then sliding windows, then the rest, each by our
LUT estimate), one Yosys process at a time; identical layers share one content-keyed cache entry
(``~/.cache/hapfpga/synth``), so an interrupted run loses at most the layer in flight and ``--cached-only``
prints whatever has been synthesised so far (rows not synthesised say so; no number is invented).

Usage::

    nice -n 10 .venv/bin/python benchmarks/synth_tables.py --model cnv [--whole] [--max-minutes M]
    .venv/bin/python benchmarks/synth_tables.py --model cnv --cached-only --markdown

Last line: ``synth_tables <model> layers_synthesised <k>/<n> lut_total_ours_over_yosys <x> finn_over_yosys <y>``
(ratios over the synthesised RTL layers only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CNV_FOLDING = ROOT / "tests" / "data" / "cnv-w2a2_finn-examples_folding.json"
WORK = Path.home() / ".cache" / "hapfpga" / "synth-tables"
_ORDER = ("MVAU", "ConvolutionInputGenerator")  # biggest kinds first


def _cnv_qonnx(work: Path) -> Path:
    """Brevitas' CNV-w2a2 (untrained, seed 0) as cleaned QONNX, exported once into ``work``."""
    from rtlsim_speed import export  # the benchmarks' one exporter of brevitas_examples models

    return export("cnv_2w2a", (1, 3, 32, 32), work / "cnv_2w2a.onnx")


def prepare(qonnx: Path, folding: Path | None, board, work: Path):
    """The prepared FINN graph (RTL layers, DWCs, FIFOs, HDL); reused from ``work`` when prepared there from
    the same model and folding bytes."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.finn.shim import ensure_finn
    from hapfpga.rtlsim.prepare import folding_for_rtl, prepare_design

    ensure_finn()
    done, stamp = work / "rtlsim_model.onnx", work / "prepared_from.json"
    fold_text = json.dumps(json.loads(folding.read_text()), sort_keys=True) if folding is not None else ""
    h = hashlib.sha256(qonnx.read_bytes() + fold_text.encode()).hexdigest()
    if not done.is_file() or not stamp.is_file() or json.loads(stamp.read_text()).get("sha256") != h:
        fold_file = None
        if folding is not None:
            fold_file = work / "folding_rtl.json"
            fold_file.write_text(json.dumps(folding_for_rtl(json.loads(folding.read_text())), indent=1))
        t0 = time.perf_counter()
        prepare_design(qonnx, work, finn_board=board.finn_board, fpgapart=board.part,
                       clock_mhz=float(board.clock_mhz), folding_config_file=fold_file)
        stamp.write_text(json.dumps({"sha256": h, "qonnx": str(qonnx), "folding": str(folding)}))
        print(f"FINN prepared the design in {time.perf_counter() - t0:.0f} s", flush=True)
    return ModelWrapper(str(done))


def _priority(model, node, board) -> tuple:
    from hapfpga.synth.compare import compare_node

    est = compare_node(model, node, board, None).rows["LUT"].ours or 0.0
    kind = next((i for i, k in enumerate(_ORDER) if node.op_type.startswith(k)), len(_ORDER))
    return (kind, -est)


def run(model, board, *, cached_only: bool, whole: bool, max_minutes: float | None,
        whole_timeout: float = 3600.0) -> dict:
    """Synthesise (or look up) every RTL node biggest first; return the report section in node order."""
    from finn.util.basic import getHWCustomOp
    from finn.util.fpgadataflow import is_rtl_node

    from hapfpga.synth.compare import HLS_ONLY_NOTE, compare_node
    from hapfpga.synth.sources import layer_sources, segment_sources
    from hapfpga.synth.stage import closest_to_limit, totals
    from hapfpga.synth.yosys import cached, family_for_part, find_yosys, run_yosys, yosys_job

    family = family_for_part(board.part)
    nodes = list(model.graph.node)
    rtl = sorted((n for n in nodes if is_rtl_node(n)), key=lambda n: _priority(model, n, board))
    jobs = {}
    for n in rtl:
        src = layer_sources(model, n.name)
        jobs[n.name] = yosys_job(src.files, src.data, src.top, family, "synth")
    print(f"{len(rtl)} RTL layers, {len({j.key for j in jobs.values()})} distinct Yosys jobs", flush=True)
    t0 = time.time()
    counts = {}
    for n in rtl:
        job = jobs[n.name]
        hit = cached(job)
        if hit is None and not cached_only and (max_minutes is None or time.time() - t0 < 60 * max_minutes):
            t = time.time()
            hit = run_yosys(job.files, job.data, job.top, job.family, mode=job.mode)
            print(f"{time.time() - t0:6.0f}s {n.name}: LUT {hit.lut_total} BRAM18 {hit.bram18} DSP {hit.dsp} "
                  f"({time.time() - t:.0f} s)", flush=True)
        counts[n.name] = hit
    rows = []
    for n in nodes:
        if not is_rtl_node(n):
            rows.append(compare_node(model, n, board, None, HLS_ONLY_NOTE))
        elif counts.get(n.name) is None:
            rows.append(compare_node(model, n, board, None, "not synthesised (time limit)"))
        else:
            rows.append(compare_node(model, n, board, counts[n.name]))
    tot = totals(rows)
    cycles = {n.name: int(getHWCustomOp(n).get_exp_cycles()) for n in nodes}
    slow = max(cycles, key=cycles.get)
    out = {"board": board.key, "finn_fps": board.clock_mhz * 1e6 / cycles[slow], "finn_bottleneck": slow, "family": family, "mode": "synth", "yosys": find_yosys(),
           "layers": [r.to_json() for r in rows], "total": tot, "closest_to_limit": closest_to_limit(tot, board),
           "yosys_seconds": round(sum(c.seconds for c in counts.values() if c is not None), 1),
           "note": "Yosys maps LUTs less densely than Vivado; FF counts inflated (no SRL mapping of arrays)."}
    if whole:
        src = segment_sources(model)
        job = yosys_job(src.files, src.data, src.top, family, "synth")
        w = cached(job)
        out["whole"] = None if w is None else w.to_json()
        if w is None and not cached_only:
            t = time.time()
            try:
                out["whole"] = run_yosys(job.files, job.data, job.top, job.family, mode=job.mode,
                                         timeout=whole_timeout).to_json()
            except subprocess.TimeoutExpired:  # report the measured partial time, never a number
                out["whole_unfinished_after_s"] = round(time.time() - t)
                print(f"the stitched top did not finish within {time.time() - t:.0f} s", flush=True)
    return out


def _num(v) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _ratio(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def markdown(section: dict) -> str:
    """Markdown table: per layer LUT / LUTRAM / FF / BRAM18 / DSP as ours / FINN / Yosys with the LUT ratios."""
    head = ("| layer | LUT ours / FINN / Yosys (of which LUTRAM) | LUT ours/Y, FINN/Y | FF Yosys | "
            "BRAM18 ours / FINN / Yosys | DSP ours / FINN / Yosys | Yosys s |")
    lines = [head, "|" + "---|" * 7]

    def line(name: str, d: dict, secs) -> str:
        lut, b, dsp = d["LUT"], d["BRAM18"], d["DSP"]
        return (f"| {name} | {_num(lut['ours'])} / {_num(lut['finn'])} / {_num(lut['yosys'])} "
                f"({_num(d['LUTRAM']['yosys'])}) | {_ratio(lut['ours_over_yosys'])}, {_ratio(lut['finn_over_yosys'])}"
                f" | {_num(d['FF']['yosys'])} | {_num(b['ours'])} / {_num(b['finn'])} / {_num(b['yosys'])} | "
                f"{_num(dsp['ours'])} / {_num(dsp['finn'])} / {_num(dsp['yosys'])} | {_num(secs)} |")

    for r in section["layers"]:
        name = r["name"] + (f" ({r['note'].split(':')[0]})" if r.get("note") else "")
        lines.append(line(name, r, r.get("yosys_seconds")))
    lines.append(line("**total**", section["total"], section["yosys_seconds"]))
    done = [r for r in section["layers"] if r["LUT"]["yosys"] is not None]
    if len(done) < len(section["layers"]):  # the same sums over the synthesised layers only
        tot = {}
        for k in ("LUT", "LUTRAM", "FF", "BRAM18", "DSP"):
            v = {w: (None if any(r[k][w] is None for r in done) else sum(r[k][w] for r in done))
                 for w in ("ours", "finn", "yosys")}
            v["ours_over_yosys"] = None if v["ours"] is None or not v["yosys"] else v["ours"] / v["yosys"]
            v["finn_over_yosys"] = None if v["finn"] is None or not v["yosys"] else v["finn"] / v["yosys"]
            tot[k] = v
        lines.append(line(f"**total of the {len(done)} synthesised layers**", tot,
                          sum(r.get("yosys_seconds") or 0 for r in done)))
    w = section.get("whole")
    if w:
        lines.append(f"| **stitched top** | – / – / {w['lut_total']:,} ({w['lutram']:,}) | | {w['ff']:,} | "
                     f"– / – / {w['bram18']} | – / – / {w['dsp']} | {w['seconds']:.0f} |")
    if section.get("whole_unfinished_after_s"):
        lines.append(f"| **stitched top** | not finished after {section['whole_unfinished_after_s']:,} s "
                     "(Yosys stopped) | | | | | |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnv", help="cnv, or a name for --qonnx/--folding")
    ap.add_argument("--qonnx", default=None)
    ap.add_argument("--folding", default=None)
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--whole", action="store_true", help="also the stitched top (after every layer)")
    ap.add_argument("--cached-only", action="store_true", help="synthesise nothing; report what is cached")
    ap.add_argument("--max-minutes", type=float, default=None, help="start no new layer after M minutes")
    ap.add_argument("--whole-timeout", type=float, default=3600.0, help="seconds for the stitched top")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from hapfpga.boards import load_board
    from hapfpga.synth.table import format_synth_table

    board = load_board(a.board)
    work = WORK / f"{a.model}-{a.board}"
    work.mkdir(parents=True, exist_ok=True)
    if a.model == "cnv":
        qonnx, folding = _cnv_qonnx(work), CNV_FOLDING
    else:
        qonnx, folding = Path(a.qonnx), (Path(a.folding) if a.folding else None)
    t0 = time.time()
    model = prepare(qonnx, folding, board, work)
    sec = run(model, board, cached_only=a.cached_only, whole=a.whole, max_minutes=a.max_minutes,
              whole_timeout=a.whole_timeout)
    if a.json:
        Path(a.json).write_text(json.dumps(sec, indent=1, default=float))
    print(markdown(sec) if a.markdown else format_synth_table({k: v for k, v in sec.items() if v is not None}))
    rtl = [r for r in sec["layers"] if "HLS-only" not in r.get("note", "")]
    done = [r for r in rtl if r["LUT"]["yosys"] is not None]
    ours = sum(r["LUT"]["ours"] for r in done)
    finn = sum(r["LUT"]["finn"] for r in done)
    ys = sum(r["LUT"]["yosys"] for r in done) or 1.0
    compute = [r for r in sec["layers"] if not r["op_type"].startswith(("StreamingFIFO", "StreamingDataWidth"))]
    for who in ("ours", "finn"):
        tot = {k: sum(r[k][who] or 0 for r in compute) for k in ("LUT", "BRAM18", "DSP")}
        print(f"{who} over the compute layers (no FIFOs/DWCs, as FINN's estimate report): "
              + ", ".join(f"{k} {v:,.0f}" for k, v in tot.items()))
    print(f"FINN's cycle estimate: {sec['finn_fps']:,.0f} FPS at {board.clock_mhz:g} MHz "
          f"(bottleneck {sec['finn_bottleneck']}); Yosys {sec['yosys_seconds']:,.0f} s over the layers")
    print(f"wall {time.time() - t0:.0f} s")
    print(f"synth_tables {a.model} layers_synthesised {len(done)}/{len(rtl)} lut_total_ours_over_yosys "
          f"{ours / ys:.3f} finn_over_yosys {finn / ys:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

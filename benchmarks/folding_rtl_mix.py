"""Does the RTL MVAU's DSP packing buy speed? CNV-w2a2's standalone-threshold graph with each MVAU free to be RTL
(DSP-packed) or HLS, against the embedded-threshold graph ``hapfpga fold`` folds, on every board.

The wider knob space of issue 22 measured before building it: FINN only specialises an MVAU to RTL when its
thresholds are a standalone layer (``_mvu_rtl_possible`` in finn-plus 1.6.1's ``specialize_layers.py``), so the
variant is a different graph: the RTL layers of ``hw_layers_from_qonnx(..., rtl=True)`` (``rtl_build_kwargs``),
where each MVAU's candidates are its RTL foldings (``resType`` dsp; DSPs judged twice: the larger of our packing
rule ``mvu_rtl_dsp`` and FINN's report's ``ceil(PE/4)*SIMD``, so the design fits both) together with the HLS
foldings of the same layer (``resType`` lut or dsp). Both graphs are folded exactly (``solve_max_fps``) at the
board's budget after the default margin, with FIFOs and width converters, and for each the least-loaded legal
design reaching 2x SetFolding's best fit (issue 22's acceptance) is reported (``solve_min_max_utilisation``).

Our estimator only unless ``--finn`` (FINN then builds the mixed design); ``hapfpga fold`` itself chooses between
the two graphs (``folding.variants``, docs/margin.md "The default command folds both graphs"). Usage: ``python benchmarks/folding_rtl_mix.py --model CNV.qonnx.onnx
--work DIR [--boards pynq-z2,ultra96-v2] [--sf pynq-z2=1526,...]``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hapfpga.boards import list_boards, load_board  # noqa: E402
from hapfpga.types import Resources  # noqa: E402

KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")
#: SetFolding's best fit for CNV-w2a2 per board (FPS, FINN's report; ``folding_vs_finn.py --all-boards``)
SETFOLDING_CNV = {"pynq-z1": 1525.87890625, "pynq-z2": 1525.87890625, "ultra96-v2": 3906.25,
                  "zcu104": 3985.969387755102, "kv260": 1525.87890625}


def rtl_cost(board, same_memstream: bool = False):  # noqa: ANN001, ANN201
    """``variants.twice_judged_rtl_cost``; ``same_memstream``: an RTL MVAU without the weight streamer's credit
    buffer (``memstream.sv``'s 8:1 read mux per weight bit, ``rtl_luts.mvu_rtl_luts``), which an HLS MVAU in
    ``internal_decoupled`` mode instantiates as well but FINN-R's HLS LUT formula does not count: the two datapaths
    compared on the same footing (a sensitivity check, not a cost model)."""
    from hapfpga.estimate.dtypes import bits
    from hapfpga.estimate.rtl_luts import mux_luts
    from hapfpga.folding.variants import twice_judged_rtl_cost

    base = twice_judged_rtl_cost(board, board.clock_mhz)

    def cost(layer, f):  # noqa: ANN001, ANN202
        res, cyc = base(layer, f)
        if same_memstream and layer.kind == "MVAU" and (f.mem_mode or "internal_decoupled") == "internal_decoupled":
            res = replace(res, LUT=res.LUT - (f.pe or 1) * (f.simd or 1) * bits(layer.wdt) * mux_luts(8))
        return res, cyc

    return cost


def mixed_problem(layers, board, budget: Resources, same_memstream: bool = False):  # noqa: ANN001, ANN201
    """The standalone-threshold graph's problem, each RTL MVAU's candidates widened by its HLS foldings."""
    from hapfpga.folding.optimise import _default_edge_cost, build_problem, default_cost_fn
    from hapfpga.folding.variants import mixed_impl_problem

    dwc, fifo = _default_edge_cost(board, layers)
    default = default_cost_fn(board.clock_mhz, board, False, True)
    rc = rtl_cost(board, same_memstream)

    def rtl(layer, f):  # noqa: ANN001, ANN202
        return rc(layer, f) if layer.kind == "MVAU" and layer.impl == "rtl" else default(layer, f)

    return mixed_impl_problem(layers, board, budget, build=build_problem, rtl_cost=rtl, hls_cost=default,
                              edge_cost=dwc, stream_cost=fifo)


def fold_both(problem, clock: float, aim: float) -> dict:  # noqa: ANN001
    """Fastest design and the least-loaded one reaching ``aim`` FPS."""
    from hapfpga.folding.solver import cycle_levels, solve_max_fps, solve_min_max_utilisation

    best = solve_max_fps(problem, time_limit=120)
    limit = math.floor(clock * 1e6 / aim)
    lv = [x for x in cycle_levels(problem) if x <= limit]
    least, frac, key = solve_min_max_utilisation(problem, lv[-1], time_limit=120)
    n_rtl = sum(c.folding.impl_style == "rtl" for c in best.choice.values()) if best else 0
    return {"fps": clock * 1e6 / best.max_cycles if best else 0.0, "total": best.total if best else None,
            "optimal": bool(best and best.optimal and least.optimal), "need_2x": frac, "binding_2x": key, "rtl_mvaus": n_rtl, "best": best}


def build_mixed(model: Path, layers, board, best, out: Path) -> dict:  # noqa: ANN001
    """FINN's estimate-only flow on ``model`` with the mixed design: a per-node ``specialize_layers_config_file``
    (RTL preferred, ``preferred_impl_style`` hls on the MVAUs chosen HLS; FINN names them ``MVAU_k`` before
    specialising), standalone thresholds and the folding file under the names FINN gives after specialising."""
    import json

    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.setfolding import finn_estimate
    from hapfpga.folding.variants import finn_folding, finn_names, specialize_config

    choice = {n: c.folding for n, c in best.choice.items()}
    spec = specialize_config(layers, {n: f.impl_style for n, f in choice.items() if f.impl_style})
    fold = finn_folding(layers, choice)
    names = finn_names(layers, {n: f.impl_style for n, f in choice.items() if f.impl_style})
    out.mkdir(parents=True, exist_ok=True)
    (out / "specialize.json").write_text(json.dumps(spec, indent=1))
    (out / "folding.json").write_text(json.dumps(fold, indent=1))
    run = run_finn_steps(model, out / "finn", board=board.finn_board, clock_mhz=board.clock_mhz,
                         specialize_layers_config_file=out / "specialize.json", standalone_thresholds=True,
                         folding_config_file=out / "folding.json")
    rep = finn_estimate(run)
    per = run.reports["estimate_layer_resources"]
    missing = sorted(set(names.values()) - set(per))
    under = [f"{names[n]} LUT {per[names[n]]['LUT']:,.0f} < ours {c.resources.LUT:,.0f}"
             for n, c in best.choice.items() if names[n] in per and per[names[n]]["LUT"] < 0.5 * c.resources.LUT
             and c.resources.LUT > 100]
    return {**rep, "missing": missing, "undercounts": under}


def main(argv: list[str] | None = None) -> int:
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions
    from hapfpga.folding.margin import resolve_margin
    from hapfpga.folding.optimise import _problem_for

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="CNV-w2a2 QONNX export")
    ap.add_argument("--work", required=True)
    ap.add_argument("--boards", default=",".join(list_boards()))
    ap.add_argument("--finn", action="store_true", help="also build the mixed design with FINN (estimate flow)")
    ap.add_argument("--same-memstream", action="store_true", help="RTL MVAUs without the credit buffer (rtl_cost)")
    args = ap.parse_args(argv)
    print("| board | embedded thresholds (fold's graph) | standalone, per-MVAU RTL/HLS | 2x SetFolding needs: "
          "embedded / mixed |")
    print("|---|---|---|---|")
    for key in args.boards.split(","):
        board, aim = load_board(key), 2 * SETFOLDING_CNV[key]
        budget = resolve_margin(None, board.part).apply(board.budget)
        emb_layers, _ = hw_layers_from_qonnx(args.model, Path(args.work) / "hw", board)
        rtl_layers, _ = hw_layers_from_qonnx(args.model, Path(args.work) / "rtlhw", board, rtl=True)
        emb = fold_both(_problem_for(emb_layers, board, FoldingOptions(), None)[0], board.clock_mhz, aim)
        mix = fold_both(mixed_problem(rtl_layers, board, budget, args.same_memstream), board.clock_mhz, aim)
        print(f"| {board.name} | {emb['fps']:,.0f} FPS | {mix['fps']:,.0f} FPS ({mix['rtl_mvaus']} RTL MVAUs, "
              f"{mix['total'].DSP:.0f} DSP) | {emb['need_2x']:.0%} / {mix['need_2x']:.0%} of the "
              f"{emb['binding_2x']} / {mix['binding_2x']} budget{_proved(emb, mix)} |", flush=True)
        if args.finn:
            rep = build_mixed(Path(args.model), rtl_layers, board, mix["best"], Path(args.work) / f"mix_{key}")
            print(f"  FINN's report of the mixed design: {rep['fps']:,.0f} FPS (bottleneck {rep['bottleneck']}), "
                  f"{rep['total']}, fits FINN: {not rep['total'].over(board.budget, KEYS)}"
                  f"; nodes of ours missing from FINN's report: {rep['missing'] or 'none'}", flush=True)
            print(f"  ours (layers + FIFOs/DWCs): {mix['total']}, fits ours: {not mix['total'].over(budget, KEYS)}")
            for u in rep["undercounts"]:
                print(f"      FINN's report undercounts: {u}")
    return 0


def _proved(*rows: dict) -> str:
    return "" if all(r["optimal"] for r in rows) else " (a solve stopped at its time limit: not proved)"


if __name__ == "__main__":
    sys.exit(main())

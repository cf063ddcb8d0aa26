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

Our estimator only: the mixed graph is not built with FINN here (``hapfpga fold`` does not offer it; see
docs/margin.md, "A wider knob space"). Usage: ``python benchmarks/folding_rtl_mix.py --model CNV.qonnx.onnx
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

#: SetFolding's best fit for CNV-w2a2 per board (FPS, FINN's report; ``folding_vs_finn.py --all-boards``)
SETFOLDING_CNV = {"pynq-z1": 1526, "pynq-z2": 1526, "ultra96-v2": 3906, "zcu104": 3986, "kv260": 1526}


def rtl_cost(board, same_memstream: bool = False):  # noqa: ANN001, ANN201
    """Our cost of an RTL MVAU folding with its DSPs judged twice (ours vs FINN's report: the larger).

    ``same_memstream``: without the weight streamer's credit buffer (``memstream.sv``'s 8:1 read mux per weight
    bit, ``rtl_luts.mvu_rtl_luts``), which an HLS MVAU in ``internal_decoupled`` mode instantiates as well but
    FINN-R's HLS LUT formula does not count: the two datapaths compared on the same footing."""
    from hapfpga.estimate import estimate_layer
    from hapfpga.estimate.dtypes import bits
    from hapfpga.estimate.rtl_luts import mux_luts

    def cost(layer, f):  # noqa: ANN001, ANN202
        ours = estimate_layer(layer, f, board.clock_mhz, board=board)
        finn = estimate_layer(layer, f, board.clock_mhz, board=board, finn_compat=True)
        lut = ours.resources.LUT
        if same_memstream and (f.mem_mode or "internal_decoupled") == "internal_decoupled":
            lut -= (f.pe or 1) * (f.simd or 1) * bits(layer.wdt) * mux_luts(8)
        return replace(ours.resources, LUT=lut, DSP=max(ours.resources.DSP, finn.resources.DSP)), int(ours.cycles)

    return cost


def mixed_problem(layers, board, budget: Resources, same_memstream: bool = False):  # noqa: ANN001, ANN201
    """The standalone-threshold graph's problem, each RTL MVAU's candidates widened by its HLS foldings."""
    from hapfpga.folding.optimise import _default_cost_fn, _default_edge_cost, build_problem
    from hapfpga.folding.solver import Unit

    twins = [replace(x, impl="hls") if x.kind == "MVAU" and x.impl == "rtl" else x for x in layers]
    dwc, fifo = _default_edge_cost(board, layers)
    default = _default_cost_fn(board.clock_mhz, board, False, True)
    rc = rtl_cost(board, same_memstream)

    def cost(layer, f):  # noqa: ANN001, ANN202
        return rc(layer, f) if layer.kind == "MVAU" and layer.impl == "rtl" else default(layer, f)

    rtl = build_problem(layers, budget, cost, edge_cost=dwc, stream_cost=fifo)
    hls = build_problem(twins, budget, default, edge_cost=dwc, stream_cost=fifo)
    units = []
    for a, b in zip(rtl.units, hls.units, strict=True):
        if a.kind == "MVAU" and any(x.name == a.name and x.impl == "rtl" for x in layers):
            cands = tuple(replace(c, folding=c.folding.with_(impl_style="rtl")) for c in a.candidates) + tuple(
                replace(c, folding=c.folding.with_(impl_style="hls")) for c in b.candidates)
            units.append(Unit(a.name, a.kind, cands))
        else:
            units.append(a)
    return replace(rtl, units=tuple(units))


def fold_both(problem, clock: float, aim: float) -> dict:  # noqa: ANN001
    """Fastest design and the least-loaded one reaching ``aim`` FPS."""
    from hapfpga.folding.solver import cycle_levels, solve_max_fps, solve_min_max_utilisation

    best = solve_max_fps(problem, time_limit=120)
    limit = math.floor(clock * 1e6 / aim)
    lv = [x for x in cycle_levels(problem) if x <= limit]
    least, frac, key = solve_min_max_utilisation(problem, lv[-1], time_limit=120)
    n_rtl = sum(c.folding.impl_style == "rtl" for c in best.choice.values()) if best else 0
    return {"fps": clock * 1e6 / best.max_cycles if best else 0.0, "total": best.total if best else None,
            "optimal": bool(best and best.optimal and least.optimal), "need_2x": frac, "binding_2x": key, "rtl_mvaus": n_rtl}


def main(argv: list[str] | None = None) -> int:
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions
    from hapfpga.folding.margin import resolve_margin
    from hapfpga.folding.optimise import _problem_for

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="CNV-w2a2 QONNX export")
    ap.add_argument("--work", required=True)
    ap.add_argument("--boards", default=",".join(list_boards()))
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
    return 0


def _proved(*rows: dict) -> str:
    return "" if all(r["optimal"] for r in rows) else " (a solve stopped at its time limit: not proved)"


if __name__ == "__main__":
    sys.exit(main())

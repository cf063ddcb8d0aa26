"""Time of one full-network estimate for a new folding: hapfpga.estimate vs a FINN estimate-only build.

CNV-w2a2 (``brevitas_examples``, untrained: FINN's estimates do not depend on weights), Pynq-Z2, 100 MHz,
the finn-examples folding file from ``tests/data`` plus random legal foldings.

- FINN (per new folding, the conservative baseline): finn-plus steps ``step_apply_folding_config``,
  ``step_minimize_bit_width``, ``step_generate_estimate_reports`` on the already specialised model —
  what FINN must redo for every folding. The full estimate-only build from QONNX is timed too (info).
- ours: ``estimate_network`` (per-layer costs, FIFOs and DWCs, FPS, power) for each of N random legal
  foldings, COLD: every folding-dependent estimator cache (the per-layer memos of merged foldings, costs and
  stream widths; the FIFO, edge and BRAM-mapping caches) is emptied before each one (``clear_caches``; random
  foldings repeat per-layer choices, and a warm memo hid about half the cost), median time; the same folding
  again with warm caches is printed for information. Kept across foldings, because no folding changes them
  (FINN's side likewise starts from the specialised model it has already built): what each layer derives from
  its own description (``LayerSpec.folding_defaults``, the FINN attributes a folding falls back to;
  ``LayerSpec.derived``: data-type and accumulator widths, the SWG's OFM/kernel loop counters), the parsed
  data-type names, the board's estimation context, the layer list's graph (edges, producers, skip-FIFO
  fractions) and the FIFO/DWC names of its edges (docs/estimator.md, "Speed").

The heap left by torch/finn is frozen (``gc.freeze``) before our timing loop so that Python's cyclic GC
does not re-scan it. Both sides' per-node numbers are checked equal (finn_compat) for the reference folding before timing.
Last line: ``estimator_speedup_vs_finn <ratio>`` = FINN per-folding time / our median new-folding time.

Usage: ``.venv/bin/python benchmarks/estimator_speed.py [--work DIR] [--n N] [--finn-reps R]``
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scratch import work_dir  # noqa: E402  (benchmarks/scratch.py)

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.estimate import estimate_network, load_folding  # noqa: E402
from hapfpga.estimate.core import clear_caches  # noqa: E402
from hapfpga.types import FoldingPlan, LayerFolding  # noqa: E402

FOLDING = ROOT / "tests" / "data" / "cnv-w2a2_finn-examples_folding.json"
TAIL = ("step_apply_folding_config", "step_minimize_bit_width", "step_generate_estimate_reports")


def _export(work: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from qonnx.util.cleanup import cleanup

    model, _ = model_with_cfg("cnv_2w2a", pretrained=False)
    path = work / "cnv_2w2a.onnx"
    export_qonnx(model, torch.randn(1, 3, 32, 32), str(path))
    cleanup(str(path), out_file=str(path))
    return path


def _random_plan(layers, rng: random.Random) -> FoldingPlan:
    entries = []
    for layer in layers:
        kw = {k: rng.choice(layer.legal_values(k)) for k in layer.fold_limits()}
        if layer.kind == "MVAU":
            kw["ram_style"] = rng.choice(["auto", "block", "distributed"])
            kw["res_type"] = rng.choice(["lut", "dsp"]) if layer.impl == "hls" else "dsp"
        if kw:
            entries.append((layer.name, LayerFolding(**kw)))
    return FoldingPlan(tuple(entries))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=None)
    ap.add_argument("--n", type=int, default=2000, help="random new foldings to time ours on")
    ap.add_argument("--finn-reps", type=int, default=3)
    args = ap.parse_args()
    work = work_dir(args.work, "hapfpga-estspeed-")

    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import load_layers

    board = load_board("pynq-z2")
    onnx_path = _export(work)
    t0 = time.perf_counter()
    full = run_finn_steps(onnx_path, work / "full", board=board.finn_board, clock_mhz=100.0,
                          folding_config_file=FOLDING)
    t_full = time.perf_counter() - t0
    spec = full.step_models["step_specialize_layers"]

    finn_times = []
    for r in range(args.finn_reps):
        t0 = time.perf_counter()
        res = run_finn_steps(spec, work / f"tail{r}", board=board.finn_board, clock_mhz=100.0,
                             folding_config_file=FOLDING, steps=TAIL)
        finn_times.append(time.perf_counter() - t0)
    t_finn = statistics.median(finn_times)

    layers = load_layers(spec)
    plan = load_folding(FOLDING, layers)
    check = estimate_network(layers, plan, board, 100.0, finn_compat=True)
    rep = res.reports["estimate_layer_resources"]
    mism = [n for n, c in check.layers.items()
            if any(abs(getattr(c.resources, k) - rep[n][k]) > 1e-6 for k in ("LUT", "BRAM_18K", "URAM", "DSP"))]
    perf = res.reports["estimate_network_performance"]
    print(f"parity (finn_compat) on reference folding: {len(check.layers) - len(mism)}/{len(check.layers)} nodes "
          f"equal; fps ours {check.fps:.2f} FINN {perf['estimated_throughput_fps']:.2f}")

    rng = random.Random(0)
    plans = [_random_plan(layers, rng) for _ in range(args.n)]
    # torch/brevitas/finn, imported for the FINN side, leave a large heap behind; freeze it so Python's
    # cyclic GC does not re-scan it during our timing (a full collection over it costs milliseconds)
    gc.collect()
    gc.freeze()
    new_times = []
    for p in plans:
        clear_caches(layers)  # cold: nothing from earlier foldings may be reused
        t0 = time.perf_counter()
        estimate_network(layers, p, board, 100.0)
        new_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    reps = 2000
    for _ in range(reps):
        estimate_network(layers, plan, board, 100.0)
    t_warm = (time.perf_counter() - t0) / reps
    t_new = statistics.median(new_times)

    print(f"FINN full estimate-only build from QONNX: {t_full:.2f} s")
    print(f"FINN per new folding (apply folding + minimize bit width + estimate reports), median of "
          f"{args.finn_reps}: {t_finn:.3f} s")
    print(f"ours per new folding (caches cleared), median of {args.n} random legal foldings: {t_new * 1e6:.0f} us "
          f"(p90 {statistics.quantiles(new_times, n=10)[-1] * 1e6:.0f} us); same folding again: {t_warm * 1e6:.0f} us")
    print(f"speedup vs FINN full build: {t_full / t_new:.0f}x")
    print(f"estimator_speedup_vs_finn {t_finn / t_new:.0f}")


if __name__ == "__main__":
    main()

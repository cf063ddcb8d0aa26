"""What building each distinct SetFolding design once saves the best-fit scan (CNV-w2a2, Pynq-Z2).

The scan is the fair baseline of every benchmark (``hapfpga.finn.setfolding.setfolding_best_fit``): the zoo's
CNV-w2a2 on 3x32x32 inputs, exported and converted by FINN as ``benchmarks/pruning_vs_finn.py`` does for its
unpruned arm (untrained weights, seed 0), then the FINE scan from 400 FPS twice:

* ``one build per target``: ``dedupe=False``, a finn-plus fold-and-estimate build for every target visited;
* ``deduplicated``: SetFolding in process per target, a build only for a folded design not seen before.

Both must give the same best target, FPS, cycles, bottleneck, totals and fit (checked; exit 1 otherwise).
Printed: targets, builds, wall and CPU seconds of each, and the machine's load average.
Last line: ``setfolding_scan_builds <n_builds> of <n_targets> targets, speedup <wall old / wall new>``.

Usage: ``python benchmarks/setfolding_scan_speed.py [--model cnv] [--bits 2] [--start 400] [--options JSON]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SAME = ("target_fps", "n_targets", "fps", "max_cycles", "bottleneck", "total", "fits")


def specialised(model: str, bits: int, options: dict, work: Path) -> Path:
    """The zoo model exported to QONNX and converted by finn-plus up to ``step_specialize_layers``."""
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.pruning.hwmodel import export_for_finn
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    shape = (3, 32, 32)
    m = build_model(ModelConfig(name=model, weight_bits=bits, act_bits=bits, options=options), shape, 10, seed=0).eval()
    onnx = export_for_finn(m, shape, work / f"{model}.qonnx.onnx")
    base = run_finn_steps(onnx, work / "finn_base", board="Pynq-Z2", clock_mhz=100.0)
    return base.step_models["step_specialize_layers"]


def _cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    return s.ru_utime + s.ru_stime


def main(argv: list[str] | None = None) -> int:
    from hapfpga.boards import load_board
    from hapfpga.finn.setfolding import FINE, setfolding_best_fit

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnv")
    ap.add_argument("--bits", type=int, default=2)
    ap.add_argument("--start", type=float, default=400.0)
    ap.add_argument("--options", type=json.loads, default={}, help="the zoo factory's options (JSON), e.g. "
                    "'{\"channels\": [32, 32, 64, 64, 128, 128], \"fc\": [256, 256]}' for a uniformly pruned CNV")
    args = ap.parse_args(argv)
    board, settings = load_board("pynq-z2"), dataclasses.replace(FINE, start=args.start)
    out = {}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        spec = specialised(args.model, args.bits, args.options, Path(d))
        print(f"export and FINN conversion (once per model, not part of the scan): {time.perf_counter() - t0:.1f} s")
        for arm, dedupe in (("one build per target", False), ("deduplicated", True)):
            t0, c0 = time.perf_counter(), _cpu()
            r = setfolding_best_fit(spec, Path(d) / arm.replace(" ", "_"), board, settings=settings, dedupe=dedupe)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            out[arm] = (r, wall)
            print(f"{arm}: {r['n_targets']} targets, {r['n_builds']} builds, {wall:.1f} s wall, {cpu:.1f} s CPU; "
                  f"best target {r['target_fps']:,} -> {r['fps']:,.0f} FPS (LUT {r['total'].LUT:,.0f}, "
                  f"BRAM18 {r['total'].BRAM_18K:,.0f})", flush=True)
    old, new = out["one build per target"][0], out["deduplicated"][0]
    same = all(old[k] == new[k] for k in SAME)
    print(f"same result: {same}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    speedup = out["one build per target"][1] / out["deduplicated"][1]
    print(f"setfolding_scan_builds {new['n_builds']} of {new['n_targets']} targets, speedup {speedup:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

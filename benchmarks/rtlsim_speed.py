"""Verilator simulation speed on TFC-w2a2 and CNV-w2a2 (untrained brevitas_examples models).

    .venv/bin/python benchmarks/rtlsim_speed.py [--frames 8] [--work /tmp/hapfpga-rtlsim-bench]

TFC uses a small folding (PE/SIMD 2-8), CNV the finn-examples folding (tests/data, mapped to RTL
MVAUs by ``folding_for_rtl``), both on Pynq-Z2 at 100 MHz. Builds are cached (~/.cache/hapfpga/rtlsim); the
build time printed is 0 on a cache hit. Each run is also checked bit-exactly against FINN's Python execution.
The last line is ``rtlsim cycles/s: TFC <n> CNV <n>``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TFC_FOLDING = {
    "Defaults": {},
    "MVAU_rtl_0": {"PE": 4, "SIMD": 8, "resType": "dsp"},
    "Thresholding_rtl_1": {"PE": 4},
    "MVAU_rtl_1": {"PE": 2, "SIMD": 4, "resType": "dsp"},
    "Thresholding_rtl_2": {"PE": 2},
    "MVAU_rtl_2": {"PE": 2, "SIMD": 4, "resType": "dsp"},
    "Thresholding_rtl_3": {"PE": 2},
    "MVAU_rtl_3": {"PE": 2, "SIMD": 4, "resType": "dsp"},
}
CNV_REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "data" / "cnv-w2a2_finn-examples_folding.json"


def export(name: str, shape: tuple[int, ...], path: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models import model_with_cfg
    from qonnx.util.cleanup import cleanup

    if path.exists():
        return path
    torch.manual_seed(0)
    model, _ = model_with_cfg(name, pretrained=False)
    model.eval()
    raw = path.with_suffix(".raw.onnx")
    export_qonnx(model, torch.randn(*shape), str(raw))
    cleanup(str(raw), out_file=str(path))
    return path


def bench(name: str, qonnx: Path, folding: dict, work: Path, frames: int) -> dict:
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.rtlsim.prepare import prepare_design
    from hapfpga.rtlsim.sim import reference, simulate
    from hapfpga.rtlsim.stage import partition_input

    fold = work / f"{name}_folding.json"
    fold.write_text(json.dumps(folding))
    t0 = time.perf_counter()
    design = prepare_design(qonnx, work / name, folding_config_file=fold)
    prep = time.perf_counter() - t0
    model = ModelWrapper(str(design.model_path))
    shape = ModelWrapper(str(qonnx)).get_tensor_shape(ModelWrapper(str(qonnx)).graph.input[0].name)
    x = np.random.default_rng(0).random((frames, *shape[1:])).astype(np.float32)
    xs = partition_input(design.parent_path, x)
    res = simulate(model, xs)
    ref = reference(model, xs, list(res.segment_outputs))
    exact = all(np.array_equal(res.segment_outputs[t], ref[t]) for t in res.segment_outputs)
    est = design.finn_reports["estimate_network_performance"]["max_cycles"]
    print(
        f"{name}: prepare {prep:.1f} s, build {res.build_seconds:.1f} s (cached: {res.cached_build}), "
        f"{res.frames} frames, {res.cycles} cycles in {res.run_seconds:.2f} s = {res.cycles_per_second:,.0f} "
        f"cycles/s; {res.cycles_per_frame:.0f} cycles/frame (FINN estimate {est}), latency "
        f"{res.latency_cycles} cycles, bit-exact: {exact}",
        flush=True,
    )
    return {"cps": res.cycles_per_second, "exact": exact}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=4, help="CNV frames (TFC runs 32x as many)")
    ap.add_argument("--work", default="/tmp/hapfpga-rtlsim-bench")
    ap.add_argument("--skip-cnv", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from hapfpga.rtlsim.prepare import folding_for_rtl

    tfc = bench("TFC", export("tfc_2w2a", (1, 1, 28, 28), work / "tfc.onnx"), TFC_FOLDING, work, 32 * args.frames)
    cnv_cps = float("nan")
    if not args.skip_cnv:
        fold = folding_for_rtl(json.loads(CNV_REFERENCE.read_text()))
        fold.pop("ElementwiseMul_hls_0", None)
        cnv = bench("CNV", export("cnv_2w2a", (1, 3, 32, 32), work / "cnv.onnx"), fold, work, max(2, args.frames))
        cnv_cps = cnv["cps"]
    print(f"rtlsim cycles/s: TFC {tfc['cps']:.0f} CNV {cnv_cps:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

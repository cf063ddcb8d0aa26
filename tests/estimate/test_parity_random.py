"""Per-node parity with finn-plus on random legal single-layer configurations.

Ground truth: FINN's own node methods (lut/bram/uram/dsp_estimation, get_exp_cycles) on nodes built
with ``onnx.helper.make_node`` + ``getCustomOp``. ``finn_compat=True`` must match exactly; our default
(corrected) mode must stay within a median relative error of 5 % per resource over the same configs.
"""

from __future__ import annotations

import random
from statistics import median

import pytest

from hapfpga.boards import load_board
from hapfpga.estimate import estimate_layer
from hapfpga.estimate import layers as L
from hapfpga.types import LayerFolding

PART = "xc7z020clg400-1"
N_PER_KIND = 32
RES = ("LUT", "BRAM_18K", "URAM", "DSP")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _dt(rng: random.Random, lo: int = 1, hi: int = 8, signed: bool | None = None) -> str:
    b = rng.randint(max(lo, 2), hi)
    s = rng.random() < 0.5 if signed is None else signed
    return f"{'' if s else 'U'}INT{b}"


def _mvau(rng: random.Random, i: int):
    impl = rng.choice(["hls", "rtl"])
    mw = rng.choice([16, 27, 64, 72, 128, 144, 256, 576, 784, 1152])
    mh = rng.choice([10, 16, 32, 64, 128, 256, 512])
    pe, simd = rng.choice(_divisors(mh)), rng.choice(_divisors(mw))
    idt, wdt = _dt(rng), _dt(rng, hi=4, signed=True)
    odt = _dt(rng, hi=4)
    noact = rng.random() < 0.3
    nv = rng.choice([[1], [1, 4, 4], [1, 30, 30]])
    fold = dict(PE=pe, SIMD=simd, mem_mode=rng.choice(["internal_decoupled", "internal_embedded", "external"]),
                ram_style=rng.choice(["auto", "block", "distributed"] + (["ultra"] if impl == "hls" else [])),
                ram_style_thresholds=rng.choice(["auto", "block", "distributed"]),
                resType=rng.choice(["lut", "dsp", "auto"]) if impl == "hls" else "dsp")
    acc = rng.choice(["INT32", "INT16", "INT20"])
    attrs = dict(MW=mw, MH=mh, inputDataType=idt, weightDataType=wdt, outputDataType=odt, accDataType=acc,
                 noActivation=int(noact), numInputVectors=nv, **fold)
    spec = L.MVAU(name=f"MVAU_{impl}_{i}", impl=impl, mw=mw, mh=mh, n_vectors=int(__import__("math").prod(nv)),
                  idt=idt, wdt=wdt, odt=odt, acc_dt=acc, no_activation=noact)
    return f"MVAU_{impl}", attrs, spec, LayerFolding.from_finn(fold)


def _thr(rng: random.Random, i: int):
    impl = rng.choice(["hls", "rtl"])
    ch = rng.choice([3, 16, 32, 64, 128, 256, 784])
    pe = rng.choice(_divisors(ch))
    odt = _dt(rng, hi=4)
    steps = 2 ** int(odt.split("INT")[1]) - 1
    tdt = _dt(rng, lo=4, hi=16, signed=True)
    idt = _dt(rng, lo=4, hi=16)
    nv = rng.choice([[1], [1, 8, 8], [1, 32, 32]])
    fold = dict(PE=pe)
    if impl == "hls":
        fold["ram_style"] = rng.choice(["distributed", "block", "ultra"])
    else:
        fold.update(depth_trigger_bram=rng.choice([0, 0, 64]), depth_trigger_uram=rng.choice([0, 0, 4096]))
    attrs = dict(NumChannels=ch, numSteps=steps, inputDataType=idt, weightDataType=tdt, outputDataType=odt,
                 numInputVectors=nv, **fold)
    spec = L.Thresholding(name=f"Thresholding_{impl}_{i}", impl=impl, channels=ch,
                          n_vectors=int(__import__("math").prod(nv)), idt=idt, tdt=tdt, odt=odt, num_steps=steps)
    return f"Thresholding_{impl}", attrs, spec, LayerFolding.from_finn(fold)


def _swg(rng: random.Random, i: int):
    ch = rng.choice([1, 3, 16, 32, 64, 128, 256])
    dim = rng.choice([4, 8, 14, 16, 32, 64])
    k = rng.choice([1, 2, 3, 5])
    k = min(k, dim)
    stride = rng.choice([1, 1, 2]) if k > 1 else 1
    depthwise = rng.random() < 0.3
    pw = rng.random() < 0.3
    simd = ch if (pw and not depthwise and k > 1) else rng.choice(_divisors(ch))
    odim = (dim - k) // stride + 1
    idt = _dt(rng)
    fold = dict(SIMD=simd, parallel_window=int(pw), ram_style=rng.choice(["auto", "block", "distributed", "ultra"]))
    attrs = dict(ConvKernelDim=[k, k], IFMChannels=ch, IFMDim=[dim, dim], OFMDim=[odim, odim], Stride=[stride, stride],
                 Dilation=[1, 1], inputDataType=idt, outputDataType=idt, depthwise=int(depthwise), **fold)
    spec = L.ConvolutionInputGenerator(name=f"SWG_{i}", impl="rtl", ifm_ch=ch, ifm_dim=(dim, dim),
                                       ofm_dim=(odim, odim), kernel=(k, k), stride=(stride, stride), idt=idt,
                                       depthwise=depthwise)
    return "ConvolutionInputGenerator_rtl", attrs, spec, LayerFolding.from_finn(fold)


def _vvau(rng: random.Random, i: int):
    impl = rng.choice(["hls", "rtl"])
    ch = rng.choice([16, 32, 64, 128])
    k = rng.choice([3, 5])
    dim = rng.choice([4, 8, 16])
    pe, simd = rng.choice(_divisors(ch)), rng.choice(_divisors(k * k))
    idt, wdt, odt = _dt(rng), _dt(rng, hi=4, signed=True), _dt(rng, hi=4)
    fold = dict(PE=pe, SIMD=simd, ram_style=rng.choice(["auto", "block", "distributed"]),
                mem_mode=rng.choice(["internal_decoupled", "internal_embedded"]),
                resType=rng.choice(["lut", "dsp"]) if impl == "hls" else "dsp")
    noact = rng.random() < 0.3
    attrs = dict(Channels=ch, Kernel=[k, k], Dim=[dim, dim], inputDataType=idt, weightDataType=wdt, outputDataType=odt,
                 accDataType="INT32", noActivation=int(noact), **fold)
    spec = L.VVAU(name=f"VVAU_{impl}_{i}", impl=impl, channels=ch, kernel=(k, k), dim=(dim, dim), idt=idt, wdt=wdt,
                  odt=odt, acc_dt="INT32", no_activation=noact)
    return f"VVAU_{impl}", attrs, spec, LayerFolding.from_finn(fold)


def _pool(rng: random.Random, i: int):
    ch = rng.choice([16, 64, 128, 256])
    pe = rng.choice(_divisors(ch))
    k, od = rng.choice([2, 3]), rng.choice([2, 7, 14])
    idt = _dt(rng)
    attrs = dict(Channels=ch, PE=pe, KernelSize=[k, k], Function="MaxPool", OutImgDims=[od, od], InputDataType=idt,
                 OutputDataType=idt)
    spec = L.Pool(name=f"Pool_hls_{i}", channels=ch, kernel=(k, k), out_dims=(od, od), idt=idt, odt=idt)
    return "Pool_hls", attrs, spec, LayerFolding(pe=pe)


def _labelselect(rng: random.Random, i: int):
    labels = rng.choice([10, 100, 1000])
    pe, k = rng.choice(_divisors(labels)), rng.choice([1, 5])
    idt = _dt(rng, lo=8, hi=24, signed=True)
    attrs = dict(Labels=labels, PE=pe, K=k, inputDataType=idt, outputDataType="UINT16")
    spec = L.LabelSelect(name=f"LabelSelect_hls_{i}", labels=labels, k=k, idt=idt, odt="UINT16")
    return "LabelSelect_hls", attrs, spec, LayerFolding(pe=pe)


def _fmpad(rng: random.Random, i: int):
    ch, dim = rng.choice([3, 16, 64]), rng.choice([8, 16, 32])
    simd = rng.choice(_divisors(ch))
    pad = rng.choice([[1, 1, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])
    idt = _dt(rng)
    attrs = dict(ImgDim=[dim, dim], Padding=pad, NumChannels=ch, SIMD=simd, inputDataType=idt)
    spec = L.FMPadding(name=f"FMPadding_rtl_{i}", impl="rtl", channels=ch, ifm_dim=(dim, dim), padding=tuple(pad),
                       idt=idt)
    return "FMPadding_rtl", attrs, spec, LayerFolding(simd=simd)


def _eltwise(rng: random.Random, i: int):
    op = rng.choice(["ElementwiseMul", "ElementwiseAdd"])
    ch = rng.choice([10, 16, 64, 256])
    pe = rng.choice(_divisors(ch))
    hw = rng.choice([[1], [1, 4, 4]])
    rhs = rng.choice([[1], [ch], hw + [ch]])
    out = hw + [ch]
    a, b = _dt(rng), _dt(rng)
    fold = dict(PE=pe, ram_style=rng.choice(["auto", "block", "distributed", "ultra"]),
                mem_mode=rng.choice(["internal_embedded", "internal_decoupled"]))
    attrs = dict(lhs_shape=out, rhs_shape=rhs, out_shape=out, lhs_dtype=a, rhs_dtype=b, out_dtype="INT32",
                 lhs_style="input", rhs_style="const", **fold)
    cls = L.ElementwiseMul if op == "ElementwiseMul" else L.ElementwiseAdd
    spec = cls(name=f"{op}_hls_{i}", lhs_shape=tuple(out), rhs_shape=tuple(rhs), out_shape=tuple(out), lhs_dt=a,
               rhs_dt=b, odt="INT32", rhs_const=True)
    return f"{op}_hls", attrs, spec, LayerFolding.from_finn(fold)


def _dup(rng: random.Random, i: int):
    ch = rng.choice([16, 64, 256])
    pe = rng.choice(_divisors(ch))
    nv = rng.choice([[1], [1, 8, 8]])
    idt = _dt(rng)
    attrs = dict(NumChannels=ch, PE=pe, NumOutputStreams=2, inputDataType=idt, numInputVectors=nv)
    spec = L.DuplicateStreams(name=f"DuplicateStreams_hls_{i}", channels=ch, n_vectors=int(__import__("math").prod(nv)),
                              idt=idt)
    return "DuplicateStreams_hls", attrs, spec, LayerFolding(pe=pe)


GENERATORS = [_mvau, _thr, _swg, _vvau, _pool, _labelselect, _fmpad, _eltwise, _dup]


def _finn_node(op_type: str, attrs: dict):
    from onnx import helper
    from qonnx.custom_op.registry import getCustomOp

    domain = "finn.custom_op.fpgadataflow." + ("rtl" if op_type.endswith("_rtl") else "hls")
    n_in = 2 if op_type.startswith(("MVAU", "VVAU", "Thresholding", "Elementwise")) else 1
    node = helper.make_node(op_type, [f"in{j}" for j in range(n_in)], ["out"], domain=domain, backend="fpgadataflow",
                            name=f"{op_type}_x", **attrs)
    return getCustomOp(node)


def _finn_numbers(inst) -> dict[str, float]:
    return {
        "LUT": inst.lut_estimation(PART),
        "BRAM_18K": inst.bram_estimation(PART),
        "URAM": inst.uram_estimation(PART),
        "DSP": inst.dsp_estimation(PART),
        "cycles": int(inst.get_exp_cycles()),
    }


@pytest.fixture(scope="module")
def cases():
    from hapfpga.finn.shim import ensure_finn

    ensure_finn()
    rng = random.Random(1234)
    out = []
    for gen in GENERATORS:
        for i in range(N_PER_KIND):
            op_type, attrs, spec, fold = gen(rng, i)
            out.append((op_type, spec, fold, _finn_numbers(_finn_node(op_type, attrs))))
    return out


def test_enough_random_configs(cases):
    assert len(cases) >= 200
    assert len({c[0] for c in cases}) >= 12  # node types covered


def test_finn_compat_is_exact(cases):
    board = load_board("pynq-z2")
    bad = []
    for op_type, spec, fold, finn in cases:
        c = estimate_layer(spec, fold, board=board, finn_compat=True)
        ours = {**{k: getattr(c.resources, k) for k in RES}, "cycles": c.cycles}
        if any(abs(ours[k] - finn[k]) > 1e-6 for k in ours):
            bad.append((op_type, spec, fold, ours, finn))
    assert not bad, f"{len(bad)} mismatches, first: {bad[0]}"


def test_default_mode_median_error_within_5_percent_and_cycles_exact(cases):
    """Our corrected mode: cycles exact wherever no documented deviation touches them (``swg-rtl-cycles``
    does); per resource, over the configurations no documented deviation touches, median relative error
    <= 5 %. Fields a deviation touches must differ from FINN only where docs/estimator.md says so (checked
    by the deviation ids' field lists)."""
    from hapfpga.estimate.deviations import DEVIATIONS, deviations_for

    board = load_board("pynq-z2")
    errs: dict[str, list[float]] = {k: [] for k in RES}
    for _op_type, spec, fold, finn in cases:
        c = estimate_layer(spec, fold, board=board)
        touched = {field for d in deviations_for(spec, fold, board) for field in DEVIATIONS[d][1]}
        if "cycles" not in touched:
            assert c.cycles == finn["cycles"], (spec, fold)
        for k in RES:
            ours, ref = getattr(c.resources, k), finn[k]
            if k in touched:
                continue
            errs[k].append(abs(ours - ref) / max(abs(ref), 1.0))
    for k, e in errs.items():
        # LUT of every RTL kind is now a documented deviation checked against Yosys instead (tests/synth,
        # benchmarks/estimator_vs_synth.py): fewer untouched LUT samples remain (36 of 288)
        assert len(e) >= (30 if k == "LUT" else 50), (k, len(e))
        assert median(e) <= 0.05, (k, median(e))
        assert max(e) == 0.0, (k, max(e))  # untouched fields are FINN's formula exactly


def test_deviations_change_what_they_claim(cases):
    """Each deviation id is exercised by some random config and really changes a field it names."""
    from hapfpga.estimate.deviations import DEVIATIONS, deviations_for

    board = load_board("pynq-z2")
    changed: dict[str, bool] = {}
    for _op_type, spec, fold, finn in cases:
        c = estimate_layer(spec, fold, board=board)
        for d in deviations_for(spec, fold, board):
            ours = {**{k: getattr(c.resources, k) for k in RES}, "cycles": c.cycles}
            diff = any(ours[k] != finn[k] for k in DEVIATIONS[d][1])
            changed[d] = changed.get(d, False) or diff
    # every deviation the random configurations can reach must be observed to matter at least once
    assert changed, "no deviation exercised"
    assert all(changed.values()), {d: v for d, v in changed.items() if not v}


def test_unknown_kind_raises():
    from dataclasses import dataclass
    from typing import ClassVar

    from hapfpga.errors import UnsupportedLayerError

    @dataclass(frozen=True, kw_only=True)
    class Softmax(L.LayerSpec):
        kind: ClassVar[str] = "HWSoftmax"

    with pytest.raises(UnsupportedLayerError, match="HWSoftmax"):
        estimate_layer(Softmax(name="HWSoftmax_0"), LayerFolding())

"""The MVAU implementation knob (``folding/variants.py``): the widened candidate tables, DSPs judged twice, and the
names FINN gives a mixed design. The FINN build of such a design: tests/finn/test_mixed_impl.py."""

from __future__ import annotations

import math
import random

import pytest

from hapfpga.boards import load_board
from hapfpga.estimate import layers as L
from hapfpga.folding.optimise import _default_edge_cost, build_problem, default_cost_fn
from hapfpga.folding.solver import solve_max_fps
from hapfpga.folding.variants import (
    finn_folding,
    finn_names,
    mixed_impl_problem,
    rtl_mvaus,
    specialize_config,
    twice_judged_rtl_cost,
)
from hapfpga.types import LayerFolding, Resources

BOARD = load_board("pynq-z2")


def _rtl_chain(ch: int = 8, mh: int = 16, fc: int = 8) -> list:
    """Thresholding -> MVAU_rtl (standalone thresholds) -> Thresholding -> MVAU_rtl -> MVAU_hls (an HLS-only one)."""
    mk = dict(idt="INT2", wdt="INT2", acc_dt="INT12", odt="INT12", no_activation=True, narrow_weights=True)
    return [
        L.Thresholding(name="Thresholding_rtl_0", impl="rtl", channels=ch, idt="UINT8", tdt="UINT8", odt="INT2",
                       num_steps=3, consumers=("MVAU_rtl_0",)),
        L.MVAU(name="MVAU_rtl_0", impl="rtl", mw=ch, mh=mh, n_vectors=16, producers=("Thresholding_rtl_0",),
               consumers=("Thresholding_rtl_1",), **mk),
        L.Thresholding(name="Thresholding_rtl_1", impl="rtl", channels=mh, n_vectors=16, idt="INT12", tdt="INT12",
                       odt="INT2", num_steps=3, producers=("MVAU_rtl_0",), consumers=("MVAU_rtl_1",)),
        L.MVAU(name="MVAU_rtl_1", impl="rtl", mw=mh, mh=fc, n_vectors=16, producers=("Thresholding_rtl_1",),
               consumers=("MVAU_hls_0",), **mk),
        L.MVAU(name="MVAU_hls_0", impl="hls", mw=fc, mh=4, n_vectors=16, producers=("MVAU_rtl_1",),
               idt="INT12", wdt="INT2", odt="INT16", acc_dt="INT16", no_activation=True),
    ]


def _problem(layers: list, budget: Resources):
    dwc, fifo = _default_edge_cost(BOARD, layers)
    default = default_cost_fn(100.0, BOARD, False)
    rtl = twice_judged_rtl_cost(BOARD, 100.0)
    return mixed_impl_problem(layers, BOARD, budget, build=build_problem, rtl_cost=rtl, hls_cost=default,
                              edge_cost=dwc, stream_cost=fifo)


def test_knob_units_hold_both_variants_and_rtl_dsps_fit_finns_count_too() -> None:
    layers = _rtl_chain()
    p = _problem(layers, BOARD.budget)
    assert rtl_mvaus(layers) == ["MVAU_rtl_0", "MVAU_rtl_1"]
    by = {u.name: u for u in p.units}
    for name, layer in (("MVAU_rtl_0", layers[1]), ("MVAU_rtl_1", layers[3])):
        styles = {c.folding.impl_style for c in by[name].candidates}
        assert styles == {"rtl", "hls"}
        for c in by[name].candidates:
            f = c.folding
            if f.impl_style == "rtl":  # FINN's report: ceil(PE/4)*SIMD on DSP48E1; never fewer than that
                assert math.ceil(f.pe / 4) * f.simd <= c.resources.DSP
                assert f.simd != layer.mw  # the RTL queue rule of legal.py still applies
            else:
                assert f.res_type in ("lut", "dsp")
    assert {c.folding.impl_style for c in by["MVAU_hls_0"].candidates} == {None}  # not a knob


@pytest.mark.parametrize("lut", [2500, 5000, 12000])
@pytest.mark.parametrize("dsp", [0, 16, 200])
def test_mixed_optimum_is_never_slower_than_either_variant_alone(lut: int, dsp: int) -> None:
    layers = _rtl_chain()
    budget = Resources(LUT=lut, BRAM_18K=20, URAM=0, DSP=dsp)
    mixed = solve_max_fps(_problem(layers, budget), time_limit=30)
    from dataclasses import replace

    for style in ("rtl", "hls"):
        p = _problem(layers, budget)
        only = replace(p, units=tuple(replace(u, candidates=tuple(
            c for c in u.candidates if c.folding.impl_style in (None, style))) for u in p.units))
        alone = solve_max_fps(only, time_limit=30)
        if alone is not None:
            assert mixed is not None and mixed.max_cycles <= alone.max_cycles


def test_finn_names_number_each_variant_in_graph_order_over_random_choices() -> None:
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 12)
        layers = []
        for i in range(n):
            if rng.random() < 0.3:
                layers.append(L.Thresholding(name=f"Thresholding_rtl_{i}", impl="rtl", channels=4))
            else:
                layers.append(L.MVAU(name=f"M{i}", impl=rng.choice(["rtl", "hls"]), mw=4, mh=4))
        impl = {x.name: rng.choice(["rtl", "hls"]) for x in layers if x.kind == "MVAU" and x.impl == "rtl"
                and rng.random() < 0.8}
        names = finn_names(layers, impl)
        assert len(set(names.values())) == len(layers)
        for style in ("hls", "rtl"):
            got = [names[x.name] for x in layers if x.kind == "MVAU" and impl.get(x.name, x.impl) == style]
            assert got == [f"MVAU_{style}_{k}" for k in range(len(got))]
        assert all(names[x.name] == x.name for x in layers if x.kind != "MVAU")
        spec = specialize_config(layers, impl)
        mvaus = [x.name for x in layers if x.kind == "MVAU"]
        assert set(spec) - {"Defaults"} == {f"MVAU_{k}" for k, m in enumerate(mvaus) if impl.get(m) == "hls"}


def test_finn_folding_renames_and_drops_impl_style() -> None:
    layers = _rtl_chain()
    choice = {x.name: LayerFolding(pe=1, simd=1) for x in layers}
    choice["MVAU_rtl_0"] = LayerFolding(pe=2, simd=4, impl_style="hls", res_type="lut")
    choice["MVAU_rtl_1"] = LayerFolding(pe=2, simd=4, impl_style="rtl")
    d = finn_folding(layers, choice)
    # MVAU_rtl_0 -> the first HLS MVAU, the HLS-only MVAU after it -> the second; MVAU_rtl_1 -> the only RTL one
    assert set(d) == {"Defaults", "Thresholding_rtl_0", "Thresholding_rtl_1", "MVAU_hls_0", "MVAU_rtl_0",
                      "MVAU_hls_1"}
    assert d["MVAU_hls_0"] == {"PE": 2, "SIMD": 4, "resType": "lut"}
    assert d["MVAU_rtl_0"] == {"PE": 2, "SIMD": 4}
    assert all("impl_style" not in v for v in d.values())


@pytest.mark.parametrize("seed", range(12))
def test_finn_design_renames_consistently_and_estimates_as_built(seed: int) -> None:
    """Over random designs of the knob problem: ``finn_design`` gives each node FINN's post-specialisation name,
    neighbours renamed with it, each MVAU the implementation chosen, and its estimate equals the chosen
    candidates' costs (``optimise``'s network check estimates the same design, ``as_built``)."""
    from hapfpga.estimate import estimate_layer
    from hapfpga.folding.variants import as_built, finn_design
    from hapfpga.types import FoldingPlan

    layers = _rtl_chain(ch=8 * (1 + seed % 2), mh=16, fc=8)
    p = _problem(layers, BOARD.budget)
    rng = random.Random(seed)
    pick = {u.name: rng.choice(u.candidates) for u in p.units}
    plan = FoldingPlan(tuple((u.name, pick[u.name].folding) for u in p.units))
    built, bplan = finn_design(layers, plan)
    impl = {n: f.impl_style for n, f in plan if f.impl_style}
    names = finn_names(layers, impl)
    assert [x.name for x in built] == [names[x.name] for x in layers] == bplan.names
    assert len(set(names.values())) == len(layers)
    by = {x.name: x for x in built}
    for old, new in zip(layers, built, strict=True):
        assert new.producers == tuple(names[n] for n in old.producers)
        assert all(new.name in by[c].producers for c in new.consumers)
        if old.name in impl:
            assert new.impl == impl[old.name] and new.name.startswith(f"MVAU_{impl[old.name]}_")
    assert all(f.impl_style is None for _, f in bplan)
    assert json_keys(finn_folding(layers, dict(plan))) == set(bplan.names)
    same, splan = as_built(layers, plan)
    for x, y, (n, f) in zip(built, same, splan, strict=True):
        a = estimate_layer(x, bplan[x.name], 100.0, board=BOARD)
        b = estimate_layer(y, f, 100.0, board=BOARD)
        assert (a.resources, a.cycles) == (b.resources, b.cycles)
        if n not in impl or impl[n] == "hls":  # the HLS cost is the candidate's; the RTL one is judged twice
            assert a.cycles == pick[n].cycles


def json_keys(d: dict) -> set[str]:
    return set(d) - {"Defaults"}

"""The estimator's fast paths give the numbers of the plain definitions, cold or warm.

``estimate_network`` keeps per-layer memos, folding-independent values derived once per layer, a per-list graph,
a fast merge of a folding over the layer's attributes and fast constructors of the value types
(docs/estimator.md, "Speed"). Over many random foldings of several layer lists, boards and both fidelity modes,
every estimate must equal (exactly) the same estimate with every cache cleared, the same estimate after other
foldings warmed the caches, and the plain definitions recomputed here: the field-by-field merge, each layer's
formula, the totals as ``sum`` of ``Resources``, the power as the documented coefficient sum and the critical
path as FINN's longest producer chain.
"""

from __future__ import annotations

import dataclasses
import pickle
import random

import pytest

from hapfpga.boards import load_board
from hapfpga.estimate import FoldingError, estimate_network
from hapfpga.estimate import layers as L
from hapfpga.estimate.core import clear_caches, ctx_for, merge_folding
from hapfpga.estimate.formulas import FORMULAS
from hapfpga.estimate.power import POWER_COEFFS, _family, static_power_w
from hapfpga.types import RESOURCE_KEYS, FoldingPlan, LayerCost, LayerFolding, Resources

from .test_joins import residual_block

BOARDS = ("pynq-z2", "kv260", "zcu104")
N_FOLDINGS = 40


def _cnv_like() -> list[L.LayerSpec]:
    """A CNV-shaped chain with FINN attributes set (``default_folding``), as ``finn.graph.load_layers`` reads
    them: Thresholding_rtl -> SWG -> MVAU -> SWG (depthwise pool window) -> Pool -> MVAU_rtl -> ElementwiseMul."""
    mvau_attrs = LayerFolding(pe=1, simd=1, ram_style="auto", ram_style_thresholds="auto", res_type="lut",
                              mem_mode="internal_decoupled", runtime_writeable_weights=0)
    swg_attrs = LayerFolding(simd=1, ram_style="distributed", parallel_window=0)
    names = ["Thr", "SWG0", "MV0", "SWG1", "Pool", "MV1", "Mul"]

    def link(i: int) -> dict:
        return {"producers": (names[i - 1],) if i else (), "consumers": (names[i + 1],) if i < 6 else ()}

    return [
        L.Thresholding(name="Thr", impl="rtl", channels=3, n_vectors=1024, idt="FLOAT32", tdt="FLOAT32",
                       odt="INT8", num_steps=255, default_folding=LayerFolding(pe=1, depth_trigger_uram=0,
                                                                               depth_trigger_bram=0), **link(0)),
        L.ConvolutionInputGenerator(name="SWG0", impl="rtl", ifm_ch=3, ifm_dim=(32, 32), ofm_dim=(30, 30),
                                    idt="INT8", default_folding=swg_attrs, **link(1)),
        L.MVAU(name="MV0", mw=27, mh=64, n_vectors=900, idt="INT8", wdt="INT2", odt="INT2", acc_dt="INT13",
               narrow_weights=True, default_folding=mvau_attrs, **link(2)),
        L.ConvolutionInputGenerator(name="SWG1", impl="rtl", ifm_ch=64, ifm_dim=(30, 30), ofm_dim=(15, 15),
                                    kernel=(2, 2), stride=(2, 2), idt="INT2", depthwise=True,
                                    default_folding=swg_attrs, **link(3)),
        L.Pool(name="Pool", channels=64, kernel=(2, 2), out_dims=(15, 15), idt="INT2", odt="INT2",
               default_folding=LayerFolding(pe=1), **link(4)),
        L.MVAU(name="MV1", impl="rtl", mw=64 * 15 * 15, mh=10, n_vectors=1, idt="INT2", wdt="INT4", odt="INT16",
               acc_dt="INT16", no_activation=True, default_folding=mvau_attrs.with_(res_type="dsp"), **link(5)),
        L.ElementwiseMul(name="Mul", lhs_shape=(1, 10), rhs_shape=(1,), out_shape=(1, 10), lhs_dt="INT16",
                         rhs_dt="FLOAT32", odt="FLOAT32", default_folding=LayerFolding(pe=1, ram_style="auto",
                                                                                       mem_mode="internal_embedded"),
                         **link(6)),
    ]


def _random_plan(layers: list[L.LayerSpec], rng: random.Random) -> FoldingPlan:
    """Random foldings: legal PE/SIMD (or unset: the attribute falls through), random memory styles; some
    combinations FINN cannot build (an RTL MVAU with resType lut), which must fail the same way every time."""
    entries = []
    for layer in layers:
        if rng.random() < 0.15:
            continue
        kw = {k: rng.choice([None, *layer.legal_values(k)]) for k in layer.fold_limits()}
        if isinstance(layer, L.MVAU):
            kw["ram_style"] = rng.choice([None, "auto", "block", "distributed"])
            kw["res_type"] = rng.choice([None, "lut", "dsp"])
            kw["mem_mode"] = rng.choice([None, "internal_decoupled", "internal_embedded"])
            kw["ram_style_thresholds"] = rng.choice([None, "auto", "distributed"])
        if isinstance(layer, L.ConvolutionInputGenerator):
            kw["ram_style"] = rng.choice([None, "auto", "block", "distributed"])
        entries.append((layer.name, LayerFolding(**kw)))
    return FoldingPlan(tuple(entries))


def _run(layers, plan, board, fc):  # noqa: ANN001, ANN202
    try:
        return estimate_network(layers, plan, board, finn_compat=fc)
    except FoldingError as e:
        return str(e)


def _plain_merge(layer: L.LayerSpec, f: LayerFolding | None) -> LayerFolding:
    """The definition: each field of ``f``, or the layer's attribute where ``f`` leaves it ``None``."""
    base = layer.default_folding
    if f is None:
        return base
    return LayerFolding(**{k.name: getattr(f, k.name) if getattr(f, k.name) is not None else getattr(base, k.name)
                           for k in dataclasses.fields(LayerFolding)})


def _check_against_definitions(layers, plan, board, fc, est) -> None:  # noqa: ANN001
    ctx = ctx_for(board, fc)
    given = dict(plan.layers)
    for layer in layers:
        f = _plain_merge(layer, given.get(layer.name))
        assert merge_folding(layer, given.get(layer.name)) == f
        res, cycles = FORMULAS[layer.kind](layer, f, ctx)
        assert est.layers[layer.name] == LayerCost(layer.name, layer.kind, res, int(cycles))
    costs = list(est.layers.values())
    assert est.layer_total == sum(c.resources for c in costs)
    assert est.total == est.layer_total + sum(c.resources for c in est.infrastructure.values())
    worst = max(costs, key=lambda c: c.cycles)
    assert (est.max_cycles, est.bottleneck) == (worst.cycles, worst.name)
    fam = _family(board.part)
    dyn = {n: est.clock_mhz / 100.0 * sum(getattr(c.resources, k) * w[fam] for k, w in POWER_COEFFS.items())
           for n, c in est.layers.items()}
    assert {n: est.layer_power_w[n] for n in dyn} == dyn
    assert est.power_w == static_power_w(board.part) + sum(est.layer_power_w.values())
    lat: dict[str, int] = {}  # FINN's dataflow_performance, as the estimator computed it before its graph cache
    for layer in layers:
        preds = [lat[p] for p in layer.producers if p in lat]
        if not layer.producers and not layer.consumers and lat:
            preds = [max(lat.values())]
        lat[layer.name] = est.layers[layer.name].cycles + max(preds, default=0)
    assert est.critical_path_cycles == max(lat.values())


@pytest.mark.parametrize("which", ["cnv_like", "residual", "residual_deep"])
def test_cold_warm_and_definitions_agree_over_random_foldings(which):
    layers = {"cnv_like": _cnv_like, "residual": residual_block,
              "residual_deep": lambda: residual_block(h=16, c=8, k=5, bits="UINT4")}[which]()
    rng = random.Random(f"cold-{which}")
    plans = [_random_plan(layers, rng) for _ in range(N_FOLDINGS)]
    boards = [load_board(b) for b in BOARDS]
    cold = {}
    for i, plan in enumerate(plans):
        for fc in (False, True):
            clear_caches(layers)
            cold[i, fc] = _run(layers, plan, boards[i % len(boards)], fc)
    built = sum(not isinstance(e, str) for e in cold.values())
    assert built >= N_FOLDINGS  # most random foldings are buildable; the rest fail with one sentence each
    for i, plan in reversed(list(enumerate(plans))):  # warm: every other folding evaluated in between
        for fc in (False, True):
            warm = _run(layers, plan, boards[i % len(boards)], fc)
            again = _run(layers, FoldingPlan(tuple((n, dataclasses.replace(f)) for n, f in plan.layers)),
                         boards[i % len(boards)], fc)  # equal foldings, other objects
            assert warm == again == cold[i, fc]
            if not isinstance(warm, str):
                assert warm.as_json() == cold[i, fc].as_json()
                _check_against_definitions(layers, plan, boards[i % len(boards)], fc, warm)


def test_clear_caches_forgets_every_folding_dependent_result():
    from hapfpga.estimate import bram_map, infra

    layers = _cnv_like()
    board = load_board("pynq-z2")
    plan = FoldingPlan((("MV0", LayerFolding(pe=8, simd=9)), ("MV1", LayerFolding(pe=5, simd=16))))
    estimate_network(layers, plan, board)
    assert all(any(layer.__dict__["_memo"].values()) for layer in layers)
    caches = (infra.fifo_cost, infra._edge_costs, infra._bram18_plan, bram_map.yosys_bram18,
              bram_map.yosys_memory_kind)
    assert infra.fifo_cost.cache_info().currsize and infra._edge_costs.cache_info().currsize
    clear_caches(layers)
    assert not any(t for layer in layers for t in layer.__dict__["_memo"].values())
    assert all(fn.cache_info().currsize == 0 for fn in caches)
    calls: list[str] = []
    real = dict(FORMULAS)
    try:
        for kind, fn in real.items():
            FORMULAS[kind] = lambda layer, f, ctx, fn=fn: (calls.append(layer.name), fn(layer, f, ctx))[1]
        estimate_network(layers, plan, board)
    finally:
        FORMULAS.update(real)
    assert calls == [layer.name for layer in layers]  # cold: every layer's formula runs again


def test_value_types_keep_their_dataclass_behaviour():
    r = Resources(LUT=3, DSP=2.0)
    assert [f.name for f in dataclasses.fields(Resources)] == list(RESOURCE_KEYS)
    assert r == Resources(3, 0.0, 0.0, 0.0, 2.0) and hash(r) == hash(Resources(3, 0.0, 0.0, 0.0, 2.0))
    assert dataclasses.replace(r, FF=1.0) == Resources(3, 1.0, 0.0, 0.0, 2.0)
    assert repr(r) == "Resources(LUT=3, FF=0.0, BRAM_18K=0.0, URAM=0.0, DSP=2.0)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.LUT = 1  # type: ignore[misc]
    c = LayerCost("a", "MVAU", r, 7)
    assert pickle.loads(pickle.dumps(c)) == c and dataclasses.asdict(c)["resources"]["DSP"] == 2.0
    rng = random.Random(3)
    for _ in range(200):
        f = LayerFolding(pe=rng.choice([None, 1, 4]), ram_style=rng.choice([None, "auto", "block"]),
                         in_fifo_depths=rng.choice([None, [2, 34]]), depth=rng.choice([None, 2, 64]))
        fields = tuple(getattr(f, k.name) for k in dataclasses.fields(LayerFolding))
        assert hash(f) == hash(fields) == hash(f)  # the cached hash is the dataclass's
        back = pickle.loads(pickle.dumps(f))  # str hashes differ between processes: the cache is not pickled
        assert back == f and "_hash" not in back.__dict__
        base = LayerFolding(pe=2, simd=3, ram_style="distributed", mem_mode="internal_decoupled")
        merged = f.filled_from(tuple((k, v) for k, v in vars(base).items() if v is not None and k != "_hash"))
        plain = LayerFolding(**{k.name: getattr(f, k.name) if getattr(f, k.name) is not None
                                else getattr(base, k.name) for k in dataclasses.fields(LayerFolding)})
        assert merged == plain and hash(merged) == hash(plain) and repr(merged) == repr(plain)


def test_layer_specs_pickle_without_derived_values():
    layers = _cnv_like()
    estimate_network(layers, None, load_board("pynq-z2"))
    m = layers[2]
    assert m.folding_defaults and m.__dict__.get("_derived")
    back = pickle.loads(pickle.dumps(m))
    assert back == m and not {"_memo", "_derived", "folding_defaults"} & set(back.__dict__)


def test_the_graph_cache_holds_no_layer_alive_and_follows_a_changed_list():
    import gc
    import weakref

    layers = _cnv_like()
    board = load_board("pynq-z2")
    first = estimate_network(layers, None, board)
    probe = weakref.ref(layers[2])
    shorter = layers[:-1]  # same objects, another list: another graph (MV1 is now the output)
    assert "FIFO_MV1__out" in estimate_network(shorter, None, board).infrastructure
    assert estimate_network(layers, None, board) == first
    del layers, shorter, first
    gc.collect()
    assert probe() is None

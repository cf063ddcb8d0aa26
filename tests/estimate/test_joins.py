"""Forks and joins on the pure side: the graph as a DAG of layer specs (a residual block as FINN builds it from
resnet8: DuplicateStreams -> [FMPadding -> SWG 3x3 -> MVAU] + skip -> ElementwiseAdd), the skip-branch FIFO
depth, the network estimate that counts it, and the folding optimiser on the non-chain graph."""

from __future__ import annotations

import math

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import UnsupportedLayerError
from hapfpga.estimate import estimate_network
from hapfpga.estimate import layers as L
from hapfpga.estimate.infra import fifo_cost
from hapfpga.estimate.joins import fill_fraction, skip_fifo_depth, skip_fifo_fractions
from hapfpga.folding import FoldingOptions, optimise
from hapfpga.folding.solver import evaluate_choice
from hapfpga.types import FoldingPlan, LayerFolding


def residual_block(h: int = 8, c: int = 4, k: int = 3, bits: str = "UINT2") -> list[L.LayerSpec]:
    """Thresholding -> DuplicateStreams -> [FMPadding -> SWG kxk -> MVAU -> Thresholding] + skip -> Add -> MVAU."""
    p = k // 2
    hp = h + 2 * p
    return [
        L.Thresholding(name="Thr_in", channels=c, n_vectors=h * h, idt="UINT8", tdt="UINT8", odt=bits,
                       num_steps=3, consumers=("Dup",)),
        L.DuplicateStreams(name="Dup", channels=c, n_vectors=h * h, idt=bits, producers=("Thr_in",),
                           consumers=("Pad", "Add")),
        L.FMPadding(name="Pad", channels=c, ifm_dim=(h, h), padding=(p, p, p, p), idt=bits,
                    producers=("Dup",), consumers=("SWG",)),
        L.ConvolutionInputGenerator(name="SWG", impl="rtl", ifm_ch=c, ifm_dim=(hp, hp), ofm_dim=(h, h),
                                    kernel=(k, k), idt=bits, producers=("Pad",), consumers=("MVAU",)),
        L.MVAU(name="MVAU", mw=k * k * c, mh=c, n_vectors=h * h, idt=bits, wdt="INT2", odt=bits,
               acc_dt="INT8", num_steps=3, producers=("SWG",), consumers=("Add",)),
        L.ElementwiseAdd(name="Add", lhs_shape=(1, h, h, c), rhs_shape=(1, h, h, c), out_shape=(1, h, h, c),
                         lhs_dt=bits, rhs_dt=bits, odt="UINT3", lhs_const=False, rhs_const=False,
                         producers=("MVAU", "Dup"), consumers=("FC",)),
        L.MVAU(name="FC", mw=h * h * c, mh=10, n_vectors=1, idt="UINT3", wdt="INT2", odt="INT32",
               acc_dt="INT32", no_activation=True, producers=("Add",)),
    ]


def test_skip_fifo_covers_the_long_branch_fill():
    layers = residual_block(h=8, c=4, k=3)
    frac = skip_fifo_fractions(layers)
    # the skip input of the add is the fork itself; the long branch holds two padded rows + 3 pixels of the
    # 10x10 padded map (the SWG) plus one of 64 vectors (the MVAU)
    assert list(frac) == [("Dup", "Add")]
    assert frac[("Dup", "Add")] == pytest.approx((2 * 10 + 3) / 100 + 1 / 64)
    est = estimate_network(layers, None, load_board("pynq-z2"))
    depth = est.skip_fifos["FIFO_Dup__Add"]
    words = 8 * 8 * 4  # PE=1 on the add: one word per element
    assert depth == math.ceil(frac[("Dup", "Add")] * words) + 2
    # counted in the totals: the FIFO's cost is the skip FIFO's, not FINN's minimal one
    assert est.infrastructure["FIFO_Dup__Add"].resources == fifo_cost(depth, 2)
    assert est.infrastructure["FIFO_MVAU__Add"].resources == fifo_cost(2, 2)
    assert est.as_json()["skip_fifos"] == {"FIFO_Dup__Add": depth}


def test_skip_fifo_follows_the_folding_of_the_join():
    layers = residual_block(h=8, c=4)
    board = load_board("pynq-z2")
    d1 = estimate_network(layers, None, board).skip_fifos["FIFO_Dup__Add"]
    plan = FoldingPlan.from_mapping({"Add": LayerFolding(pe=4)})
    d4 = estimate_network(layers, plan, board).skip_fifos["FIFO_Dup__Add"]
    # 4x wider words, 4x fewer of them (plus the 2-word minimum)
    assert d4 - 2 == math.ceil((d1 - 2) / 4)


@pytest.mark.parametrize("seed", range(60))
def test_skip_fifo_depth_bounded_by_a_frame_and_growing_with_the_kernel(seed):
    import random

    rng = random.Random(seed)
    h, c, k = rng.randint(2, 32), rng.choice([1, 2, 4, 8, 16]), rng.choice([1, 3, 5])
    layers = residual_block(h=h, c=c, k=k)
    frac = skip_fifo_fractions(layers)[("Dup", "Add")]
    assert 0 < frac <= 1
    words = h * h * c
    depth = skip_fifo_depth(frac, words)
    assert 2 < depth <= words + 2
    if k < 5:
        bigger = skip_fifo_fractions(residual_block(h=h, c=c, k=k + 2))[("Dup", "Add")]
        assert bigger >= frac


def test_fill_fraction_refuses_an_unknown_kind():
    class Odd(L.LayerSpec):
        kind = "OddLayer"

    with pytest.raises(UnsupportedLayerError, match="OddLayer"):
        fill_fraction(Odd(name="x"))


def test_a_join_without_a_common_fork_buffers_a_frame():
    layers = residual_block()
    # cut the fork: the skip input now comes from a separate graph input
    layers[5] = L.ElementwiseAdd(name="Add", lhs_shape=(1, 8, 8, 4), rhs_shape=(1, 8, 8, 4), out_shape=(1, 8, 8, 4),
                                 lhs_dt="UINT2", rhs_dt="UINT2", odt="UINT3", lhs_const=False, rhs_const=False,
                                 producers=("MVAU", "Other"), consumers=("FC",))
    layers.insert(0, L.Thresholding(name="Other", channels=4, n_vectors=64, idt="UINT8", tdt="UINT8", odt="UINT2",
                                    consumers=("Add",)))
    frac = skip_fifo_fractions(layers)
    assert frac[("MVAU", "Add")] == frac[("Other", "Add")] == 1.0


@pytest.mark.parametrize("board", ["pynq-z2", "zcu104"])
def test_optimiser_folds_the_fork_and_join(board):
    layers = residual_block(h=8, c=4)
    b = load_board(board)
    res = optimise(layers, b, FoldingOptions(time_limit=30))
    assert set(res.plan.names) == {layer.name for layer in layers}
    assert res.plan["Dup"].pe in (1, 2, 4) and res.plan["Add"].pe in (1, 2, 4)
    est = res.estimate
    assert est.fits and "FIFO_Dup__Add" in est.skip_fifos
    # the plan hands the depth to FINN (inFIFODepths: InsertFIFO builds max(producer out, consumer in)); the
    # add's inputs are (MVAU, Dup): the long branch keeps FINN's minimal 2
    assert res.plan["Add"].to_finn()["inFIFODepths"] == [2, est.skip_fifos["FIFO_Dup__Add"]]
    # the solver's accounting (layers, both input streams of the join, edges with the skip FIFO) is the
    # network estimate's
    assert est.total.LUT == res.total.LUT
    # the fork and the join are never the bottleneck of an optimal design: one word per cycle at full PE
    assert res.bottleneck not in ("Dup", "Add") or res.plan[res.bottleneck].pe == 4
    # with the skip FIFO forced to depth 2 the accounting would differ: the edge cost does include it
    from hapfpga.folding.optimise import _default_edge_cost, build_problem, default_cost_fn

    edge, stream = _default_edge_cost(b, layers)
    prob = build_problem(layers, b.budget, default_cost_fn(b.clock_mhz, b, False), edge_cost=edge,
                         stream_cost=stream)
    chosen = {n: f.with_(in_fifo_depths=None) for n, f in res.plan}
    choice = {u.name: next(c for c in u.candidates if c.folding == chosen[u.name]) for u in prob.units}
    _, total, per_edge = evaluate_choice(prob, choice)
    assert per_edge[("Dup", "Add")].LUT > 0


def test_join_inputs_of_different_types_have_their_own_stream_widths():
    """An add of a UINT2 long branch and a UINT4 skip: FINN's InsertDWC compares each input's own width, so
    the skip stream (4 bits per PE) needs no converter from a 4-bit producer and the long branch none from 2."""
    layers = residual_block(h=4, c=4)
    thr, dup = layers[0], layers[1]
    layers[0] = L.Thresholding(**{**{k: getattr(thr, k) for k in ("name", "channels", "n_vectors", "idt", "tdt",
                                                                    "num_steps", "consumers")}, "odt": "UINT4"})
    layers[1] = L.DuplicateStreams(**{**{k: getattr(dup, k) for k in ("name", "channels", "n_vectors", "producers",
                                                                       "consumers")}, "idt": "UINT4"})
    add = layers[5]
    layers[5] = L.ElementwiseAdd(**{**{k: getattr(add, k) for k in ("name", "lhs_shape", "rhs_shape", "out_shape",
                                                                     "lhs_dt", "producers", "consumers")},
                                    "rhs_dt": "UINT4", "odt": "UINT5", "lhs_const": False, "rhs_const": False})
    layers[2] = L.FMPadding(name="Pad", channels=4, ifm_dim=(4, 4), padding=(1, 1, 1, 1), idt="UINT4",
                            producers=("Dup",), consumers=("SWG",))
    layers[3] = L.ConvolutionInputGenerator(name="SWG", impl="rtl", ifm_ch=4, ifm_dim=(6, 6), ofm_dim=(4, 4),
                                            kernel=(3, 3), idt="UINT4", producers=("Pad",), consumers=("MVAU",))
    layers[4] = L.MVAU(name="MVAU", mw=36, mh=4, n_vectors=16, idt="UINT4", wdt="INT2", odt="UINT2", acc_dt="INT8",
                       num_steps=3, producers=("SWG",), consumers=("Add",))
    est = estimate_network(layers, None, load_board("pynq-z2"))
    assert not any(k.startswith("DWC_") and "Add" in k.split("__")[-1] for k in est.infrastructure)
    depth = est.skip_fifos["FIFO_Dup__Add"]
    assert est.infrastructure["FIFO_Dup__Add"].resources == fifo_cost(depth, 4)
    assert est.infrastructure["FIFO_MVAU__Add"].resources == fifo_cost(2, 2)
    # the optimiser sees the same streams: its total is the network estimate's
    res = optimise(layers, load_board("pynq-z2"), FoldingOptions(time_limit=30))
    assert res.estimate.total.LUT == res.total.LUT

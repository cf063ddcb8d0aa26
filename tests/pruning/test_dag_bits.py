"""Mixed precision on residual and depthwise graphs (issue 24): a bits knob is one activation quantiser and every
layer it feeds; on the FINN side it follows the streams (forks, joins, depthwise VVAUs), so the two inputs of a
join always carry one data type.

Fast tests on a hand-made residual block's FINN specs; the property test (slow: FINN conversions) checks, over
random residual and depthwise zoo configurations and random knob settings, that the rebuilt Brevitas model
exports to a QONNX FINN converts, that every join's inputs are equal in FINN's own graph, and that the
predictor's rewritten specs carry FINN's data types."""

from __future__ import annotations

import random

import pytest

from hapfpga.errors import ConfigError
from hapfpga.estimate import layers as L
from hapfpga.pruning.bits import DAG_MIN_BITS, apply_dag_bits


def block() -> list:
    """stem MVAU -> fork -> (SWG, MVAU a, SWG, MVAU b) + skip -> add -> Thresholding -> SWG -> MVAU c -> FC."""
    return [
        L.MVAU(name="m0", mw=27, mh=8, n_vectors=64, idt="UINT8", wdt="INT4", odt="UINT4", acc_dt="INT16"),
        L.DuplicateStreams(name="dup", channels=8, idt="UINT4", producers=("m0",)),
        L.ConvolutionInputGenerator(name="s1", ifm_ch=8, ifm_dim=(8, 8), ofm_dim=(8, 8), idt="UINT4",
                                    producers=("dup",)),
        L.MVAU(name="m1", mw=72, mh=8, n_vectors=64, idt="UINT4", wdt="INT4", odt="UINT4", acc_dt="INT16",
               producers=("s1",)),
        L.ConvolutionInputGenerator(name="s2", ifm_ch=8, ifm_dim=(8, 8), ofm_dim=(8, 8), idt="UINT4",
                                    producers=("m1",)),
        L.MVAU(name="m2", mw=72, mh=8, n_vectors=64, idt="UINT4", wdt="INT4", odt="UINT4", acc_dt="INT16",
               producers=("s2",)),
        L.ElementwiseAdd(name="add", lhs_shape=(1, 8, 8, 8), rhs_shape=(1, 8, 8, 8), out_shape=(1, 8, 8, 8),
                         lhs_dt="UINT4", rhs_dt="UINT4", odt="UINT5", rhs_const=False, producers=("m2", "dup")),
        L.Thresholding(name="th", channels=8, n_vectors=64, idt="UINT5", odt="UINT4", num_steps=15,
                       producers=("add",)),
        L.ConvolutionInputGenerator(name="s3", ifm_ch=8, ifm_dim=(8, 8), ofm_dim=(4, 4), idt="UINT4",
                                    producers=("th",)),
        L.MVAU(name="m3", mw=72, mh=16, n_vectors=16, idt="UINT4", wdt="INT4", odt="UINT4", acc_dt="INT16",
               producers=("s3",)),
        L.MVAU(name="fc", mw=256, mh=10, idt="UINT4", wdt="INT4", odt="INT16", acc_dt="INT16", no_activation=True,
               producers=("m3",)),
    ]


OWNER = {"m0": 0, "m1": 1, "m2": 2, "m3": 3, "fc": 4}


def by_name(layers):
    return {lay.name: lay for lay in layers}


def test_a_knob_on_the_block_input_moves_both_join_inputs_and_the_sum():
    """Layer 1 reads the stem's activation, which is also the skip input of the add: lowering it lowers the stem's
    output, the fork, the skip and — so the join's inputs stay equal — the long branch's last activation (m2's),
    the add's sum (UINT3) and the Thresholding that reads it; m2's own input (m1's activation) is not touched."""
    out = by_name(apply_dag_bits(block(), OWNER, {1: 2}))
    assert out["m0"].odt == out["m2"].odt == "UINT2"
    assert out["dup"].idt == "UINT2"
    assert (out["add"].lhs_dt, out["add"].rhs_dt, out["add"].odt) == ("UINT2", "UINT2", "UINT3")
    assert out["th"].idt == "UINT3" and out["th"].odt == "UINT4"  # the block's output quantiser is another knob
    assert (out["m1"].idt, out["m1"].wdt) == ("UINT2", "INT2")
    assert out["s1"].idt == "UINT2"
    assert out["m2"].idt == "UINT4" and out["m2"].wdt == "INT4"  # reads m1's activation: another knob
    assert out["m0"].idt == "UINT8"  # the data stream never changes


def test_a_knob_after_the_join_lowers_the_threshold_stage_and_its_readers():
    out = by_name(apply_dag_bits(block(), OWNER, {3: 3}))
    assert (out["th"].odt, out["th"].num_steps) == ("UINT3", 7)
    assert (out["s3"].idt, out["m3"].idt, out["m3"].wdt) == ("UINT3", "UINT3", "INT3")
    assert out["add"].lhs_dt == "UINT4" and out["m2"].odt == "UINT4"


def test_knobs_never_widen_and_unknown_or_too_narrow_knobs_are_refused():
    narrow = [lay if lay.name != "m1" else L.MVAU(**{**lay.__dict__, "wdt": "INT2"}) for lay in block()]
    out = by_name(apply_dag_bits(narrow, OWNER, {1: 3}))
    assert out["m1"].wdt == "INT2" and out["m1"].idt == "UINT3"
    with pytest.raises(ConfigError, match="data input"):
        apply_dag_bits(block(), OWNER, {0: 2})
    with pytest.raises(ConfigError, match=f"use {DAG_MIN_BITS} to"):
        apply_dag_bits(block(), OWNER, {1: 1})
    with pytest.raises(ConfigError, match="no FINN compute node"):
        apply_dag_bits(block(), OWNER, {9: 2})


@pytest.mark.parametrize("seed", range(20))
def test_every_join_keeps_equal_inputs_under_random_knobs(seed):
    """Property over random knob sets on the block: a join's inputs always have one type, its sum one bit more,
    and every stream is at most as wide as before."""
    from hapfpga.estimate.dtypes import bits

    rng = random.Random(seed)
    knobs = {k: rng.choice([2, 3, 4]) for k in rng.sample([1, 2, 3, 4], rng.randint(1, 4))}
    before, out = by_name(block()), by_name(apply_dag_bits(block(), OWNER, knobs))
    add = out["add"]
    assert add.lhs_dt == add.rhs_dt and bits(add.odt) == bits(add.lhs_dt) + 1
    assert out["th"].idt == add.odt
    for n, lay in out.items():
        for f in ("idt", "odt", "wdt", "lhs_dt", "rhs_dt"):
            if hasattr(lay, f) and "FLOAT" not in getattr(lay, f):
                assert bits(getattr(lay, f)) <= bits(getattr(before[n], f)), (n, f)

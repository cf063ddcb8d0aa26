"""Mixed precision on DAG zoo models against FINN itself (issue 24; slow: one FINN conversion per case).

Property over random residual (resnet8: width, inner widths, pool) and depthwise (mobilenet_v1, ds_cnn: blocks,
channels, pool) configurations and random knob settings: the model rebuilt at the knobs' bits exports to a QONNX
that FINN converts to HW layers, every join in FINN's graph has inputs of one data type, the per-layer bits the
report carries are the knobs' caps, and the predictor's rewrite of the *unlowered* model's FINN specs
(``bits.apply_dag_bits``) carries the data types FINN gives the lowered model (accumulator widths aside: the
predictor keeps the unlowered ones, which is conservative)."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("finn")
torch = pytest.importorskip("torch")

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.finn.graph import hw_layers_from_qonnx  # noqa: E402
from hapfpga.pruning.apply import hw_layer_shapes  # noqa: E402
from hapfpga.pruning.bits import DAG_MIN_BITS, apply_dag_bits  # noqa: E402
from hapfpga.pruning.hwmodel import export_for_finn  # noqa: E402
from hapfpga.pruning.mixed import (  # noqa: E402
    bits_knobs,
    input_acts,
    layer_bits,
    operand_bits,
    quant_layer_names,
    with_operand_bits,
)
from hapfpga.pruning.plan import match_hw_layers  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402

pytestmark = pytest.mark.slow
SHAPE = (3, 16, 16)
FIELDS = ("idt", "wdt", "lhs_dt", "rhs_dt", "num_steps")


def random_model(seed: int):
    rng = random.Random(seed)
    kind = ("resnet8", "mobilenet_v1", "ds_cnn")[seed % 3]
    if kind == "resnet8":
        width = rng.choice([0.25, 0.5])
        opts = {"width": width, "pool": rng.choice(["avg", "max"])}
        if rng.random() < 0.5:
            opts["mid"] = [rng.choice([2, 4, 6]) for _ in range(3)]
    elif kind == "mobilenet_v1":
        opts = {"blocks": rng.randint(1, 3), "width": rng.choice([0.125, 0.25])}
    else:
        opts = {"channels": [rng.choice([4, 8, 12]) for _ in range(rng.randint(2, 4))], "pool": "max"}
    bits = rng.choice([3, 4])
    return build_model(ModelConfig(name=kind, weight_bits=bits, act_bits=bits, options=opts), SHAPE, 10,
                       seed=seed), rng


def finn_layers(model, tmp, tag):
    layers, _ = hw_layers_from_qonnx(export_for_finn(model, SHAPE, tmp / f"{tag}.onnx"), tmp / f"finn_{tag}",
                                     load_board("pynq-z2"), 100.0)
    return layers


@pytest.mark.parametrize("seed", range(6))
def test_dag_bits_build_in_finn_and_the_predictor_carries_finns_types(seed, tmp_path):
    model, rng = random_model(seed)
    start, cands = bits_knobs(model, [4, 3, 2, 1])
    assert start and all(min(c) >= DAG_MIN_BITS for c in cands.values())
    knobs = {k: rng.choice(cands[k]) for k in rng.sample(sorted(cands), rng.randint(1, len(cands)))}
    lowered = with_operand_bits(model, {k.split(":", 1)[1]: v for k, v in knobs.items()})
    # the report's bits: each knob capped its quantiser and every layer that quantiser feeds
    acts, lb = input_acts(model), layer_bits(lowered)
    for k, v in knobs.items():
        for n in (n for n, a in acts.items() if a == acts[k.split(":", 1)[1]]):
            assert lb[n]["weight"] <= v
    assert operand_bits(lowered) == {n: min(b, knobs.get("bits:" + n, b)) for n, b in operand_bits(model).items()}
    # FINN converts the lowered model; its joins have inputs of one type
    got = finn_layers(lowered, tmp_path, "lowered")
    joins = [lay for lay in got if lay.kind == "ElementwiseAdd" and not lay.rhs_const]
    assert all(j.lhs_dt == j.rhs_dt for j in joins)
    # the predictor's rewrite of the unlowered model's specs = FINN's conversion of the lowered one
    base = finn_layers(model, tmp_path, "base")
    order = quant_layer_names(model)
    owner = match_hw_layers(base, hw_layer_shapes(model, order), len(order))
    pred = apply_dag_bits(base, owner, {order.index(k.split(":", 1)[1]): v for k, v in knobs.items()})
    assert [lay.kind for lay in pred] == [lay.kind for lay in got]
    for p, g in zip(pred, got, strict=True):
        fields = FIELDS if getattr(p, "no_activation", False) else (*FIELDS, "odt")
        fields = ("lhs_dt",) if p.kind == "ElementwiseMul" else fields  # after the classifier: its accumulator
        assert {f: getattr(p, f) for f in fields if hasattr(p, f)} == \
            {f: getattr(g, f) for f in fields if hasattr(g, f)}, (p.name, knobs)

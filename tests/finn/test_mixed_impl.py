"""A design whose MVAUs are part RTL, part HLS (``folding/variants.py``) through finn-plus's own flow: FINN builds
each MVAU as chosen, under the names ``finn_names`` predicts, and its estimate report equals ours in finn-compat mode
node by node (resources and cycles)."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest

from hapfpga.boards import load_board

RES = ("LUT", "BRAM_18K", "URAM", "DSP")


def _choose(problem, knob: list[str], seed: int) -> dict:  # noqa: ANN001
    """A random candidate per unit, each knob MVAU alternating RTL/HLS (both variants present)."""
    rng = random.Random(seed)
    want = {name: ("rtl", "hls")[(k + seed) % 2] for k, name in enumerate(knob)}
    out = {}
    for u in problem.units:
        cands = [c for c in u.candidates if u.name not in want or c.folding.impl_style == want[u.name]]
        out[u.name] = rng.choice(cands).folding
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_mixed_design_builds_as_chosen_and_matches_finns_report(tmp_path, seed: int, brevitas_export) -> None:
    from hapfpga.estimate import estimate_layer
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding.optimise import build_problem, default_cost_fn
    from hapfpga.folding.variants import (
        finn_folding,
        finn_names,
        mixed_impl_problem,
        rtl_mvaus,
        specialize_config,
        twice_judged_rtl_cost,
    )

    board = load_board("pynq-z2")
    q = brevitas_export("tfc_2w2a", (1, 1, 28, 28), tmp_path / "tfc.onnx", clean=False)
    layers, _ = hw_layers_from_qonnx(q, tmp_path, board, rtl=True)
    knob = rtl_mvaus(layers)
    assert len(knob) >= 2, [(x.name, x.impl) for x in layers]
    problem = mixed_impl_problem(layers, board, board.budget, build=build_problem,
                                 rtl_cost=twice_judged_rtl_cost(board, 100.0),
                                 hls_cost=default_cost_fn(100.0, board, False))
    choice = _choose(problem, knob, seed)
    impl = {n: f.impl_style for n, f in choice.items() if f.impl_style}
    assert set(impl.values()) == {"rtl", "hls"}
    (tmp_path / "spec.json").write_text(json.dumps(specialize_config(layers, impl)))
    (tmp_path / "fold.json").write_text(json.dumps(finn_folding(layers, choice)))
    run = run_finn_steps(q, tmp_path / "build", board=board.finn_board, clock_mhz=100.0,
                         specialize_layers_config_file=tmp_path / "spec.json", standalone_thresholds=True,
                         folding_config_file=tmp_path / "fold.json")
    rep, cyc = run.reports["estimate_layer_resources"], run.reports["estimate_layer_cycles"]
    names = finn_names(layers, impl)
    assert set(names.values()) == set(cyc)  # every node built, each MVAU as the variant chosen
    for layer in layers:
        fname = names[layer.name]
        variant = replace(layer, impl=impl[layer.name]) if layer.name in impl else layer
        c = estimate_layer(variant, choice[layer.name].with_(impl_style=None), 100.0, board=board, finn_compat=True)
        assert c.cycles == cyc[fname], fname
        for k in RES:
            assert getattr(c.resources, k) == pytest.approx(rep[fname][k]), (fname, k)

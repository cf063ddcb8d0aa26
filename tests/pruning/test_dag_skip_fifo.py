"""The skip-branch FIFOs of a pruned residual design are in the pruning predictor's design (issue 24; slow: FINN).

A resnet8 (width 0.5, digits 3×16×16) pruned to half its channels: the predictor (scaled FINN specs, folded with
the fold stage's options) charges each join's short input the skip FIFO its folding needs — its total is the
network estimate of its own plan with those FIFOs — and FINN, building the actually pruned model with that plan
(``inFIFODepths``) up to ``InsertDWC``/``InsertFIFO``/``SpecializeLayers`` as ``step_set_fifo_depths`` does with a
folding file, makes a ``StreamingFIFO`` of the same depth and width in front of every join, whose own estimate
(``bram_estimation``/``lut_estimation``) is the cost the predictor charged."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("finn")

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.estimate.network import estimate_network  # noqa: E402
from hapfpga.folding import FoldingOptions  # noqa: E402
from hapfpga.folding.optimise import with_skip_fifos  # noqa: E402
from hapfpga.pruning.apply import ChannelGraph, prune_to_counts  # noqa: E402
from hapfpga.pruning.hwmodel import build_predictor, export_for_finn  # noqa: E402
from hapfpga.pruning.importance import make_importance  # noqa: E402
from hapfpga.pruning.plan import scale_layers, uniform_counts  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402

pytestmark = pytest.mark.slow
SHAPE = (3, 16, 16)


def finn_fifos(qonnx, plan_json, work):
    """FINN's build of ``qonnx`` folded by ``plan_json`` up to FIFO insertion: ``{join: [(depth, width, BRAM18,
    LUT)]}`` of the StreamingFIFOs feeding each ElementwiseAdd, each costed by FINN's own estimate."""
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_fifo import InsertFIFO
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import getHWCustomOp
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.general import GiveUniqueNodeNames

    from hapfpga.finn.build import ESTIMATE_STEPS, run_finn_steps

    cfg = work / "folding.json"
    cfg.write_text(plan_json)
    res = run_finn_steps(qonnx, work / "finn", board="Pynq-Z2", clock_mhz=100.0, folding_config_file=cfg,
                         steps=ESTIMATE_STEPS)
    part = load_board("pynq-z2").part
    model = ModelWrapper(str(res.final_model))
    model = model.transform(InsertDWC()).transform(InsertFIFO(create_shallow_fifos=True))
    model = model.transform(SpecializeLayers(part)).transform(GiveUniqueNodeNames())
    out: dict[str, list] = {}
    for node in model.graph.node:
        if node.op_type.startswith("StreamingFIFO"):
            users = [u for u in model.find_consumers(node.output[0]) or [] if u.op_type.startswith("ElementwiseAdd")]
            inst = getHWCustomOp(node)
            for u in users:
                out.setdefault(u.name, []).append((inst.get_nodeattr("depth"), inst.get_instream_width_padded(),
                                                   inst.bram_estimation(part), inst.lut_estimation(part)))
    return out


def test_pruned_resnet_skip_fifos_are_charged_as_finn_builds_them(tmp_path):
    model = build_model(ModelConfig(name="resnet8", weight_bits=4, act_bits=4, options={"width": 0.5}), SHAPE, 10,
                        seed=0).eval()
    example = torch.rand((2, *SHAPE))
    graph = ChannelGraph(model, example)
    full = {g: grp.channels for g, grp in graph.groups.items() if grp.prunable}
    board = load_board("pynq-z2")
    hw, layers, _ = build_predictor(model, graph, SHAPE, board, tmp_path / "pred",
                                    FoldingOptions(clock_mhz=100.0, margin=0.0).for_predictor(60.0))
    counts = uniform_counts(full, 0.5)
    point = hw(counts)
    assert point.fits and point.plan is not None
    spec = hw.spec
    l2g = spec.layer_to_group
    scaled = scale_layers(layers, [spec.before[n] for n in spec.order],
                          [counts.get(l2g.get(n, n), spec.before[n]) for n in spec.order], list(spec.model_layers),
                          dict(spec.acc_contributions))
    plan = with_skip_fifos(point.plan, scaled)
    est = estimate_network(scaled, plan, board, clock_mhz=100.0)
    # the predictor's design includes the skip FIFOs: its total is the estimate of its plan with them
    assert point.resources.LUT == est.total.LUT and point.resources.BRAM_18K == est.total.BRAM_18K
    assert len(est.skip_fifos) == 3 and all(d > 2 for d in est.skip_fifos.values())
    # FINN, building the pruned model with that plan, makes the same FIFOs and costs them as the predictor did
    pruned = prune_to_counts(model, example, counts, make_importance("l1"), graph=graph)[0]
    got = finn_fifos(export_for_finn(pruned, SHAPE, tmp_path / "pruned.onnx"), plan.to_finn_json(), tmp_path)
    assert len(got) == 3
    for name, depth in est.skip_fifos.items():
        ours = est.infrastructure[name].resources
        join = name.split("__")[-1]
        deep = [f for f in got[join] if f[0] > 2]
        assert [f[0] for f in deep] == [depth], (name, got[join])
        assert (deep[0][2], deep[0][3]) == (ours.BRAM_18K, ours.LUT), (name, deep, ours)
    assert json.loads(plan.to_finn_json())  # the plan FINN was given is the predictor's own

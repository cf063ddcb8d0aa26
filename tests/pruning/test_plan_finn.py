"""The scaled-layer-spec assumption checked against a real FINN conversion of a pruned CNV (slow: two FINN runs).

``plan.scale_layers`` derives the pruned network's FINN layers from the unpruned network's by scaling channel
dimensions. Here FINN converts an actually pruned CNV-w2a2 and every shape field it reports must equal the
scaled prediction; accumulator widths, which FINN re-derives from the pruned weights, are FINN's or one bit
wider when the predictor's accumulator contributions are given (``plan.pruned_acc_dt``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
models = pytest.importorskip("brevitas_examples.bnn_pynq.models")

SHAPE_FIELDS = ("mw", "mh", "n_vectors", "channels", "ifm_ch", "ifm_dim", "ofm_dim", "kernel", "labels")


@pytest.mark.slow
def test_scaled_specs_match_finn_conversion_of_pruned_cnv(tmp_path):
    from hapfpga.boards import load_board
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.pruning.apply import ChannelGraph, prune_to_counts
    from hapfpga.pruning.hwmodel import export_for_finn
    from hapfpga.pruning.importance import L1Importance
    from hapfpga.pruning.plan import fold_friendly_count, scale_layers

    board = load_board("pynq-z2")
    torch.manual_seed(0)
    m, _ = models.model_with_cfg("cnv_2w2a", pretrained=False)
    m.eval()
    x = torch.rand(2, 3, 32, 32)
    g = ChannelGraph(m, x)
    ratios = [0.3, 0.55, 0.4, 0.7, 0.25, 0.5, 0.35, 0.6]  # non-uniform on purpose
    prunable = [n for n, grp in g.groups.items() if grp.prunable]
    counts = {n: fold_friendly_count(g.groups[n].channels, g.groups[n].channels * r) for n, r in zip(prunable, ratios, strict=True)}
    p, _ = prune_to_counts(m, x, counts, L1Importance(), graph=g)

    layers, spec = hw_layers_from_qonnx(export_for_finn(m, (3, 32, 32), tmp_path / "u.onnx"), tmp_path, board, 100)
    real, _ = hw_layers_from_qonnx(export_for_finn(p, (3, 32, 32), tmp_path / "p.onnx"), tmp_path, board, 100)

    order = g.layers_in_order()
    before = [g.groups[n].channels if n in g.groups else None for n in order]
    after = [counts.get(n, b) for n, b in zip(order, before, strict=True)]
    scaled = scale_layers(layers, before, after)
    assert [s.name for s in scaled] == [r.name for r in real]
    for s, r in zip(scaled, real, strict=True):
        assert s.kind == r.kind
        for f in SHAPE_FIELDS:
            if hasattr(r, f):
                assert getattr(s, f) == getattr(r, f), (r.name, f)
    # and the real conversion did change the MVAUs (the check is not vacuous)
    assert sum(a.mh != b.mh for a, b in zip(layers, real, strict=True) if a.kind == "MVAU") == len(prunable)

    # accumulators: with the unpruned weights' contributions (the predictor's), a pruned MVAU with thresholds
    # gets FINN's width or wider, never narrower, and narrower than the unpruned one where FINN's is
    from hapfpga.finn.graph import accumulator_contributions

    def bits(t: str) -> int:
        return int(t.lstrip("UINT"))

    narrowed = scale_layers(layers, before, after, acc=accumulator_contributions(spec))
    pairs = [(u, s, r) for u, s, r in zip(layers, narrowed, real, strict=True)
             if r.kind == "MVAU" and not r.no_activation and r.mw != u.mw]
    assert pairs and all(bits(r.acc_dt) <= bits(s.acc_dt) <= bits(u.acc_dt) for u, s, r in pairs), pairs
    assert sum(s.acc_dt == r.acc_dt for _, s, r in pairs) >= len(pairs) - 1
    assert any(bits(s.acc_dt) < bits(u.acc_dt) for u, s, _ in pairs)

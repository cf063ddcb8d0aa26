"""Structured channel removal on Brevitas models: shapes, exact function preservation, export.

The strongest check used here: channels that are *dead* (zero filter, BN shift that makes the activation zero)
contribute nothing to the output, so removing exactly those channels must leave the network's output unchanged.
A wrong index anywhere (BN, per-channel scales, flatten→linear mapping, concat offsets) breaks the equality.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")
nn = torch.nn

from hapfpga.errors import UnsupportedLayerError  # noqa: E402
from hapfpga.pruning.apply import ChannelGraph, count_macs, count_params, layer_channels, prune_to_counts  # noqa: E402
from hapfpga.pruning.importance import L1Importance  # noqa: E402


def _val(x):
    return getattr(x, "value", x)


class SmallCNN(nn.Module):
    """conv(per-channel parameter weight scale) → BN → per-channel QuantReLU → conv → BN → ReLU → pool → flatten → FC."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.c1 = qnn.QuantConv2d(
            1, 8, 3, padding=1, bias=False, weight_bit_width=4,
            weight_scaling_per_output_channel=True, weight_scaling_impl_type="parameter_from_stats",
        )
        self.b1 = nn.BatchNorm2d(8)
        self.a1 = qnn.QuantReLU(
            bit_width=4, return_quant_tensor=True, scaling_per_output_channel=True,
            per_channel_broadcastable_shape=(1, 8, 1, 1), scaling_stats_permute_dims=(1, 0, 2, 3),
        )
        self.c2 = qnn.QuantConv2d(8, 16, 3, padding=1, bias=False, weight_bit_width=4)
        self.b2 = nn.BatchNorm2d(16)
        self.a2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.fc = qnn.QuantLinear(16 * 4 * 4, 10, bias=True, weight_bit_width=4)

    def forward(self, x):
        x = self.inp(x)
        x = self.a1(self.b1(self.c1(x)))
        x = self.a2(self.b2(self.c2(x)))
        x = self.pool(x)
        return self.fc(x.flatten(1))


def _kill(conv, bn, chans) -> None:
    """Make output channels ``chans`` of conv→bn→ReLU identically zero."""
    with torch.no_grad():
        conv.weight[chans] = 0.0
        bn.bias[chans] = -1.0
        bn.weight[chans] = 1.0
        bn.running_mean[chans] = 0.0


def _warm(model, x) -> None:
    """One training-mode pass so stats-based quantisers initialise, then eval."""
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def test_dead_channels_removed_without_changing_output():
    torch.manual_seed(0)
    m = SmallCNN()
    x = torch.rand(8, 1, 8, 8)
    _kill(m.c1, m.b1, [1, 3, 4])
    _kill(m.c2, m.b2, [0, 5, 6, 7, 9, 15])
    with torch.no_grad():  # per-tensor weight scales come from max|w|: keep the max among surviving weights
        m.c2.weight[:, [1, 3, 4]] = 0.0
        for c in (0, 5, 6, 7, 9, 15):
            m.fc.weight[:, c * 16 : (c + 1) * 16] = 0.0
    _warm(m, x)
    ref = _val(m(x))
    g = ChannelGraph(m, x)
    assert set(g.groups) == {"c1", "c2", "fc"}
    assert not g.groups["fc"].prunable
    keep = {"c1": [0, 2, 5, 6, 7], "c2": [1, 2, 3, 4, 8, 10, 11, 12, 13, 14]}
    p = g.prune(keep)
    assert p.c1.weight.shape == (5, 1, 3, 3)
    assert p.b1.running_mean.shape == (5,)
    assert p.a1.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl.value.shape == (1, 5, 1, 1)
    assert p.c2.weight.shape == (10, 5, 3, 3)
    # flatten→linear: 10 channels × 4×4 positions (the Torch-Pruning flatten case)
    assert p.fc.weight.shape == (10, 160)
    assert p.fc.in_features == 160
    out = _val(p.eval()(x))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # the original model is untouched
    assert m.c1.weight.shape == (8, 1, 3, 3)


def test_removing_live_channels_changes_output():
    """Control for the test above: the equality is not automatic."""
    torch.manual_seed(0)
    m = SmallCNN()
    x = torch.rand(8, 1, 8, 8)
    _warm(m, x)
    ref = _val(m(x))
    p = ChannelGraph(m, x).prune({"c2": list(range(8))})
    assert not torch.allclose(_val(p.eval()(x)), ref)


def test_per_channel_weight_scale_parameter_is_pruned():
    torch.manual_seed(0)
    m = SmallCNN()
    x = torch.rand(4, 1, 8, 8)
    _warm(m, x)
    scale = [t for n, t in m.c1.named_parameters() if n != "weight"]
    assert scale and scale[0].numel() == 8  # the per-output-channel scale parameter exists
    p = ChannelGraph(m, x).prune({"c1": [0, 7]})
    pscale = [t for n, t in p.c1.named_parameters() if n != "weight"]
    torch.testing.assert_close(pscale[0].flatten(), scale[0].detach().flatten()[[0, 7]])


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c0 = nn.Conv2d(3, 8, 3, padding=1)
        self.b0 = nn.BatchNorm2d(8)
        self.c1 = nn.Conv2d(8, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 6, 1)
        self.c3 = nn.Conv2d(8, 4, 1)
        self.c4 = nn.Conv2d(10, 5, 1)
        self.fc = nn.Linear(5 * 4 * 4, 3)

    def forward(self, x):
        x = torch.relu(self.b0(self.c0(x)))
        x = torch.relu(self.b1(self.c1(x))) + x  # residual: c0 and c1 channels are coupled
        y = torch.cat([torch.relu(self.c2(x)), torch.relu(self.c3(x))], dim=1)  # concat group
        y = torch.relu(self.c4(y))
        return self.fc(y.flatten(1))


def test_residual_and_concat_groups():
    torch.manual_seed(0)
    m = Residual().eval()
    x = torch.rand(2, 3, 4, 4)
    g = ChannelGraph(m, x)
    coupled = [grp for grp in g.groups.values() if {"c0", "c1"} <= set(grp.producers)]
    assert len(coupled) == 1
    # dead channels: residual channels 2,5 dead in both branches; c2 channel 1 and c3 channel 3 dead (relu(-1)).
    with torch.no_grad():
        for conv, bn in ((m.c0, m.b0), (m.c1, m.b1)):
            conv.weight[[2, 5]] = 0
            conv.bias[[2, 5]] = 0
            bn.bias[[2, 5]] = -1.0
            bn.running_mean[[2, 5]] = 0
        for conv, ch in ((m.c2, 1), (m.c3, 3)):
            conv.weight[ch] = 0
            conv.bias[ch] = -1.0
        m.c4.weight[[0, 4]] = 0
        m.c4.bias[[0, 4]] = -1.0
    ref = m(x)
    name = coupled[0].name
    p = g.prune({name: [0, 1, 3, 4, 6, 7], "c2": [0, 2, 3, 4, 5], "c3": [0, 1, 2], "c4": [1, 2, 3]})
    assert p.c1.weight.shape == (6, 6, 3, 3)
    assert p.c4.weight.shape == (3, 8, 1, 1)  # concat: 5 + 3 inputs, offsets right
    assert p.fc.weight.shape == (3, 48)
    torch.testing.assert_close(p(x), ref, rtol=0, atol=1e-5)


def test_prune_to_counts_keeps_most_important_deterministically():
    torch.manual_seed(0)
    m = SmallCNN()
    x = torch.rand(4, 1, 8, 8)
    _warm(m, x)
    with torch.no_grad():
        m.c2.weight[[2, 9, 11]] *= 100.0  # make these filters the largest by L1
    p1, keep1 = prune_to_counts(m, x, {"c2": 3}, L1Importance())
    p2, keep2 = prune_to_counts(m, x, {"c2": 3}, L1Importance())
    assert keep1 == keep2 == {"c2": [2, 9, 11]}
    assert layer_channels(p1) == {"c1": 8, "c2": 3, "fc": 10}
    assert count_params(p1) < count_params(m)
    # MACs: conv c1 72×64 + c2 (3×8×9)×64 + fc 3·16·10
    assert count_macs(p1, x[:1]) == 8 * 9 * 64 + 3 * 8 * 9 * 64 + 3 * 16 * 10


def test_bad_plans_are_user_errors():
    m = SmallCNN()
    x = torch.rand(2, 1, 8, 8)
    _warm(m, x)
    g = ChannelGraph(m, x)
    with pytest.raises(UnsupportedLayerError, match="not a prunable channel group"):
        g.prune({"nope": [0]})
    with pytest.raises(UnsupportedLayerError, match="network output"):
        g.prune({"fc": [0, 1]})
    with pytest.raises(UnsupportedLayerError, match="distinct indices"):
        g.prune({"c1": [0, 0]})


def test_cnv_pruned_exports_to_qonnx(tmp_path):
    models = pytest.importorskip("brevitas_examples.bnn_pynq.models")
    from brevitas.export import export_qonnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup

    m, _ = models.model_with_cfg("cnv_2w2a", pretrained=False)
    m.eval()
    x = torch.rand(1, 3, 32, 32)
    g = ChannelGraph(m, x)
    counts = {n: max(1, grp.channels // 4) for n, grp in g.groups.items() if grp.prunable}
    p, _ = prune_to_counts(m, x, counts, L1Importance(), graph=g)
    assert p.conv_features[1].in_channels == 3
    assert p.linear_features[0].in_features == counts["conv_features.18"]
    path = tmp_path / "p.onnx"
    export_qonnx(p, x, str(path))
    cleanup(str(path), out_file=str(path))
    mw = ModelWrapper(str(path))
    convs = [n for n in mw.graph.node if n.op_type == "Conv"]
    assert len(convs) == 6
    # the exported weight initialisers carry the pruned shapes
    shapes = sorted(tuple(mw.get_tensor_shape(n.input[1])) for n in convs)
    assert (16, 3, 3, 3) in shapes and (64, 64, 3, 3) in shapes


class _FixedFeatureCount(torch.nn.Module):
    """A user's model whose forward writes the flattened feature count in (``x.view(-1, 4 * 6)``)."""

    def __init__(self):
        super().__init__()
        from brevitas.nn import QuantConv1d, QuantLinear, QuantReLU

        self.conv = QuantConv1d(2, 4, 3, padding=1, bias=False, weight_bit_width=2)
        self.act = QuantReLU(bit_width=2)
        self.fc = QuantLinear(4 * 6, 3, bias=False, weight_bit_width=2)

    def forward(self, x):
        return self.fc(self.act(self.conv(x)).view(-1, 4 * 6))


def test_forward_with_a_fixed_feature_count_is_one_sentence_after_pruning():
    """The FC's inputs shrink with the conv's channels (2 of 4 kept: 12 features), but the user's forward still
    reshapes to 24: a user error naming the group and quoting torch's, not an internal error."""
    model = _FixedFeatureCount().eval()
    graph = ChannelGraph(model, torch.rand(2, 2, 6))
    with pytest.raises(UnsupportedLayerError) as e:
        graph.prune({"conv": [0, 2]})
    msg = e.value.message
    assert "'conv'" in msg and "RuntimeError" in msg and "x.view(x.size(0), -1)" in msg and "pruning.exclude" in msg
    assert graph.prune({"conv": [0, 1, 2, 3]}).fc.in_features == 24  # nothing removed: the forward still runs

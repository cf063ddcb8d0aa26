"""Channel pruning on depthwise-separable, residual (QuantEltwiseAdd, shared QuantIdentity) and 1D models.

Exactness check as in ``test_apply.py``: channels made *dead* (every path from them contributes exactly zero)
are removed, and the pruned network's output must equal the unpruned one's bit for bit. A wrong index anywhere
(depthwise weights and ``groups``, the coupled convs of an add, 1D BatchNorm, flatten→linear) breaks it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")

from hapfpga.errors import UnsupportedLayerError  # noqa: E402
from hapfpga.pruning.apply import ChannelGraph, hw_layer_shapes  # noqa: E402

_spec = importlib.util.spec_from_file_location("graph_models", Path(__file__).with_name("graph_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)


def _val(x):
    return getattr(x, "value", x)


def _silence(bn, chans, *, relu_after: bool) -> None:
    """BN output of ``chans`` becomes -1 (zero after a ReLU) or exactly 0 (before an add), for a zero input."""
    bn.running_mean[chans] = 0.0
    bn.weight[chans] = 1.0
    bn.bias[chans] = -1.0 if relu_after else 0.0


def _assert_same_output(m, x, group: str, dead: list[int]):
    ref = _val(m(x))
    g = ChannelGraph(m, x)
    keep = [i for i in range(g.groups[group].channels) if i not in dead]
    p = g.prune({group: keep}).eval()
    torch.testing.assert_close(_val(p(x)), ref, rtol=0, atol=0)
    return g, p


def test_depthwise_follows_its_producer():
    m = gm.build("Separable")
    dead = [1, 4, 5, 11]
    with torch.no_grad():
        m.c0.weight[dead] = 0.0
        _silence(m.b0, dead, relu_after=True)
        m.dw.weight[dead] = 0.0
        _silence(m.b1, dead, relu_after=True)
        m.pw.weight[:, dead] = 0.0
    x = torch.rand(4, *m.input_shape)
    g, p = _assert_same_output(m, x, "c0", dead)
    assert g.groups["c0"].producers == ("c0", "dw")
    assert g.groups["c0"].consumers == ("pw",)
    assert p.dw.weight.shape == (12, 1, 3, 3) and p.dw.groups == p.dw.in_channels == p.dw.out_channels == 12
    assert p.b1.num_features == 12 and p.pw.weight.shape == (24, 12, 1, 1)
    assert [s.depthwise for s in hw_layer_shapes(m, ["c0", "dw", "pw"])] == [False, True, False]


def test_depthwise_on_the_input_is_not_prunable():
    class InputDw(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.dw = torch.nn.Conv2d(3, 3, 3, groups=3)
            self.fc = torch.nn.Linear(3 * 6 * 6, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.dw(x)).flatten(1))

    g = ChannelGraph(InputDw().eval(), torch.rand(2, 3, 8, 8))
    assert not g.groups["dw"].prunable  # its channels are the image's
    with pytest.raises(UnsupportedLayerError, match="cannot be pruned"):
        g.prune({"dw": [0, 1]})


def test_grouped_non_depthwise_conv_is_refused_in_one_sentence():
    class Grouped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c0 = torch.nn.Conv2d(3, 8, 3)
            self.c1 = torch.nn.Conv2d(8, 8, 3, groups=2)

        def forward(self, x):
            return self.c1(torch.relu(self.c0(x))).flatten(1)

    with pytest.raises(UnsupportedLayerError, match="groups=2"):
        ChannelGraph(Grouped().eval(), torch.rand(2, 3, 8, 8))


def test_residual_add_couples_the_conv_and_its_shortcut():
    m = gm.build("Residual")
    dead = [0, 7, 9]
    with torch.no_grad():
        for conv, bn in ((m.c2, m.b2), (m.sc, m.bs)):
            conv.weight[dead] = 0.0
            _silence(bn, dead, relu_after=False)
        for c in dead:
            m.fc.weight[:, c * 16 : (c + 1) * 16] = 0.0
    x = torch.rand(4, *m.input_shape)
    g, p = _assert_same_output(m, x, "c2", dead)
    assert set(g.groups["c2"].producers) == {"c2", "sc"}
    assert p.c2.weight.shape == (13, 16, 3, 3) and p.sc.weight.shape == (13, 8, 1, 1)
    assert p.bs.num_features == p.b2.num_features == 13 and p.fc.in_features == 13 * 16


def test_identity_residual_couples_the_block_to_the_stem():
    m = gm.build("IdentityResidual")
    g = ChannelGraph(m, torch.rand(2, *m.input_shape))
    assert set(g.groups["c0"].producers) == {"c0", "c2"}
    p = g.prune({"c0": [0, 2, 3, 8, 11], "c1": [1, 2, 3]})
    assert p.c0.out_channels == p.c2.out_channels == p.c1.in_channels == 5
    assert p.c1.out_channels == p.c2.in_channels == 3


def test_conv1d_batchnorm1d_maxpool1d():
    m = gm.build("Conv1dNet")
    dead = [2, 3, 6]
    with torch.no_grad():
        m.c0.weight[dead] = 0.0
        _silence(m.b0, dead, relu_after=True)
        m.c1.weight[:, dead] = 0.0
    x = torch.rand(4, *m.input_shape)
    _, p = _assert_same_output(m, x, "c0", dead)
    assert p.c0.weight.shape == (5, 2, 3) and p.b0.num_features == 5 and p.c1.weight.shape == (12, 5, 3)


def test_mlp():
    m = gm.build("Mlp")
    dead = [0, 5, 17, 31]
    with torch.no_grad():
        m.fc0.weight[dead] = 0.0
        _silence(m.b0, dead, relu_after=True)
        m.fc1.weight[:, dead] = 0.0
    x = torch.rand(4, *m.input_shape)
    _, p = _assert_same_output(m, x, "fc0", dead)
    assert p.fc0.out_features == 28 and p.fc1.in_features == 28


@pytest.mark.parametrize("name,group", [("Separable", "c0"), ("Residual", "c2"), ("Conv1dNet", "c0")])
def test_removing_live_channels_changes_the_output(name, group):
    """Control for the exactness tests above: equality is not automatic."""
    m = gm.build(name)
    x = torch.rand(4, *m.input_shape)
    ref = _val(m(x))
    p = ChannelGraph(m, x).prune({group: [0, 1, 2]}).eval()
    assert not torch.allclose(_val(p(x)), ref)

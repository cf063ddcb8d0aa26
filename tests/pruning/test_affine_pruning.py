"""Pruning the models FINN's tutorials use (``brevitas_examples.bnn_pynq``: bipolar 1-bit weights and
activations, BatchNorm after every FC/conv, TensorNorm at the end) and per-channel affine layers a user writes
(issue 21, item 2): a per-channel affine layer is pruned together with its channels.

Property (exact, many random plans): with 1-bit weights of constant scale and ±1 activations every sum is an
integer, so removing channels is *exactly* the same as feeding zeros for them to the consumer. The pruned model
must therefore equal the unpruned one with the removed channels zeroed after their activation, bit for bit; a
BatchNorm, TensorNorm or custom affine left unpruned (or pruned at the wrong indices) gives kept channels another
channel's scale and bias and breaks the equality.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas_examples")

from hapfpga.pruning.apply import ChannelGraph  # noqa: E402


class ChannelAffine(torch.nn.Module):
    """A user's per-channel scale and shift (not a BatchNorm: the pruner must find its tensors itself)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.rand(channels) + 0.5)
        self.bias = torch.nn.Parameter(torch.randn(channels))

    def forward(self, x):
        return x * self.weight + self.bias


def _affine_mlp():
    """TFC's shape with bnn_pynq's quantisers, a ChannelAffine instead of BatchNorm1d, QuantHardTanh activations,
    a TensorNorm in the middle and a signed (bipolar) input."""
    from brevitas.nn import QuantHardTanh, QuantIdentity, QuantLinear
    from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
    from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

    def fc(i, o):
        return QuantLinear(i, o, bias=False, weight_bit_width=1, weight_quant=CommonWeightQuant)

    def act():
        return QuantHardTanh(act_quant=CommonActQuant, bit_width=1)

    return torch.nn.Sequential(
        QuantIdentity(act_quant=CommonActQuant, bit_width=1), torch.nn.Flatten(),
        fc(64, 32), ChannelAffine(32), act(),
        fc(32, 24), TensorNorm(), act(),
        fc(24, 10), TensorNorm())


def _bnn(name: str):
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    return model_with_cfg(name, pretrained=False)[0]


#: name -> (factory, input shape, lowest input value): bnn_pynq maps [0, 1] to [-1, 1] itself (``2x - 1`` in
#: its forward); the user MLP takes signed inputs in [-1, 1]
MODELS = {
    "tfc_1w1a": (lambda: _bnn("tfc_1w1a"), (1, 28, 28), 0.0),
    "cnv_1w1a": (lambda: _bnn("cnv_1w1a"), (3, 32, 32), 0.0),
    "affine_mlp": (_affine_mlp, (1, 8, 8), -1.0),
}


def _randomise_affines(model, gen):
    """Distinct per-channel statistics so that a mis-indexed affine is visible."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
        elif isinstance(m, ChannelAffine):
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen))
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen))


def _activation_after(graph: ChannelGraph, producer: str) -> str:
    """The first quantised activation after ``producer`` in execution order (where its channels are ±1)."""
    mods = dict(graph.model.named_modules())
    start = graph.order.index(producer) + 1
    return next(n for n in graph.order[start:]
                if type(mods[n]).__name__ in ("QuantIdentity", "QuantHardTanh", "QuantReLU"))


def _zeroed(model, graph: ChannelGraph, removed: dict[str, list[int]], x):
    """The unpruned model's output with the removed channels zeroed after their activation."""
    mods = dict(model.named_modules())
    hooks = []
    for g, idx in removed.items():
        def zero(_m, _i, out, idx=idx):
            out = out.clone()
            out[:, idx] = 0
            return out

        hooks.append(mods[_activation_after(graph, g)].register_forward_hook(zero))
    try:
        with torch.no_grad():
            return model(x)
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "cnv_1w1a" else n
                                  for n in sorted(MODELS)])
def test_pruning_equals_zeroing_the_removed_channels(name):
    build, shape, lo = MODELS[name]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build().eval()
    _randomise_affines(model, gen)
    x = lo + (1 - lo) * torch.rand((4, *shape), generator=gen)
    with torch.no_grad():
        assert len({tuple(r.tolist()) for r in model(x)}) == len(x)  # the inputs reach the output distinctly
    graph = ChannelGraph(model, x[:1])
    prunable = [g for g in graph.groups.values() if g.prunable]
    assert prunable
    for trial in range(8 if name != "cnv_1w1a" else 3):
        removed = {}
        for g in prunable:
            n_remove = int(torch.randint(0, g.channels // 2 + 1, (1,), generator=gen))
            removed[g.name] = sorted(torch.randperm(g.channels, generator=gen)[:n_remove].tolist())
        keep = {g: [i for i in range(graph.groups[g].channels) if i not in set(r)] for g, r in removed.items()}
        pruned = graph.prune(keep).eval()
        with torch.no_grad():
            got = pruned(x)
        want = _zeroed(model, graph, {g: r for g, r in removed.items() if r}, x)
        assert torch.equal(got, want), (name, trial, (got - want).abs().max())
        for g, kept in keep.items():  # every per-channel tensor after the producer shrank with it
            assert pruned.get_submodule(g).weight.shape[0] == len(kept)


def test_pruned_user_affine_holds_the_kept_channels_parameters():
    torch.manual_seed(0)
    model = _affine_mlp().eval()
    graph = ChannelGraph(model, torch.rand(1, 1, 8, 8))
    keep = {"2": [1, 5, 7, 30]}
    pruned = graph.prune(keep)
    assert torch.equal(pruned[3].weight, model[3].weight[keep["2"]])
    assert torch.equal(pruned[3].bias, model[3].bias[keep["2"]])
    assert pruned[5].in_features == 4 and pruned[6].weight.shape == (1,)  # TensorNorm is per tensor: untouched


@pytest.mark.parametrize("arch", ["tfc_1w1a", pytest.param("sfc_2w2a", marks=pytest.mark.slow),
                                  pytest.param("cnv_1w2a", marks=pytest.mark.slow)])
def test_pruned_bnn_pynq_model_builds_and_verifies_bit_exactly_in_finn(tmp_path, arch):
    """A pruned bnn_pynq model (BatchNorm and bipolar/2-bit activations streamlined into thresholds, TensorNorm
    into the output tail) passes the check before training, has the pruned widths in its QONNX, and FINN's HW
    graph computes exactly what Brevitas does."""
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.boards import load_board
    from hapfpga.export import export_qonnx
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import SPECIALIZE_STEPS
    from hapfpga.modelcheck import check_finn_conversion
    from hapfpga.verify import verify_chain

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    shape = (3, 32, 32) if arch.startswith("cnv") else (1, 28, 28)
    model = _bnn(arch).eval()
    _randomise_affines(model, gen)
    graph = ChannelGraph(model, torch.rand(1, *shape))
    keep = {g.name: sorted(torch.randperm(g.channels, generator=gen)[: g.channels * 3 // 4].tolist())
            for g in graph.groups.values() if g.prunable}
    pruned = graph.prune(keep).eval()
    check_finn_conversion(pruned, shape, f"the pruned {arch}", tmp_path / "check", load_board("pynq-z2"))
    onnx_file = export_qonnx(pruned, shape, tmp_path / "pruned.qonnx.onnx")  # the check calibrates a copy
    mw = ModelWrapper(str(onnx_file))
    outs = [mw.get_tensor_shape(n.input[1])[0] for n in mw.graph.node if n.op_type in ("Gemm", "MatMul", "Conv")]
    assert outs == [len(keep[g]) for g in graph.layers_in_order() if g in keep] + [10]
    res = run_finn_steps(onnx_file, tmp_path / "finn", steps=SPECIALIZE_STEPS)
    x = (torch.randint(0, 256, (8, *shape), generator=gen).float() / 255).numpy()
    rep = verify_chain(pruned, onnx_file, res, x)
    hw = [s for s in rep.stages if s.name == "finn_hw"][0]
    assert rep.passed and hw.exact and hw.max_abs_diff == 0.0, [(s.name, s.passed, s.max_abs_diff) for s in rep.stages]

"""Property: a conv map flattened into a QuantLinear converts to FINN with the flatten absorbed into the FC's
weights and verifies bit-exactly against Brevitas, for every flatten spelling, in 1D and 2D, pruned or not.

Random small models (``flatten_models.py``: 1–2 convs of 2–8 channels, map sizes 1D 4–16 and 2D 4×4–7×7 before
convs/pool, with or without max-pool, hidden FC, Brevitas' 8-bit input quantiser, QuantTensor activations, FC
bias; weight and activation bits 2 or 4) are written as user model files, built through the factory loader, given
BatchNorm statistics and activation scales by training-mode forwards, half of them channel-pruned at random, then
exported and converted by finn-plus up to ``step_specialize_layers`` (with our steps). Each must:

1. after pruning, give the FC exactly the columns of the kept channels' blocks (channel ``c`` of a ``C×S`` map
   owns FC inputs ``c·S … c·S+S−1``, PyTorch's flatten order);
2. leave no ``Transpose``/``Reshape``/``Shuffle`` between HW layers (FINN's ``RemoveCNVtoFCFlatten`` absorbed the
   NHWC→NCHW transpose into the FC MVAU, whose ``MW`` is the map's ``C·S``), only the graph's input transpose;
3. read as estimator layers (no ``Shuffle``), and verify exactly: Brevitas ↔ QONNX ↔ FINN streamlined ↔ FINN HW;
4. (the issue's case) after pruning, have the MVAU shapes the hardware-aware search predicts from the unpruned
   conversion (``scale_layers``: the flattened FC's ``MW = C·S`` scales with the kept channels).

Default suite: 2 seeds, the issue's 1D case and each spelling once (1D and 2D alternating); ``slow``: 40 more
seeds and the other dimension of each spelling.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("finn")

_spec = importlib.util.spec_from_file_location("flatten_models", Path(__file__).with_name("flatten_models.py"))
flatten_models = importlib.util.module_from_spec(_spec)
sys.modules["flatten_models"] = flatten_models  # dataclasses look their module up
_spec.loader.exec_module(flatten_models)
FlattenSpec = flatten_models.FlattenSpec

#: nodes allowed outside FINN's HW layers after step_convert_to_hw: the input's NCHW→NHWC transpose, the float tail
_AT_ENDS = {"Transpose", "Mul", "Add"}


def _build(spec: FlattenSpec, shape: tuple[int, ...], root: Path, bits: tuple[int, int], seed: int):
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    f = root / "usermodel.py"
    f.write_text(flatten_models.source(spec))
    cfg = ModelConfig(name=f"{f}:make", weight_bits=bits[0], act_bits=bits[1])
    model = build_model(cfg, shape, 3, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # BatchNorm away from identity, then statistics and scales from data
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) - 0.3)
        model.train()
        for _ in range(3):
            model(torch.rand((16, *shape), generator=gen))
    return model.eval()


def _feature_map(model, x) -> tuple[int, ...]:
    """Shape of the map that reaches the first QuantLinear (recorded by a hook), without the batch."""
    from brevitas.nn import QuantLinear

    seen = []
    fc = next(m for m in model.modules() if isinstance(m, QuantLinear))
    last_map: list[tuple[int, ...]] = []

    def keep_map(mod, inp, out):
        v = getattr(out, "value", out)
        if v.dim() > 2:
            last_map.append(tuple(v.shape[1:]))

    def at_fc(mod, inp, out):
        seen.append(last_map[-1])

    hooks = [m.register_forward_hook(keep_map) for m in model.modules() if not list(m.children())]
    hooks.append(fc.register_forward_hook(at_fc))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen[0]


def _prune_and_check_fc(model, x, rng):
    """Random kept channels of every conv group; the FC must keep exactly the kept channels' blocks of columns."""
    from brevitas.nn import QuantLinear

    from hapfpga.pruning.apply import ChannelGraph

    graph = ChannelGraph(model, x)
    convs = [g for g in graph.groups.values() if g.prunable and g.name.startswith("conv")]
    keep = {}
    for g in convs:
        n = int(rng.integers(1, g.channels))  # at least one channel removed
        keep[g.name] = sorted(int(i) for i in rng.choice(g.channels, size=n, replace=False))
    c, *spatial = _feature_map(model, x)
    s = int(np.prod(spatial))
    last = convs[-1].name
    pruned = graph.prune(keep)
    fc0 = next(m for m in model.modules() if isinstance(m, QuantLinear))
    fc1 = next(m for m in pruned.modules() if isinstance(m, QuantLinear))
    cols = [ch * s + k for ch in keep[last] for k in range(s)]
    assert fc1.in_features == len(cols) == fc1.weight.shape[1]
    assert torch.equal(fc1.weight, fc0.weight[:, cols])
    return pruned, keep, graph


def _check_scaled(model, shape, graph, keep, res, root: Path) -> None:
    """The hardware-aware search's prediction (``scale_layers`` on the unpruned model's FINN layers) equals
    FINN's conversion of the pruned model, the flattened FC's ``MW`` included (``C·S`` scales with ``C``)."""
    from hapfpga.finn.graph import load_layers
    from hapfpga.pruning.apply import hw_layer_shapes
    from hapfpga.pruning.plan import scale_layers

    _, unpruned = _convert(model, shape, root / "unpruned")
    order = graph.layers_in_order()
    shapes = hw_layer_shapes(model, order)
    l2g = {p: g.name for g in graph.groups.values() for p in g.producers}
    after = [len(keep[l2g[n]]) if l2g.get(n) in keep else s.out for n, s in zip(order, shapes, strict=True)]
    pred = scale_layers(load_layers(unpruned.step_models["step_specialize_layers"]), [s.out for s in shapes],
                        after, shapes)
    real = load_layers(res.step_models["step_specialize_layers"])
    assert [(p.name, p.kind) for p in pred] == [(r.name, r.kind) for r in real]
    for p, r in zip(pred, real, strict=True):
        if r.kind == "MVAU":
            assert (p.mw, p.mh, p.n_vectors) == (r.mw, r.mh, r.n_vectors), r.name


def _convert(model, shape, root: Path):
    from hapfpga.export import export_qonnx
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import SPECIALIZE_STEPS

    onnx_path = export_qonnx(model, shape, root / "model.qonnx.onnx")
    return onnx_path, run_finn_steps(onnx_path, root / "finn", steps=SPECIALIZE_STEPS)


def _check_absorbed(res, feature_map: tuple[int, ...]) -> None:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp

    from hapfpga.finn.graph import load_layers

    hw = ModelWrapper(str(res.step_models["step_convert_to_hw"]))
    nodes = list(hw.graph.node)
    soft = [(i, n.op_type) for i, n in enumerate(nodes) if not n.domain.startswith("finn.custom_op.fpgadataflow")]
    hw_idx = [i for i, n in enumerate(nodes) if n.domain.startswith("finn.custom_op.fpgadataflow")]
    inside = [op for i, op in soft if hw_idx[0] < i < hw_idx[-1]]
    assert not inside, f"software nodes between HW layers: {inside}"
    assert all(op in _AT_ENDS for _, op in soft), soft
    assert [op for i, op in soft if i < hw_idx[0]] in ([], ["Transpose"])
    assert not any(n.op_type.startswith("Shuffle") for n in nodes)
    mvaus = [n for n in nodes if n.op_type.startswith("MVAU")]
    fc = [n for n in mvaus if len(hw.get_tensor_shape(n.output[0])) == 2][0]
    assert getCustomOp(fc).get_nodeattr("MW") == int(np.prod(feature_map))
    kinds = {type(layer).__name__ for layer in load_layers(res.step_models["step_specialize_layers"])}
    assert "MVAU" in kinds


def _verify(model, onnx_path, res, shape, seed: int) -> None:
    from hapfpga.verify import verify_chain

    x = np.random.default_rng(seed).random((24, *shape)).astype(np.float32)
    rep = verify_chain(model, onnx_path, res, x)
    assert rep.passed, rep.as_dict()
    hw = {s.name: s for s in rep.stages}["finn_hw"]
    assert hw.exact and hw.max_abs_diff == 0.0, hw


def run_case(spec: FlattenSpec, shape, root: Path, *, seed: int, bits=(2, 2), prune: bool,
             scaled: bool = False) -> None:
    """Build, (prune,) convert and verify one model; ``scaled``: also compare the search's predicted FINN shapes."""
    unpruned = model = _build(spec, shape, root, bits, seed)
    x = torch.rand((3, *shape), generator=torch.Generator().manual_seed(seed))
    if prune:
        model, keep, graph = _prune_and_check_fc(model, x, np.random.default_rng(seed))
    fmap = _feature_map(model, x)
    assert int(np.prod(fmap[1:])) > 1 or spec.map_size(shape) == (1,) * spec.dim
    onnx_path, res = _convert(model, shape, root)
    _check_absorbed(res, fmap)
    _verify(model, onnx_path, res, shape, seed)
    if prune and scaled:
        _check_scaled(unpruned, shape, graph, keep, res, root)


def _random_case(seed: int):
    rng = np.random.default_rng(1000 + seed)
    spec = flatten_models.random_spec(rng)
    shape = flatten_models.random_input_shape(rng, spec)
    bits = (int(rng.choice([2, 4])), int(rng.choice([2, 4])))
    return spec, shape, bits, bool(rng.random() < 0.5)


@pytest.mark.parametrize("seed", range(2))
def test_random_flatten_models_convert_and_verify_exactly(seed, tmp_path):
    spec, shape, bits, prune = _random_case(seed)
    run_case(spec, shape, tmp_path, seed=seed, bits=bits, prune=prune)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 42))
def test_random_flatten_models_convert_and_verify_exactly_slow(seed, tmp_path):
    spec, shape, bits, prune = _random_case(seed)
    run_case(spec, shape, tmp_path, seed=seed, bits=bits, prune=prune)


#: the issue's case: a 1D CNN with Brevitas' input quantiser, ``x.flatten(1)`` over an 8-long map into the FC
#: (was refused: the input quantiser's thresholds stayed in front of the NCHW→NHWC transpose, a Shuffle)
ISSUE_1D = FlattenSpec(dim=1, spelling="flatten1", channels=(4, 6), hidden=8, input_quant=True)


def test_issue_1d_flatten_after_input_quantiser_pruned(tmp_path):
    run_case(ISSUE_1D, (2, 8), tmp_path, seed=0, prune=True, scaled=True)


#: every spelling once in the default suite, 1D and 2D alternating; all ten pairs in ``slow``
_SPELLING_DIMS = [(sp, 1 + i % 2) for i, sp in enumerate(flatten_models.SPELLINGS)]
_SPELLING_DIMS_REST = [(sp, d) for sp in flatten_models.SPELLINGS for d in (1, 2) if (sp, d) not in _SPELLING_DIMS]


def _spelling_case(spelling: str, dim: int, root: Path) -> None:
    """With the input quantiser, no pool: the whole conv map (longer than 1) is flattened; half of them pruned."""
    spec = FlattenSpec(dim=dim, spelling=spelling, channels=(3,), input_quant=True, quant_tensor=dim == 2)
    shape = (2, 6) if dim == 1 else (1, 5, 4)
    run_case(spec, shape, root, seed=dim, prune=spelling in ("view", "nn_flatten", "torch_flatten"))


@pytest.mark.parametrize(("spelling", "dim"), _SPELLING_DIMS)
def test_every_spelling(spelling, dim, tmp_path):
    _spelling_case(spelling, dim, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("spelling", "dim"), _SPELLING_DIMS_REST)
def test_every_spelling_other_dimension(spelling, dim, tmp_path):
    _spelling_case(spelling, dim, tmp_path)

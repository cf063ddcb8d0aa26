"""Property: any legal keep-count plan on any model prunes without an internal error.

For every zoo model (the registry is iterated, so a model added to ``hapfpga.zoo.MODELS`` is covered without
editing this file), every graph kind of ``graph_models.py`` (depthwise-separable, residual with a 1×1 or an
identity shortcut, 1D, MLP) and users' files nobody here wrote (Brevitas' MobileNet-v1, per-channel activation
scales), random plans drawn from a seeded generator — random kept *indices* per prunable
group, counts anywhere from 1 to all — must:

1. prune to exactly the planned channel counts and run forward to finite outputs of the unpruned shape, and
   survive a ``load_state_dict`` round trip (a fine-tune restoring its best weights) with equal outputs;
2. export to QONNX with the pruned weight shapes;
3. convert to a FINN HW graph whose MVAU/VVAU shapes are the ones :func:`hapfpga.pruning.plan.scale_layers`
   predicts from the unpruned model's conversion (what the hardware-aware search relies on).

The default suite runs several plans per model forward and one through export and FINN (3. for the graph kinds
and the issue's CNV plan); ``slow`` runs 60 plans per model and 3. on four of them. The plan of issue 13 that crashed CNV (``running_mean should contain 256
elements not 192``) is a fixed case.
"""

from __future__ import annotations

import copy
import importlib.util
import zlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
np = pytest.importorskip("numpy")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.apply import ChannelGraph, hw_layer_shapes, layer_channels  # noqa: E402

_spec = importlib.util.spec_from_file_location("graph_models", Path(__file__).with_name("graph_models.py"))
graph_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(graph_models)

#: input shapes tried in turn for a zoo model (small first); the first its factory accepts is used
CANDIDATE_SHAPES = ((1, 8, 8), (3, 16, 16), (3, 32, 32), (1, 32, 32), (2, 64), (1, 49, 10), (64,))
SHAPE_FIELDS = ("mw", "mh", "n_vectors", "channels", "ifm_ch", "ifm_dim", "ofm_dim", "kernel", "labels",
                "lhs_shape", "rhs_shape", "out_shape", "inp_shape")
ISSUE_13_PLAN = {"features.conv0": 64, "features.conv1": 16, "features.conv2": 64, "features.conv3": 128,
                 "features.conv4": 256, "features.conv5": 192, "classifier.fc0": 32, "classifier.fc1": 144}


#: users' model files nobody here wrote (tests/conformance/userfiles): name -> (factory options, input shape)
USER_FILES = {"mobilenet_v1_model": ({"width": 0.125, "stages": 3}, (3, 16, 16))}


def _user_model(name: str):
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[1] / "conformance" / "userfiles" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    opts, shape = USER_FILES[name]
    torch.manual_seed(0)
    return mod.make(shape, 10, **opts).eval(), shape


def _zoo_names() -> list[str]:
    from hapfpga.zoo import MODELS

    return sorted(MODELS)


def _zoo_model(name: str):
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    errors = []
    for shape in CANDIDATE_SHAPES:
        try:
            return build_model(ModelConfig(name=name), shape, 10, seed=0).eval(), shape
        except ConfigError as e:
            errors.append(f"{shape}: {e}")
    raise AssertionError(f"zoo model {name!r} accepts none of {CANDIDATE_SHAPES}; add its shape: {errors}")


_CACHE: dict[str, tuple] = {}


def _case(case: str):
    """(model, input_shape, channel graph) of ``zoo:NAME`` or ``graph:CLASS``, built once per session."""
    if case not in _CACHE:
        kind, name = case.split(":")
        if kind == "zoo":
            model, shape = _zoo_model(name)
        elif kind == "user":
            model, shape = _user_model(name)
        else:
            model = graph_models.build(name)
            shape = graph_models.GRAPH_MODELS[name].input_shape
        torch.manual_seed(0)
        x = torch.rand(3, *shape)
        model.train()  # a trained model's quantisers: runtime statistics collected (Brevitas' 30 steps), as the
        with torch.no_grad():  # searches prune them; an untrained one has no scale parameters to restore
            for _ in range(32):
                model(torch.rand(8, *shape))
        _CACHE[case] = (model.eval(), shape, ChannelGraph(model, x))
    return _CACHE[case]


CASES = ([f"zoo:{n}" for n in _zoo_names()] + [f"graph:{n}" for n in graph_models.GRAPH_MODELS]
         + [f"user:{n}" for n in USER_FILES])


def random_keep(graph: ChannelGraph, rng) -> dict[str, list[int]]:
    """Random kept indices per prunable group: all of them a quarter of the time, else 1..all at random."""
    keep = {}
    for name, grp in graph.groups.items():
        if not grp.prunable or rng.random() < 0.25:
            continue
        n = int(rng.integers(1, grp.channels + 1))
        keep[name] = sorted(int(i) for i in rng.choice(grp.channels, size=n, replace=False))
    return keep


def _check_pruned(graph: ChannelGraph, keep: dict[str, list[int]]):
    pruned = graph.prune(keep)  # check=True: a forward pass, output shape as unpruned, finite outputs
    ch = layer_channels(pruned)
    for name, grp in graph.groups.items():
        want = len(keep.get(name, range(grp.channels)))
        for p in grp.producers:
            assert ch[p] == want, (name, p, ch[p], want)
    # a fine-tune restores its best weights with load_state_dict, where Brevitas re-creates every quantiser from
    # its injector: the pruned shapes must be there too (per-channel activation scales of Brevitas' MobileNet)
    twin = copy.deepcopy(pruned)
    twin.load_state_dict(pruned.state_dict())
    x = graph.example_input
    with torch.no_grad():
        a, b = twin.eval()(x), pruned.eval()(x)
        assert torch.equal(getattr(a, "value", a), getattr(b, "value", b))
    return pruned


def _export(model, shape, path: Path) -> Path:
    from hapfpga.export import export_qonnx

    export_qonnx(model, shape, path)
    return path


def _exported_weight_shapes(path: Path) -> list[tuple[int, ...]]:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i).shape for i in m.graph.initializer}
    made_by = {o: n for n in m.graph.node for o in n.output}

    def weight(name: str):  # an initializer, possibly behind a QONNX Quant node
        while name not in init and name in made_by:
            name = made_by[name].input[0]
        return init.get(name)

    return sorted(w for n in m.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")
                  for w in [weight(n.input[1])] if w is not None)


def _hw(path: Path, root: Path):
    from hapfpga.boards import load_board
    from hapfpga.finn.graph import hw_layers_from_qonnx

    return hw_layers_from_qonnx(path, root / "finn", load_board("pynq-z2"), 100)[0]


_UNPRUNED: dict[str, tuple[Path, list]] = {}


def _unpruned(case: str, root: Path) -> tuple[Path, list]:
    """The unpruned model's QONNX export and FINN layers (once per case and session)."""
    if case not in _UNPRUNED:
        model, shape, _ = _case(case)
        path = _export(model, shape, root / f"{case.replace(':', '_')}_unpruned.onnx")
        _UNPRUNED[case] = (path, _hw(path, root))
    return _UNPRUNED[case]


def _check_finn(case: str, keep: dict[str, list[int]], pruned, pruned_onnx: Path, root: Path, *,
                scaled: bool) -> None:
    """FINN converts the pruned model: its MVAU/VVAU outputs are the pruned layers'; with ``scaled`` every
    shape FINN reports equals what ``scale_layers`` predicts from the unpruned conversion."""
    from hapfpga.pruning.plan import scale_layers

    model, _, graph = _case(case)
    order = graph.layers_in_order()
    real = _hw(pruned_onnx, root)
    outs = sorted(int(getattr(r, "mh", getattr(r, "channels", 0))) for r in real if r.kind in ("MVAU", "VVAU"))
    assert outs == sorted(s.out for s in hw_layer_shapes(pruned, order))
    if not scaled:
        return
    l2g = {p: g.name for g in graph.groups.values() for p in g.producers}
    shapes = hw_layer_shapes(model, order)
    before = [s.out for s in shapes]
    after = [len(keep[l2g[n]]) if l2g.get(n) in keep else b for n, b in zip(order, before, strict=True)]
    pred = scale_layers(_unpruned(case, root)[1], before, after, shapes)
    assert [(s.name, s.kind) for s in pred] == [(r.name, r.kind) for r in real]
    for s, r in zip(pred, real, strict=True):
        for f in SHAPE_FIELDS:
            if hasattr(r, f):
                assert tuple(np.atleast_1d(getattr(s, f))) == tuple(np.atleast_1d(getattr(r, f))), (r.name, f)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("prune_property")


def _plans(case: str, seeds: range) -> list[dict[str, list[int]]]:
    graph = _case(case)[2]
    return [random_keep(graph, np.random.default_rng([seed, zlib.crc32(case.encode())])) for seed in seeds]


@pytest.mark.parametrize("case", CASES)
def test_random_plans_prune_and_run(case):
    graph = _case(case)[2]
    assert any(g.prunable for g in graph.groups.values()), f"{case} has no prunable group"
    plans = _plans(case, range(6))
    assert sum(bool(p) for p in plans) >= 3  # the generator really prunes
    for keep in plans:
        _check_pruned(graph, keep)


@pytest.mark.parametrize("case", CASES)
def test_random_plan_exports_and_converts_to_finn(case, root):
    """One plan per model through export and FINN; the scaled-spec comparison for the graph kinds here (the zoo
    models' comparison runs in ``slow``, the CNV one in ``test_issue_13_cnv_plan``)."""
    model, shape, graph = _case(case)
    keep = next(p for p in _plans(case, range(100, 120)) if p)
    pruned = _check_pruned(graph, keep)
    path = _export(pruned, shape, root / f"{case.replace(':', '_')}_pruned.onnx")
    shapes = _exported_weight_shapes(path)
    if case.startswith("graph:"):
        assert shapes != _exported_weight_shapes(_unpruned(case, root)[0])
    assert shapes == sorted(_exported_weight_shapes_of(pruned))
    _check_finn(case, keep, pruned, path, root, scaled=case.startswith("graph:"))


def _exported_weight_shapes_of(model) -> list[tuple[int, ...]]:
    """Weight shapes the export must carry (the QONNX ``Quant`` node holds them as the module does)."""
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)
    return [tuple(m.weight.shape) for m in model.modules() if isinstance(m, kinds)]


def test_issue_13_cnv_plan(root):
    """The plan that crashed (seed-0 CNV, 3×32×32, 10 classes): prunes, runs, exports and converts to FINN
    with the shapes the search predicts."""
    from hapfpga.pruning.apply import prune_to_counts
    from hapfpga.pruning.importance import L1Importance

    model, shape, graph = _case("zoo:cnv")
    assert shape == (3, 32, 32) and graph.groups["classifier.fc2"].channels == 10
    pruned, keep = prune_to_counts(model, graph.example_input, ISSUE_13_PLAN, L1Importance(), graph=graph)
    ch = layer_channels(pruned)
    assert {k: ch[k] for k in ISSUE_13_PLAN} == ISSUE_13_PLAN
    assert pruned.features.bn4.num_features == 256 and pruned.features.bn5.num_features == 192
    path = _export(pruned, shape, root / "issue13.onnx")
    _check_finn("zoo:cnv", keep, pruned, path, root, scaled=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_many_random_plans(case, root):
    _, shape, graph = _case(case)
    plans = _plans(case, range(1000, 1060))
    for keep in plans:
        _check_pruned(graph, keep)
    for i, keep in enumerate([p for p in plans if p][:4]):
        pruned = graph.prune(keep)
        path = _export(pruned, shape, root / f"{case.replace(':', '_')}_slow{i}.onnx")
        _check_finn(case, keep, pruned, path, root, scaled=True)

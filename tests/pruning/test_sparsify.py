"""Sparse training before structured pruning (``pruning.sparsify_epochs``, hapfpga.pruning.sparsify): a group lasso
on each prunable channel's scale, then the search prunes from the sparse-trained model.

The penalty is checked on random zoo models (chains, residual and depthwise graphs) against the channels
Torch-Pruning's dependency graph removes together; the stage on the conftest's digits CNN with real training."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.data import split_validation  # noqa: E402
from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.apply import ChannelGraph, layer_channels  # noqa: E402
from hapfpga.pruning.config import parse_pruning_config  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.results import UniformPick  # noqa: E402
from hapfpga.pruning.sparsify import group_lasso  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage, sparse_train  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.train import FinetuneConfig, evaluate, finetune  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402

from .conftest import make_digits_net, pipeline_hw  # noqa: E402

SHAPE = (3, 16, 16)
BN = torch.nn.modules.batchnorm._BatchNorm


def random_model(seed: int):
    rng = random.Random(seed)
    kind = ("resnet8", "mobilenet_v1", "ds_cnn", "cnv", "digits_cnn")[seed % 5]
    opts = {
        "resnet8": lambda: {"width": rng.choice([0.25, 0.5]), **({"mid": [rng.choice([2, 4, 6]) for _ in range(3)]}
                                                                 if rng.random() < 0.5 else {})},
        "mobilenet_v1": lambda: {"blocks": rng.randint(1, 3), "width": rng.choice([0.125, 0.25])},
        "ds_cnn": lambda: {"channels": [rng.choice([4, 8, 12]) for _ in range(rng.randint(2, 4))], "pool": "max"},
        "cnv": lambda: {"channels": [rng.choice([4, 8]) for _ in range(6)], "fc": [16, 16]},
        "digits_cnn": lambda: {"channels": [rng.choice([4, 8, 12]) for _ in range(rng.randint(1, 3))]},
    }[kind]()
    shape = (3, 32, 32) if kind == "cnv" else SHAPE  # CNV's unpadded 3×3 convs need 32×32
    model = build_model(ModelConfig(name=kind, weight_bits=4, act_bits=4, options=opts), shape, 10, seed=seed)
    with torch.no_grad():  # scales of every size, some exactly zero
        for m in model.modules():
            if isinstance(m, BN) and m.weight is not None:
                w = torch.empty_like(m.weight).uniform_(-2, 2, generator=torch.Generator().manual_seed(seed))
                w[torch.rand(w.shape, generator=torch.Generator().manual_seed(seed + 1)) < 0.2] = 0.0
                m.weight.copy_(w)
    return model.eval(), rng, shape


@pytest.mark.parametrize("seed", range(15))
def test_the_penalty_is_a_group_lasso_over_the_channels_pruned_together(seed):
    """For every prunable group: the BatchNorms Torch-Pruning's dependency graph prunes with the group's channel
    are exactly the scales the penalty reads, and the penalty is strength · Σ_c sqrt(Σ_BN γ_c²) (filter norms
    for a producer without a BatchNorm); its gradient reaches those scales and nothing else."""
    model, rng, shape = random_model(seed)
    graph = ChannelGraph(model, torch.zeros((2, *shape)))
    groups = [g for g, grp in graph.groups.items() if grp.prunable]
    assert groups
    strength = rng.choice([1e-3, 0.01, 0.5])
    pen = group_lasso(model, graph, groups, strength)
    mods = dict(model.named_modules())
    expect, want_grad = 0.0, set()
    for g, scales in zip(groups, pen.groups, strict=True):
        grp = graph.groups[g]
        bns = sorted({n for n, _, _ in graph._group_actions(g, [0]) if isinstance(mods[n], BN)})
        got = sorted(s.name for s in scales if not s.filters)
        without = [p for p in grp.producers if p not in {s.name for s in scales if s.filters}]
        assert len(got) == len(without) and set(got) <= set(bns), (g, got, bns)
        sq = np.zeros(grp.channels)
        for s in scales:
            w = mods[s.name].weight.detach().double().numpy()
            sq += (w.reshape(w.shape[0], -1) ** 2).sum(1) if s.filters else w ** 2
            want_grad.add(f"{s.name}.weight")
        expect += np.sqrt(sq + 1e-12).sum()
    value = pen()
    assert float(value.detach()) == pytest.approx(strength * expect, rel=1e-5)
    model.zero_grad(set_to_none=True)
    value.backward()
    touched = {n for n, p in model.named_parameters() if p.grad is not None and float(p.grad.abs().sum()) > 0}
    assert touched <= want_grad
    # every BN scale that is not exactly zero gets pulled towards zero
    for name in want_grad:
        p = dict(model.named_parameters())[name]
        nz = p.detach() != 0
        assert bool((p.grad[nz] * p.detach()[nz] > 0).all()), name


def test_a_model_without_batchnorm_gets_a_lasso_on_its_filter_norms():
    import brevitas.nn as qnn

    model = torch.nn.Sequential(qnn.QuantConv2d(1, 6, 3, weight_bit_width=4), qnn.QuantReLU(bit_width=4),
                                qnn.QuantConv2d(6, 5, 3, weight_bit_width=4), torch.nn.Flatten(),
                                qnn.QuantLinear(5 * 4 * 4, 10, bias=True, weight_bit_width=4)).eval()
    graph = ChannelGraph(model, torch.zeros((2, 1, 8, 8)))
    groups = [g for g, grp in graph.groups.items() if grp.prunable]
    assert groups == ["0", "2"]
    pen = group_lasso(model, graph, groups, 0.1)
    norms = sum(model[i].weight.detach().flatten(1).norm(dim=1).sum() for i in (0, 2))
    assert float(pen().detach()) == pytest.approx(0.1 * float(norms), rel=1e-5)
    assert all(s.filters for g in pen.groups for s in g)


def test_sparse_training_drives_channel_scales_down(trained, digits):
    """The same fine-tune with and without the penalty: with it the mean channel scale falls, without it it
    rises."""
    graph_of = lambda m: ChannelGraph(m, torch.as_tensor(digits.x_train[:2]))  # noqa: E731
    means = {}
    for strength in (0.0, 0.05):
        m = make_digits_net()
        m.load_state_dict(trained.state_dict())
        pen = group_lasso(m, graph_of(m), ["c1", "c2"], max(strength, 1e-9))
        before = float(torch.cat(pen.norms()).mean())
        finetune(m, digits.x_train, digits.y_train, FinetuneConfig(epochs=1, lr=2e-3), seed=0,
                 penalty=pen if strength else None)
        means[strength] = (before, float(torch.cat(pen.norms()).mean()))
    assert means[0.0][0] == means[0.05][0]
    # Adam moves a scale by about lr a step whatever the penalty's size: 11 steps of 2e-3 here
    assert means[0.05][1] < means[0.05][0] - 0.02 and means[0.0][1] > means[0.0][0]


def _cfg(**kw):
    return {"method": "uniform", "target": "ratio", "ratio": 0.5, "importance": "bn_scale", "sensitivity": False,
            "lr": 2e-3, "sparsify_epochs": 0.5, "sparsify_strength": 0.05, **kw}


def test_the_stage_prunes_the_sparse_trained_model_and_judges_against_the_unpruned_one(trained, digits, tmp_path):
    """``finetune_epochs: 0``: the delivered model is the sparse-trained model (recomputed here with the same
    seed, split and penalty) with the channels of largest |γ| kept; the report's accuracies "before" are the
    unpruned model's, its extra epochs the sparse training's."""
    m, r = run_pruning_stage(_cfg(finetune_epochs=0.0), trained, digits, HwTarget(predictor=pipeline_hw), tmp_path,
                             seed=3)
    x_fit, y_fit, x_val, y_val = split_validation(digits.x_train, digits.y_train, 0.2, 3)
    s = copy.deepcopy(trained).eval()  # Brevitas' runtime state too, as the stage's copy
    pen = group_lasso(s, ChannelGraph(s, torch.as_tensor(x_fit[:2])), ["c1", "c2"], 0.05)
    finetune(s, x_fit, y_fit, FinetuneConfig(epochs=0.5, lr=2e-3, schedule="cosine"), seed=3, penalty=pen)
    s.eval()
    assert layer_channels(m)["c1"] == 8 and layer_channels(m)["c2"] == 8
    for bn in ("b1", "b2"):
        keep = torch.sort(torch.topk(getattr(s, bn).weight.detach().abs(), 8).indices).values
        assert torch.equal(getattr(m, bn).weight.detach(), getattr(s, bn).weight.detach()[keep]), bn
    assert r["accuracy"]["before"] == pytest.approx(evaluate(trained, digits.x_test, digits.y_test))
    assert r["accuracy_val"]["before"] == pytest.approx(evaluate(trained, x_val, y_val))
    sp = r["sparsify"]
    assert sp["epochs"] == 0.5 and sp["accuracy_val"] == pytest.approx(evaluate(s, x_val, y_val))
    assert sp["mean_scale_after"] < sp["mean_scale_before"]
    assert r["extra_epochs"] == pytest.approx(0.5)
    log = (tmp_path / "pruning" / "search.log").read_text()
    assert "sparse training: 0.5 epochs" in log


def test_the_rule_search_counts_the_sparse_training_in_its_epochs(trained, digits, tmp_path):
    _, r = run_pruning_stage(_cfg(target="max_fps", max_accuracy_drop=0.05, finetune_epochs=0.3, min_ratio=0.25),
                             trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    assert r["extra_epochs"] == pytest.approx(0.8)
    assert r["accuracy_val"]["before"] - r["accuracy_val"]["after"] <= 0.05 + 1e-12


@pytest.mark.parametrize("kw, words", [
    ({"importance": "l1"}, "needs pruning.importance: bn_scale"),
    ({"sparsify_epochs": -1}, "give epochs ≥ 0"),
    ({"sparsify_strength": 0}, "give a positive number"),
    ({"method": "unstructured", "target": "budget"}, "method 'unstructured' has pruning.l1_sparsity"),
])
def test_config_errors_are_one_sentence(kw, words):
    with pytest.raises(ConfigError, match=words):
        parse_pruning_config(_cfg(**kw))


def test_an_unknown_excluded_group_stops_before_the_sparse_training(trained, digits, tmp_path, monkeypatch):
    import hapfpga.pruning.stage as stage

    def no_training(*a, **k):
        raise AssertionError("trained before the config error")

    monkeypatch.setattr(stage._Run, "finetune", no_training)
    with pytest.raises(ConfigError, match="pruning.exclude names 'nope'"):
        run_pruning_stage(_cfg(exclude=["nope"]), trained, digits, HwTarget(predictor=pipeline_hw), tmp_path)


def _state(m) -> dict:
    return {k: v.clone() for k, v in m.state_dict().items()}


HANDED = [  # (the section that made the sparse model, the stage's section): the same sparse-training settings
    (_cfg(finetune_epochs=0.2), _cfg(finetune_epochs=0.2)),
    (_cfg(), _cfg(target="max_fps", max_accuracy_drop=0.05, finetune_epochs=0.3, min_ratio=0.25)),
    (_cfg(target="max_fps", max_accuracy_drop=0.05), _cfg(method="greedy", target="max_fps", start="uniform",
                                                          max_accuracy_drop=0.02, finetune_epochs=0.3,
                                                          step_finetune_epochs=0.1, candidate_steps=3, max_steps=3,
                                                          step_accuracy_drop=0.5, min_ratio=0.25)),
]


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("made, used", HANDED)
def test_a_handed_sparse_model_gives_the_run_that_trains_its_own(trained, digits, tmp_path, made, used, seed):
    """``sparse_train`` under one section, handed to a stage with another that trains the same way (a benchmark's
    uniform, hardware-aware and mixed arms): the same report (steps, design, accuracies, epochs, the ``sparsify``
    entry) as the stage that trains it itself, the log says it was not trained again, and the handed model is
    not changed by the stage."""
    hw = HwTarget(predictor=pipeline_hw)
    sm = sparse_train(made, trained, digits, tmp_path / "sparse", seed=seed)
    before = _state(sm.model)
    assert sm.settings["epochs"] == 0.5 and sm.settings["seed"] == seed and sm.settings["groups"] == ["c1", "c2"]
    m_own, own = run_pruning_stage(used, trained, digits, hw, tmp_path / "own", seed=seed)
    lines: list[str] = []
    m_given, given = run_pruning_stage(used, trained, digits, hw, tmp_path / "given", seed=seed, sparse=sm,
                                       log=lines.append)
    assert given["sparsify"] == own["sparsify"] == dict(sm.info)
    for k in ("history", "channels_after", "accuracy", "accuracy_val", "extra_epochs", "fps_after"):
        assert given[k] == own[k], k
    assert layer_channels(m_given) == layer_channels(m_own)
    own_state = _state(m_own)
    assert all(torch.equal(v, own_state[k]) for k, v in _state(m_given).items())
    assert any("not trained again" in line for line in lines)
    assert not any("sparse training: 0.5 epochs" in line for line in lines)
    assert all(torch.equal(before[k], v) for k, v in sm.model.state_dict().items())


def test_a_handed_sparse_model_and_uniform_pick_together(trained, digits, tmp_path):
    """The benchmark's hand-over: the uniform arm made with the sparse model, its pick and the sparse model handed
    to a greedy ``start: uniform`` search, which then trains neither again and ends as the one that does both."""
    hw = HwTarget(predictor=pipeline_hw)
    urule = _cfg(target="max_fps", max_accuracy_drop=0.05, finetune_epochs=0.3, min_ratio=0.25)
    greedy = _cfg(method="greedy", target="max_fps", start="uniform", max_accuracy_drop=0.05, finetune_epochs=0.3,
                  step_finetune_epochs=0.1, candidate_steps=3, max_steps=3, step_accuracy_drop=0.5, min_ratio=0.25)
    sm = sparse_train(urule, trained, digits, tmp_path / "sparse", seed=0)
    mu, u = run_pruning_stage(urule, trained, digits, hw, tmp_path / "urule", seed=0, sparse=sm)
    pick = UniformPick(u["channels_after"], mu, u["accuracy_val"]["after"], u["ratio"])
    _, own = run_pruning_stage(greedy, trained, digits, hw, tmp_path / "own", seed=0)
    _, given = run_pruning_stage(greedy, trained, digits, hw, tmp_path / "given", seed=0, sparse=sm,
                                 uniform_pick=pick)
    for k in ("history", "channels_after", "accuracy", "accuracy_val", "extra_epochs", "sparsify", "backtrack"):
        assert given[k] == own[k], k
    log = (tmp_path / "given" / "pruning" / "search.log").read_text()
    assert "not trained again" in log and "uniform search's pick" in log


@pytest.mark.parametrize("kw, seed, named", [
    ({"sparsify_strength": 0.02}, 0, "strength"),
    ({"sparsify_epochs": 0.25}, 0, "epochs"),
    ({"lr": 1e-3}, 0, "lr"),
    ({"exclude": ["c2"]}, 0, "groups"),
    ({}, 1, "seed"),
])
def test_a_sparse_model_made_otherwise_is_refused(trained, digits, tmp_path, kw, seed, named):
    sm = sparse_train(_cfg(), trained, digits, tmp_path / "sparse", seed=0)
    with pytest.raises(ValueError, match=f"other .*'{named}'"):
        run_pruning_stage(_cfg(**kw), trained, digits, HwTarget(predictor=pipeline_hw), tmp_path / "s", seed=seed,
                          sparse=sm)


def test_sparse_training_alone_needs_its_epochs_and_a_structured_method(trained, digits, tmp_path):
    with pytest.raises(ValueError, match="sparsify_epochs > 0"):
        sparse_train(_cfg(sparsify_epochs=0.0), trained, digits, tmp_path)
    sm = sparse_train(_cfg(), trained, digits, tmp_path / "sparse", seed=0)
    with pytest.raises(ValueError, match="sparsify_epochs > 0 only"):
        run_pruning_stage(_cfg(sparsify_epochs=0.0), trained, digits, HwTarget(predictor=pipeline_hw), tmp_path,
                          sparse=sm)

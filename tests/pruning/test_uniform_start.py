"""``pruning.start: uniform``: the greedy search starts at the uniform search's pick under the same rule (the
fastest keep ratio whose candidate, pruned once and fine-tuned, meets it) and goes on from that fine-tuned model;
the backtracking keeps the pick when no faster step meets the rule, so the hardware-aware search is never slower
than uniform pruning held to its rule (issue 24).

Real training and pruning on sklearn digits with the conftest's small Brevitas CNN; the hardware predictor is
the analytic pipeline of conftest.py."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.apply import layer_channels  # noqa: E402
from hapfpga.pruning.config import parse_pruning_config  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.results import UniformPick  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402

from .conftest import pipeline_hw  # noqa: E402

COMMON = {"target": "max_fps", "finetune_epochs": 0.3, "sensitivity": False, "min_ratio": 0.125, "lr": 2e-3}


def _greedy(**kw):
    return {"method": "greedy", "start": "uniform", "candidate_steps": 4, "max_steps": 4,
            "step_finetune_epochs": 0.1, "step_accuracy_drop": 0.5, **COMMON, **kw}


@pytest.mark.parametrize("max_drop", [0.001, 0.02, 0.3])
def test_the_search_starts_at_the_uniform_pick_and_is_never_slower(trained, digits, tmp_path, max_drop):
    hw = HwTarget(predictor=pipeline_hw)
    _, u = run_pruning_stage({"method": "uniform", "max_accuracy_drop": max_drop, **COMMON}, trained, digits, hw,
                             tmp_path / "uniform", seed=0)
    m, r = run_pruning_stage(_greedy(max_accuracy_drop=max_drop), trained, digits, hw, tmp_path / "greedy", seed=0)
    start = r["history"][0]
    assert start["counts"] == u["channels_after"] and start["fps"] == u["fps_after"]
    assert all(h["fps"] >= start["fps"] for h in r["history"])
    assert r["fps_after"] >= u["fps_after"]
    acc0 = r["accuracy_val"]["before"]
    assert acc0 - r["accuracy_val"]["after"] <= max_drop + 1e-12
    assert {g: layer_channels(m)[g] for g in r["channels_after"]} == r["channels_after"]
    tried = {b["step"]: b for b in r["backtrack"]}
    if r["fps_after"] == u["fps_after"]:  # nothing faster met the rule: the uniform pick as the uniform arm has it
        assert r["channels_after"] == u["channels_after"]
        assert r["accuracy_val"]["after"] == pytest.approx(u["accuracy_val"]["after"])
        assert r["accuracy"]["after"] == pytest.approx(u["accuracy"]["after"])
        assert r["extra_epochs"] == pytest.approx(0.3)
        assert all(acc0 - b["accuracy_val_final"] > max_drop for k, b in tried.items() if k > 0)
    else:
        chosen = next(b for b in tried.values() if b["fps"] == r["fps_after"])
        assert r["accuracy_val"]["after"] == chosen["accuracy_val_final"]
        assert r["extra_epochs"] >= 0.3


def test_the_start_is_the_searchs_own_when_no_uniform_ratio_meets_the_rule(trained, digits, tmp_path):
    """A rule no pruned candidate meets: the search starts from the trained model, as with ``start: full``."""
    hw = HwTarget(predictor=pipeline_hw)
    lines: list[str] = []
    _, r = run_pruning_stage(_greedy(max_accuracy_drop=1e-9, selection={"confidence": 0.99}), trained, digits, hw, tmp_path, seed=0, log=lines.append)
    assert r["history"][0]["counts"] == r["channels_before"]
    assert any("no keep ratio below 1 meets the rule" in line for line in lines)


@pytest.mark.parametrize("max_drop", [0.001, 0.02, 0.3])
def test_a_given_uniform_pick_is_the_start_the_search_would_find_itself(trained, digits, tmp_path, max_drop):
    """The pick of a separate ``method: uniform`` run handed to the stage (a benchmark's uniform arm, so its search
    is not run again): the same steps, design, accuracies and training budget as the search that runs the uniform
    search itself (each fine-tune is seeded, so the greedy steps after it see the same batches)."""
    hw = HwTarget(predictor=pipeline_hw)
    mu, u = run_pruning_stage({"method": "uniform", "max_accuracy_drop": max_drop, **COMMON}, trained, digits, hw,
                              tmp_path / "uniform", seed=0)
    pick = UniformPick(u["channels_after"], mu, u["accuracy_val"]["after"], u["ratio"])
    _, own = run_pruning_stage(_greedy(max_accuracy_drop=max_drop), trained, digits, hw, tmp_path / "own", seed=0)
    lines: list[str] = []
    _, given = run_pruning_stage(_greedy(max_accuracy_drop=max_drop), trained, digits, hw, tmp_path / "given", seed=0,
                                 log=lines.append, uniform_pick=pick)
    assert [(h["counts"], h["fps"]) for h in given["history"]] == [(h["counts"], h["fps"]) for h in own["history"]]
    for key in ("channels_after", "fps_after", "accuracy", "accuracy_val", "extra_epochs", "backtrack"):
        assert given[key] == own[key], key
    assert not any("uniform search:" in line for line in lines)  # not searched again
    if u["ratio"] < 1:
        assert any("the given uniform search's pick" in line for line in lines)


def test_a_uniform_pick_is_for_start_uniform_and_this_models_knobs(trained, digits, tmp_path):
    hw = HwTarget(predictor=pipeline_hw)
    pick = UniformPick({"no_such_group": 4}, trained, 0.9, 0.5)
    with pytest.raises(ValueError, match="start: uniform only"):
        run_pruning_stage({**_greedy(max_accuracy_drop=0.02), "start": "full"}, trained, digits, hw, tmp_path / "a",
                          seed=0, uniform_pick=pick)
    with pytest.raises(ValueError, match="no_such_group"):
        run_pruning_stage(_greedy(max_accuracy_drop=0.02), trained, digits, hw, tmp_path / "b", seed=0,
                          uniform_pick=pick)


@pytest.mark.parametrize("bad", [{"method": "uniform"}, {"target": "budget"}, {"backtrack": False},
                                 {"finetune_epochs": 0.0}, {"method": "nsga2"}])
def test_start_uniform_without_a_greedy_max_fps_search_is_one_sentence(bad):
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.01, "start": "uniform", **bad}
    with pytest.raises(ConfigError, match="pruning.start: uniform") as e:
        parse_pruning_config(cfg)
    assert str(e.value).count(". ") == 0 and str(e.value).endswith(".")

"""The pruning stage end to end on sklearn digits with a small Brevitas CNN (real training, real pruning).

The hardware predictor here is an analytic dataflow pipeline (FPS = clock / slowest layer's cycles at a fixed
PE·SIMD budget) so the test stays fast; the FINN-backed predictor is exercised in test_plan_finn.py.
"""

from __future__ import annotations

import copy
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.errors import ConfigError, InfeasibleError  # noqa: E402
from hapfpga.pruning.apply import layer_channels  # noqa: E402
from hapfpga.pruning.plan import iterative_counts  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.search import HwPoint  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.pruning.unstructured import magnitude_masks, sparsity_report  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune  # noqa: E402
from hapfpga.train import evaluate as evaluate_accuracy  # noqa: E402

from .conftest import make_digits_net, pipeline_hw  # noqa: E402


def test_baseline_learns(trained, digits):
    assert evaluate_accuracy(trained, digits.x_test, digits.y_test) > 0.85


def test_greedy_stage_prunes_for_speed_within_accuracy(trained, digits, tmp_path):
    cfg = {"method": "greedy", "target": "budget", "max_accuracy_drop": 0.03, "step_finetune_epochs": 0.1,
           "finetune_epochs": 0.3, "sensitivity_ratios": [0.5], "min_ratio": 0.25, "candidate_steps": 4,
           "max_steps": 4}
    m1, r1 = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path / "a", seed=0)
    ch = layer_channels(m1)
    assert ch["c1"] == r1["channels_after"]["c1"] and ch["c2"] == r1["channels_after"]["c2"]
    assert r1["channels_before"] == {"c1": 16, "c2": 16}
    assert r1["fps_after"] > r1["fps_before"]
    assert r1["params"]["after"] < r1["params"]["before"] and r1["compression"] > 1
    acc = evaluate_accuracy(m1, digits.x_test, digits.y_test)
    assert r1["accuracy"]["after"] == pytest.approx(acc)
    assert r1["accuracy_drop"] == pytest.approx(r1["accuracy"]["before"] - acc)
    assert r1["accuracy_drop"] < 0.08
    saved = json.loads((tmp_path / "a" / "pruning" / "pruning.json").read_text())
    assert saved["channels_after"] == r1["channels_after"]
    assert (tmp_path / "a" / "pruning" / "sensitivity.png").is_file()
    # deterministic for a seed
    _, r2 = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path / "b", seed=0)
    assert r2["channels_after"] == r1["channels_after"]
    assert r2["accuracy"]["after"] == r1["accuracy"]["after"]


def test_uniform_ratio_stage(trained, digits, tmp_path):
    cfg = {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 0.2, "sensitivity": False,
           "iterations": 2, "step_finetune_epochs": 0.1}
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(), tmp_path, seed=0)
    assert layer_channels(m) == {"c1": 8, "c2": 8, "fc": 10}
    assert r["fps_before"] is None  # no hardware predictor needed for a fixed ratio


def test_unstructured_stage_reports_no_finn_speedup(trained, digits, tmp_path):
    cfg = {"method": "unstructured", "sparsity": 0.6, "iterations": 2, "finetune_epochs": 0.3}
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(), tmp_path, seed=0)
    sp = r["sparsity"]
    assert sp["sparsity"] == pytest.approx(0.6, abs=0.02)
    assert sp["finn_cycles_change"] == 0 and "dense" in sp["note"]
    assert sp["compressed_weight_bits"] < sp["dense_weight_bits"]
    assert layer_channels(m) == layer_channels(trained)  # no structure removed
    assert float((m.c2.weight == 0).float().mean()) == pytest.approx(0.6, abs=0.02)


def test_magnitude_masks_zero_the_smallest(trained):
    masks = magnitude_masks(trained, 0.5)
    w = trained.c2.weight.detach().abs()
    kept, dropped = w[masks["c2"] > 0], w[masks["c2"] == 0]
    assert kept.min() >= dropped.max()
    rep = sparsity_report(trained)
    assert rep["weights"] == sum(m.weight.numel() for m in (trained.c1, trained.c2, trained.fc))


def test_iterative_counts_schedule():
    steps = iterative_counts({"a": 64}, {"a": 16}, 4)
    vals = [s["a"] for s in steps]
    assert vals[-1] == 16 and vals == sorted(vals, reverse=True)
    assert 64 - vals[0] > vals[-2] - vals[-1]  # cubic schedule removes most early


@pytest.mark.slow
def test_distillation_finetune_runs_and_learns(trained, digits):
    torch.manual_seed(1)
    student = make_digits_net()
    before = evaluate_accuracy(student, digits.x_test, digits.y_test)
    finetune(student, digits.x_train, digits.y_train, FinetuneConfig(epochs=1, lr=3e-3, distill=True, batch_size=32),
             teacher=trained, seed=0)
    after = evaluate_accuracy(student, digits.x_test, digits.y_test)
    assert after > max(0.6, before + 0.3)


def test_config_errors(trained, digits, tmp_path):
    with pytest.raises(ConfigError, match="pruning.metod"):
        run_pruning_stage({"metod": "greedy"}, trained, digits, HwTarget(), tmp_path)
    with pytest.raises(ConfigError, match="exclude"):
        run_pruning_stage({"method": "uniform", "target": "ratio", "exclude": ["zz"], "sensitivity": False},
                          trained, digits, HwTarget(), tmp_path)


def test_nsga2_stage_uses_sqlite_in_run_dir(trained, digits, tmp_path):
    cfg = {"method": "nsga2", "target": "budget", "max_accuracy_drop": 0.05, "finetune_epochs": 0.1,
           "sensitivity": False, "min_ratio": 0.25, "candidate_steps": 4,
           "nsga2": {"trials": 6, "population": 4}}
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    assert (tmp_path / "pruning" / "pruning_optuna.db").is_file()
    assert r["storage"].startswith("sqlite:///")
    assert r["pareto"] and all({"accuracy", "fps", "LUT"} <= set(p) for p in r["pareto"])
    assert len(r["history"]) == 6
    assert r["fps_after"] == pipeline_hw(r["channels_after"]).fps
    assert layer_channels(m)["c2"] == r["channels_after"]["c2"]


@pytest.mark.parametrize("select_best", [True, False])
def test_max_fps_backtracks_to_the_fastest_step_meeting_the_rule_after_its_final_finetune(trained, digits, tmp_path,
                                                                                          select_best):
    """A loose step tolerance lets the greedy walk far; the final fine-tunes then pick, among the steps they
    tried, the fastest whose validation drop meets max_accuracy_drop, and the model returned is that one (with
    best-on-validation fine-tunes and with plain ones)."""
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.02, "step_accuracy_drop": 0.5,
           "step_finetune_epochs": 0.1, "finetune_epochs": 0.5, "sensitivity": False, "min_ratio": 0.125,
           "candidate_steps": 4, "max_steps": 6, "lr": 2e-3, "select_best": select_best}
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    acc0 = r["accuracy_val"]["before"]
    tried = {b["step"]: b for b in r["backtrack"]}
    assert tried and len(r["history"]) > 2
    ok = [b for b in tried.values() if acc0 - b["accuracy_val_final"] <= 0.02 + 1e-12]
    chosen_fps = r["fps_after"]
    assert all(b["fps"] <= chosen_fps for b in ok)
    assert all(acc0 - b["accuracy_val_final"] > 0.02 for b in tried.values() if b["fps"] > chosen_fps)
    assert acc0 - r["accuracy_val"]["after"] <= 0.02 + 1e-12
    assert layer_channels(m)["c1"] == r["channels_after"]["c1"]
    if chosen_fps > r["fps_before"]:
        step = next(b for b in tried.values() if b["fps"] == chosen_fps)
        assert r["accuracy_val"]["after"] == step["accuracy_val_final"]
        assert r["extra_epochs"] == pytest.approx(step["step"] * 0.1 + 0.5)


@pytest.mark.parametrize("on_step_drop", ["reject", "rescue"])
def test_a_step_beyond_the_step_tolerance_is_undone_and_its_group_frozen(trained, digits, tmp_path, on_step_drop):
    """A tight step tolerance: steps that lose more are undone (the search goes on from the last accepted model)
    and their group is never pruned again; the report lists them and the chosen model is an accepted step."""
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.005, "step_accuracy_drop": 0.005,
           "step_finetune_epochs": 0.1, "finetune_epochs": 0.2, "sensitivity": False, "min_ratio": 0.125,
           "candidate_steps": 4, "max_steps": 8, "lr": 2e-3, "on_step_drop": on_step_drop}
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    acc0 = r["accuracy_val"]["before"]
    assert r["rejected"], "a 0.5-point step tolerance down to 2 channels must reject a step"
    for bad in r["rejected"]:
        assert acc0 - bad["accuracy"] > 0.005
    assert all(acc0 - s["accuracy"] <= 0.005 + 1e-12 for s in r["history"])
    first_bad = r["rejected"][0]
    g = first_bad["changed"]
    # after the rejection the group keeps its last accepted count: no accepted step changes it again
    kept = [s["counts"][g] for s in r["history"]]
    assert first_bad["counts"][g] < min(kept)
    assert r["channels_after"][g] > first_bad["counts"][g]
    assert layer_channels(m)[g] == r["channels_after"][g]
    assert len(r["history"]) - 1 + len(r["rejected"]) <= 8
    assert json.loads((tmp_path / "pruning" / "pruning.json").read_text())["rejected"] == r["rejected"]


def test_a_rescued_step_gets_the_longer_finetune_and_counts_it_in_the_budget(trained, digits, tmp_path):
    """``on_step_drop: rescue``: a step beyond the tolerance after its short fine-tune is fine-tuned
    ``finetune_epochs`` more before it is judged; the chosen model's extra epochs count every fine-tune of its own
    lineage (steps and rescues), so the uniform and reference arms of a benchmark get the same budget."""
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.02, "step_accuracy_drop": 0.02,
           "step_finetune_epochs": 0.05, "finetune_epochs": 0.5, "sensitivity": False, "min_ratio": 0.125,
           "candidate_steps": 4, "max_steps": 6, "lr": 2e-3, "backtrack": False, "on_step_drop": "rescue"}
    lines = []
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0, log=lines.append)
    rescued = [ln for ln in lines if "longer fine-tune" in ln]
    assert rescued, "a 0.05-epoch step fine-tune at a 2-point tolerance must need a longer one"
    assert len(rescued) > len(r["rejected"]), "some rescued step must be kept (a longer fine-tune recovers)"
    chosen = next(i for i, s in enumerate(r["history"]) if s["counts"] == r["channels_after"])
    assert chosen == len(r["history"]) - 1  # the fastest accepted step is within the rule here
    kept = len(rescued) - len(r["rejected"])  # every rejection here followed a rescue
    # every step counts 0.05 epochs, each kept rescue 0.5 more, the final fine-tune 0.5
    assert r["extra_epochs"] == pytest.approx(chosen * 0.05 + kept * 0.5 + 0.5)
    assert all(r["accuracy_val"]["before"] - s["accuracy"] <= 0.02 + 1e-12 for s in r["history"][1:])


def test_reprune_delivers_the_trained_model_pruned_once_to_the_chosen_design(trained, digits, tmp_path):
    """``final_weights: reprune``: the search only picks the design; the delivered model is, bit for bit, the
    unpruned model pruned once to the chosen counts (L1) and fine-tuned ``finetune_epochs`` with selection on the
    validation split, and its extra training is that fine-tune alone (the search's own weights carry their step
    fine-tunes as well)."""
    from hapfpga.data import split_validation
    from hapfpga.pruning.apply import prune_to_counts
    from hapfpga.pruning.importance import make_importance
    from hapfpga.train import finetune_best

    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.02, "step_accuracy_drop": 0.5,
           "step_finetune_epochs": 0.1, "finetune_epochs": 0.5, "sensitivity": False, "min_ratio": 0.125,
           "candidate_steps": 4, "max_steps": 5, "lr": 2e-3, "final_weights": "reprune"}
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path / "re", seed=0)
    assert r["channels_after"] != r["channels_before"], "the search must prune something here"
    assert r["extra_epochs"] == pytest.approx(0.5)
    x_fit, y_fit, x_val, y_val = split_validation(digits.x_train, digits.y_train, 0.2, 0)
    example = torch.as_tensor(x_fit[:2], dtype=torch.float32)
    want, _ = prune_to_counts(copy.deepcopy(trained).eval(), example, r["channels_after"], make_importance("l1"))
    want, sel = finetune_best(want, x_fit, y_fit, (x_val, y_val),
                              FinetuneConfig(epochs=0.5, lr=2e-3, schedule="cosine"), seed=0)
    got, ref = m.state_dict(), want.state_dict()
    assert got.keys() == ref.keys() and all(torch.equal(got[k], ref[k]) for k in ref)
    assert r["accuracy_val"]["after"] == sel.accuracy
    _, r2 = run_pruning_stage({**cfg, "final_weights": "search"}, trained, digits,
                              HwTarget(predictor=pipeline_hw), tmp_path / "se", seed=0)
    assert r2["extra_epochs"] > 0.5


def test_final_weights_reprune_needs_a_greedy_search(trained, digits, tmp_path):
    with pytest.raises(ConfigError, match="final_weights"):
        run_pruning_stage({"method": "uniform", "target": "ratio", "final_weights": "reprune"}, trained, digits,
                          HwTarget(), tmp_path)


def _budget_hw(limit_lut: float):
    """``pipeline_hw`` on a board of ``limit_lut`` LUTs (50 per channel of c1 and c2): no FPS where it does not fit."""

    def hw(counts):
        p = pipeline_hw(counts)
        fits = limit_lut >= p.resources.LUT
        return HwPoint(fps=p.fps if fits else 0.0, resources=p.resources, fits=fits)

    return hw


@pytest.mark.parametrize("limit", [1000.0, 700.0])  # the unpruned model needs 1,600 LUTs
def test_a_model_over_the_budget_starts_the_search_at_the_largest_uniform_ratio_that_fits(trained, digits,
                                                                                             tmp_path, limit):
    """``target: budget`` on a board the unpruned model does not fit: the search starts from the largest uniform
    keep ratio whose predicted design fits (not from a design with no FPS), so the delivered model fits."""
    cfg = {"method": "greedy", "target": "budget", "max_accuracy_drop": 0.5, "step_finetune_epochs": 0.1,
           "finetune_epochs": 0.2, "sensitivity": False, "min_ratio": 0.125, "candidate_steps": 4, "max_steps": 2}
    hw = _budget_hw(limit)
    lines: list[str] = []
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=hw), tmp_path, seed=0, log=lines.append)
    after = r["channels_after"]
    assert hw(after).fits and r["fps_after"] > 0 and r["fps_before"] == 0
    assert 50.0 * (after["c1"] + after["c2"]) <= limit
    assert layer_channels(m)["c1"] == after["c1"] and layer_channels(m)["c2"] == after["c2"]
    first = r["history"][0]
    assert first["fits"] and first["counts"]["c1"] < 16 and first["counts"]["c2"] < 16
    assert any("does not fit the board" in ln for ln in lines)


def test_a_model_no_pruning_can_fit_is_one_sentence_before_any_finetune(trained, digits, tmp_path):
    cfg = {"method": "greedy", "target": "budget", "sensitivity": False, "min_ratio": 0.25, "candidate_steps": 4}
    with pytest.raises(InfeasibleError, match=r"^Pruning cannot make the model fit this board: .*min_ratio 0\.25"):
        run_pruning_stage(cfg, trained, digits, HwTarget(predictor=_budget_hw(100.0)), tmp_path, seed=0)
    assert not (tmp_path / "pruning" / "pruning.json").exists()

"""``final_weights: reprune_or_search`` (issue 24): a backtracking candidate whose one-shot re-prune fails the rule
is tried again from the greedy step's own weights, fine-tuned the same epochs.

Real training and pruning on sklearn digits: the small chain CNN of conftest.py (fast) and a resnet8 (width 0.5,
w4a4, digits 3×16×16; slow), each searched three times on one seed with ``final_weights`` search, reprune and
reprune_or_search. The greedy trajectory is the same in the three runs (the final weights only change the
backtracking), and so is every fine-tune of one model from one start, so each candidate the new mode fine-tunes is
checked against the same step fine-tuned by the two plain modes: a re-pruned candidate is the reprune run's, bit
for bit in its validation accuracy (so where re-pruning passes nothing changes), a fallback is the search run's, and
it happens only where the re-pruned candidate failed the rule. The delivered model and its extra training are those
of the kept candidate."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.search import HwPoint  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.train import FinetuneConfig, finetune  # noqa: E402
from hapfpga.train import evaluate as evaluate_accuracy  # noqa: E402
from hapfpga.types import Resources  # noqa: E402

from .conftest import pipeline_hw  # noqa: E402

MODES = ("search", "reprune", "reprune_or_search")


def _square_hw(counts):
    """An analytic pipeline for any graph: cycles grow with the square of every group's channels."""
    cycles = sum(c * c for c in counts.values())
    return HwPoint(fps=1e8 / cycles, resources=Resources(LUT=10.0 * sum(counts.values())), fits=True)


def _resnet8():
    from hapfpga.data import load_digits
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    data = load_digits(size=16, channels=3)
    model = build_model(ModelConfig(name="resnet8", weight_bits=4, act_bits=4, options={"width": 0.5}),
                        data.input_shape, data.num_classes, seed=0)
    finetune(model, data.x_train, data.y_train, FinetuneConfig(epochs=4, lr=1e-2), seed=0)
    return model.eval(), data


def _three_runs(model, data, hw, tmp_path, **over):
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.01, "step_accuracy_drop": 0.6,
           "on_step_drop": "stop", "step_finetune_epochs": 0.2, "finetune_epochs": 0.4, "sensitivity": False,
           "min_ratio": 0.125, "candidate_steps": 4, "max_steps": 6, "lr": 2e-3, **over}
    return {mode: run_pruning_stage({**cfg, "final_weights": mode}, model, data, HwTarget(predictor=hw),
                                    tmp_path / mode, seed=0) for mode in MODES}


def _check(runs, data, rule=0.01):
    """The properties of the module docstring on the three runs; returns the new mode's rows that fell back."""
    from hapfpga.data import split_validation

    rows = {m: {b["step"]: b for b in r["backtrack"]} for m, (_, r) in runs.items()}
    delivered, new = runs["reprune_or_search"]
    assert [s["counts"] for s in new["history"]] == [s["counts"] for s in runs["reprune"][1]["history"]]
    start = new["history"][0]["accuracy"]
    fastest = max(rows["reprune"])  # the first candidate backtracking tries: the same in every run
    assert fastest in rows["search"] and fastest in rows["reprune_or_search"]
    for k, b in rows["reprune_or_search"].items():
        re, se = rows["reprune"].get(k), rows["search"].get(k)
        fell_back = "accuracy_val_other" in b
        reprune_acc = b["accuracy_val_other"] if b["weights"] == "search" else b["accuracy_val_final"]
        if re is not None:
            assert reprune_acc == re["accuracy_val_final"]  # the same re-pruned candidate, bit for bit
        if fell_back:  # only after a re-prune that fails the rule; the step's own weights, fine-tuned alike
            assert start - reprune_acc > rule
            search_acc = b["accuracy_val_final"] if b["weights"] == "search" else b["accuracy_val_other"]
            assert se is None or search_acc == se["accuracy_val_final"]
            assert (b["weights"] == "search") == (start - search_acc <= rule + 1e-12 or search_acc > reprune_acc)
        else:
            assert b["weights"] == "reprune" and (k == 0 or start - reprune_acc <= rule + 1e-12)
    if rows["reprune"][fastest]["accuracy_val_final"] >= start - rule:
        assert new["fps_after"] == runs["reprune"][1]["fps_after"]  # re-pruning passes at once: nothing changes
    # a candidate passes wherever its re-prune does, so the bisection ends no slower: the first probe where the
    # two runs differ sends reprune below it and the new mode to it or above
    assert new["fps_after"] >= runs["reprune"][1]["fps_after"]
    _, _, x_val, y_val = split_validation(data.x_train, data.y_train, 0.2, 0)
    assert evaluate_accuracy(delivered, x_val, y_val) == pytest.approx(new["accuracy_val"]["after"])
    if new["fps_after"] > new["fps_before"]:
        kept = next(b for b in rows["reprune_or_search"].values() if b["fps"] == new["fps_after"])
        assert start - kept["accuracy_val_final"] <= rule + 1e-12
        assert new["accuracy_val"]["after"] == pytest.approx(kept["accuracy_val_final"])
        if kept["weights"] == "reprune":
            assert new["extra_epochs"] == pytest.approx(0.4)
        else:  # the step's own step fine-tunes as well
            assert new["extra_epochs"] > 0.4 + 0.2 - 1e-9
    return [b for b in rows["reprune_or_search"].values() if "accuracy_val_other" in b]


def test_chain_model_candidates_are_the_plain_modes_candidates(trained, digits, tmp_path):
    runs = _three_runs(trained, digits, pipeline_hw, tmp_path)
    _check(runs, digits)


@pytest.mark.slow
def test_resnet8_fallback_recovers_candidates_a_one_shot_re_prune_loses(tmp_path):
    """On the residual model the deep steps' one-shot re-prune fails the rule and the fallback is taken."""
    model, data = _resnet8()
    runs = _three_runs(model, data, _square_hw, tmp_path, max_steps=8)
    fell_back = _check(runs, data)
    assert fell_back, "no re-pruned candidate failed here: the fallback was not exercised"


@pytest.mark.parametrize("mode", ["reprune", "reprune_or_search"])
def test_final_weights_other_than_search_need_a_greedy_search(trained, digits, tmp_path, mode):
    with pytest.raises(ConfigError, match=f"final_weights' '{mode}'"):
        run_pruning_stage({"method": "uniform", "target": "ratio", "final_weights": mode}, trained, digits,
                          HwTarget(), tmp_path)

"""The prune stage's backtracking judges candidates by the paired test of ``pruning.selection`` (real training,
real pruning on sklearn digits; an analytic FPS model keeps it fast). The model, data and FPS model are those of
conftest.py, which test_stage.py uses too."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.data import split_validation  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.selection import Paired, meets_rule  # noqa: E402
from hapfpga.pruning.stage import run_pruning_stage  # noqa: E402
from hapfpga.train import predict  # noqa: E402

from .conftest import pipeline_hw  # noqa: E402


def _stage_cfg(rule: float, confidence: float, **extra) -> dict:
    """The greedy ``max_fps`` search these tests run (short fine-tunes, 6 steps) with the accuracy rule ``rule`` as
    a paired test at ``confidence``; ``extra``: other pruning keys (``final_weights``)."""
    return {"method": "greedy", "target": "max_fps", "max_accuracy_drop": rule, "step_accuracy_drop": 0.5,
            "step_finetune_epochs": 0.1, "finetune_epochs": 0.5, "sensitivity": False, "min_ratio": 0.125,
            "candidate_steps": 4, "max_steps": 6, "lr": 2e-3, "selection": {"confidence": confidence}, **extra}


def _correct(model, x, y):
    return predict(model.eval(), x).argmax(axis=1) == y


def test_backtracking_keeps_the_fastest_candidate_the_paired_test_accepts(trained, digits, tmp_path):
    """Every tried candidate's paired counts are in the report and are the real ones (recomputed from the
    delivered model on the run's validation split); the kept design passes the paired test at the configured
    confidence and every faster candidate tried fails it, whatever the point rule says of them."""
    model, data = trained, digits
    conf, rule = 0.9, 0.02
    cfg = _stage_cfg(rule, conf, final_weights="reprune")
    pruned, r = run_pruning_stage(cfg, model, data, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    _, _, x_val, y_val = split_validation(data.x_train, data.y_train, 0.2, 0)
    tried = {b["step"]: b for b in r["backtrack"]}
    assert tried and all({"lost", "gained", "n_val", "drop_bound"} <= set(b) for b in tried.values())
    verdict = {k: meets_rule(Paired(b["n_val"], b["lost"], b["gained"]), rule, conf) for k, b in tried.items()}
    chosen_fps = r["fps_after"]
    assert all(not verdict[k] for k, b in tried.items() if b["fps"] > chosen_fps)
    assert all(b["drop_bound"] > rule for k, b in tried.items() if not verdict[k])
    if chosen_fps > r["fps_before"]:
        k = next(k for k, b in tried.items() if b["fps"] == chosen_fps)
        assert verdict[k]
        p = Paired.of(_correct(model, x_val, y_val), _correct(pruned, x_val, y_val))
        assert (p.n, p.lost, p.gained) == (tried[k]["n_val"], tried[k]["lost"], tried[k]["gained"])
    log = (tmp_path / "pruning" / "search.log").read_text()
    assert "selection: step" in log


@pytest.mark.slow
def test_confidence_one_half_keeps_the_point_rule_and_adds_no_paired_rows(trained, digits, tmp_path):
    """``selection.confidence: 0.5``: the backtracking decides by the observed drop, as before issue 24."""
    model, data = trained, digits
    cfg = _stage_cfg(0.02, 0.5)
    _, r = run_pruning_stage(cfg, model, data, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    acc0 = r["accuracy_val"]["before"]
    tried = r["backtrack"]
    assert tried and all("lost" not in b for b in tried)
    assert all(acc0 - b["accuracy_val_final"] > 0.02 for b in tried if b["fps"] > r["fps_after"])


def test_reprune_or_search_falls_back_by_the_paired_test(trained, digits, tmp_path):
    """``final_weights: reprune_or_search`` with the paired test: a candidate takes the step's own weights only
    after its re-prune fails the paired test, and keeps them only where they pass it or are more accurate; every
    re-pruned candidate kept past step 0 passes it; the faster candidates tried all fail it."""
    conf, rule = 0.9, 0.02
    cfg = _stage_cfg(rule, conf, final_weights="reprune_or_search")
    _, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    tried = {b["step"]: b for b in r["backtrack"]}
    assert tried and all({"lost", "gained", "n_val", "weights"} <= set(b) for b in tried.values())
    verdict = {k: meets_rule(Paired(b["n_val"], b["lost"], b["gained"]), rule, conf) for k, b in tried.items()}
    for k, b in tried.items():
        if b["weights"] == "reprune" and k > 0:
            assert verdict[k] or "accuracy_val_other" in b  # kept re-pruned: it passed, or both failed
        if b["weights"] == "search":  # the fallback: taken where it passes or is the more accurate
            assert "accuracy_val_other" in b
            assert verdict[k] or b["accuracy_val_final"] > b["accuracy_val_other"]
    assert all(not verdict[k] for k, b in tried.items() if b["fps"] > r["fps_after"])
    log = (tmp_path / "pruning" / "search.log").read_text()
    assert "selection: step" in log

"""``method: uniform, target: max_fps``: the fastest uniform keep ratio that meets the accuracy rule after its
final fine-tune (issue 24: the hardware-aware arm is compared with a uniform arm held to the same rule).

Real training and pruning on sklearn digits with the conftest's small Brevitas CNN; the hardware predictor is
the analytic pipeline of conftest.py (the FINN-backed one is exercised in test_plan_finn.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas.nn")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.apply import layer_channels  # noqa: E402
from hapfpga.pruning.config import parse_pruning_config  # noqa: E402
from hapfpga.pruning.plan import uniform_counts  # noqa: E402
from hapfpga.pruning.predictor import HwTarget  # noqa: E402
from hapfpga.pruning.selection import Paired, meets_rule  # noqa: E402
from hapfpga.pruning.stage import UNIFORM_GRID, run_pruning_stage  # noqa: E402
from hapfpga.train import predict  # noqa: E402

from .conftest import pipeline_hw  # noqa: E402

FULL = {"c1": 16, "c2": 16}


def _cfg(**kw):
    return {"method": "uniform", "target": "max_fps", "max_accuracy_drop": 0.02, "finetune_epochs": 0.3,
            "sensitivity": False, "min_ratio": 0.125, "lr": 2e-3, **kw}


def _levels(min_ratio: float) -> list[tuple[float, dict]]:
    """The candidate ratios the search may try: each ratio whose predicted FPS beats every larger one's."""
    out, best = [], pipeline_hw(FULL).fps
    for k in range(UNIFORM_GRID - 1, 0, -1):
        r = k / UNIFORM_GRID
        if r < min_ratio:
            break
        counts = uniform_counts(FULL, r)
        if pipeline_hw(counts).fps > best + 1e-9:
            out.append((r, counts))
            best = pipeline_hw(counts).fps
    return out


@pytest.mark.parametrize("max_drop", [0.005, 0.02, 0.3])
def test_the_fastest_uniform_ratio_meeting_the_rule_is_delivered(trained, digits, tmp_path, max_drop):
    m, r = run_pruning_stage(_cfg(max_accuracy_drop=max_drop), trained, digits, HwTarget(predictor=pipeline_hw),
                             tmp_path, seed=0)
    acc0, tried = r["accuracy_val"]["before"], {b["step"]: b for b in r["backtrack"]}
    levels = _levels(0.125)
    assert len(levels) >= 3 and len(r["history"]) == len(levels) + 1
    assert [h["counts"] for h in r["history"][1:]] == [c for _, c in levels]
    # at most the fastest probe plus a bisection over the levels
    assert 1 <= len(tried) <= 2 + (len(levels)).bit_length()
    chosen = r["fps_after"]
    assert all(acc0 - b["accuracy_val_final"] > max_drop for b in tried.values() if b["fps"] > chosen)
    assert acc0 - r["accuracy_val"]["after"] <= max_drop + 1e-12
    # the delivered model is the chosen ratio's uniform plan, pruned for real, with one final fine-tune's budget
    ratio = r["ratio"]
    assert r["channels_after"] == uniform_counts(FULL, ratio)
    assert {g: layer_channels(m)[g] for g in FULL} == uniform_counts(FULL, ratio)
    assert chosen == pipeline_hw(uniform_counts(FULL, ratio)).fps
    assert r["extra_epochs"] == pytest.approx(0.3)
    if ratio < 1:
        assert r["accuracy_val"]["after"] == tried[next(k for k, b in tried.items() if b["fps"] == chosen)][
            "accuracy_val_final"]


def test_a_looser_rule_never_gives_a_slower_design(trained, digits, tmp_path):
    fps = [run_pruning_stage(_cfg(max_accuracy_drop=d), trained, digits, HwTarget(predictor=pipeline_hw),
                             tmp_path / str(d), seed=0)[1]["fps_after"] for d in (0.001, 0.99)]
    assert fps[1] >= fps[0]
    assert fps[1] == pipeline_hw(uniform_counts(FULL, _levels(0.125)[-1][0])).fps  # 99 pt: the fastest level passes


def test_the_paired_rule_judges_the_uniform_candidates(trained, digits, tmp_path):
    """With ``selection.confidence`` 0.8 each candidate is the paired test against the unpruned model on the same
    validation samples; the delivered model's own validation predictions pass it."""
    from hapfpga.data import split_validation

    cfg = _cfg(max_accuracy_drop=0.05, selection={"confidence": 0.8})
    m, r = run_pruning_stage(cfg, trained, digits, HwTarget(predictor=pipeline_hw), tmp_path, seed=0)
    rows = [b for b in r["backtrack"] if "lost" in b]
    assert rows and all(b["n_val"] == round(0.2 * len(digits.x_train)) for b in rows)
    _, _, x_val, y_val = split_validation(digits.x_train, digits.y_train, 0.2, 0)
    base_ok = predict(trained, x_val).argmax(axis=1) == y_val
    if r["ratio"] < 1:
        assert meets_rule(Paired.of(base_ok, predict(m, x_val).argmax(axis=1) == y_val), 0.05, 0.8)
    for b in rows:
        if b["fps"] > r["fps_after"]:
            assert not meets_rule(Paired(n=b["n_val"], lost=b["lost"], gained=b["gained"]), 0.05, 0.8)


@pytest.mark.parametrize("bad, match", [
    ({"iterations": 2}, "iterations"),
    ({"finetune_epochs": 0}, "finetune_epochs"),
    ({"max_accuracy_drop": 0.0}, "max_fps"),
])
def test_uniform_max_fps_config_errors_are_one_sentence_before_training(bad, match):
    with pytest.raises(ConfigError, match=match):
        parse_pruning_config(_cfg(**bad))
    with pytest.raises(ConfigError, match="unstructured"):
        parse_pruning_config({"method": "unstructured", "target": "max_fps"})

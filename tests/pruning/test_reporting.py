"""The pruning section of the report in words: labels, the missed-target sentence, agreement with the summary."""

from __future__ import annotations

from hapfpga.pruning.reporting import pruning_rows, target_sentence
from hapfpga.report_html import render_report_html

MISSED = {"method": "greedy", "target": "fps", "target_fps": 7630.0, "target_met": False,
          "channels_before": {"c0": 8}, "channels_after": {"c0": 8},
          "params": {"before": 1000, "after": 1000}, "accuracy": {"before": 0.9, "after": 0.9},
          "accuracy_drop": 0.0, "fps_before": 5000.0, "fps_after": 5000.0}


def test_rows_use_labels_and_show_the_fold_stage_fps():
    rows = dict(pruning_rows({**MISSED, "fps_after": 6000.0, "target_met": True}, final_fps=6000.0))
    assert rows["target"] == "7,630 FPS (met)"
    assert rows["predicted FPS, search (unpruned → pruned)"] == "5,000 → 6,000"
    assert rows["FPS of the final design, fold stage"] == "6,000"
    assert rows["test accuracy"] == "90.00% → 90.00%" and rows["accuracy drop"] == "0.00 points"
    assert not any("_" in k for k in rows)  # no raw report keys


def test_missed_target_is_one_sentence_in_the_html():
    s = target_sentence(MISSED)
    assert s is not None and s.count(". ") == 0 and "7,630 FPS" in s and "kept the unpruned" in s
    assert "reached only 6,000 FPS" in target_sentence({**MISSED, "fps_after": 6000.0, "channels_after": {"c0": 4}})
    assert target_sentence({**MISSED, "target_met": True}) is None
    assert target_sentence({**MISSED, "target_met": None, "target": "budget"}) is None
    html = render_report_html({"board": {"name": "Pynq-Z2"}, "pruning": MISSED,
                               "folding": {"mode": "max_fps", "predicted_fps": 5000.0}})
    assert "could not reach its target of 7,630 FPS" in html
    assert "FPS of the final design, fold stage" in html
    ok = render_report_html({"board": {"name": "Pynq-Z2"}, "pruning": {**MISSED, "target_met": True}})
    assert "could not reach" not in ok

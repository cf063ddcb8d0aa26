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


def _random_report(rng) -> dict:
    """A report dict as the pruning stage writes it (keys in its order), with random figures and options."""
    def ba(kind):
        return {"before": kind(rng), "after": kind(rng)}

    def frac(r):
        return float(r.random())

    def count(r):
        return int(r.integers(1, 10_000))

    method = str(rng.choice(["greedy", "j", "nsga2", "uniform", "unstructured"]))
    target = str(rng.choice(["fps", "budget", "max_fps", "ratio"]))
    d = {"method": method, "target": target, "importance": str(rng.choice(["l1", "l2", "taylor"]))}
    groups = [f"g{i}" for i in range(int(rng.integers(1, 5)))]
    params, acc = ba(count), ba(frac)
    if method == "unstructured":
        d["sparsity"] = {"sparsity": frac(rng)}
        d.update(channels_before={}, channels_after={})
        tail = {}
    else:
        for k in ("sensitivity", "ratio", "storage"):
            if rng.random() < 0.5:
                d[k] = {"ratio": frac(rng)} if k != "storage" else "sqlite:///x.db"
        if rng.random() < 0.3:
            d.update(bits=[1, 2], bits_before={"c0": [2, 2]}, bits_after={"c0": [1, 2]})
        d["accuracy_val"] = ba(frac)
        full = {g: count(rng) for g in groups}
        d.update(channels_before=full, channels_after={g: max(1, n // 2) for g, n in full.items()},
                 target_fps=float(count(rng)) if target == "fps" else None,
                 target_met=bool(rng.random() < 0.5) if target == "fps" else None)
        steps = [{"counts": {g: count(rng) for g in groups}, "accuracy": frac(rng), "fps": frac(rng)}
                 for _ in range(int(rng.integers(0, 4)))]
        tail = {"history": steps, "rejected": steps[:1], "extra_epochs": float(rng.integers(0, 5)),
                "backtrack": [{"step": 1, "fps": 2.0, "accuracy_val_final": 0.5}] if steps else []}
    fps = [float(count(rng)), float(count(rng))] if rng.random() < 0.7 else [None, None]
    d.update(params=params, macs=ba(count), compression=params["before"] / max(1, params["after"]), accuracy=acc,
             accuracy_drop=acc["before"] - acc["after"], fps_before=fps[0], fps_after=fps[1],
             pareto=[] if method == "unstructured" else [{"accuracy": frac(rng), "fps": frac(rng), "LUT": 1.0}],
             **tail, seconds=frac(rng) * 100)
    return d


def test_the_report_value_round_trips_its_json_form_over_random_reports():
    """``PruningReport.from_dict(d).as_dict()`` is ``d``, keys in the same order, for 500 random reports of every
    method and target (optional entries present or not); the rows read from the value are the dict's."""
    import numpy as np

    from hapfpga.pruning.reporting import PruningReport

    rng = np.random.default_rng(0)
    for _ in range(500):
        d = _random_report(rng)
        r = PruningReport.from_dict(d)
        assert r.as_dict() == d and list(r.as_dict()) == list(d)
        assert pruning_rows(r, 1000.0) == pruning_rows(d, 1000.0)
        assert (r.compression, r.accuracy_drop) == (d["compression"], d["accuracy_drop"])

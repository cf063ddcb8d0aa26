"""``report.json`` and ``report.html``: every section from the results of the stages that ran (or resumed)."""

from __future__ import annotations

import json
from typing import Any

from ..runstate import atomic_write_text
from .base import Conf, Context, Stage, StageOutput

__all__ = ["REPORT", "assemble_report"]


def _dataset(ctx: Context) -> dict[str, Any] | None:
    ds = ctx.dataset
    if ds is None:
        return None
    return {"name": ds.name, "n_train": int(len(ds.x_train)), "n_test": int(len(ds.x_test)),
            "input_shape": list(ds.input_shape), "num_classes": int(ds.num_classes)}


def _module_order(ctx: Context) -> list[str] | None:
    """The trained model's conv/linear layers in module (forward) order: the names pruning's channel dicts use."""
    path = ctx.path("baseline.pt")
    if not path.is_file():
        return None
    import torch

    from .model import load_model

    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)
    return [n for n, m in load_model(path).named_modules() if isinstance(m, kinds)]


def _finn_order(ctx: Context, est: dict[str, Any]) -> list[str]:
    """FINN's nodes in graph order: the estimate's own list, else the order FINN wrote its cycles report in (a
    finn_build result recorded before the list existed; the manifest's JSON sorts dict keys)."""
    if est.get("order"):
        return list(est["order"])
    rep = ctx.path("finn") / "report" / "estimate_layer_cycles.json"
    order = list(json.loads(rep.read_text())) if rep.is_file() else []
    return [n for n in order if n in est.get("layers", {})] or list(est.get("layers", {}))


def assemble_report(ctx: Context, timings: dict[str, float], resumed: list[str]) -> dict[str, Any]:
    """report.json: a section for each stage that has a result; the figures of the design FINN built."""
    r = ctx.results
    report: dict[str, Any] = {"board": ctx.board.as_dict(), "clock_mhz": ctx.clock_mhz}
    if (ds := _dataset(ctx)) is not None:
        report["dataset"] = ds
    if "export" in r and "train" in r:
        ex = r["export"]
        report["accuracy"] = {"baseline": float(r["train"]["accuracy"]), "final": ex["accuracy_final"]}
        report["model"] = {"name": ctx.cfg.model.name, **ex["summary_final"], "baseline": ex["summary_baseline"]}
        if (order := _module_order(ctx)) is not None:
            report["model"]["order"] = order
    else:
        report["model"] = {"name": ctx.model_file.stem}
    if "fold" in r:
        report["folding"] = {k: v for k, v in r["fold"].items() if k != "estimate"}
        report["estimate"] = r["fold"].get("estimate")
    if "finn_build" in r:
        est = r["finn_build"]["estimate"]
        report["finn_estimate"] = {**est, "order": _finn_order(ctx, est)}
    for section, stage in (("verification", "verify"), ("deploy", "deploy"), ("pruning", "prune"),
                           ("rtlsim", "rtlsim"), ("synth", "synth")):
        if stage in r:
            report[section] = r[stage]
    report["timings"] = dict(timings)
    report["resumed_stages"] = list(resumed)
    return report


def report(ctx: Context, conf: Conf) -> StageOutput:
    from ..report_html import write_report_html

    rep = assemble_report(ctx, ctx.timings, ctx.resumed)
    out_json, out_html = ctx.path("report.json"), ctx.path("report.html")
    atomic_write_text(out_json, json.dumps(rep, indent=2, sort_keys=True, default=float) + "\n")
    write_report_html(rep, out_html)
    return [out_json, out_html], rep


#: Every other stage is an input: the report has a section for each one that is part of the flow.
REPORT = Stage(
    "report", report,
    inputs=("train", "prune", "export", "fold", "finn_build", "verify", "deploy", "rtlsim", "synth"),
    outputs=("report.json", "report.html"), cached=False, produces="the report",
)

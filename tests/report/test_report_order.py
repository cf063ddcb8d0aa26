"""report.html lists layers in pipeline (graph) order in every per-layer chart and table, with the bottleneck
marked where it sits; the pruning section says what changed and why, or why nothing did (issue 26)."""

from __future__ import annotations

import html
import json
import re

import pytest

from hapfpga.report_html import (
    BUDGET_CHART,
    CHANNELS_CHART,
    CHANNELS_PRUNED_CHART,
    COMPARE_CHART,
    CYCLES_CHART,
    layer_charts,
    render_report_html,
)


def _graph_nodes(finn_res) -> list[str]:
    """The ground truth: node names in the order of the folded FINN graph itself."""
    from qonnx.core.modelwrapper import ModelWrapper

    return [n.name for n in ModelWrapper(str(finn_res.step_models["step_apply_folding_config"])).graph.node]


def _as_written(report: dict) -> dict:
    """report.json as hapfpga writes it (sorted keys: per-layer dicts come back alphabetical)."""
    return json.loads(json.dumps(report, sort_keys=True, default=float))


def _ticks(ax) -> list[str]:
    return [t.get_text() for t in ax.get_xticklabels()]


def _table_rows(page: str, first_header: str) -> list[tuple[str, str]]:
    """(row attributes, first cell) of the table whose first header is ``first_header``."""
    start = page.index(f"<th>{first_header}</th>")
    table = page[start:page.index("</table>", start)]
    return [(attrs, html.unescape(cell)) for attrs, cell in re.findall(r"<tr([^>]*)><td[^>]*>(.*?)</td>", table)]


def test_charts_and_tables_list_layers_in_graph_order(tfc_report):
    nodes = _graph_nodes(tfc_report["finn"])
    rep = _as_written(tfc_report["report"])
    fe = rep["finn_estimate"]
    assert list(fe["layers"]) == sorted(fe["layers"]) != [n for n in nodes if n in fe["layers"]], \
        "the fixture must be out of order once written, or this test shows nothing"
    order = [n for n in nodes if n in fe["layers"]]
    bottleneck = fe["max_cycles_node"]

    charts = layer_charts(rep)
    cyc = charts[CYCLES_CHART].axes[0]
    assert _ticks(cyc) == order
    marked = [t.get_text() for t in cyc.get_xticklabels() if t.get_fontweight() == "bold"]
    assert marked == [bottleneck]
    # the comparison chart's labelled (last) axis, and the stacked budget chart's legend
    assert _ticks(charts[COMPARE_CHART].axes[-1]) == [n for n in order if n in rep["estimate"]["layers"]]
    legend = [t.get_text() for t in charts[BUDGET_CHART].axes[0].get_legend().get_texts()]
    assert [n for n in legend if n != "board budget"] == [
        n for n in order if any(fe["layers"][n].get(k, 0) > 0 for k in ("LUT", "BRAM_18K", "DSP", "URAM"))]

    page = render_report_html(rep)
    for header in ("layer (pipeline order)", "layer"):  # the per-layer table, and FINN vs ours
        rows = _table_rows(page, header)
        names = [name for _, name in rows]
        assert names == [n for n in order if n in names] and len(names) >= len(order) - 1, header
        assert [name for attrs, name in rows if "bottleneck" in attrs] == [bottleneck], header


def test_a_report_without_an_order_keeps_its_own_and_the_channels_follow_the_model():
    """Older reports (no ``order`` list) keep their dict order; channels follow the model's forward order."""
    rep = {"finn_estimate": {"layers": {"B_0": {"cycles": 5.0, "LUT": 1.0}, "A_0": {"cycles": 9.0, "LUT": 2.0}},
                             "max_cycles_node": "A_0"},
           "model": {"channels": {"classifier.fc0": 8, "features.conv0": 4}, "order": ["features.conv0",
                                                                                   "classifier.fc0"]}}
    charts = layer_charts(rep)
    assert _ticks(charts[CYCLES_CHART].axes[0]) == ["B_0", "A_0"]
    assert _ticks(charts[CHANNELS_CHART].axes[0]) == ["features.conv0", "classifier.fc0"]


def _pruning(**kw) -> dict:
    before = {"features.conv0": 16, "features.conv1": 32, "classifier.fc0": 64}
    return {"method": "greedy", "target": "budget", "channels_before": before, "channels_after": dict(before), **kw}


def _story(prun: dict) -> str:
    page = render_report_html({"pruning": prun})
    sec = page[page.index("<h2>Pruning</h2>"):]
    return html.unescape(sec[sec.index("<p>") + 3:sec.index("</p>")])


def test_pruning_section_says_what_changed_and_where_the_bottleneck_went():
    hist = [{"counts": {"features.conv1": 32}, "bottleneck": "MVAU_hls_1", "fps": 1e3},
            {"counts": {"features.conv1": 24}, "bottleneck": "MVAU_hls_2", "fps": 2e3, "changed": "features.conv1"}]
    prun = _pruning(history=hist)
    prun["channels_after"]["features.conv1"] = 24
    text = _story(prun)
    assert text.startswith("Pruning removed 8 output channels in 1 layer(s) (features.conv1 32 → 24)")
    assert "moved from MVAU_hls_1 to MVAU_hls_2 (step 1 of 1)" in text
    page = render_report_html({"pruning": prun})
    assert "greedy: 8 channels removed in 1 layer(s)" in page


@pytest.mark.parametrize(("extra", "why"), [
    ({"rejected": [{"counts": {}}, {"counts": {}}]}, "each of the 2 step(s) the search tried lost more validation"),
    ({"history": [{"counts": {}}, {"counts": {}}, {"counts": {}}], "backtrack": [{"step": 2}, {"step": 1}]},
     "the search took 2 step(s), but after the final fine-tune none of the 2 candidate(s)"),
    ({"target": "fps", "target_fps": 1e6, "target_met": False}, "no design the search reached met the FPS target"),
    ({}, "no change the search tried raised the predicted FPS"),
])
def test_pruning_section_says_why_nothing_changed(extra, why):
    text = _story(_pruning(**extra))
    assert text.startswith("Pruning left the model unchanged: ") and why in text
    assert "model unchanged" in render_report_html({"pruning": _pruning(**extra)})


@pytest.mark.parametrize("limited_by", [
    {"layer": "MVAU_hls_3", "knob": "folding.margin"},
    "MVAU_hls_3 has no channels to prune; raise folding.margin",
])
def test_pruning_limited_by_is_rendered_when_present(limited_by):
    text = _story(_pruning(limited_by=limited_by))
    assert "Limited by: " in text and "MVAU_hls_3" in text and "folding.margin" in text
    assert "Limited by" not in _story(_pruning())


def test_bits_table_and_channels_follow_the_models_forward_order():
    order = ["features.conv0", "features.conv1", "classifier.fc0"]
    bits = {n: {"weight": 2, "act": 2} for n in sorted(order)}  # as report.json lists them: alphabetical
    before = {n: 16 for n in sorted(order)}
    rep = {"model": {"order": order},
           "pruning": {"method": "greedy", "bits_before": bits, "bits_after": bits, "channels_before": before,
                       "channels_after": before}}
    page = render_report_html(rep)
    assert [name for _, name in _table_rows(page, "layer")][:3] == order
    assert _ticks(layer_charts(rep)[CHANNELS_PRUNED_CHART].axes[0]) == order

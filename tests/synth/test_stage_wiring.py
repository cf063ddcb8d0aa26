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

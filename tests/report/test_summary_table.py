"""The summary table ``hapfpga run`` prints, on a real report (TFC-w2a2 FINN estimate): readable at 80 columns."""

from __future__ import annotations

import copy
import io

from rich.console import Console

from hapfpga.summary import print_summary


def test_run_summary_at_80_columns(tfc_report):
    rep = tfc_report["report"]
    buf = io.StringIO()
    print_summary(rep, Console(file=buf, width=80, force_terminal=False))
    text = buf.getvalue()
    for line in text.splitlines():
        assert len(line) <= 80, line
    assert "…" not in text
    fe = rep["finn_estimate"]
    assert f"{fe['total']['LUT']:,.0f}" in text
    assert fe["max_cycles_node"] in text.replace("\n", "")  # may fold onto two lines, never cut


def test_summary_says_why_the_fold_kept_its_graph(tfc_report):
    """``folding.variant_note`` (the fold stage kept the embedded graph because rtlsim cannot take the mixed design's
    HLS MVAU) is in report.json; the table ``hapfpga run`` prints and the HTML report show it too."""
    from hapfpga.report_html import render_report_html

    rep = copy.deepcopy(tfc_report["report"])
    note = ("kept the embedded-threshold graph: the mixed design (9,000 FPS predicted) has HLS layer MVAU_hls_0, "
            "which rtlsim cannot take (an HLS layer becomes RTL only through Vitis HLS)")
    rep["folding"].update(variant="embedded", variant_fps={"embedded": 4000.0, "mixed": 9000.0}, variant_note=note)
    buf = io.StringIO()
    print_summary(rep, Console(file=buf, width=80, force_terminal=False))
    flat = " ".join(buf.getvalue().split())
    assert "folding design" in flat and "MVAU_hls_0" in flat and "Vitis HLS)" in flat
    assert "MVAU_hls_0" in render_report_html(rep)
    del rep["folding"]["variant_note"]
    buf = io.StringIO()
    print_summary(rep, Console(file=buf, width=80, force_terminal=False))
    assert "folding design" not in buf.getvalue()  # the embedded graph kept without a reason to give: no row

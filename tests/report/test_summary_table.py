"""The summary table ``hapfpga run`` prints, on a real report (TFC-w2a2 FINN estimate): readable at 80 columns."""

from __future__ import annotations

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

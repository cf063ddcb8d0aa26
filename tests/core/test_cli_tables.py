"""CLI tables are readable at 80 columns on a pipe (where rich assumes 80): nothing cut with an ellipsis."""

from __future__ import annotations

import os
import subprocess
import sys

from hapfpga.boards import list_boards, load_board


def _cli(*argv: str) -> str:
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("FORCE_COLOR", None)
    proc = subprocess.run([sys.executable, "-m", "hapfpga.cli", *argv], capture_output=True, text=True, env=env,
                          check=True)
    return proc.stdout


def assert_readable(text: str, width: int = 80) -> None:
    assert text.strip()
    for line in text.splitlines():
        assert len(line) <= width, line
    assert "…" not in text


def test_boards_table_at_80_columns_on_a_pipe():
    out = _cli("boards")
    assert_readable(out)
    for key in list_boards():
        b = load_board(key)
        assert f" {key} " in out  # the whole key, once per board
        assert b.part in out
        assert f"{int(b.budget.LUT):,}" in out and f"{int(b.capacity.LUT):,}" in out

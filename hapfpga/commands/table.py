"""Rich tables for the CLI that stay readable at 80 columns (a pipe or CI log, where rich assumes 80).

Compact borders, and every cell folds onto a second line instead of being cut with an ellipsis: a board key
or a node name is never shown as ``pynq-…``. ``--json`` gives every field without a table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["cli_table", "print_table"]


def cli_table(title: str, columns: Sequence[str], right: Sequence[str] = ()) -> Any:
    """A ``rich.table.Table`` with ``columns`` (those in ``right`` right-justified) that wraps, never cuts."""
    from rich import box
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left")
    for col in columns:
        t.add_column(col, justify="right" if col in right else "left", overflow="fold")
    return t


def print_table(table: Any, console: Any = None) -> None:
    from rich.console import Console

    (console or Console()).print(table)

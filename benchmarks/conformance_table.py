"""The README table of the conformance suite (tests/conformance/test_bnn_pynq.py) from its results rows.

Every member of the suite writes one JSON row (``$HAPFPGA_CONFORMANCE_RESULTS/<member>.json``); this prints them
as one Markdown table: verified (bit-exact), fits, FINN's estimated FPS before → after pruning (both FINN's own
estimate report, both folded ``max_fps`` for the board), test accuracy before → after, parameters before → after,
the run's wall time, and for a member that did not complete its exit status and sentence. Nothing is computed
here that the rows do not hold.

Usage::

    HAPFPGA_CONFORMANCE_RESULTS=/tmp/conf nice .venv/bin/python -m pytest -m slow tests/conformance/test_bnn_pynq.py
    .venv/bin/python benchmarks/conformance_table.py /tmp/conf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COLUMNS = ("member", "verified", "fits", "FINN FPS before → after", "test acc before → after",
           "params before → after", "channels removed", "wall s")


def _yes(v: object) -> str:
    return "—" if v is None else ("yes" if v else "no")


def _fps(v: float | None) -> str:
    """An FPS figure; ``None``: the unpruned model fits the board with no legal folding (so it has no FPS)."""
    return "does not fit" if v is None else f"{v:,.0f}"


def row_cells(r: dict) -> list[str]:
    """The table cells of one results row."""
    if r.get("rc") != 0:
        return [r["member"], "—", "—", "—", "—", "—", "—", f"{r['wall_s']:.0f}",
                f"exit {r['rc']}: {r.get('error') or r.get('outcome')}"]
    return [
        r["member"], _yes(r["verified"] and r["finn_hw_exact"]), _yes(r["fits"]),
        f"{_fps(r['finn_fps_before'])} → {r['finn_fps_after']:,.0f}",
        f"{r['acc_before']:.3f} → {r['acc_after']:.3f}",
        f"{r['params_before']:,} → {r['params_after']:,}", str(r["channels_removed"]), f"{r['wall_s']:.0f}",
        f"FINN bottleneck {r['bottleneck_after']}",
    ]


def table(rows: list[dict]) -> str:
    """Markdown, one line per member in the order of the rows."""
    head = [*COLUMNS, "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def load_rows(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Markdown table of the conformance suite's results rows.")
    p.add_argument("folder", type=Path, help="the folder of results rows ($HAPFPGA_CONFORMANCE_RESULTS)")
    a = p.parse_args(argv)
    rows = load_rows(a.folder)
    if not rows:
        print(f"conformance_table: no results rows in {a.folder}; run tests/conformance first.", file=sys.stderr)
        return 2
    print(table(rows))
    done = sum(r.get("rc") == 0 and r.get("verified") and r.get("fits") for r in rows)
    print(f"\nconformance {done}/{len(rows)} members verified and fitting; total wall "
          f"{sum(r['wall_s'] for r in rows):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

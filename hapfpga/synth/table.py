"""Text table of a ``synth`` report section: ours / FINN / Yosys per layer and in total, with ratios."""

from __future__ import annotations

import textwrap
from typing import Any

__all__ = ["format_synth_table"]


#: long FINN op names shortened in the table (the JSON keeps FINN's node names)
_SHORT = {"StreamingDataWidthConverter": "DWC", "ConvolutionInputGenerator": "SWG", "StreamingFIFO": "FIFO"}


def _short(name: str) -> str:
    for long, short in _SHORT.items():
        if name.startswith(long):
            return short + name[len(long):]
    return name


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _cells(d: dict[str, Any]) -> list[str]:
    lut, dsp, bram = d["LUT"], d["DSP"], d["BRAM18"]
    return [
        f"{_n(lut['ours'])}/{_n(lut['finn'])}/{_n(lut['yosys'])}",
        _n(d["LUTRAM"]["yosys"]),
        _n(d["FF"]["yosys"]),
        f"{_n(bram['ours'])}/{_n(bram['finn'])}/{_n(bram['yosys'])}",
        f"{_n(d['URAM']['ours'])}/{_n(d['URAM']['finn'])}/{_n(d['URAM']['yosys'])}",
        f"{_n(dsp['ours'])}/{_n(dsp['finn'])}/{_n(dsp['yosys'])}",
        f"{_r(lut['ours_over_yosys'])}/{_r(lut['finn_over_yosys'])}",
    ]


def format_synth_table(section: dict[str, Any]) -> str:
    """Per layer and total: LUT, LUTRAM (Yosys), FF (Yosys), BRAM18, URAM, DSP as ours/FINN/Yosys; LUT ratios."""
    head = ["layer", "LUT o/f/y", "LUTRAM", "FF", "BRAM18 o/f/y", "URAM", "DSP o/f/y", "LUT o/y f/y"]
    body = [[_short(r["name"]), *_cells(r)] for r in section["layers"]]
    body.append(["TOTAL", *_cells(section["total"])])
    if all(row[5] in ("-/-/-", "0/0/0", "0/0/-") for row in body):  # no URAM anywhere: keep to 80 columns
        head, body = [h for i, h in enumerate(head) if i != 5], [[c for i, c in enumerate(r) if i != 5] for r in body]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = [" ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [head, *body]]
    notes = sorted({r["note"] for r in section["layers"] if r.get("note")})
    lines += [f"note: {n}: {', '.join(r['name'] for r in section['layers'] if r.get('note') == n)}" for n in notes]
    for who, c in section.get("closest_to_limit", {}).items():
        if c:
            lines.append(f"closest to the budget by {who}: {c['resource']} at {100 * c['fraction_of_budget']:.1f}%")
    if "whole" in section:
        w = section["whole"]
        lines.append(f"whole stitched design (Yosys): LUT {w['lut']} + LUTRAM {w['lutram']}, FF {w['ff']}, "
                     f"BRAM18 {w['bram18']}, URAM {w['uram']}, DSP {w['dsp']} ({w['seconds']:.0f} s)")
    lines.append(f"{section['yosys']}, family {section['family']}, mode {section['mode']}; {section['note']}")
    table, prose = lines[: len(body) + 1], lines[len(body) + 1 :]
    return "\n".join(table + [w for p in prose for w in textwrap.wrap(p, 80, subsequent_indent="  ")])

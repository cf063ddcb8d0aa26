"""A self-contained ``report.html`` from a run's ``report.json``.

Every plot is a matplotlib PNG embedded as a base64 ``data:`` URI, so the page is one file that opens
offline (on a laptop or copied next to the board). We use ``matplotlib.figure.Figure`` directly, not
``pyplot``: no global backend switch, so calling this from a notebook leaves inline plotting alone.

Sections (each one only when the report has the data):

* summary (board, clock, dataset, accuracy, FPS, fit),
* per-layer cycles with the bottleneck marked (FINN's estimate; ours alongside when present), and a per-layer table,
* per-layer LUT / BRAM_18K / DSP / URAM stacked against the board budget,
* pruning: what changed and why, or why nothing did (and ``pruning.limited_by`` when the report has it),
  accuracy-vs-FPS Pareto front of the search, channels before/after,
* verification table (Brevitas ↔ QONNX ↔ FINN),
* FINN's estimate vs our estimator, per layer,
* RTL simulation and stage timings.

Every per-layer chart and table lists the layers in pipeline (graph) order and marks the bottleneck in place:
``report.json`` is written with sorted keys, so the order comes from the ``order`` lists of the estimate
sections (FINN nodes) and ``model.order`` (the model's layers), not from the dicts.

The FPS of a dataflow pipeline is ``clock / max_cycles``: the layer with the most cycles per frame
bounds throughput (FINN-R, Blott et al. 2018, Sec. 4; finn-plus ``estimate_network_performance``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["render_report_html", "write_report_html", "layer_charts", "layer_table", "graph_order", "in_order",
           "pareto_front", "BUDGET_KEYS", "CYCLES_CHART", "BUDGET_CHART", "COMPARE_CHART", "CHANNELS_CHART",
           "CHANNELS_PRUNED_CHART"]

#: Resources drawn against the board budget (FF is not in FINN's per-layer estimate).
BUDGET_KEYS: tuple[str, ...] = ("LUT", "BRAM_18K", "DSP", "URAM")

#: How the folding was chosen, by ``folding.mode`` (the fold stage's report fragment).
_FOLD_SOURCE: dict[str, str] = {
    "max_fps": "max_fps (our optimiser: fastest that fits)",
    "fps": "fps (our optimiser: cheapest meeting the target)",
    "finn": "finn (FINN's SetFolding, read back from FINN's model)",
    "none": "none (FINN's defaults)",
    "file": "file (the user's folding file, as FINN applied it)",
}
_FOLD_NOTE: dict[str, str] = {
    "finn": "FINN's SetFolding chose this folding (read back from FINN's model after step_apply_folding_config).",
    "file": "The user's folding file, read back from FINN's model after step_apply_folding_config.",
}

#: The per-layer charts, by the alt text of their <img> in the page.
CYCLES_CHART = "per-layer cycles with the bottleneck marked"
BUDGET_CHART = "per-layer resources stacked against the budget"
COMPARE_CHART = "FINN vs our estimator per layer"
CHANNELS_CHART = "channels per layer"
CHANNELS_PRUNED_CHART = "channels before and after pruning"

_BOTTLENECK_COLOUR = "#d62728"
_BAR_COLOUR = "#1f77b4"
_OURS_COLOUR = "#ff7f0e"


# -- data helpers (pure) -------------------------------------------------------------------------


def layer_table(section: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """Per-layer ``{node: {LUT, BRAM_18K, DSP, URAM, FF, cycles}}`` from an estimate section.

    Accepts FINN's condensed estimate (``finn_estimate.layers``: flat keys) and our
    ``NetworkEstimate.as_json()`` (``layers`` with flat keys, or ``{"resources": {...}, "cycles": n}``).
    Missing keys are left out rather than set to 0.
    """
    if not section:
        return {}
    layers = section.get("layers", section)
    out: dict[str, dict[str, float]] = {}
    if not isinstance(layers, Mapping):
        return out
    for name, row in layers.items():
        if not isinstance(row, Mapping):
            continue
        flat: dict[str, float] = {}
        src = dict(row)
        if isinstance(src.get("resources"), Mapping):
            src = {**src, **src["resources"]}
        for k in (*BUDGET_KEYS, "FF", "cycles"):
            v = src.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                flat[k] = float(v)
        if flat:
            out[str(name)] = flat
    return out


def graph_order(report: Mapping[str, Any]) -> list[str]:
    """FINN node names in pipeline (graph) order: the ``order`` list of FINN's estimate section, else of ours.

    ``report.json`` is written with sorted keys, so its per-layer dicts list layers alphabetically
    (``ConvolutionInputGenerator_rtl_0``, ``…_1``, ``MVAU_hls_0``, …); the ``order`` lists keep the pipeline.
    A report without them (older runs) gives ``[]``: the dicts' own order is kept.
    """
    for key in ("finn_estimate", "estimate"):
        sec = report.get(key)
        order = sec.get("order") if isinstance(sec, Mapping) else None
        if isinstance(order, list) and order:
            return [str(n) for n in order]
    return []


def in_order(table: Mapping[str, Any], order: Sequence[str]) -> dict[str, Any]:
    """``table`` with its keys in ``order``; keys not in ``order`` follow, in their own order."""
    pos = {n: i for i, n in enumerate(order)}
    return dict(sorted(table.items(), key=lambda kv: pos.get(kv[0], len(pos))))


def _natural(names: Sequence[str]) -> list[str]:
    """Names with their numbers compared as numbers (``conv2`` before ``conv10``): the order of a model's layers
    when only their names are known (report.json's channel dicts are sorted alphabetically)."""
    import re

    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def pareto_front(points: Sequence[Mapping[str, Any]], x: str = "fps", y: str = "accuracy") -> list[int]:
    """Indices of the points not dominated in (higher ``x``, higher ``y``), sorted by ``x`` (the searches' rule,
    ``hapfpga.pruning.results.non_dominated``, on two figures)."""
    from .pruning.results import non_dominated

    idx = [i for i, p in enumerate(points) if _num(p.get(x)) is not None and _num(p.get(y)) is not None]
    front = non_dominated(idx, lambda i: (float(points[i][x]), float(points[i][y])))
    return sorted(front, key=lambda i: float(points[i][x]))


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(float(v)) else None


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, Mapping) and "before" in v and "after" in v:
        return f"{_fmt(v['before'], digits)} → {_fmt(v['after'], digits)}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:.{digits}g}"
    return str(v)


def _esc(v: Any) -> str:
    return html.escape(_fmt(v))


# -- plots ---------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _mark_tick(ax: Any, names: Sequence[str], bottleneck: str | None) -> None:
    """Colour the bottleneck's x tick label: its place in the pipeline stays visible in every per-layer chart."""
    for label, n in zip(ax.get_xticklabels(), names, strict=False):
        if n == bottleneck:
            label.set_color(_BOTTLENECK_COLOUR)
            label.set_fontweight("bold")


def _plot_cycles(finn: dict[str, dict[str, float]], ours: dict[str, dict[str, float]], bottleneck: str | None,
                 clock_mhz: float | None) -> Any:
    names = [n for n in finn if "cycles" in finn[n]] or [n for n in ours if "cycles" in ours[n]]
    if not names:
        return None
    src = finn if any("cycles" in finn.get(n, {}) for n in names) else ours
    cyc = [src[n].get("cycles", 0.0) for n in names]
    if bottleneck not in names:
        bottleneck = names[max(range(len(names)), key=lambda i: cyc[i])]
    fig = _figure(max(6.0, 0.55 * len(names) + 2), 4.2)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(names)))
    have_ours = any("cycles" in ours.get(n, {}) for n in names) and src is finn
    w = 0.4 if have_ours else 0.8
    colours = [_BOTTLENECK_COLOUR if n == bottleneck else _BAR_COLOUR for n in names]
    ax.bar([x - (w / 2 if have_ours else 0) for x in xs], cyc, width=w, color=colours,
           label="FINN estimate" if src is finn else "our estimate")
    if have_ours:
        ax.bar([x + w / 2 for x in xs], [ours.get(n, {}).get("cycles", float("nan")) for n in names], width=w,
               color=_OURS_COLOUR, alpha=0.8, label="our estimate")
    b = names.index(bottleneck)
    title = f"Cycles per frame per layer — bottleneck {bottleneck} ({cyc[b]:,.0f} cycles"
    if clock_mhz:
        title += f", {clock_mhz * 1e6 / max(cyc[b], 1):,.0f} FPS at {clock_mhz:g} MHz"
    ax.set_title(title + ")", fontsize=10)
    ax.annotate("bottleneck", (b - (w / 2 if have_ours else 0), cyc[b]), xytext=(0, 6), textcoords="offset points",
                ha="center", color=_BOTTLENECK_COLOUR, fontweight="bold", fontsize=9)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    _mark_tick(ax, names, bottleneck)
    ax.set_xlabel("layers in pipeline order (input → output)", fontsize=8)
    ax.set_ylabel("cycles / frame")
    ax.set_ylim(0, max(cyc) * 1.15 if max(cyc) > 0 else 1)
    ax.grid(axis="y", alpha=0.3)
    if have_ours:
        ax.legend(fontsize=8)
    return fig


def _plot_budget(layers: dict[str, dict[str, float]], budget: Mapping[str, float], source: str) -> Any:
    keys = [k for k in BUDGET_KEYS if float(budget.get(k, 0) or 0) > 0 or any(r.get(k, 0) > 0 for r in layers.values())]
    if not layers or not keys:
        return None
    from matplotlib import colormaps

    names = list(layers)
    cmap = colormaps["tab20"]
    fig = _figure(9.0, 0.9 * len(keys) + 1.8)
    ax = fig.add_subplot(1, 1, 1)
    for row, k in enumerate(keys):
        cap = float(budget.get(k, 0) or 0)
        scale = cap if cap > 0 else max(sum(r.get(k, 0.0) for r in layers.values()), 1.0)
        left = 0.0
        for i, n in enumerate(names):
            v = layers[n].get(k, 0.0) / scale * 100.0
            if v > 0:
                ax.barh(row, v, left=left, color=cmap(i % 20), edgecolor="white", linewidth=0.5,
                        label=n if row == 0 or not any(layers[n].get(kk, 0) for kk in keys[:row]) else None)
                left += v
        used = sum(r.get(k, 0.0) for r in layers.values())
        label = f"{used:,.0f} / {cap:,.0f}" if cap > 0 else f"{used:,.0f} (board has none)"
        ax.text(max(left, 0) + 1.5, row, label, va="center", fontsize=8,
                color=_BOTTLENECK_COLOUR if cap > 0 and used > cap else "black")
    ax.axvline(100.0, color=_BOTTLENECK_COLOUR, linestyle="--", linewidth=1.5, label="board budget")
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(keys)
    ax.invert_yaxis()
    ax.set_xlabel("% of the board budget (capacity × utilisation limit)")
    ax.set_xlim(0, max(115.0, ax.get_xlim()[1] + 15))
    ax.set_title(f"Per-layer resources against the budget ({source})", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, Any] = {}
    for h, lab in zip(handles, labels, strict=False):
        seen.setdefault(lab, h)
    ax.legend(seen.values(), seen.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1)
    return fig


def _plot_pareto(points: Sequence[Mapping[str, Any]], chosen: Mapping[str, Any] | None) -> Any:
    pts = [p for p in points if _num(p.get("fps")) is not None and _num(p.get("accuracy")) is not None]
    if not pts:
        return None
    front = pareto_front(pts)
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    lut = [_num(p.get("LUT")) for p in pts]
    if all(v is not None for v in lut):
        sc = ax.scatter([p["fps"] for p in pts], [p["accuracy"] for p in pts], c=lut, cmap="viridis", s=30,
                        label="candidates")
        fig.colorbar(sc, ax=ax, label="LUT")
    else:
        ax.scatter([p["fps"] for p in pts], [p["accuracy"] for p in pts], color="grey", s=30, label="candidates")
    ax.plot([pts[i]["fps"] for i in front], [pts[i]["accuracy"] for i in front], "-o", color=_BOTTLENECK_COLOUR,
            markerfacecolor="none", label="Pareto front")
    if chosen and _num(chosen.get("fps")) is not None and _num(chosen.get("accuracy")) is not None:
        ax.scatter([chosen["fps"]], [chosen["accuracy"]], marker="*", s=200, color="gold", edgecolor="black",
                   zorder=5, label="chosen (test split)")
    ax.set_xscale("log")
    ax.set_xlabel("estimated FPS")
    ax.set_ylabel("accuracy (search points: validation split)")
    ax.set_title("Accuracy vs throughput of the pruning search", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _plot_channels(before: Mapping[str, Any], after: Mapping[str, Any] | None) -> Any:
    names = [n for n in before if _num(before[n]) is not None]
    if not names:
        return None
    fig = _figure(max(6.0, 0.6 * len(names) + 2), 3.8)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(names)))
    if after:
        ax.bar([x - 0.2 for x in xs], [before[n] for n in names], width=0.4, color="#9ecae1", label="before")
        ax.bar([x + 0.2 for x in xs], [after.get(n, float("nan")) for n in names], width=0.4, color=_BAR_COLOUR,
               label="after")
        for x, n in zip(xs, names, strict=True):
            a = _num(after.get(n))
            if a is not None and before[n]:
                ax.annotate(f"{a / before[n]:.0%}", (x + 0.2, a), xytext=(0, 3), textcoords="offset points",
                            ha="center", fontsize=7)
        ax.legend(fontsize=8)
        ax.set_title("Output channels per layer before and after pruning", fontsize=10)
    else:
        ax.bar(xs, [before[n] for n in names], color=_BAR_COLOUR)
        ax.set_title("Output channels per layer", fontsize=10)
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("channels")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _plot_compare(finn: dict[str, dict[str, float]], ours: dict[str, dict[str, float]],
                  bottleneck: str | None = None) -> Any:
    common = [n for n in finn if n in ours]
    if not common:
        return None
    keys = [k for k in ("cycles", "LUT", "BRAM_18K", "DSP")
            if any(k in finn[n] and k in ours[n] and (finn[n][k] or ours[n][k]) for n in common)]
    if not keys:
        return None
    fig = _figure(max(7.0, 0.5 * len(common) + 3), 2.6 * len(keys))
    xs = list(range(len(common)))
    for i, k in enumerate(keys):
        ax = fig.add_subplot(len(keys), 1, i + 1)
        ax.bar([x - 0.2 for x in xs], [finn[n].get(k, float("nan")) for n in common], width=0.4, color=_BAR_COLOUR,
               label="FINN estimate")
        ax.bar([x + 0.2 for x in xs], [ours[n].get(k, float("nan")) for n in common], width=0.4, color=_OURS_COLOUR,
               label="our estimator")
        ax.set_ylabel(k)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(xs)
        ax.set_xticklabels(common if i == len(keys) - 1 else [""] * len(common), rotation=45, ha="right", fontsize=8)
        _mark_tick(ax, common, bottleneck)
        if i == 0:
            ax.legend(fontsize=8)
            ax.set_title("FINN's estimate vs our estimator, per layer", fontsize=10)
    fig.tight_layout()
    return fig


def _plot_synth(layers: Sequence[Mapping[str, Any]]) -> Any:
    """Estimate (ours, FINN) vs Yosys per synthesised layer, for LUT and DSP."""
    rows = [r for r in layers if isinstance(r.get("LUT"), Mapping) and r["LUT"].get("yosys") is not None]
    if not rows:
        return None
    names = [str(r["name"]) for r in rows]
    fig = _figure(max(7.0, 0.5 * len(rows) + 3), 5.2)
    xs = list(range(len(rows)))
    for i, k in enumerate(("LUT", "DSP")):
        ax = fig.add_subplot(2, 1, i + 1)
        for off, who, colour in ((-0.27, "finn", _BAR_COLOUR), (0.0, "ours", _OURS_COLOUR), (0.27, "yosys", "#555")):
            ax.bar([x + off for x in xs], [_num(r[k].get(who)) or 0.0 for r in rows], width=0.27, color=colour,
                   label={"finn": "FINN estimate", "ours": "our estimator", "yosys": "Yosys synth_xilinx"}[who])
        ax.set_ylabel(k)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xticks(xs)
        ax.set_xticklabels(names if i == 1 else [""] * len(names), rotation=45, ha="right", fontsize=8)
        if i == 0:
            ax.legend(fontsize=8)
            ax.set_title("Estimates vs open synthesis (Yosys), per layer", fontsize=10)
    fig.tight_layout()
    return fig


def _synth_section(syn: Any) -> list[str]:
    """The ``synth`` section: plot, per-layer table ours/FINN/Yosys and the resource closest to the budget."""
    if not isinstance(syn, Mapping) or not syn.get("layers"):
        return []
    parts = ["<h2>Open synthesis (Yosys) vs the estimates</h2>", _img(_plot_synth(syn["layers"]), "synth plot")]
    rows = []
    for r in syn["layers"]:
        def cell(k: str, r: Mapping[str, Any] = r) -> str:
            d = r.get(k, {})
            return "/".join(_fmt(d.get(w)) for w in ("ours", "finn", "yosys"))
        rows.append((r["name"], cell("LUT"), _fmt(r.get("LUTRAM", {}).get("yosys")), _fmt(r.get("FF", {}).get("yosys")),
                     cell("BRAM18"), cell("DSP"), r.get("note", "")))
    parts.append(_table(["layer", "LUT o/f/y", "LUTRAM y", "FF y", "BRAM18 o/f/y", "DSP o/f/y", "note"], rows))
    close = syn.get("closest_to_limit") or {}
    txt = "; ".join(f"{w}: {c['resource']} at {100 * c['fraction_of_budget']:.1f}% of the budget"
                    for w, c in close.items() if c)
    if txt:
        parts.append(f"<p>Resource closest to its limit, by model: {html.escape(txt)}.</p>")
    parts.append(f'<p class="note">{html.escape(str(syn.get("note", "")))}</p>')
    return parts


# -- HTML ------------------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2ca02c;font-weight:bold}.fail{color:#d62728;font-weight:bold}.note{color:#666;font-size:.85em}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
tr.bottleneck td{background:#fbe3e3;font-weight:bold}tr.bottleneck td:first-child{border-left:4px solid #d62728}
"""

# Marks on <html> how many of the embedded images decoded (used by the headless-browser test; harmless otherwise).
_SCRIPT = """
window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0){ok++;}}
document.documentElement.setAttribute('data-images-total',String(im.length));
document.documentElement.setAttribute('data-images-loaded',String(ok));});
"""


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], num_cols: Sequence[int] = (),
           highlight: str | None = None) -> str:
    """An HTML table; the row whose first cell is ``highlight`` (the bottleneck layer) is marked in place."""
    h = "".join(f"<th>{html.escape(str(x))}</th>" for x in headers)
    body = []
    for r in rows:
        cells = []
        for j, v in enumerate(r):
            cls = ' class="num"' if j in num_cols else ""
            cells.append(f"<td{cls}>{v if isinstance(v, _Raw) else _esc(v)}</td>")
        mark = ' class="bottleneck" title="the bottleneck: the layer with the most cycles per frame"'
        body.append(f"<tr{mark if highlight is not None and str(r[0]) == highlight else ''}>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _passfail(ok: Any) -> _Raw:
    if ok is None:
        return _Raw("–")
    return _Raw('<span class="pass">pass</span>' if ok else '<span class="fail">FAIL</span>')


def _img(fig: Any, alt: str) -> str:
    """A matplotlib figure as an embedded PNG (or a note when there is no figure)."""
    if fig is None:
        return f'<p class="note">({html.escape(alt)}: no data in this report)</p>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _summary_section(report: Mapping[str, Any], clock: float | None) -> list[str]:
    board = report.get("board") or {}
    budget = board.get("budget") or {}
    fe = report.get("finn_estimate") or {}
    model = report.get("model") or {}
    ds = report.get("dataset") or {}
    acc = report.get("accuracy") or {}
    fold = report.get("folding") or {}
    ver = report.get("verification") or {}
    parts: list[str] = []
    rows: list[tuple[str, Any]] = [
        ("board", f"{board.get('name', '?')} ({board.get('part', '?')})"),
        ("clock", f"{_fmt(clock)} MHz" if clock else None),
        ("dataset", f"{ds.get('name', '?')}: {_fmt(ds.get('n_train'))} train / {_fmt(ds.get('n_test'))} test, "
                    f"input {ds.get('input_shape')}" if ds else None),
        ("accuracy (baseline → final)", f"{_fmt(acc.get('baseline'), 4)} → {_fmt(acc.get('final'), 4)}" if acc else None),
        ("parameters / MACs", f"{_fmt(model.get('params'))} / {_fmt(model.get('macs'))}" if model else None),
        ("folding", f"{_FOLD_SOURCE.get(fold.get('mode'), fold.get('mode'))}; our estimate of this design "
                    f"{_fmt(fold.get('predicted_fps'))} FPS"
                    + (f", bound {_fmt(fold.get('bound_fps'))} ({fold.get('binding_resource')})"
                       if fold.get("bound_fps") else "") if fold else None),
        ("folding design", f"{fold.get('variant')}: {fold['variant_note']}" if fold.get("variant_note") else None),
        ("FINN estimate FPS", f"{_fmt(fe.get('fps'))} (bottleneck {fe.get('max_cycles_node')})" if fe else None),
        ("fits the board", ("yes" if fe.get("fits") else f"no — over on {', '.join(fe.get('over_budget', []))}")
         if "fits" in fe else None),
        ("verification", "pass" if ver.get("passed") else "FAIL" if ver else None),
        ("pruning", _pruning_headline(report["pruning"]) if report.get("pruning") else None),
    ]
    parts.append("<h2>Summary</h2>" + _table(["figure", "value"], [r for r in rows if r[1] is not None]))
    if fe.get("total"):
        tot = fe["total"]
        res_rows = []
        for k in BUDGET_KEYS:
            use, cap = _num(tot.get(k)), _num(budget.get(k))
            pct = f"{use / cap:.0%}" if use is not None and cap else "–"
            res_rows.append((k, use, cap, pct))
        parts.append(_table(["resource", "FINN estimate", "budget", "used"], res_rows, num_cols=(1, 2, 3)))
    return parts


#: Why a pruning method changes what it changes (one clause per method; the figures follow from the report).
_METHOD_WHY: dict[str, str] = {
    "greedy": "each greedy step took the change that bought the most predicted FPS per point of validation "
              "accuracy lost",
    "j": "each step took the change that most raised J = α·accuracy + (1−α)·FPS",
    "nsga2": "the NSGA-II search picked this point of its accuracy/FPS Pareto front",
    "uniform": "uniform pruning removes the same share of every layer's channels",
    "unstructured": "unstructured pruning zeroes weights without removing channels",
}


def _limited_by_text(lb: Any) -> str:
    """``pruning.limited_by`` (the layer pruning cannot speed up and the knob that would) as one sentence."""
    if not isinstance(lb, Mapping):
        return str(lb)
    text = next((str(lb[k]) for k in ("sentence", "message", "reason", "why") if lb.get(k)), "")
    layer, knob = lb.get("layer") or lb.get("node"), lb.get("knob")
    bits = [f"layer {layer}" if layer else "", f"what would help: {knob}" if knob else ""]
    return "; ".join(b for b in [text, *bits] if b) or json.dumps(dict(lb))


def _changes(prun: Mapping[str, Any]) -> tuple[dict[str, tuple[Any, Any]], list[str]]:
    """(layers whose channel count changed: before, after), (layers whose bits were lowered)."""
    before, after = prun.get("channels_before") or {}, prun.get("channels_after") or {}
    changed = {n: (b, after[n]) for n, b in before.items() if n in after and after[n] != b}
    bb, ba = prun.get("bits_before") or {}, prun.get("bits_after") or {}
    return changed, [n for n in bb if n in ba and ba[n] != bb[n]]


def _why_unchanged(prun: Mapping[str, Any]) -> str:
    """Why a pruning run kept the unpruned design, from what its report recorded."""
    hist, rejected, back = prun.get("history") or [], prun.get("rejected") or [], prun.get("backtrack") or []
    if prun.get("target_met") is False:
        return "no design the search reached met the FPS target"
    if len(hist) > 1 and back:
        return (f"the search took {len(hist) - 1} step(s), but after the final fine-tune none of the {len(back)} "
                "candidate(s) it tried stayed within the allowed accuracy drop, so it went back to the unpruned model")
    if rejected:
        return (f"each of the {len(rejected)} step(s) the search tried lost more validation accuracy than allowed "
                "and was undone")
    if prun.get("method") in ("greedy", "j", "nsga2"):
        return "no change the search tried raised the predicted FPS within the allowed accuracy drop"
    return "the configured ratio keeps every channel"


def _bottleneck_moved(prun: Mapping[str, Any]) -> list[str]:
    """A greedy/J search's trajectory starts at the unpruned design: where its bottleneck was, and where the chosen
    step's (the step whose channel counts were delivered) is."""
    hist = prun.get("history") or []
    if prun.get("method") not in ("greedy", "j") or len(hist) < 2:
        return []
    after = prun.get("channels_after") or {}
    chosen = next((i for i in range(len(hist) - 1, 0, -1)
                   if all((hist[i].get("counts") or {}).get(n, a) == a for n, a in after.items())), None)
    b0 = hist[0].get("bottleneck")
    if chosen is None or not b0 or not hist[chosen].get("bottleneck"):
        return []
    b1 = hist[chosen]["bottleneck"]
    where = f"moved from {b0} to {b1}" if b1 != b0 else f"stayed at {b0}"
    return [f"The predicted bottleneck {where} (step {chosen} of {len(hist) - 1})."]


def _pruning_headline(prun: Mapping[str, Any]) -> str:
    """The summary's pruning row: what changed, in a few words (the section below says why)."""
    changed, lowered = _changes(prun)
    if not changed and not lowered:
        return f"{prun.get('method', '?')}: model unchanged (see Pruning)"
    what = [f"{sum(int(b) - int(a) for b, a in changed.values()):,} channels removed in {len(changed)} layer(s)"
            if changed else "", f"bits lowered in {len(lowered)} layer(s)" if lowered else ""]
    return f"{prun.get('method', '?')}: " + ", ".join(w for w in what if w)


def pruning_story(prun: Mapping[str, Any]) -> list[str]:
    """Sentences for the pruning section: what changed and why, or why nothing did (and, when the report names
    it in ``limited_by``, the layer pruning cannot speed up and the knob that would)."""
    changed, lowered = _changes(prun)
    out = []
    if changed or lowered:
        what = []
        if changed:
            b = sum(int(x[0]) for x in changed.values())
            a = sum(int(x[1]) for x in changed.values())
            what.append(f"removed {b - a:,} output channels in {len(changed)} layer(s) ("
                        + ", ".join(f"{n} {x[0]} → {x[1]}" for n, x in list(changed.items())[:6])
                        + (", …" if len(changed) > 6 else "") + ")")
        if lowered:
            what.append(f"lowered the bits of {', '.join(lowered)}")
        why = _METHOD_WHY.get(str(prun.get("method")), "")
        out.append(f"Pruning {' and '.join(what)}" + (f": {why}." if why else "."))
        out += _bottleneck_moved(prun)
    else:
        out.append(f"Pruning left the model unchanged: {_why_unchanged(prun)}.")
    if prun.get("limited_by"):
        out.append(f"Limited by: {_limited_by_text(prun['limited_by'])}.")
    return out


def _pruning_section(prun: Any, charts: Mapping[str, Any], fold: Mapping[str, Any], acc: Mapping[str, Any],
                     module_order: Sequence[str] = ()) -> list[str]:
    parts: list[str] = []
    if prun:
        from .pruning.reporting import pruning_rows, target_sentence

        parts.append("<h2>Pruning</h2>")
        parts.append("<p>" + " ".join(html.escape(t) for t in pruning_story(prun)) + "</p>")
        missed = target_sentence(prun)
        if missed:
            parts.append(f'<p class="note"><b>{html.escape(missed)}</b></p>')
        parts.append(_table(["figure", "value"], pruning_rows(prun, fold.get("predicted_fps"))))
        if prun.get("pareto"):
            chosen = {"fps": prun.get("fps_after"), "accuracy": acc.get("final")}
            parts.append(_img(_plot_pareto(prun["pareto"], chosen), "accuracy vs FPS Pareto front"))
        if CHANNELS_PRUNED_CHART in charts:
            parts.append(_img(charts[CHANNELS_PRUNED_CHART], CHANNELS_PRUNED_CHART))
        parts += _bits_section(in_order(prun.get("bits_before") or {}, module_order), prun.get("bits_after"))
    elif CHANNELS_CHART in charts:
        parts.append("<h2>Channels</h2>")
        parts.append(_img(charts[CHANNELS_CHART], CHANNELS_CHART))
    return parts


def _bits_section(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """Per-layer weight and activation bits before → after a mixed-precision search (changed rows marked)."""
    if not before:
        return []

    def cell(b: Mapping[str, Any], a: Mapping[str, Any], key: str) -> str:
        x, y = b.get(key), a.get(key)
        return "–" if x is None else (f"{x}" if x == y else f"{x} → {y}")

    rows = []
    for name, b in before.items():
        a = (after or {}).get(name, b)
        changed = b != a
        rows.append([name, cell(b, a, "weight"), cell(b, a, "act"), "lowered" if changed else ""])
    return ["<h3>Bits per layer (mixed precision)</h3>",
            _table(["layer", "weight bits", "activation bits", ""], rows)]


def _verification_and_folding_sections(ver: Mapping[str, Any], fold: Mapping[str, Any],
                                        bottleneck: str | None = None) -> list[str]:
    parts: list[str] = []
    # verification
    if ver.get("stages"):
        parts.append("<h2>Verification</h2>")
        vrows = [(s.get("name"), s.get("max_abs_diff"), s.get("argmax_agreement"), s.get("integer"), s.get("exact"),
                  _passfail(s.get("passed")), s.get("note", "")) for s in ver["stages"]]
        parts.append(_table(["stage", "max |Δ|", "argmax agreement", "integer", "exact", "result", "note"], vrows,
                            num_cols=(1, 2)))

    # the folding FINN applied
    if fold.get("layers"):
        parts.append("<h2>Folding (as built)</h2>")
        keys = sorted({k for v in fold["layers"].values() for k in v}, key=lambda k: (k not in ("PE", "SIMD"), k))
        parts.append(_table(["layer (pipeline order)", *keys],
                            [(n, *(v.get(k, "") for k in keys)) for n, v in fold["layers"].items()], highlight=bottleneck))
        parts.append(f'<p class="note">{html.escape(_FOLD_NOTE.get(fold.get("mode"), ""))} FINN applied this '
                     "folding file in the build; our estimate and the RTL simulation are of the same design.</p>")
    return parts


def _compare_section(finn_layers: dict[str, dict[str, float]], ours_layers: dict[str, dict[str, float]],
                     bottleneck: str | None, chart: Any) -> list[str]:
    parts: list[str] = []
    if finn_layers and ours_layers:
        parts.append("<h2>FINN's estimate vs our estimator</h2>")
        parts.append(_img(chart, COMPARE_CHART))
        crow = []
        for n in finn_layers:
            if n not in ours_layers:
                continue
            f, o = finn_layers[n], ours_layers[n]
            crow.append((n, f.get("cycles"), o.get("cycles"), f.get("LUT"), o.get("LUT"), f.get("BRAM_18K"),
                         o.get("BRAM_18K"), f.get("DSP"), o.get("DSP")))
        parts.append(_table(["layer", "cycles FINN", "cycles ours", "LUT FINN", "LUT ours", "BRAM FINN", "BRAM ours",
                             "DSP FINN", "DSP ours"], crow, num_cols=range(1, 9), highlight=bottleneck))
        only = sorted(set(ours_layers) - set(finn_layers))
        if only:
            parts.append(f'<p class="note">Only in our estimate: {html.escape(", ".join(only))}.</p>')
    return parts


def _rtlsim_and_timings_sections(report: Mapping[str, Any]) -> list[str]:
    parts: list[str] = []
    # rtlsim
    rtl = report.get("rtlsim")
    if isinstance(rtl, Mapping) and rtl:
        parts.append("<h2>RTL simulation</h2>")
        parts.append(_table(["figure", "value"],
                            [(k, v if not isinstance(v, (dict, list)) else json.dumps(v)[:200]) for k, v in rtl.items()]))

    parts += _synth_section(report.get("synth"))

    # timings
    tim = report.get("timings")
    if isinstance(tim, Mapping) and tim:
        parts.append("<h2>Stage timings</h2>")
        parts.append(_table(["stage", "seconds"], [(k, _num(v)) for k, v in tim.items()], num_cols=(1,)))
    return parts


@dataclass(frozen=True)
class _Layers:
    """A report's per-layer figures, every dict in pipeline order (what each chart and table draws)."""

    finn: dict[str, dict[str, float]]
    ours: dict[str, dict[str, float]]
    bottleneck: str | None
    clock: float | None
    budget: Mapping[str, float]
    channels_before: dict[str, Any]
    channels_after: dict[str, Any] | None

    @classmethod
    def of(cls, report: Mapping[str, Any]) -> _Layers:
        board = report.get("board") or {}
        order = graph_order(report)
        fe, ours = report.get("finn_estimate") or {}, report.get("estimate") or {}
        model, prun = report.get("model") or {}, report.get("pruning") or {}
        module_order = [str(n) for n in model.get("order") or []]  # the model's layers, forward order
        before = prun.get("channels_before") or (None if prun else model.get("channels")) or {}
        after = prun.get("channels_after") if prun else None
        return cls(in_order(layer_table(fe), order), in_order(layer_table(ours), order),
                   fe.get("max_cycles_node") or ours.get("bottleneck"),
                   _num(report.get("clock_mhz")) or _num(board.get("clock_mhz")), board.get("budget") or {},
                   in_order(before, module_order), in_order(after, module_order) if after else None)


def layer_charts(report: Mapping[str, Any]) -> dict[str, Any]:
    """The per-layer charts of the page (matplotlib figures, or None without data), keyed by their alt text;
    each lists the layers in pipeline order and marks the bottleneck where it sits."""
    v = _Layers.of(report)
    src, src_name = (v.finn, "FINN estimate") if v.finn else (v.ours, "our estimate")
    charts = {CYCLES_CHART: _plot_cycles(v.finn, v.ours, v.bottleneck, v.clock),
              BUDGET_CHART: _plot_budget(src, v.budget, src_name)}
    if v.finn and v.ours:
        charts[COMPARE_CHART] = _plot_compare(v.finn, v.ours, v.bottleneck)
    if v.channels_before:
        alt = CHANNELS_PRUNED_CHART if report.get("pruning") else CHANNELS_CHART
        charts[alt] = _plot_channels(v.channels_before, v.channels_after)
    return charts


def _layers_section(finn_layers: dict[str, dict[str, float]], bottleneck: str | None,
                    clock: float | None) -> list[str]:
    """Per-layer cycles and resources (FINN's estimate) in pipeline order, the bottleneck's row marked."""
    if not finn_layers:
        return []
    keys = [k for k in ("cycles", *BUDGET_KEYS) if any(k in r for r in finn_layers.values())]
    rows = [(n, *(r.get(k) for k in keys)) for n, r in finn_layers.items()]
    head = ["layer (pipeline order)", *("cycles / frame" if k == "cycles" else k for k in keys)]
    note = ""
    if bottleneck in finn_layers and clock and finn_layers[bottleneck].get("cycles"):
        note = (f'<p class="note">The marked row, {html.escape(bottleneck)}, sets the pace: '
                f"{clock * 1e6 / finn_layers[bottleneck]['cycles']:,.0f} FPS at {clock:g} MHz.</p>")
    return [_table(head, rows, num_cols=range(1, len(head)), highlight=bottleneck), note]


def render_report_html(report: Mapping[str, Any]) -> str:
    """The HTML page (one string, no external resources) for a ``report.json`` dict.

    Every per-layer chart and table lists the layers in pipeline (graph) order (:func:`graph_order`) and marks
    the bottleneck where it sits in the pipeline.
    """
    board = report.get("board") or {}
    v = _Layers.of(report)
    charts = layer_charts(report)
    model = report.get("model") or {}
    fold = report.get("folding") or {}
    if isinstance(fold.get("layers"), Mapping):
        fold = {**fold, "layers": in_order(fold["layers"], graph_order(report))}
    title = f"hapfpga report — {model.get('name', 'model')} on {board.get('name', '?')}"

    parts: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += _summary_section(report, v.clock)

    parts.append("<h2>Throughput: cycles per layer, in pipeline order</h2>")
    parts.append(_img(charts[CYCLES_CHART], CYCLES_CHART))
    parts.append('<p class="note">A dataflow pipeline runs at the pace of its slowest layer: FPS = clock / max '
                 "cycles (FINN-R, Sec. 4). The red bar is the bottleneck; raise its PE/SIMD or prune it.</p>")
    parts += _layers_section(v.finn, v.bottleneck, v.clock)

    parts.append("<h2>Resources against the board budget</h2>")
    parts.append(_img(charts[BUDGET_CHART], BUDGET_CHART))
    if v.budget:
        parts.append(f'<p class="note">Budget = capacity × utilisation limits of {html.escape(str(board.get("name")))} '
                     "(FINN's DEFAULT_RES_LIMITS unless the board file says otherwise). FIFOs and width converters are "
                     "not in FINN's per-layer estimate.</p>")

    parts += _pruning_section(report.get("pruning"), charts, fold, report.get("accuracy") or {}, model.get("order") or [])
    parts += _verification_and_folding_sections(report.get("verification") or {}, fold, v.bottleneck)
    if COMPARE_CHART in charts:
        parts += _compare_section(v.finn, v.ours, v.bottleneck, charts[COMPARE_CHART])
    parts += _rtlsim_and_timings_sections(report)

    parts.append('<p class="note">Generated by hapfpga from report.json.</p></body></html>')
    return "\n".join(parts)


def write_report_html(report: Mapping[str, Any] | str | Path, path: str | Path) -> Path:
    """Write ``report.html`` for a report dict (or the path of a ``report.json``); returns the path."""
    if isinstance(report, (str, Path)):
        report = json.loads(Path(report).read_text())
    from .runstate import atomic_write_text

    return atomic_write_text(path, render_report_html(report))

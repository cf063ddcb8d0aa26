"""The summary table printed at the end of ``hapfpga run`` (rich)."""

from __future__ import annotations

from typing import Any

__all__ = ["print_summary"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 10 else f"{v:,.0f}"
    return str(v)


def print_summary(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    board = report["board"]
    budget = board["budget"]
    t = Table(title=f"hapfpga run — {report['model']['name']} on {report['dataset']['name']}, "
                    f"{board['name']} @ {report['clock_mhz']:g} MHz")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("note")
    acc = report["accuracy"]
    t.add_row("test accuracy (baseline)", f"{acc['baseline']:.4f}", f"{report['dataset']['n_test']} test samples")
    t.add_row("test accuracy (final)", f"{acc['final']:.4f}", "after pruning" if "pruning" in report else "same model")
    m = report["model"]
    t.add_row("parameters / MACs", f"{m['params']:,} / {m['macs']:,}", "")
    fold = report["folding"]
    t.add_row("folding", fold["mode"], f"our predicted FPS {_fmt(fold.get('predicted_fps'))}"
              + (f", bound {_fmt(fold['bound_fps'])}" if fold.get("bound_fps") else ""))
    fe = report["finn_estimate"]
    t.add_row("FINN estimate FPS", _fmt(fe["fps"]), f"bottleneck {fe['max_cycles_node']} ({fe['max_cycles']:,} cycles)")
    for k in ("LUT", "BRAM_18K", "URAM", "DSP"):
        use, cap = fe["total"][k], budget[k]
        t.add_row(f"FINN estimate {k}", f"{use:,.0f}", f"budget {cap:,.0f}" + (" [red]OVER[/red]" if use > cap else ""))
    t.add_row("fits the board", "yes" if fe["fits"] else "[red]no[/red]", ", ".join(fe.get("over_budget", [])))
    ver = report["verification"]
    for s in ver.get("stages", []):
        note = s.get("note", "")
        t.add_row(f"verify {s['name']}", "pass" if s.get("passed") else "[red]FAIL[/red]",
                  f"max|Δ|={s.get('max_abs_diff')}, argmax agree {s.get('argmax_agreement')}" + (f"; {note}" if note else ""))
    if "pruning" in report:
        p = report["pruning"]
        t.add_row("pruning", str(p.get("method")), f"FPS {_fmt(p.get('fps_before'))} → {_fmt(p.get('fps_after'))}")
    if "rtlsim" in report:
        r = report["rtlsim"]
        t.add_row("RTL simulation", "pass" if r.get("passed") else "[red]FAIL[/red]", str(r.get("summary", "")))
    console.print(t)

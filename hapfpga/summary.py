"""Summaries: the size of a model (parameters, MACs, channels) and the table printed at the end of ``hapfpga run``.

This is the one parameter/MAC counter of hapfpga (the run report, the pruning stage and the pruning search
all call it). MACs follow the usual convention (e.g. Sze et al., "Efficient Processing of Deep Neural
Networks", 2017): a convolution costs ``H_out · W_out · C_out · (C_in / groups) · K_h · K_w`` MACs per input, a
linear layer ``in_features · out_features`` per vector; BatchNorm, activations and pooling are not counted
(FINN folds BN into thresholds). Shapes are taken from one forward pass with hooks, so any layout works.
Parameters are all of ``model.parameters()`` (weights, biases, BatchNorm and learned quantiser scales).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["count_params", "count_macs", "layer_macs", "model_summary", "print_summary", "pruning_changed"]


def _mac_layers(model: torch.nn.Module) -> dict[str, Any]:
    import torch

    return {n: m for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear))}


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters: every tensor of ``model.parameters()``."""
    return int(sum(p.numel() for p in model.parameters()))


def layer_macs(model: torch.nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """MACs per conv/linear layer (names as in ``model.named_modules()``) for ONE input: the first of
    ``example_input`` (Brevitas ``QuantConv2d``/``QuantLinear`` included; a layer called twice counts twice)."""
    import torch

    layers = _mac_layers(model)
    macs: dict[str, int] = {}
    hooks = []

    def hook(name: str):
        def fn(mod: Any, inp: Any, out: Any) -> None:
            o = getattr(out, "value", out)  # the plain tensor of a Brevitas QuantTensor
            if isinstance(mod, torch.nn.Linear):
                n = (o.numel() // mod.out_features) * mod.in_features * mod.out_features
            else:
                k = 1
                for d in mod.kernel_size:
                    k *= int(d)
                n = o.numel() * (mod.in_channels // mod.groups) * k
            macs[name] = macs.get(name, 0) + int(n)

        return fn

    for name, m in layers.items():
        hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return macs


def count_macs(model: torch.nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of conv/linear layers for one input (the first of ``example_input``)."""
    return int(sum(layer_macs(model, example_input).values()))


def model_summary(model: torch.nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """``{"params": int, "macs": int, "channels": {layer_name: out_channels}}`` for a zero input of ``input_shape``
    (conv/linear layers, names as in ``model.named_modules()``)."""
    import torch

    macs = count_macs(model, torch.zeros((1, *[int(d) for d in input_shape])))
    channels = {
        name: int(m.out_features if isinstance(m, torch.nn.Linear) else m.out_channels)
        for name, m in _mac_layers(model).items()
    }
    return {"params": count_params(model), "macs": macs, "channels": channels}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if v < 10 else f"{v:,.0f}"
    return str(v)


def pruning_changed(p: dict[str, Any]) -> bool:
    """Whether the pruning stage changed the model: channels or per-layer bits, or weights masked (unstructured)."""
    if p.get("method") == "unstructured":
        return bool((p.get("sparsity") or {}).get("sparsity", 1.0))
    return (p.get("channels_after") != p.get("channels_before") or p.get("bits_after") != p.get("bits_before")
            or (p.get("params") or {}).get("after") != (p.get("params") or {}).get("before"))


def _final_note(p: dict[str, Any] | None) -> str:
    if p is None:
        return "same model"
    if pruning_changed(p):
        return "after pruning"
    return "pruning removed nothing" + (f" (limited by {p['limited_by']['layer']})" if p.get("limited_by") else "")


def _pruning_rows(t: Any, report: dict[str, Any]) -> None:
    from .pruning.reporting import PruningReport

    p = PruningReport.from_dict(report)
    missed = f"; target {_fmt(p.target.fps)} [red]not met[/red]" if p.target.met is False else ""
    t.add_row("pruning", str(p.method), f"search's predicted FPS {_fmt(p.fps.before)} → {_fmt(p.fps.after)}{missed}")
    lim = p.details.get("limited_by")
    if lim:
        t.add_row("pruning limited by", str(lim["layer"]), f"{lim['reason']}; would help: {lim['knob']}")


def _variant_note(fold: dict[str, Any]) -> str:
    """Why the fold stage kept the graph it kept (``folding.variant_note``), else each folded graph's FPS."""
    if fold.get("variant_note"):
        return str(fold["variant_note"])
    fps = fold.get("variant_fps") or {}
    return ", ".join(f"{k} {_fmt(v) if v else 'does not fit'}" for k, v in fps.items())


def print_summary(report: dict[str, Any], console: Any) -> None:
    """The summary table ``hapfpga run`` prints at the end (readable at 80 columns)."""
    from .commands.table import cli_table

    board = report["board"]
    budget = board["budget"]
    t = cli_table(f"hapfpga run — {report['model']['name']} on {report['dataset']['name']}, "
                  f"{board['name']} @ {report['clock_mhz']:g} MHz", ("figure", "value", "note"), right=("value",))
    acc = report["accuracy"]
    t.add_row("test accuracy (baseline)", f"{acc['baseline']:.4f}", f"{report['dataset']['n_test']} test samples")
    t.add_row("test accuracy (final)", f"{acc['final']:.4f}", _final_note(report.get("pruning")))
    m = report["model"]
    t.add_row("parameters / MACs", f"{m['params']:,} / {m['macs']:,}", "")
    fold = report["folding"]
    t.add_row("folding", fold["mode"], f"our predicted FPS {_fmt(fold.get('predicted_fps'))}"
              + (f", bound {_fmt(fold['bound_fps'])}" if fold.get("bound_fps") else ""))
    if fold.get("variant_note") or fold.get("variant") == "mixed":
        t.add_row("folding design", str(fold.get("variant")), _variant_note(fold))
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
        _pruning_rows(t, report["pruning"])
    if "rtlsim" in report:
        r = report["rtlsim"]
        t.add_row("RTL simulation", "pass" if r.get("passed") else "[red]FAIL[/red]", str(r.get("summary", "")))
    console.print(t)

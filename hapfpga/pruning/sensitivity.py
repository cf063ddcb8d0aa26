"""Per-layer sensitivity analysis: accuracy vs kept ratio of one group at a time, without fine-tuning.

Li et al., "Pruning Filters for Efficient ConvNets" (ICLR 2017), §4.1: prune each layer alone, measure accuracy
without retraining, and use the curves to set per-layer pruning rates. Here the curves also feed the
hardware-aware search (sensitivity = accuracy lost per channel removed). Stored as JSON and plotted as PNG.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .apply import ChannelGraph

__all__ = ["Sensitivity", "analyse_sensitivity"]


@dataclass(frozen=True)
class Sensitivity:
    """``curves[group] = ((ratio, kept channels, accuracy), ...)`` plus the unpruned accuracy."""

    baseline: float
    curves: Mapping[str, tuple[tuple[float, int, float], ...]]

    def drop_at(self, group: str, ratio: float) -> float:
        """Accuracy drop of ``group`` at the measured ratio closest to ``ratio``."""
        pts = self.curves[group]
        r, _, a = min(pts, key=lambda p: abs(p[0] - ratio))
        return self.baseline - a

    def as_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "curves": {g: [{"ratio": r, "channels": n, "accuracy": a} for r, n, a in c] for g, c in self.curves.items()},
        }

    def save(self, out_dir: str | Path, *, plot: bool = True) -> Path:
        """Write ``sensitivity.json`` (and ``sensitivity.png`` with matplotlib) into ``out_dir``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / "sensitivity.json"
        path.write_text(json.dumps(self.as_dict(), indent=2))
        if plot:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 4))
            for g, c in self.curves.items():
                ax.plot([p[0] for p in c], [100 * p[2] for p in c], marker="o", label=g)
            ax.axhline(100 * self.baseline, color="k", ls="--", lw=0.8)
            ax.set_xlabel("kept ratio")
            ax.set_ylabel("accuracy (%) without fine-tuning")
            ax.legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(d / "sensitivity.png", dpi=100)
            plt.close(fig)
        return path


def analyse_sensitivity(
    model: torch.nn.Module,
    graph: ChannelGraph,
    importance: Callable[..., Any],
    x: Any,
    y: Any,
    *,
    ratios: Sequence[float] = (0.75, 0.5, 0.25, 0.125),
    groups: Sequence[str] | None = None,
    fold_aware: bool = True,
    device: Any = None,
) -> Sensitivity:
    """Accuracy on ``(x, y)`` when only one group is pruned to each ratio (importance-ranked channels), measured
    with :func:`hapfpga.train.evaluate` on ``device`` (default: where the model is)."""
    from ..train import evaluate
    from .apply import prune_to_counts
    from .plan import fold_friendly_count

    base = evaluate(model, x, y, device=device)
    curves: dict[str, tuple[tuple[float, int, float], ...]] = {}
    names = groups or [g for g, grp in graph.groups.items() if grp.prunable]
    for g in names:
        c = graph.groups[g].channels
        pts = []
        for r in ratios:
            n = fold_friendly_count(c, c * r) if fold_aware else max(1, round(c * r))
            pruned, _ = prune_to_counts(model, graph.example_input, {g: n}, importance, graph=graph)
            pts.append((float(r), int(n), evaluate(pruned, x, y, device=device)))
        curves[g] = tuple(pts)
    return Sensitivity(base, curves)

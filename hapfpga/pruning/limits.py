"""Why pruning cannot raise the FPS: the bottleneck layer that no channel count speeds up, and the knob that would.

A dataflow design runs at the pace of its slowest layer. Removing channels shortens the layers whose cycles
depend on channel counts (an MVAU's ``MH·MW/(PE·SIMD)``), but not a layer whose cycles at full parallelism are
set by its feature map: the first sliding-window generator (its channels are the data's; at best it reads one
pixel per cycle, FINN's ``parallel_window``), a pool (one pixel per cycle at ``PE = channels``), a classifier
whose outputs are the classes. When such a layer bounds the FPS, every pruning search ends where it began.

:func:`pruning_limit` asks the search's own FPS predictor (``hw(knobs) -> HwPoint``): if the design with every
group at its smallest candidate count is no faster than the chosen one and has the same bottleneck, that
bottleneck is beyond pruning's reach, and the result names it with the knob that would help. Pure: plain values
and a callable in, a frozen value out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["PruningLimit", "pruning_limit", "finn_kind"]

#: what raises the FPS of a layer pruning cannot speed up, by FINN node kind
_KNOBS: dict[str, tuple[str, str]] = {
    "ConvolutionInputGenerator": (
        "a sliding-window generator's cycles are its input feature map's positions (at best one pixel per "
        "cycle, FINN's parallel window), whatever the channels",
        "a smaller input (data resolution), a stride-2 first convolution, or a higher clock_mhz",
    ),
    "Pool": (
        "a pool reads one pixel per cycle at full parallelism, so its cycles are its input's H×W",
        "pooling earlier, a strided convolution before it, or a higher clock_mhz",
    ),
    "StreamingMaxPool": (
        "a max-pool reads one pixel per cycle at full parallelism, so its cycles are its input's H×W",
        "pooling earlier, a strided convolution before it, or a higher clock_mhz",
    ),
    "MVAU": (
        "its channels cannot go lower (the data's, the classes', or pruning.min_ratio's floor)",
        "a lower pruning.min_ratio, fewer classes or input channels, or a higher clock_mhz",
    ),
    "VVAU": (
        "its channels cannot go lower (the data's, or pruning.min_ratio's floor)",
        "a lower pruning.min_ratio or a higher clock_mhz",
    ),
}
_OTHER = ("its cycles at full parallelism do not depend on the channels pruning removes",
          "a smaller feature map before it or a higher clock_mhz")


def finn_kind(node: str) -> str:
    """FINN's op type of a node name after ``step_specialize_layers`` (``ConvolutionInputGenerator_rtl_0`` →
    ``ConvolutionInputGenerator``)."""
    return re.sub(r"(_(hls|rtl))?_\d+$", "", node)


@dataclass(frozen=True)
class PruningLimit:
    """The bottleneck no channel count speeds up: FINN node, its kind, the FPS it allows, why, and what helps."""

    layer: str
    kind: str
    fps: float
    reason: str
    knob: str

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "kind": self.kind, "fps": self.fps, "reason": self.reason, "knob": self.knob,
                "sentence": self.sentence()}

    def sentence(self) -> str:
        return (f"Pruning cannot raise the FPS above {self.fps:,.0f}: the bottleneck is {self.layer}, and "
                f"{self.reason}; {self.knob} would.")


def pruning_limit(
    hw: Callable[[Mapping[str, int]], Any],
    knobs: Mapping[str, int],
    candidates: Mapping[str, Sequence[int]],
    groups: Sequence[str],
    *,
    rel_tol: float = 1e-6,
) -> PruningLimit | None:
    """The bottleneck of the design at ``knobs`` if pruning every group in ``groups`` to its smallest candidate
    (other knobs as in ``knobs``) is no faster and keeps that bottleneck; None when pruning could still help or the
    predictor names no bottleneck (a design that does not fit)."""
    now = hw(knobs)
    if not now.fits or now.fps <= 0 or not now.bottleneck:
        return None
    floor = hw({**knobs, **{g: min(candidates[g]) for g in groups if candidates.get(g)}})
    if floor.fps > now.fps * (1 + rel_tol) or floor.bottleneck != now.bottleneck:
        return None
    kind = finn_kind(now.bottleneck)
    reason, knob = _KNOBS.get(kind, _OTHER)
    return PruningLimit(layer=now.bottleneck, kind=kind, fps=float(now.fps), reason=reason, knob=knob)

"""FIFO sizing from simulation (FINN's characterisation idea, finn-plus ``InsertAndSetFIFODepths``).

1. Build the stitched design with ``FINN_SIMULATION`` so that every ``StreamingFIFO_rtl`` is finn-rtllib's
   ``fifo_gauge``: an unbounded queue that is always ready and records its maximum fill (``maxcount``).
2. Stream N frames, the input throttled to about the bottleneck layer's rate and the output never
   back-pressured; the maximum fill of each FIFO is what it must hold so that no producer ever waits on it
   (measured: CNV-w2a2 63,515 words of FIFO unthrottled vs 10,048 throttled, both stall-free).
3. Write ``depth = max(2, maxcount + margin)`` into each FIFO node, regenerate its HDL and simulate again
   with real FIFOs: the steady-state cycles per frame must equal the unbounded run's (no stall beyond the
   bottleneck layer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .prepare import generate_hdl
from .sim import simulate

__all__ = ["FifoSizing", "size_fifos", "apply_fifo_depths"]


@dataclass
class FifoSizing:
    """Depths found and the throughput before/after."""

    depths: dict[str, int]  # FIFO node -> new depth
    max_fill: dict[str, int]  # FIFO node -> gauge maximum
    old_depths: dict[str, int]
    cycles_per_frame_before: float  # the design as given
    cycles_per_frame_unbounded: float  # with unbounded FIFOs
    cycles_per_frame_after: float  # with the new depths
    latency_after: int
    notes: list[str] = field(default_factory=list)

    @property
    def stall_free(self) -> bool:
        """The sized design runs at the unbounded design's rate (within 1%)."""
        return self.cycles_per_frame_after <= 1.01 * self.cycles_per_frame_unbounded

    def as_dict(self) -> dict[str, Any]:
        return {
            "depths": self.depths,
            "max_fill": self.max_fill,
            "old_depths": self.old_depths,
            "cycles_per_frame_before": self.cycles_per_frame_before,
            "cycles_per_frame_unbounded": self.cycles_per_frame_unbounded,
            "cycles_per_frame_after": self.cycles_per_frame_after,
            "latency_after": self.latency_after,
            "stall_free": self.stall_free,
        }


def apply_fifo_depths(
    model: Any, depths: dict[str, int], fpgapart: str, clock_mhz: float, codegen_dir: str | Path
) -> Any:
    """Set ``depth`` on the named StreamingFIFO nodes and regenerate their HDL (in place; returns model)."""
    from finn.util.basic import getHWCustomOp
    from qonnx.core.modelwrapper import ModelWrapper

    for node in model.graph.node:
        if node.name in depths:
            getHWCustomOp(node).set_nodeattr("depth", int(depths[node.name]))
    # regenerate only the FIFOs: generate_hdl on a view holding just them
    sub = ModelWrapper(model.model.__deepcopy__())
    keep = [n for n in sub.graph.node if n.name in depths]
    del sub.graph.node[:]
    sub.graph.node.extend(keep)
    generate_hdl(sub, fpgapart, clock_mhz, codegen_dir)
    for n_new in sub.graph.node:
        n_old = model.get_node_from_name(n_new.name)
        n_old.CopyFrom(n_new)
    return model


def size_fifos(
    model: Any,
    x: np.ndarray,
    *,
    fpgapart: str,
    clock_mhz: float,
    codegen_dir: str | Path,
    cache_dir: str | Path | None = None,
    margin: int = 1,
    before: float | None = None,
    throttle: bool = True,
) -> tuple[Any, FifoSizing]:
    """Size every StreamingFIFO of ``model`` from an unbounded-FIFO simulation of ``x`` (N >= 2 frames).

    An input that is always valid fills the FIFOs near the input with whole frames (the unbounded gauge
    never pushes back). ``throttle=True`` (default) feeds the gauge run at about the bottleneck layer's rate instead
    (random input stalls with probability ``1 - 1.05 * words_per_frame / max_exp_cycles``), as a DMA
    behind a back-pressured accelerator would, which keeps those FIFOs small.
    """
    from finn.util.basic import getHWCustomOp

    if before is None:
        before = simulate(model, x, cache_dir=cache_dir).cycles_per_frame
    stall_in = 0.0
    if throttle:
        from .design import split_segment

        _, seg, _ = split_segment(model)
        first = getHWCustomOp(seg[0])
        words = int(np.prod(first.get_folded_input_shape(0)[:-1]))
        slowest = max(int(getHWCustomOp(n).get_exp_cycles() or 0) for n in seg)
        stall_in = max(0.0, 1.0 - 1.05 * words / slowest) if slowest else 0.0
    gauge = simulate(model, x, cache_dir=cache_dir, gauges=True, stall_in=stall_in, seed=3)
    old = {
        n.name: int(getHWCustomOp(n).get_nodeattr("depth"))
        for n in model.graph.node
        if n.op_type.startswith("StreamingFIFO") and n.name in gauge.monitors
    }
    depths = {name: max(2, int(fill) + margin) for name, fill in gauge.monitors.items()}
    model = apply_fifo_depths(model, depths, fpgapart, clock_mhz, codegen_dir)
    after = simulate(model, x, cache_dir=cache_dir)
    return model, FifoSizing(
        depths=depths,
        max_fill=dict(gauge.monitors),
        old_depths=old,
        cycles_per_frame_before=float(before),
        cycles_per_frame_unbounded=gauge.cycles_per_frame,
        cycles_per_frame_after=after.cycles_per_frame,
        latency_after=after.latency_cycles,
    )

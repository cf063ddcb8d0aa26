"""Side by side: our estimate, FINN's per-node estimate and Yosys for one FINN node (adapter; lazy FINN imports).

A row has, per resource (LUT, LUTRAM, FF, BRAM18, URAM, DSP), ``ours``, ``finn`` and ``yosys``. Our estimator and
FINN's (``node_res_estimation``) give LUT as one number (logic + LUTRAM); Yosys separates them, and the ratios use
Yosys's total. Neither estimator models FFs (``None``). HLS-only nodes (no RTL FINN can give us without Vitis HLS)
get a row with ``yosys = None`` and ``note`` saying so — never a number we did not measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..boards import BoardSpec
from .yosys import SynthCounts

__all__ = ["ResourceRow", "LayerComparison", "compare_node", "HLS_ONLY_NOTE", "RESOURCES"]

RESOURCES: tuple[str, ...] = ("LUT", "LUTRAM", "FF", "BRAM18", "URAM", "DSP")
_EST = {"LUT": "LUT", "BRAM18": "BRAM_18K", "URAM": "URAM", "DSP": "DSP"}
HLS_ONLY_NOTE = "HLS-only layer: its RTL comes from Vitis HLS, which is not available here; not synthesised"


@dataclass(frozen=True)
class ResourceRow:
    ours: float | None
    finn: float | None
    yosys: float | None

    def ratio(self, which: str) -> float | None:
        """``which`` / Yosys (``None`` when either side is missing or Yosys says 0 and the estimate is not 0)."""
        est = getattr(self, which)
        if est is None or self.yosys is None:
            return None
        if self.yosys == 0:
            return 1.0 if est == 0 else None
        return est / self.yosys


@dataclass(frozen=True)
class LayerComparison:
    name: str
    op_type: str
    rows: dict[str, ResourceRow]
    synth: SynthCounts | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "op_type": self.op_type, "note": self.note}
        for k, r in self.rows.items():
            out[k] = {"ours": r.ours, "finn": r.finn, "yosys": r.yosys,
                      "ours_over_yosys": r.ratio("ours"), "finn_over_yosys": r.ratio("finn")}
        if self.synth is not None:
            out["yosys_seconds"] = self.synth.seconds
            out["yosys_mode"] = self.synth.mode
        return out


def _finn_estimate(node: Any, fpgapart: str) -> dict[str, float]:
    from finn.util.basic import getHWCustomOp

    return {k: float(v) for k, v in getHWCustomOp(node).node_res_estimation(fpgapart).items()}


def _our_estimate(model: Any, node: Any, board: BoardSpec) -> dict[str, float]:
    from ..estimate import estimate_layer
    from ..finn.graph import layers_from_model

    spec = next(s for s in layers_from_model(model) if s.name == node.name)
    r = estimate_layer(spec, board=board).resources
    return {"LUT": float(r.LUT), "BRAM_18K": float(r.BRAM_18K), "URAM": float(r.URAM), "DSP": float(r.DSP)}


def compare_node(model: Any, node: Any, board: BoardSpec, synth: SynthCounts | None, note: str = "") -> LayerComparison:
    """One node's row: ours, FINN's and (when synthesised) Yosys's numbers."""
    ours = _our_estimate(model, node, board)
    finn = _finn_estimate(node, board.part)
    y = synth
    if y is not None and y.mode == "elab":  # elaboration maps nothing: only the instantiated DSPs are counts
        rows = {k: ResourceRow(ours.get(_EST.get(k, "")), finn.get(_EST.get(k, "")), None) for k in RESOURCES}
        rows["DSP"] = ResourceRow(ours["DSP"], finn["DSP"], y.dsp)
        return LayerComparison(node.name, node.op_type, rows, y, note or "elaboration only: DSPs counted, no mapping")

    def row(key_est: str | None, y_val: float | None) -> ResourceRow:
        return ResourceRow(ours.get(key_est) if key_est else None, finn.get(key_est) if key_est else None, y_val)

    rows = {
        "LUT": row("LUT", None if y is None else y.lut_total),
        "LUTRAM": ResourceRow(None, None, None if y is None else y.lutram),
        "FF": ResourceRow(None, None, None if y is None else y.ff),
        "BRAM18": row("BRAM_18K", None if y is None else y.bram18),
        "URAM": row("URAM", None if y is None else y.uram),
        "DSP": row("DSP", None if y is None else y.dsp),
    }
    return LayerComparison(node.name, node.op_type, rows, y, note)

"""The ``synth`` stage: Yosys on every RTL layer of a model's open-simulatable FINN design (report.json ``synth``).

FINN prepares the design exactly as for RTL simulation (:func:`hapfpga.rtlsim.prepare.prepare_design`: RTL layers
preferred, standalone thresholds, width converters and FIFOs inserted, HDL generated); each RTL node is then
synthesised alone (``synth_xilinx``, or elaboration only with ``quick``) and, with ``whole``, the stitched
segment as one top. Every row puts our estimate, FINN's and Yosys's side by side; HLS-only nodes are listed with
their estimates and the note that they cannot be synthesised without Vitis HLS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..boards import BoardSpec
from ..errors import ConfigError
from .compare import HLS_ONLY_NOTE, RESOURCES, LayerComparison, ResourceRow, compare_node
from .yosys import family_for_part, find_yosys, run_yosys

__all__ = ["run_synth_stage", "synth_design", "totals", "closest_to_limit"]

#: resource column -> BoardSpec/Resources field (LUTRAM counts as LUT on the board)
_BOARD_KEY = {"LUT": "LUT", "FF": "FF", "BRAM18": "BRAM_18K", "URAM": "URAM", "DSP": "DSP"}


def totals(rows: list[LayerComparison]) -> dict[str, dict[str, float | None]]:
    """Per resource, the sum over layers of ours / FINN / Yosys (Yosys ``None`` if any layer lacks it)."""
    out: dict[str, dict[str, float | None]] = {}
    for res in RESOURCES:
        col: dict[str, float | None] = {}
        for who in ("ours", "finn", "yosys"):
            vals = [getattr(r.rows[res], who) for r in rows]
            col[who] = None if any(v is None for v in vals) else float(sum(vals))  # type: ignore[arg-type]
        r = ResourceRow(col["ours"], col["finn"], col["yosys"])
        col["ours_over_yosys"], col["finn_over_yosys"] = r.ratio("ours"), r.ratio("finn")
        out[res] = col
    return out


def closest_to_limit(tot: dict[str, dict[str, float | None]], board: BoardSpec) -> dict[str, Any]:
    """For each model (ours, FINN, Yosys): the resource with the highest fraction of the board's budget."""
    budget = board.budget
    out: dict[str, Any] = {}
    for who in ("ours", "finn", "yosys"):
        best = None
        for res, key in _BOARD_KEY.items():
            v = tot[res][who]
            cap = getattr(budget, key)
            if v is None or cap <= 0:
                continue
            frac = v / cap
            if best is None or frac > best[1]:
                best = (res, frac)
        out[who] = None if best is None else {"resource": best[0], "fraction_of_budget": round(best[1], 4)}
    return out


def synth_design(
    model: Any,
    board: BoardSpec,
    *,
    layers: list[str] | None = None,
    whole: bool = False,
    quick: bool = False,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Synthesise the RTL nodes of a prepared FINN graph (HDL generated); return the report section."""
    from finn.util.fpgadataflow import is_rtl_node

    from .sources import layer_sources, segment_sources

    family = family_for_part(board.part)
    mode = "elab" if quick else "synth"
    nodes = list(model.graph.node)
    if layers:
        names = {n.name for n in nodes}
        missing = [x for x in layers if x not in names]
        if missing:
            raise ConfigError(
                f"--layers names {', '.join(missing)}, which the prepared design does not have; its layers are "
                f"{', '.join(sorted(names))}."
            )
        nodes = [n for n in nodes if n.name in set(layers)]
    rows: list[LayerComparison] = []
    for k, node in enumerate(nodes):
        if not is_rtl_node(node):
            rows.append(compare_node(model, node, board, None, HLS_ONLY_NOTE))
            continue
        if progress is not None:
            progress(f"Yosys {mode} {k + 1}/{len(nodes)}: {node.name}")
        src = layer_sources(model, node.name)
        counts = run_yosys(src.files, src.data, src.top, family, mode=mode, cache_dir=cache_dir, progress=progress)
        rows.append(compare_node(model, node, board, counts))
    tot = totals(rows)
    out: dict[str, Any] = {
        "board": board.key,
        "part": board.part,
        "family": family,
        "mode": mode,
        "yosys": find_yosys(),
        "layers": [r.to_json() for r in rows],
        "total": tot,
        "closest_to_limit": closest_to_limit(tot, board),
        "yosys_seconds": round(sum(r.synth.seconds for r in rows if r.synth is not None), 1),
        "note": "Yosys maps LUTs less densely than Vivado and does not map array shift registers to SRLs (FF "
        "counts inflated): its LUT/FF are an upper-side second opinion; DSP and BRAM counts are structural.",
    }
    if whole:
        if progress is not None:
            progress(f"Yosys {mode}: the stitched design")
        src = segment_sources(model)
        w = run_yosys(src.files, src.data, src.top, family, mode=mode, cache_dir=cache_dir, progress=progress)
        out["whole"] = w.to_json() | {"nodes": list(src.nodes)}
    return out


def run_synth_stage(
    qonnx_path: str | Path,
    folding_json: str | Path | None,
    board: BoardSpec,
    run_dir: str | Path,
    *,
    layers: list[str] | None = None,
    whole: bool = False,
    quick: bool = False,
    clock_mhz: float | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    specialize: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """QONNX model + folding -> report.json's ``"synth"`` section (also written to ``run_dir/synth/synth.json``).

    ``specialize``: a chosen mixed design's per-node specialize config (the fold stage's, or ``hapfpga fold``'s
    ``F.specialize.json``): that design is synthesised as FINN builds it, or refused in one sentence where it has
    an HLS MVAU/VVAU (Yosys reads no HLS); without it every layer that can be RTL is (the RTL stand-in)."""
    find_yosys()  # fail fast: one sentence, exit 2, before FINN runs
    from qonnx.core.modelwrapper import ModelWrapper

    from ..finn.shim import ensure_finn
    from ..rtlsim.prepare import SYNTHESIS, prepare_design
    from ..rtlsim.stage import write_design_folding

    ensure_finn()
    work = Path(run_dir) / "synth"
    work.mkdir(parents=True, exist_ok=True)
    fold_file = write_design_folding(work, folding_json, specialize, SYNTHESIS)
    t0 = time.perf_counter()
    if progress is not None:
        progress("FINN: RTL layers, width converters, FIFOs, HDL")
    design = prepare_design(qonnx_path, work, finn_board=board.finn_board, fpgapart=board.part,
                            clock_mhz=float(clock_mhz or board.clock_mhz), folding_config_file=fold_file,
                            specialize=specialize)
    t_prep = time.perf_counter() - t0
    model = ModelWrapper(str(design.model_path))
    t0 = time.perf_counter()
    out = synth_design(model, board, layers=layers, whole=whole, quick=quick, cache_dir=cache_dir,
                       progress=progress)
    out["seconds"] = {"prepare": round(t_prep, 1), "synth": round(time.perf_counter() - t0, 1)}
    (work / "synth.json").write_text(json.dumps(out, indent=1))
    return out

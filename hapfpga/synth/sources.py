"""The exact RTL FINN generates for a layer (or a stitched segment), as Yosys-readable sources.

The sources come from the RTL simulation adapter (:func:`hapfpga.rtlsim.design.build_design`: FINN's generated
wrappers, finn-rtllib, memstream beside decoupled MVAUs, threshold/weight ``.dat`` files, a stitched top), which
already applies the Verilator parse fixes of :mod:`hapfpga.rtlsim.sources` (semantics-preserving). On top of those
we apply four textual fixes for Yosys's SystemVerilog frontend (open-synthesis note) and put back finn-rtllib's
original ``mvu_vvu_axi.sv``: the simulation's output-queue bug fix is not what FINN builds, and synthesis must
count what FINN builds.

1. ``thresholding.sv``: the reversed part-select ``p.ptr[M-1:SN+1]`` (empty at stage 0) is "unsynthesizable" to
   yosys-slang; ``(p.ptr[M-1:0] >> (SN+1))`` has the same value.
2. ``fifo.sv``, ``vpc.sv``: slang refuses `` `default_nettype `` inside a module: drop those lines.
3. ``mvu.sv``: the ``#100ns`` start-up watchdog (``blkRecoveryWatch``) is simulation-only: disable the block.
4. every file: FINN writes ``(* RAM_STYLE = ... *)``, ``SHREG_EXTRACT``, ``EXTRACT_ENABLE`` in upper case; Yosys
   honours only the lower-case attribute names (a "distributed" 256x32 FIFO became a RAMB18 before this fix).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HapError

__all__ = ["YOSYS_FIXES", "yosys_text", "SynthSources", "layer_sources", "segment_sources"]


def _fix_thresholding(text: str) -> str:
    old = "p.ptr[M-1:SN+1]"
    if old not in text and "(p.ptr[M-1:0] >> (SN+1))" not in text:
        raise HapError("finn-rtllib's thresholding.sv changed shape; update hapfpga.synth.sources._fix_thresholding.")
    return text.replace(old, "(p.ptr[M-1:0] >> (SN+1))")


def _drop_default_nettype(text: str) -> str:
    return re.sub(r"^[ \t]*`default_nettype[^\n]*\n", "", text, flags=re.M)


def _fix_mvu_watchdog(text: str) -> str:
    old = "if(1) begin : blkRecoveryWatch"
    if old not in text and "if(0) begin : blkRecoveryWatch" not in text:
        raise HapError("finn-rtllib's mvu.sv changed shape; update hapfpga.synth.sources._fix_mvu_watchdog.")
    return text.replace(old, "if(0) begin : blkRecoveryWatch")


_ATTR_RE = re.compile(r"\(\*(.*?)\*\)", re.S)
_ATTR_KEYS = re.compile(r"\b(RAM_STYLE|SHREG_EXTRACT|EXTRACT_ENABLE)(\s*=)")


def lower_attributes(text: str) -> str:
    """Lower-case the synthesis attribute names Yosys reads (``ram_style``, ``shreg_extract``, ``extract_enable``)."""
    return _ATTR_RE.sub(lambda m: "(*" + _ATTR_KEYS.sub(lambda k: k.group(1).lower() + k.group(2), m.group(1)) + "*)",
                        text)


#: file name -> Yosys fix (fix 4, :func:`lower_attributes`, applies to every file).
YOSYS_FIXES: dict[str, Callable[[str], str]] = {
    "thresholding.sv": _fix_thresholding,
    "fifo.sv": _drop_default_nettype,
    "vpc.sv": _drop_default_nettype,
    "mvu.sv": _fix_mvu_watchdog,
}


def _finn_original(name: str) -> str | None:
    """finn-rtllib's own text of a file the simulation adapter changes in behaviour (its bug fixes)."""
    from ..rtlsim.sources import RTLLIB_BUG_FIXES

    if name not in RTLLIB_BUG_FIXES:
        return None
    from ..finn.shim import ensure_finn

    ensure_finn()
    from finn.util.settings import get_settings

    hits = sorted(Path(get_settings().finn_rtllib).rglob(name))
    hits = [h for h in hits if "tb" not in h.parts]
    if not hits:
        raise HapError(f"finn-rtllib has no {name}; reinstall finn-plus 1.6.1.")
    return hits[0].read_text()


def yosys_text(name: str, text: str) -> str:
    """``text`` of file ``name`` as Yosys reads it: FINN's original where rtlsim fixes a bug, then our fixes."""
    orig = _finn_original(name)
    if orig is not None:
        text = orig
    fix = YOSYS_FIXES.get(name)
    if fix is not None:
        text = fix(text)
    return lower_attributes(text)


@dataclass(frozen=True)
class SynthSources:
    """What Yosys reads: files in read order (name -> text), data files (name -> bytes) and the top module."""

    files: dict[str, str]
    data: dict[str, bytes]
    top: str
    nodes: tuple[str, ...]


def _from_design(design: Any) -> SynthSources:
    from ..rtlsim.topgen import TOP_MODULE

    src = design.sources
    files = {n: yosys_text(n, src.files[n]) for n in src.ordered_names()}
    files["hap_top.v"] = design.top
    return SynthSources(files=files, data=dict(src.data), top=TOP_MODULE, nodes=tuple(design.nodes))


def layer_sources(model: Any, node_name: str) -> SynthSources:
    """One RTL node of a prepared FINN graph (generated HDL present) alone, with its weight streamer if any."""
    from ..rtlsim.design import build_design

    return _from_design(build_design(model, only=[node_name], isolate=True))


def segment_sources(model: Any) -> SynthSources:
    """The whole simulatable segment of a prepared FINN graph, stitched as FINN's stitched IP connects it."""
    from ..rtlsim.design import build_design

    return _from_design(build_design(model))

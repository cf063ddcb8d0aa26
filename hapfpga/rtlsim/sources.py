"""Collect a design's RTL sources into a build folder, applying our fixes to copies of finn-rtllib.

finn-plus 1.6.1's finn-rtllib needs two edits before Verilator 5.048 accepts it (issue 7 probe); we edit
COPIES in the build folder, never the installed package:

* ``mvu/add_multi.sv`` declares the constant function ``init_leaf_loads`` (and its typedef) inside a
  ``generate`` block, which Verilator cannot evaluate for a localparam: move both to module scope.
* ``fifo/hdl/fifo.sv`` uses an unpacked struct as the type of the ``INIT_ABITS`` constant function: make it
  ``packed``.

and one bug fix, which changes behaviour only where the original would lose data
(``fix_mvu_output_queue``, :data:`RTLLIB_BUG_FIXES`; the report names the nodes it matters for):

* ``mvu/mvu_vvu_axi.sv`` sizes its output queue for ``CORE_PIPELINE_DEPTH = 3 + $clog2(SIMD+1) + (SIMD == 1)``
  results in flight, but (a) ``mvu.sv``'s result pipeline is ``PIPELINE_DEPTH = 3 + $clog2(SIMD) + (SIMD == 1)
  + 1`` deep, one more whenever SIMD is not a power of two, and (b) the back-pressure lock ``OLock`` is a
  register, so the core accepts one more input after the first stalled output. With one result per cycle
  (``MW == SIMD``) a stalled output stream overflows the queue: Verilator stops on the file's own assertion
  "Overflowing output queue" (without the assertion, on a board, a result is lost). Two more entries cover
  both; see :func:`mvu_rtl_queue_overflows` for which configurations are affected.

Memory initialisation files (``memblock.dat`` of memstream, thresholding ``*.dat``) are copied next to the
sources under unique names and the HDL refers to them relative to the working directory, in which the
simulation runs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HapError
from ..folding.legal import mvu_rtl_queue_overflows  # the rule, shared with the folding optimiser

__all__ = [
    "SourceSet",
    "write_sources",
    "fix_add_multi",
    "fix_fifo",
    "fix_mvu_output_queue",
    "mvu_rtl_queue_overflows",
    "FIXES",
    "RTLLIB_BUG_FIXES",
]


def fix_add_multi(text: str) -> str:
    """Move ``leaf_load_t``/``init_leaf_loads`` out of the ``genTree`` generate block to module scope."""
    m = re.search(
        r"(\n[ \t]*// Compute the count of decendents[^\n]*\n)?([ \t]*typedef int unsigned\s+leaf_load_t\[2\*N-1\];"
        r".*?endfunction : init_leaf_loads\n)",
        text,
        flags=re.S,
    )
    if not m:
        return text
    block = m.group(2)
    text = text[: m.start(2)] + text[m.end(2) :]
    anchor = re.search(r"localparam int unsigned\s+L = \$clog2\(N\);[^\n]*\n", text)
    if not anchor:
        raise HapError(
            "finn-rtllib's add_multi.sv changed shape; update hapfpga.rtlsim.sources.fix_add_multi."
        )
    return text[: anchor.end()] + block + text[anchor.end() :]


def fix_fifo(text: str) -> str:
    """Make the struct behind ``INIT_ABITS`` packed."""
    return re.sub(r"typedef struct \{(\s*int unsigned\s+lo;)", r"typedef struct packed {\1", text)


_QUEUE_LINE = "localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH;"


def fix_mvu_output_queue(text: str) -> str:
    """Give ``mvu_vvu_axi.sv``'s output queue two more entries (see the module docstring)."""
    if _QUEUE_LINE not in text:
        if "MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH + 2;" in text:
            return text
        raise HapError(
            "finn-rtllib's mvu_vvu_axi.sv changed shape; update hapfpga.rtlsim.sources.fix_mvu_output_queue."
        )
    return text.replace(
        _QUEUE_LINE,
        "localparam int unsigned  MAX_IN_FLIGHT = CORE_PIPELINE_DEPTH + 2;"
        "  // hapfpga: + mvu.sv's extra stage + the registered OLock",
    )


#: file name -> text fix applied to the copy.
FIXES = {"add_multi.sv": fix_add_multi, "fifo.sv": fix_fifo, "mvu_vvu_axi.sv": fix_mvu_output_queue}
#: the fixes above that change behaviour (bug fixes, not Verilator parse fixes): reported per design.
RTLLIB_BUG_FIXES = {
    "mvu_vvu_axi.sv": "output queue sized for mvu.sv's pipeline depth + the registered back-pressure lock "
    "(finn-plus 1.6.1 overflows it when MW == SIMD and the output stalls)",
}


def write_sources(folder: Path, files: dict[str, str], data: dict[str, bytes]) -> None:
    """Write HDL ``files`` (text) and memory ``data`` files (bytes) by name into ``folder`` (the simulator's and
    Yosys' run folders both hold a design this way)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, t in files.items():
        (folder / n).write_text(t)
    for n, b in data.items():
        (folder / n).write_bytes(b)


@dataclass
class SourceSet:
    """An ordered, de-duplicated set of HDL sources plus data files, with the text that goes in each."""

    files: dict[str, str] = field(default_factory=dict)  # basename -> text (after fixes)
    data: dict[str, bytes] = field(default_factory=dict)  # basename -> content, read at run time

    def add_file(self, path: str | Path, text: str | None = None) -> str:
        path = Path(path)
        name = path.name
        if text is None:
            text = path.read_text()
        fix = FIXES.get(name)
        if fix is not None:
            text = fix(text)
        old = self.files.get(name)
        if old is not None and old != text:
            raise HapError(
                f"two different HDL files are both named {name} ({path}); rename one of the generated sources."
            )
        self.files[name] = text
        return name

    def add_text(self, name: str, text: str) -> str:
        self.files[name] = text
        return name

    def add_data(self, path: str | Path, name: str | None = None) -> str:
        path = Path(path)
        name = name or path.name
        self.data[name] = path.read_bytes()
        return name

    def ordered_names(self) -> list[str]:
        """Packages first (``*_pkg.sv``), then the rest in insertion order."""
        names = list(self.files)
        return [n for n in names if n.endswith("_pkg.sv")] + [n for n in names if not n.endswith("_pkg.sv")]

    def digest(self, *extra: str) -> str:
        h = hashlib.sha256()
        for n in sorted(self.files):
            h.update(n.encode() + b"\0" + self.files[n].encode() + b"\0")
        for n in sorted(self.data):
            h.update(n.encode() + b"\0" + hashlib.sha256(self.data[n]).digest())
        for e in extra:
            h.update(e.encode() + b"\0")
        return h.hexdigest()[:20]

    def write(self, folder: Path) -> None:
        write_sources(folder, self.files, self.data)

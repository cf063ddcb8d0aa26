"""Verilator backend: compile a ``hap_top`` with our testbench (cached), run it, read the results back.

Build cache: ``<cache_dir>/<digest>/`` where the digest covers every HDL source after our fixes, the data
files read at run time, the C++ models and every file in their include directories (``SimSources``), the
generated top and testbench, the compile flags and the Verilator version; the
simulation runs with that folder as working directory so that the relative ``$readmemh`` paths resolve.
A build is made in a temporary folder and renamed into place, so concurrent builds never see half a cache
entry. The default cache is ``~/.cache/hapfpga/rtlsim`` (never inside the repository).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..errors import HapError, VerificationError
from .sources import SourceSet
from .tools import Toolchain, find_toolchain
from .topgen import TOP_MODULE

__all__ = ["DEFAULT_CACHE", "SimSources", "SimBinary", "RunResult", "build", "run", "BuildError"]

DEFAULT_CACHE = Path.home() / ".cache" / "hapfpga" / "rtlsim"

_VERILATOR_FLAGS = (
    "--cc",
    "--exe",
    "--build",
    "--no-timing",
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "--x-assign",
    "fast",
    "-O3",
)


class BuildError(HapError):
    """Verilator or the C++ compiler rejected a design."""


@dataclass
class SimSources(SourceSet):
    """HDL sources plus the C++ that DPI-C models link into the simulation (compiled with the testbench).

    ``cxx``: file name -> C++ text; ``include_dirs``: ``-I`` folders for that C++ (read where they are, not
    copied; every file in them counts in the build digest).
    """

    cxx: dict[str, str] = field(default_factory=dict)
    include_dirs: list[Path] = field(default_factory=list)

    def add_cxx(self, name: str, text: str) -> str:
        self.cxx[name] = text
        return name

    def add_include_dir(self, folder: str | Path) -> None:
        folder = Path(folder).resolve()
        if folder not in self.include_dirs:
            self.include_dirs.append(folder)


def _folder_digest(folder: Path) -> str:
    """Content digest of every file under ``folder`` (names relative to it)."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file() and "__pycache__" not in q.parts):
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@dataclass(frozen=True)
class SimBinary:
    """A compiled simulation: the executable and the folder it runs in."""

    folder: Path
    exe: Path
    n_in: int
    n_out: int
    monitors: tuple[str, ...]
    build_seconds: float  # 0.0 when it came from the cache
    cached: bool


@dataclass
class RunResult:
    """What one simulation run produced (raw words; ``hapfpga.rtlsim.sim`` unpacks them)."""

    outputs: list[list[int]]  # per output stream: the accepted words
    out_cycles: list[list[int]]  # per output stream: the cycle each word was accepted
    in_cycles: list[list[int]]  # per input stream: the cycle each word was accepted
    cycles: int
    rc: int
    monitors: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0


def _tb_ports_header(n_in: int, n_out: int, monitors: tuple[str, ...]) -> str:
    ins = " ".join(f"X({k}, s{k})" for k in range(n_in))
    outs = " ".join(f"X({k}, m{k})" for k in range(n_out))
    mons = " ".join(f"X({m})" for m in monitors)
    return (
        f"#define HAP_N_IN {n_in}\n#define HAP_N_OUT {n_out}\n"
        f"#define HAP_FOR_INPUTS(X) {ins}\n#define HAP_FOR_OUTPUTS(X) {outs}\n"
        f"#define HAP_FOR_MONITORS(X) {mons}\n"
    )


def _verilator_cmd(
    tc: Toolchain,
    tmp: Path,
    incs: list[Path],
    *,
    jobs: int,
    opt: str,
    defines: tuple[str, ...],
    names: list[str],
    cxx: dict[str, str],
) -> list[str]:
    """Verilator's command line for the testbench and the sources ``names`` (in compile order) in ``tmp``."""
    return [
        str(tc.verilator),
        *_VERILATOR_FLAGS,
        "-j",
        str(jobs),
        "--top-module",
        TOP_MODULE,
        "--Mdir",
        "obj",
        "-CFLAGS",
        " ".join([f"-std=c++20 -I{tmp}", *(f"-I{d}" for d in incs)]),
        "-MAKEFLAGS",
        # PYTHON3: the wheel's verilated.mk runs its includer with a bare `python`, which a plain Debian/Ubuntu
        # user does not have (only python3); this interpreter always exists
        f"CFG_CXXFLAGS_PCH_I=-include OPT_FAST={opt} OPT_SLOW=-O0 OPT_GLOBAL={opt} PYTHON3={sys.executable}",
        *(f"+define+{d}" for d in defines),
        *names,
        "tb.cpp",
        *cxx,
    ]


def _compile(tc: Toolchain, tmp: Path, cmd: list[str]) -> float:
    """Run Verilator in ``tmp`` (log in ``build.log``); its seconds, or ``BuildError`` with the first errors."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tmp, env=tc.env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    (tmp / "build.log").write_text(" ".join(cmd) + "\n" + proc.stdout + "\n" + proc.stderr)
    if proc.returncode != 0 or not (tmp / "obj" / f"V{TOP_MODULE}").is_file():
        errs = [ln for ln in proc.stderr.splitlines() if "%Error" in ln or "error:" in ln][:3]
        raise BuildError(
            f"Verilator could not build the simulation ({'; '.join(errs) or 'see log'}); the full log is "
            f"{tmp / 'build.log'}."
        )
    return seconds


def _keep_only_executable(tmp: Path) -> None:
    """Keep only the executable: Verilator's generated C++, objects and 100 MB precompiled headers go."""
    for p in (tmp / "obj").iterdir():
        if p.name != f"V{TOP_MODULE}":
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()


def build(
    sources: SourceSet,
    top_text: str,
    *,
    n_in: int,
    n_out: int,
    monitors: tuple[str, ...] = (),
    defines: tuple[str, ...] = (),
    cache_dir: str | Path | None = None,
    jobs: int = 2,
    opt: str = "-O1",
) -> SimBinary:
    """Compile (or fetch from the cache) the simulation of ``top_text`` over ``sources``.

    ``opt``: the C++ optimisation level of the model (``-O0`` compiles fastest, ``-O2`` runs fastest).
    """
    tc = find_toolchain()
    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    tb_text = resources.files("hapfpga.rtlsim").joinpath("tb/tb.cpp").read_text()
    ports_h = _tb_ports_header(n_in, n_out, monitors)
    srcs = SourceSet(files=dict(sources.files), data=dict(sources.data))
    srcs.add_text(f"{TOP_MODULE}.sv", top_text)
    cxx = dict(sources.cxx) if isinstance(sources, SimSources) else {}
    incs = list(sources.include_dirs) if isinstance(sources, SimSources) else []
    for d in incs:
        if not d.is_dir():
            raise BuildError(
                f"the C++ include folder {d} of a simulation model does not exist; reinstall hapfpga."
            )
    cxx_keys = [f"{n}\0{t}" for n, t in sorted(cxx.items())] + [f"-I\0{_folder_digest(d)}" for d in incs]
    key = srcs.digest(
        tb_text, ports_h, " ".join(_VERILATOR_FLAGS), " ".join(defines), tc.version, opt, *cxx_keys
    )
    folder = cache / key
    exe = folder / "obj" / f"V{TOP_MODULE}"
    if exe.is_file():
        return SimBinary(folder, exe, n_in, n_out, tuple(monitors), 0.0, True)

    tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp.", dir=cache))
    srcs.write(tmp)
    (tmp / "tb.cpp").write_text(tb_text)
    (tmp / "tb_ports.h").write_text(ports_h)
    for name, text in cxx.items():
        (tmp / name).write_text(text)
    cmd = _verilator_cmd(
        tc, tmp, incs, jobs=jobs, opt=opt, defines=defines, names=srcs.ordered_names(), cxx=cxx
    )
    seconds = _compile(tc, tmp, cmd)
    _keep_only_executable(tmp)
    try:
        os.rename(tmp, folder)
    except OSError:  # someone else finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)
    return SimBinary(folder, folder / "obj" / f"V{TOP_MODULE}", n_in, n_out, tuple(monitors), seconds, False)


def run(
    binary: SimBinary,
    inputs: list[list[int]],
    expect: list[int],
    in_widths: list[int],
    *,
    stall_in: float = 0.0,
    stall_out: float = 0.0,
    seed: int = 1,
    max_cycles: int = 10**9,
    idle_limit: int = 100_000,
    timeout_s: float | None = None,
    work_dir: str | Path | None = None,
) -> RunResult:
    """Run a compiled simulation on packed input words; ``expect`` = output words to wait for per stream."""
    if len(inputs) != binary.n_in or len(expect) != binary.n_out:
        raise ValueError("number of streams does not match the compiled top")
    io = Path(tempfile.mkdtemp(prefix="io.", dir=work_dir))
    try:
        for k, (words, w) in enumerate(zip(inputs, in_widths, strict=True)):
            nd = max(1, (w + 3) // 4)
            (io / f"in{k}.hex").write_text("".join(f"{int(x):0{nd}x}\n" for x in words))
        (io / "expect.txt").write_text(" ".join(str(int(e)) for e in expect) + "\n")
        cmd = [
            str(binary.exe),
            str(io),
            str(int(max_cycles)),
            repr(float(stall_in)),
            repr(float(stall_out)),
            str(int(seed)),
            str(int(idle_limit)),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=binary.folder, capture_output=True, text=True, timeout=timeout_s)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 3, 4):
            said = " ".join(
                (proc.stderr.strip() or proc.stdout.strip()).split()
            )  # Verilator reports on stdout
            raise VerificationError(
                f"The simulation stopped with exit code {proc.returncode} ({said[-300:] or 'no message'}); "
                "the simulated RTL failed one of its own checks."
            )
        outs, ocyc = [], []
        for k in range(binary.n_out):
            words, cyc = [], []
            for line in (io / f"out{k}.txt").read_text().splitlines():
                c, h = line.split()
                cyc.append(int(c))
                words.append(int(h, 16))
            outs.append(words)
            ocyc.append(cyc)
        icyc = [[int(x) for x in (io / f"in{k}.cyc").read_text().split()] for k in range(binary.n_in)]
        cycles, monitors = 0, {}
        for line in (io / "stats.txt").read_text().splitlines():
            parts = line.split()
            if parts[0] == "cycles":
                cycles = int(parts[1])
            elif parts[0] == "monitor":
                monitors[parts[1]] = int(parts[2])
        return RunResult(outs, ocyc, icyc, cycles, proc.returncode, monitors, wall)
    finally:
        shutil.rmtree(io, ignore_errors=True)

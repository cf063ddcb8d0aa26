"""The emulated PYNQ board: FINN's own driver -> emulated IODMAs -> Verilator simulation of the RTL (host only).

``EmulatedAccelerator`` is ``BoardAccelerator`` (our on-board runtime) with finn-plus-driver 1.6.1's
unmodified ``FINNDMAOverlay`` on top of :mod:`hapfpga.deploy.pynq_emu`, the stand-in for pynq. Behind the
stand-in's overlay sits :class:`RtlFabric`: FINN's two IODMAs emulated at their register interface and the
stitched RTL of the design, simulated by ``hapfpga.rtlsim``'s Verilator testbench.

The IODMA (``finn/custom_op/fpgadataflow/hls/iodma_hls.py``: finn-hlslib ``Mem2Stream_Batch`` /
``Stream2Mem_Batch`` behind a Vitis HLS ``s_axilite`` control port) has the registers the driver writes:
``0x00`` control (bit 0 ``ap_start``, bit 1 ``ap_done``, cleared when read, bit 2 ``ap_idle``, bit 3
``ap_ready``), ``0x10``/``0x14`` the buffer's 64-bit address (``in0_V`` / ``out0_V``), ``0x1C`` ``numReps``
(frames). Its AXI-MM side reads the buffer as little-endian words and its width converter hands the
stream the bytes in address order, least significant first: stream word ``k`` of a frame is bytes
``k*B .. k*B+B-1`` of it, little-endian, for ``B`` = the stream width in bytes. Once every DMA of the design
has been started with the same frame count, the input words stream into the simulation (AXI-Stream
``valid``/``ready``: the RTL back-pressures the DMA; the DMA's AXI-MM bandwidth of ``intfWidth`` bits per
cycle, below the stream width, appears as the input's idle cycles), the output words go to the output buffer
and both DMAs report ``ap_done``. Layers the simulation runs in software around the segment (a float tail
such as TFC/CNV's ``ElementwiseMul_hls``) run in FINN's Python execution inside the fabric.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, ToolMissingError, VerificationError
from .api import Accelerator
from .board import BoardAccelerator
from .emulate_build import BOARD_FILE, check_driver_settings

__all__ = ["CTRL", "ADDR_LO", "ADDR_HI", "NUM_REPS", "IODMARegisters", "RtlFabric", "RunStats",
           "EmulatedAccelerator", "bytes_to_words", "words_to_bytes", "emulate_report", "format_report"]

CTRL, ADDR_LO, ADDR_HI, NUM_REPS = 0x00, 0x10, 0x14, 0x1C
AP_START, AP_DONE, AP_IDLE, AP_READY = 0x1, 0x2, 0x4, 0x8


def bytes_to_words(raw: bytes, width: int) -> list[int]:
    """A buffer as the IODMA streams it: ``width``-bit words, each from ``width/8`` bytes, little-endian."""
    b = width // 8
    return [int.from_bytes(raw[k : k + b], "little") for k in range(0, len(raw), b)]


def words_to_bytes(words: list[int], width: int) -> bytes:
    """Stream words as the output IODMA writes them to memory (inverse of :func:`bytes_to_words`)."""
    b = width // 8
    return b"".join(int(w).to_bytes(b, "little") for w in words)


class IODMARegisters:
    """The AXI-lite control registers of one FINN IODMA (see the module docstring for the map)."""

    def __init__(self, name: str, params: dict[str, Any], fabric: RtlFabric):
        self.name = name
        self.params = params
        self.direction = params["direction"]
        self._fabric = fabric
        self._regs = {0x04: 0, 0x08: 0, 0x0C: 0, ADDR_LO: 0, ADDR_HI: 0, NUM_REPS: 0}
        self.busy = False
        self._done = False

    @property
    def address(self) -> int:
        return self._regs[ADDR_LO] | (self._regs[ADDR_HI] << 32)

    @property
    def frames(self) -> int:
        return self._regs[NUM_REPS]

    def read(self, offset: int) -> int:
        if offset != CTRL:
            return self._regs.get(offset, 0)
        if self.busy:
            self._fabric.poll(self)
        value = (AP_START if self.busy else AP_IDLE) | (AP_DONE | AP_READY if self._done else 0)
        self._done = False  # ap_done is clear-on-read (Vitis HLS ap_ctrl_hs)
        return value

    def write(self, offset: int, value: int) -> None:
        if offset == CTRL:
            if value & AP_START and not self.busy:
                self.busy = True
                self._fabric.started(self)
            return
        self._regs[offset] = int(value) & 0xFFFF_FFFF

    def finish(self) -> None:
        self.busy, self._done = False, True


@dataclass(frozen=True)
class RunStats:
    """One emulated DMA transfer: frames, simulated cycles and the RTL's timing."""

    frames: int
    cycles: int
    cycles_per_frame: float
    latency_cycles: int
    sim_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RtlFabric:
    """The programmable logic of the emulated board: two IODMAs around the Verilator simulation of the design."""

    def __init__(self, desc: dict[str, Any], folder: Path, memory: Any, *, stall_out: float = 0.0,
                 cache_dir: str | Path | None = None, seed: int = 1):
        self.desc, self.folder, self.memory = desc, Path(folder), memory
        self.stall_out, self.cache_dir, self.seed = float(stall_out), cache_dir, seed
        self.dmas = {name: IODMARegisters(name, ip["parameters"], self) for name, ip in desc["ip_dict"].items()}
        self.runs: list[RunStats] = []
        self._binary: Any = None
        self._sw: Any = None

    def registers(self) -> dict[str, IODMARegisters]:
        return dict(self.dmas)

    def started(self, dma: IODMARegisters) -> None:
        if all(d.busy for d in self.dmas.values()):
            self._transfer()

    def poll(self, dma: IODMARegisters) -> None:
        """The driver waits on a DMA that cannot finish: on a board this hangs, here it is an error."""
        idle = [d.name for d in self.dmas.values() if not d.busy]
        raise VerificationError(f"the driver waits for {dma.name}, but {', '.join(idle)} was never started, "
                                "so the transfer cannot finish (a board would hang here).")

    # -- the transfer --------------------------------------------------------------------------
    def _transfer(self) -> None:
        from ..rtlsim import backend

        idma, odma = self.dmas["idma0"], self.dmas["odma0"]
        if idma.frames != odma.frames or idma.frames < 1:
            raise VerificationError(f"the input DMA was started for {idma.frames} frames and the output DMA for "
                                    f"{odma.frames}; the output DMA would never finish.")
        n = idma.frames
        raw = self.memory.read(idma.address, n * idma.params["bytes_per_frame"])
        words = self._into_segment(bytes_to_words(raw, idma.params["streamWidth"]), n)
        seg_in, seg_out = self.desc["segment_inputs"][0], self.desc["segment_outputs"][0]
        expect = n * int(np.prod(seg_out["folded_shape"][1:-1]))
        bw = idma.params["intfWidth"] / idma.params["streamWidth"]
        res = backend.run(self.binary(), [words], [expect], [seg_in["width"]], stall_in=max(0.0, 1.0 - bw),
                          stall_out=self.stall_out, seed=self.seed + len(self.runs),
                          idle_limit=1_000_000, max_cycles=10**10)
        if res.rc != 0:
            raise VerificationError(f"the emulated accelerator stopped after {res.cycles} cycles with "
                                    f"{len(res.outputs[0])} of {expect} output words (rc {res.rc}): it deadlocked.")
        out = self._from_segment(res.outputs[0], n)
        self.memory.write(odma.address, words_to_bytes(out, odma.params["streamWidth"]))
        self._record(res, n)
        for d in self.dmas.values():
            d.finish()

    def _record(self, res: Any, n: int) -> None:
        from ..rtlsim.sim import frame_timing

        latency, cpf = frame_timing(res.out_cycles[0], res.in_cycles[0], n)
        self.runs.append(RunStats(frames=n, cycles=int(res.cycles), cycles_per_frame=float(cpf),
                                  latency_cycles=int(latency), sim_seconds=float(res.wall_seconds)))

    def binary(self) -> Any:
        """The compiled simulation of the stitched RTL (built once, cached by content like hapfpga.rtlsim's)."""
        if self._binary is None:
            from ..rtlsim import backend
            from ..rtlsim.design import ap_types_dir, hls_templates_dir

            rtl, r = self.folder / "rtl", self.desc["rtl"]
            known = {"hls_templates": hls_templates_dir, "ap_types": ap_types_dir}
            src = backend.SimSources(
                files={n: (rtl / n).read_text() for n in r["files"]},
                data={n: (rtl / n).read_bytes() for n in r["data"]},
                cxx={n: (rtl / n).read_text() for n in r["cxx"]},
                include_dirs=[known[d]() if d in known else Path(d) for d in r["include_dirs"]],
            )
            self._binary = backend.build(src, r["top"], n_in=1, n_out=1, cache_dir=self.cache_dir)
        return self._binary

    # -- layers in software around the simulated segment ---------------------------------------------
    def _software(self) -> Any:
        if self._sw is None:
            from ..rtlsim.sim import python_model
            from .sim import load_hw_model

            self._sw = python_model(load_hw_model(self.folder / self.desc["partition_model"]))
        return self._sw

    def _into_segment(self, words: list[int], n: int) -> list[int]:
        """The input DMA's words as the simulated segment takes them (through the software head, if any)."""
        if not self.desc["head"]:
            return words
        from ..rtlsim.sim import pack_stream

        x = _unpack_io(words, self.desc["io_shape_dict"], "i", n)
        gin, seg = self._software().graph.input[0].name, self.desc["segment_inputs"][0]
        y = self._run_nodes(self.desc["head"], gin, x, seg["tensor"])
        return pack_stream(y, _spec(seg))

    def _from_segment(self, words: list[int], n: int) -> list[int]:
        """The segment's output words as the output DMA receives them (through the software tail, if any)."""
        if not self.desc["tail"]:
            return words
        from ..rtlsim.sim import unpack_stream

        seg = self.desc["segment_outputs"][0]
        y = unpack_stream(words, _spec(seg), n)
        gout = self._software().graph.output[0].name
        return _pack_io(self._run_nodes(self.desc["tail"], seg["tensor"], y, gout), self.desc["io_shape_dict"], "o")

    def _run_nodes(self, nodes: list[str], src: str, x: np.ndarray, dst: str) -> np.ndarray:
        from ..rtlsim.sim import run_python

        m = self._software()
        shape = m.get_tensor_shape(src)
        outs = [run_python(m, nodes, {src: x[i : i + 1].reshape(shape)})[dst] for i in range(len(x))]
        return np.concatenate(outs)


def _spec(d: dict[str, Any]) -> Any:
    from qonnx.core.datatype import DataType

    from ..rtlsim.design import StreamSpec

    return StreamSpec(tensor=d["tensor"], dtype=DataType[d["dtype"]], folded_shape=tuple(d["folded_shape"]),
                      normal_shape=tuple(d["normal_shape"]), bits=d["bits"], width=d["width"], pool_k2=d["pool_k2"])


def _io_dtype(shape: dict[str, Any], side: str) -> Any:
    from qonnx.core.datatype import DataType

    s = shape[f"{side}dt"][0]
    return DataType[s[s.index("[") + 1 : s.index("]")].strip("'")]


def _unpack_io(words: list[int], shape: dict[str, Any], side: str, n: int) -> np.ndarray:
    from finn.util.data_packing import rtlsim_output_to_npy

    dt, folded = _io_dtype(shape, side), shape[f"{side}shape_folded"][0]
    arr = rtlsim_output_to_npy(words, None, dt, (n, *folded[1:]), folded[-1] * dt.bitwidth(), dt.bitwidth())
    return np.asarray(arr, np.float32).reshape((n, *shape[f"{side}shape_normal"][0][1:]))


def _pack_io(y: np.ndarray, shape: dict[str, Any], side: str) -> list[int]:
    from finn.util.data_packing import npy_to_rtlsim_input

    dt, folded = _io_dtype(shape, side), shape[f"{side}shape_folded"][0]
    return npy_to_rtlsim_input(y.reshape((len(y), *folded[1:])).astype(np.float32), dt, folded[-1] * dt.bitwidth())


class EmulatedAccelerator(BoardAccelerator):
    """The package's accelerator on the emulated board: FINN's driver, emulated DMAs, the RTL in Verilator."""

    backend = "emulate"

    def __init__(self, package_dir: str | Path, *, batch_size: int | None = None, stall_out: float = 0.0,
                 cache_dir: str | Path | None = None):
        Accelerator.__init__(self, package_dir)
        board = self.package_dir / (self.manifest.get("emulated_board") or BOARD_FILE)
        settings_file = self.package_dir / (self.manifest.get("driver_settings") or "driver/settings.json")
        if not board.is_file() or not settings_file.is_file():
            raise ConfigError(f"The package {self.package_dir} has no emulated board ({BOARD_FILE}); build it with "
                              "`hapfpga build --emulate` or the run config's `deploy: {emulate: true}`.")
        desc = json.loads(board.read_text())
        given = json.loads(settings_file.read_text())["driver_information"]["io_shape_dict"]
        check_driver_settings(desc["io_shape_dict"], given, str(settings_file.relative_to(self.package_dir)),
                              "the emulated board's RTL")
        self.fabric: RtlFabric | None = None

        def fabric(d: dict[str, Any], folder: Path, memory: Any) -> dict[str, IODMARegisters]:
            self.fabric = RtlFabric(d, folder, memory, stall_out=stall_out, cache_dir=cache_dir)
            return self.fabric.registers()

        from . import pynq_emu

        pynq_emu.install(fabric)
        try:
            from finn_plus_driver import get_driver_class
        except ImportError:
            raise ToolMissingError("The emulated board runs FINN's own driver; install it with "
                                   "`pip install --no-deps finn-plus-driver==1.6.1`.") from None
        self._open(board, settings_file, get_driver_class("FINNDMAOverlay"), download=True, batch_size=batch_size)

    def rtl_summary(self, since: int = 0) -> dict[str, Any]:
        """Cycles per frame (steady state, mean over transfers) and the throughput the RTL achieved."""
        runs = self.fabric.runs[since:] if self.fabric else []
        clock = float(self.manifest.get("clock_mhz", 100.0))
        frames, cycles = sum(r.frames for r in runs), sum(r.cycles for r in runs)
        multi = [r for r in runs if r.frames > 1]
        cpf = float(np.mean([r.cycles_per_frame for r in multi])) if multi else float("nan")
        return {"transfers": len(runs), "frames": frames, "cycles": cycles, "cycles_per_frame": cpf,
                "latency_cycles": runs[0].latency_cycles if runs else None,
                "batch_fps": frames * clock * 1e6 / cycles if cycles else float("nan"),
                "steady_state_fps": clock * 1e6 / cpf if multi else float("nan"),
                "sim_seconds": sum(r.sim_seconds for r in runs)}


def emulate_report(package_dir: str | Path, *, batch_size: int | None = None, compare_sim: bool = True,
                   **kwargs: Any) -> dict[str, Any]:
    """Run the package's test data on the emulated board: accuracy, equality with ``sim``, cycles, throughput."""
    from .sim import SimulatedAccelerator

    t0 = time.perf_counter()
    acc = EmulatedAccelerator(package_dir, batch_size=batch_size, **kwargs)
    x, y = acc.test_set()
    out = acc.run(x, batch_size=acc.batch_size)
    wall = time.perf_counter() - t0
    pred = out.reshape(len(out), -1)[:, 0] if acc.manifest.get("output_kind") == "label" else out.argmax(1)
    rep: dict[str, Any] = {"n": int(len(x)), "batch_size": acc.batch_size, "wall_seconds": wall,
                           "accuracy": float(np.mean(pred.astype(np.int64) == np.asarray(y).reshape(-1))),
                           "rtl": acc.rtl_summary()}
    if compare_sim:
        ref = SimulatedAccelerator(package_dir).run(x)
        rep["equal_to_sim"] = int(np.sum(np.all(out.reshape(len(x), -1) == ref.reshape(len(x), -1), axis=1)))
    return rep


def format_report(rep: dict[str, Any]) -> str:
    """``emulate_report`` in four lines, as ``run_on_board.py --backend emulate`` prints it."""
    r = rep["rtl"]
    eq = rep.get("equal_to_sim")
    same = "" if eq is None else f"; outputs equal to the sim backend on {eq}/{rep['n']} samples"
    return (f"[emulate] {rep['n']} samples, batch {rep['batch_size']}: accuracy {rep['accuracy']:.4f}{same}\n"
            f"[emulate] RTL: {r['cycles_per_frame']:,.1f} cycles per frame (steady state), first-frame latency "
            f"{r['latency_cycles']:,} cycles\n"
            f"[emulate] RTL throughput: {r['batch_fps']:,.0f} FPS over the batches ({r['frames']} frames in "
            f"{r['cycles']:,} cycles), {r['steady_state_fps']:,.0f} FPS steady state\n"
            f"[emulate] wall time {rep['wall_seconds']:.1f} s ({r['sim_seconds']:.1f} s in Verilator)")

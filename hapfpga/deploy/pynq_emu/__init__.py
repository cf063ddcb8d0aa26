"""A stand-in for the host API of ``pynq`` 4.0 under which FINN's own driver runs without a board (numpy only).

What finn-plus-driver 1.6.1's ``FINNDMAOverlay`` (``finn_plus_driver/overlays/dma.py``) uses of pynq, with
pynq's semantics:

* ``allocate(shape, dtype, cacheable, target)`` -> :class:`PynqBuffer`, an ``ndarray`` with a
  ``physical_address`` / ``device_address`` in the emulated DDR (:data:`DDR`), ``flush`` / ``invalidate``;
* ``Overlay(bitfile_name, download, device)`` with ``ip_dict`` and one attribute per IP (``overlay.idma0``)
  whose ``read(offset)`` / ``write(offset, value)`` reach the IP's AXI-lite registers;
* ``pynq.ps.Clocks.fclk0_mhz``.

The "bitfile" is the emulated board's description (``emulate/board.json`` of a deployment package): its
``ip_dict`` is pynq's (name -> ``phys_addr``, ``addr_range``, ``type``, ``parameters``). The IPs' behaviour
comes from the *fabric* that :func:`install` is given: a callable ``fabric(description, folder, memory)``
returning ``{ip name: object with read(offset) and write(offset, value)}`` (hapfpga's is
``hapfpga.deploy.emulate``: FINN's IODMAs at their register interface, streaming into the Verilator
simulation). :func:`install` puts this package in ``sys.modules`` as ``pynq`` and ``pynq.ps``, so that
``from pynq import Overlay, allocate`` in the unmodified driver resolves here.
"""

from __future__ import annotations

import json
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import ps

__all__ = ["DDR", "Memory", "PynqBuffer", "allocate", "Bitstream", "Overlay", "DefaultIP", "install", "ps"]

__version__ = "4.0.0+hapfpga.emulated"

#: Alignment of emulated buffers (pynq's CMA allocator hands out page-aligned buffers).
PAGE = 4096


class Memory:
    """The emulated DDR: buffers from :func:`allocate`, found by physical address (as a DMA does)."""

    BASE = 0x1000_0000

    def __init__(self) -> None:
        self._next = self.BASE
        self._bufs: dict[int, weakref.ref] = {}

    def add(self, buf: np.ndarray) -> int:
        addr = self._next
        self._next += -(-max(int(buf.nbytes), 1) // PAGE) * PAGE
        self._bufs[addr] = weakref.ref(buf)
        return addr

    def _find(self, addr: int, n: int) -> tuple[np.ndarray, int]:
        for base, ref in list(self._bufs.items()):
            buf = ref()
            if buf is None:
                del self._bufs[base]
            elif base <= addr and addr + n <= base + buf.nbytes:
                return buf.reshape(-1).view(np.uint8), addr - base
        raise MemoryError(f"an access of {n} bytes at 0x{addr:x} lies outside every allocated buffer")

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes at physical address ``addr`` (an AXI master's burst read)."""
        raw, off = self._find(addr, n)
        return raw[off : off + n].tobytes()

    def write(self, addr: int, data: bytes) -> None:
        """``data`` at physical address ``addr`` (an AXI master's burst write)."""
        raw, off = self._find(addr, len(data))
        raw[off : off + len(data)] = np.frombuffer(data, dtype=np.uint8)


#: The one emulated DDR of this process (pynq has one CMA pool per device).
DDR = Memory()


class PynqBuffer(np.ndarray):
    """pynq's contiguous buffer: an ``ndarray`` with a physical address; cache operations are no-ops."""

    physical_address: int = 0

    def __array_finalize__(self, obj: Any) -> None:
        self.physical_address = getattr(obj, "physical_address", 0)

    @property
    def device_address(self) -> int:
        return self.physical_address

    def flush(self) -> None:
        """Write the CPU cache back to DDR (the emulated DDR *is* this array)."""

    def invalidate(self) -> None:
        """Drop the CPU cache lines of the buffer (nothing to drop here)."""

    sync_to_device = flush
    sync_from_device = invalidate

    def freebuffer(self) -> None:
        """Give the buffer back (it is forgotten by the emulated DDR when garbage-collected)."""

    close = freebuffer


def allocate(shape: Any, dtype: Any = "u4", target: Any = None, **kwargs: Any) -> PynqBuffer:
    """A zeroed buffer in the emulated DDR (``cacheable``, ``target`` are accepted as pynq does)."""
    buf = np.zeros(shape, dtype=dtype).view(PynqBuffer)
    buf.physical_address = DDR.add(buf)
    return buf


class DefaultIP:
    """pynq's driver of an IP without a dedicated one: register ``read``/``write`` at byte offsets."""

    def __init__(self, name: str, description: dict[str, Any], regs: Any):
        self.name = name
        self.description = description
        self._regs = regs
        self.mmio = regs

    def read(self, offset: int = 0) -> int:
        return int(self._regs.read(int(offset)))

    def write(self, offset: int, value: int) -> None:
        self._regs.write(int(offset), int(value))


class Bitstream:
    """pynq's ``Bitstream`` (imported by the driver's instrumentation overlays, which this board does not emulate)."""

    def __init__(self, bitfile_name: str, *args: Any, **kwargs: Any):
        self.bitfile_name = bitfile_name

    def download(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the emulated board has no bitstream to download; only FINNDMAOverlay is emulated")


_FABRIC: Callable[[dict[str, Any], Path, Memory], dict[str, Any]] | None = None


class Overlay:
    """An emulated overlay: ``ip_dict`` from the board description, one :class:`DefaultIP` per IP."""

    def __init__(self, bitfile_name: str, download: bool = True, ignore_version: bool = False,
                 device: Any = None, **kwargs: Any):
        if _FABRIC is None:
            raise RuntimeError("no emulated fabric is installed; call hapfpga.deploy.pynq_emu.install(fabric) first")
        path = Path(bitfile_name)
        self.bitfile_name = str(path)
        self.device = device
        self.description = json.loads(path.read_text())
        self.ip_dict: dict[str, Any] = self.description["ip_dict"]
        regs = _FABRIC(self.description, path.parent, DDR)
        self._ips = {name: DefaultIP(name, self.ip_dict[name], regs[name]) for name in self.ip_dict}

    def __getattr__(self, name: str) -> Any:
        ips = self.__dict__.get("_ips", {})
        if name in ips:
            return ips[name]
        raise AttributeError(f"overlay has no attribute or IP {name!r}")

    def download(self) -> None:
        """Nothing to program: the fabric is emulated."""

    def is_loaded(self) -> bool:
        return True


def install(fabric: Callable[[dict[str, Any], Path, Memory], dict[str, Any]]) -> None:
    """Make this package ``pynq`` (and ``pynq.ps``) for later imports, with ``fabric`` behind its IPs.

    Refuses when a real pynq, or a driver bound to one, is already imported in this process: the driver
    would keep the real classes.
    """
    global _FABRIC
    me = sys.modules[__name__]
    cur = sys.modules.get("pynq")
    if cur is not None and cur is not me:
        raise RuntimeError("a real pynq is already imported in this process; run the emulated board in a fresh one")
    drv = sys.modules.get("finn_plus_driver.overlays.dma")
    if drv is not None and getattr(drv, "Overlay", Overlay) is not Overlay:
        raise RuntimeError("finn_plus_driver was imported with another pynq; run the emulated board in a fresh one")
    _FABRIC = fabric
    sys.modules["pynq"] = me
    sys.modules["pynq.ps"] = ps

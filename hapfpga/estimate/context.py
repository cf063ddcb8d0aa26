"""What a formula needs besides the layer and its folding: the fidelity mode and the device family."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..types import LayerFolding

__all__ = ["Ctx", "FoldingError", "knob"]


class FoldingError(ConfigError):
    """A folding that FINN cannot build: a PE/SIMD that does not divide its dimension, a bad ram_style."""


@dataclass(frozen=True)
class Ctx:
    """Estimation context.

    ``finn_compat``: reproduce finn-plus 1.6.1's per-node estimate exactly, including the cases
    docs/estimator.md lists as FINN bugs; ``False`` (default) applies our corrections.
    ``dsp58``: Versal DSP58 slices (FINN's ``get_dsp_block(fpgapart)``) instead of DSP48.
    ``has_uram``: the part has UltraRAM (xc7z020 and xczu3eg do not).
    ``dsp48e1``: 7-series DSP48E1 (25-bit A port) rather than UltraScale+ DSP48E2 (27-bit); FINN's
    ``get_dsp_block`` rule (``fpgapart[2] == "7"``). The RTL MVU packs fewer lanes into a DSP48E1.
    """

    finn_compat: bool = False
    dsp58: bool = False
    has_uram: bool = True
    dsp48e1: bool = False

    def __post_init__(self) -> None:
        flags = (self.finn_compat, self.dsp58, self.has_uram, self.dsp48e1)
        # every per-layer memo lookup hashes its context: compute that hash once (bools only: the same value in
        # every process, so a pickled Ctx stays consistent)
        object.__setattr__(self, "_hash", hash(flags))
        # the name of this context's per-layer memo table (``LayerSpec.memo``): a str, whose hash Python caches
        object.__setattr__(self, "memo_table", "ctx:" + "".join("1" if v else "0" for v in flags))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined]


def knob(f: LayerFolding, attr: str, default):
    """The value of folding knob ``attr`` or FINN's attribute default when unset."""
    v = getattr(f, attr)
    return default if v is None else v

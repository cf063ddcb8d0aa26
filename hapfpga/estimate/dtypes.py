"""FINN/QONNX data-type names -> bit width and signedness, without importing qonnx.

Mirrors ``qonnx.core.datatype`` (``DataType[name].bitwidth()`` / ``.signed()``) for the names FINN
puts in its node attributes: ``BINARY``, ``BIPOLAR``, ``TERNARY``, ``UINT<n>``, ``INT<n>``,
``FIXED<w,i>``, ``UFIXED<w,i>``, ``SCALEDINT<n>``, ``FLOAT16``/``FLOAT32``/``BFLOAT16``.
"""

from __future__ import annotations

import re
from functools import cache

from ..errors import UnsupportedLayerError

__all__ = ["bits", "signed"]

_FIXED = re.compile(r"^U?FIXED<(\d+),(-?\d+)>$")
_ARB_FLOAT = re.compile(r"^FLOAT<(\d+),(\d+)(?:,(-?\d+))?>$")


@cache
def _parse(name: str) -> tuple[int, bool]:
    n = name.strip().upper()
    if n == "BINARY":
        return 1, False
    if n == "BIPOLAR":
        return 1, True
    if n == "TERNARY":
        return 2, True
    if n in ("FLOAT32",):
        return 32, True
    if n in ("FLOAT16", "BFLOAT16"):
        return 16, True
    m = re.match(r"^(U?)INT(\d+)$", n)
    if m:
        return int(m.group(2)), m.group(1) == ""
    m = re.match(r"^SCALEDINT<(\d+)>$", n)
    if m:
        return int(m.group(1)), True
    m = _FIXED.match(n)
    if m:
        return int(m.group(1)), not n.startswith("U")
    m = _ARB_FLOAT.match(n)
    if m:  # sign + exponent + mantissa
        return 1 + int(m.group(1)) + int(m.group(2)), True
    raise UnsupportedLayerError(f"Unknown FINN data type '{name}'; use one of INT<n>, UINT<n>, BIPOLAR, BINARY, "
                                "TERNARY, FIXED<w,i> or FLOAT32.")


def bits(name: str) -> int:
    """Bit width of a FINN data type name (``qonnx DataType[name].bitwidth()``)."""
    return _parse(name)[0]


def signed(name: str) -> bool:
    """Signedness of a FINN data type name (``qonnx DataType[name].signed()``)."""
    return _parse(name)[1]

"""Open a user's ONNX file with one-sentence errors: missing, not ONNX, truncated, not QONNX/FINN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["check_onnx_file", "QUANT_OPS"]

#: Ops that make a graph a quantised (QONNX) or FINN graph.
QUANT_OPS = frozenset({"Quant", "BipolarQuant", "Trunc", "MultiThreshold", "QuantizeLinear"})
_FINN_DOMAINS = ("finn.custom_op.fpgadataflow", "finn.custom_op")


def check_onnx_file(path: str | Path) -> Any:
    """Load ``path`` as an ONNX model and check it is QONNX (quantisers) or a FINN graph; returns the ModelProto."""
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Model file '{p}' does not exist; give the path of a QONNX (.onnx) export.")
    try:
        model = onnx.load(str(p))
    except (DecodeError, ValueError, RuntimeError, OSError) as e:
        raise ConfigError(
            f"Model file '{p}' is not a readable ONNX model (truncated or not ONNX: {type(e).__name__}); "
            "export it again with hapfpga or brevitas.export.export_qonnx."
        ) from None
    nodes = list(model.graph.node)
    if not nodes:
        raise ConfigError(f"Model file '{p}' has an empty ONNX graph (truncated or not a model); export it again.")
    ops = {n.op_type for n in nodes}
    finn = any(n.domain.startswith(_FINN_DOMAINS) for n in nodes)
    if not (ops & QUANT_OPS) and not finn:
        raise ConfigError(
            f"Model file '{p}' is plain ONNX without quantisers (ops: {', '.join(sorted(ops)[:6])}), not QONNX; "
            "export a Brevitas model with brevitas.export.export_qonnx."
        )
    return model

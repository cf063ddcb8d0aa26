"""Export a trained Brevitas model to QONNX, with a UINT8 input as FINN's hardware takes it.

Steps (FINN's end-to-end examples do the same with ``finn.util.pytorch.ToTensor`` + ``MergeONNXModels``):

1. wrap the model as ``model(x · 1/255)`` so the graph starts with ``Mul(1/255)`` on raw pixels;
2. ``brevitas.export.export_qonnx`` (QONNX ``Quant`` nodes for weights and activations);
3. ``qonnx.util.cleanup.cleanup`` (shape inference, constant folding, unique names);
4. annotate the graph input as ``DataType["UINT8"]`` (``ModelWrapper.set_tensor_datatype``), which FINN's
   streamlining needs to move the scalar ``Mul`` past the first MatMul and turn the first layer into an MVAU
   with 8-bit unsigned inputs.

The datasets put pixels on the same grid as this ``Mul`` computes (:func:`hapfpga.data.to_uint8_grid`), so the
Brevitas model on ``x`` and the QONNX graph on ``round(255 x)`` see bit-identical float inputs. The file opens
in Netron (plain ONNX with QONNX's ``Quant`` custom op).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import INPUT_SCALE

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["export_qonnx", "UINT8_INPUT_SCALE"]

UINT8_INPUT_SCALE = float(INPUT_SCALE)


def _wrapper(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    class _UInt8Input(torch.nn.Module):
        """Raw UINT8 pixels (as float) → ``× 1/255`` → the model."""

        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner
            self.register_buffer("scale", torch.tensor(INPUT_SCALE, dtype=torch.float32))

        def forward(self, x):
            return self.inner(x * self.scale)

    return _UInt8Input(model)


def _export_raw(bv_export: Any, wrapped: Any, example: Any, raw: Path) -> None:
    """Brevitas' QONNX export with torch's dynamo exporter (its default here), and the TorchScript exporter when
    ``torch.export`` cannot trace the forward. Brevitas' own ``QuantBasicBlock`` (bnn_pynq ``resnet18_4w4a``)
    asserts that both inputs of its add are QuantTensors, which holds in eager mode and under the TorchScript
    exporter's trace but not under ``torch.export`` (``TorchExportError``: "Perform add among QuantTensors");
    found by tests/conformance/test_bnn_pynq.py. Every model dynamo exports keeps the graph it had."""
    import copy

    # each attempt traces its own copy: a failed export leaves Brevitas' export handlers in the model it traced
    try:
        bv_export(copy.deepcopy(wrapped), args=example, export_path=str(raw))
    except Exception as e:
        if type(e).__name__ != "TorchExportError":
            raise
        try:
            bv_export(copy.deepcopy(wrapped), args=example, export_path=str(raw), dynamo=False)
        except Exception:
            raise e from None


def export_qonnx(
    model: torch.nn.Module,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    log_file: str | Path | None = None,
) -> Path:
    """Export ``model`` (inputs of ``input_shape`` without the batch dim, float in [0, 1]) to a cleaned QONNX file
    at ``path`` whose input tensor is UINT8 pixels (batch 1). Returns ``path``.

    The exporters' prints (torch.onnx progress, warnings) go to ``log_file`` (default ``export.log`` next to
    ``path``), not to the terminal."""
    import torch

    from .finn.shim import finn_quiet

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = Path(log_file) if log_file is not None else path.parent / "export.log"
    was_training = model.training
    model.eval()
    try:
        wrapped = _wrapper(model).eval()
        example = torch.zeros((1, *[int(d) for d in input_shape]), dtype=torch.float32)
        with tempfile.TemporaryDirectory(prefix="hapfpga_export_") as tmp, finn_quiet(log):
            from brevitas.export import export_qonnx as bv_export  # imported here: its import warns on stderr
            from qonnx.core.datatype import DataType
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.util.cleanup import cleanup

            raw = Path(tmp) / "raw.onnx"
            with torch.no_grad():
                _export_raw(bv_export, wrapped, example, raw)
            cleanup(str(raw), out_file=str(raw))
            mw = ModelWrapper(str(raw))
            mw.set_tensor_datatype(mw.graph.input[0].name, DataType["UINT8"])
            mw.save(str(path))
    finally:
        model.train(was_training)
    return path

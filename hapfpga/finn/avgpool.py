"""A FINN build step that gives ``QuantAvgPool2d`` the right-shift Brevitas' ``TruncAvgPool2d`` uses.

Brevitas' ``TruncAvgPool2d`` sums a k×k window of ``b``-bit unsigned integers into ``in_bits`` =
``bitlength((2^b − 1)·k²)`` bits and truncates (floor) to ``out_bits``: a right shift by ``in_bits − out_bits``.
finn-plus 1.6.1's ``AvgPoolAndTruncv2ToQuantAvgPool`` (``finn/transformation/qonnx/infer_quant_avg_pool_2d.py``,
run by ``step_qonnx_to_finn``) recovers the input width as ``ibits = floor(log2(2^in_bits / k²))``, and
``QuantAvgPool2d.get_shifts`` (qonnx ``custom_op/general/quantavgpool2d.py``) shifts by
``bitlength((2^ibits − 1)·k²) − out_bits``. Both agree when k² is a power of two; otherwise ``ibits`` can be one
short (a 3-bit input under a 12×12 pool: ``in_bits`` 10, ``ibits`` floor(2.83) = 2, shift 1 instead of 2), and
FINN's pool computes twice the average Brevitas does — verification then fails after training (fuzzer seed 8).
When the window sum has fewer bits than ``out_bits`` Brevitas shifts left (``in_bits − out_bits < 0``, output
scale ``scale·2^shift``) while FINN's shift is clipped at 0 and keeps that finer output scale: 2^-shift times too
small (fuzzer seed 21: a 2-bit map under a 3×3 pool, 8 times too small).

:func:`step_hap_avgpool_shift` (right after ``step_qonnx_to_finn``) reads the shift Brevitas used from the scales
FINN put around the pool (``Div(s·k²) → QuantAvgPool2d → Mul(s·2^shift)``) and sets ``ibits`` to the input width
that gives that shift; the HW ``Pool`` layer takes its shift from the same attribute (``InferPool``). A pool whose
shift no input width reproduces is refused in one sentence.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["step_hap_avgpool_shift", "brevitas_shift", "ibits_for"]


def brevitas_shift(div_scale: float, mul_scale: float, k: int) -> int | None:
    """The right shift ``log2(mul·k²/div)`` of a converted Trunc (v2: ``div = s·k²``, ``mul = s·2^shift``), or
    None when it is not a whole number (a graph not made by the v2 conversion: left as FINN made it)."""
    if div_scale <= 0 or mul_scale <= 0:
        return None
    shift = math.log2(mul_scale * k * k / div_scale)
    return round(shift) if abs(shift - round(shift)) < 1e-4 else None


def ibits_for(shift: int, k: int, obits: int, max_bits: int = 32) -> int | None:
    """An input width ``b`` for which qonnx's ``QuantAvgPool2d`` shifts by ``shift``: for ``shift >= 0`` the one
    with ``bitlength((2^b − 1)·k²) − obits == shift`` (its accumulator is Brevitas' ``in_bits`` wide); for a
    negative shift (no shift in FINN) the widest with ``bitlength((2^b − 1)·k²) <= obits``, so the accumulator
    holds any sum Brevitas' narrower one holds. None if there is none."""
    sizes = {b: ((2**b - 1) * k * k).bit_length() for b in range(1, max_bits + 1)}
    if shift < 0:
        fit = [b for b, n in sizes.items() if n <= obits]
        return max(fit) if fit else None
    return next((b for b, n in sizes.items() if n - obits == shift), None)


def _scalar(model: Any, node: Any, op: str) -> float | None:
    if node is None or node.op_type != op:
        return None
    v = model.get_initializer(node.input[1])
    return float(v.reshape(())) if v is not None and v.size == 1 else None


def step_hap_avgpool_shift(model: Any, cfg: Any) -> Any:
    """Give every ``QuantAvgPool2d`` Brevitas' shift (module docstring). A negative shift (the window sum has
    fewer bits than ``out_bits``: Brevitas widens it, ``out_scale = scale·2^shift``) cannot be a left shift in
    FINN's pool, which shifts by ``max(0, ·)``: the pool then outputs the sum and the scale after it is
    multiplied by ``2^-shift``, the same values."""
    from qonnx.custom_op.registry import getCustomOp

    from ..errors import UnsupportedLayerError

    for node in model.get_nodes_by_op_type("QuantAvgPool2d"):
        inst = getCustomOp(node)
        k, obits = int(inst.get_nodeattr("kernel")), int(inst.get_nodeattr("obits"))
        mul_node = model.find_consumer(node.output[0])
        div, mul = _scalar(model, model.find_producer(node.input[0]), "Div"), _scalar(model, mul_node, "Mul")
        if div is None or mul is None or inst.get_nodeattr("signed"):  # signed: Brevitas saturates, FINN does not
            continue
        shift = brevitas_shift(div, mul, k)
        if shift is None or shift == inst.get_shifts():
            continue
        ibits = ibits_for(shift, k, obits)
        if ibits is None:
            raise UnsupportedLayerError(
                f"The average pool {node.name} truncates its {k}x{k} window sums by {shift} bits to {obits} bits, "
                "which FINN's QuantAvgPool2d cannot reproduce (its shift follows from the input width); use a "
                "TruncAvgPool2d whose kernel area is a power of two, or a wider trunc_quant bit width."
            )
        inst.set_nodeattr("ibits", ibits)
        if shift < 0:
            scale = model.get_initializer(mul_node.input[1])
            model.set_initializer(mul_node.input[1], (scale * 2.0 ** (-shift)).astype(scale.dtype))
    return model

"""Refuse, before training, a convolution that zero-pads the output of a bipolar (1-bit signed) activation.

A bipolar tensor holds only ±s: it has no zero to pad with. FINN stores it as BINARY {0, 1} (``x = 2b - 1``), so a
zero pad cannot be represented. In 2D, finn-plus 1.6.1's ``step_convert_to_hw`` stops on it (``FMPadding_Batch
DataType must support zero``, finn/custom_op/fpgadataflow/fmpadding.py), a refusal that names no layer; in 1D the
conversion goes through and the streamlined graph pads the binary code with 0, i.e. with -s: the build completes
after training and verification then fails (found by tests/conformance/fuzz_models.py, seed 25; kept as
tests/conformance/regressions/fuzz25_bipolar_then_padded_conv1d.py). Brevitas' own bnn_pynq CNV avoids it by
using no padding after its bipolar activations.

:func:`check_bipolar_padding` runs one forward pass with hooks on the convolutions (milliseconds) and raises one
sentence naming the first such layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import UnsupportedLayerError

__all__ = ["check_bipolar_padding", "is_bipolar"]


def _one_bit_signed(bits: Any, signed: Any) -> bool:
    """FINN's rule for a quantiser's ``bits`` and ``signed``: qonnx's ``IntQuant.get_integer_datatype`` makes
    every 1-bit signed quantiser ``BIPOLAR``, even Brevitas' ``QuantIdentity(bit_width=1)`` whose values are
    {-s, 0}, so the bits decide, not the values."""
    import torch

    return int(torch.as_tensor(bits).max()) == 1 and bool(signed)


def is_bipolar(t: Any) -> bool:
    """Whether ``t`` (a Brevitas QuantTensor or a plain tensor) is a bipolar activation's output: a 1-bit signed
    QuantTensor, or values that are exactly ±s for one s > 0 with both signs present (no zero)."""
    import torch

    bits, signed = getattr(t, "bit_width", None), getattr(t, "signed", None)
    if bits is not None and signed is not None:
        return _one_bit_signed(bits, signed)
    v = getattr(t, "value", t)
    if not isinstance(v, torch.Tensor) or v.numel() < 2:
        return False
    mags = v.detach().abs().unique()
    return len(mags) == 1 and float(mags[0]) > 0 and bool((v > 0).any()) and bool((v < 0).any())


def _quantises_bipolar(module: Any) -> bool | None:
    """Whether Brevitas activation ``module`` quantises to 1 bit signed (:func:`_one_bit_signed` of its
    ``act_quant``'s bit width and sign, as read after a forward pass); ``None`` where ``module`` is not a Brevitas
    activation or does not say."""
    quant = getattr(module, "act_quant", None)
    try:
        bits, signed = quant.bit_width(), quant.is_signed
    except Exception:  # noqa: BLE001 - not a Brevitas activation quantiser (or one without these): no verdict
        return None
    if bits is None or signed is None:
        return None
    return _one_bit_signed(bits, signed)


def _padding(conv: Any) -> int:
    pad = getattr(conv, "padding", 0)
    if isinstance(pad, str):
        return 0 if pad == "valid" else 1
    return max(pad) if isinstance(pad, tuple) else int(pad)


def check_bipolar_padding(model: Any, input_shape: Sequence[int], name: str) -> None:
    """Raise :class:`UnsupportedLayerError` if a padded Conv1d/Conv2d of ``model`` gets a bipolar input.

    A conv input that a Brevitas activation module produced directly is judged by that activation's quantiser
    (1 bit, signed); any other input by its values (:func:`is_bipolar`), which miss a bipolar tensor whose probe
    values all have one sign. The probe batch holds uniform and normal inputs. A forward pass that fails is left
    to the model check that follows (it words that error)."""
    import torch

    convs = [(path, m) for path, m in model.named_modules()
             if isinstance(m, torch.nn.modules.conv._ConvNd) and _padding(m) > 0]
    found: list[tuple[str, Any]] = []
    produced: dict[int, tuple[Any, Any]] = {}  # id(output) -> (output, activation); the output kept alive

    def record(mod: Any, _args: tuple, out: Any) -> None:
        for t in (out, getattr(out, "value", None)):
            if t is not None:
                produced[id(t)] = (t, mod)

    def hook(path: str, conv: Any):
        def pre(_mod: Any, args: tuple) -> None:
            if found or not args:
                return
            src = produced.get(id(args[0]))
            verdict = _quantises_bipolar(src[1]) if src is not None else None
            if verdict is None:
                verdict = is_bipolar(args[0])
            if verdict:
                found.append((path, conv))
        return pre

    handles = [m.register_forward_pre_hook(hook(p, m)) for p, m in convs]
    handles += [m.register_forward_hook(record) for m in model.modules() if hasattr(m, "act_quant")]
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(0)
    shape = (4, *[int(d) for d in input_shape])
    try:
        with torch.no_grad():
            model(torch.cat([torch.rand(shape, generator=gen), torch.randn(shape, generator=gen)]))
    except Exception:  # noqa: BLE001 - the model check reports a forward that fails, in its own words
        return
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if found:
        path, conv = found[0]
        raise UnsupportedLayerError(
            f"Layer '{path}' ({type(conv).__name__}) of {name} zero-pads (padding={conv.padding}) the output of a "
            "bipolar (1-bit signed) activation, which has no zero, so FINN cannot build the padding; use "
            "padding=0 for this layer or give the activation before it 2 or more bits (checked before training)."
        )

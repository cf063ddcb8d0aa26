"""User-style model *files* that flatten a conv feature map into a QuantLinear, in every spelling PyTorch users
write: ``x.flatten(1)``, ``torch.flatten(x, 1)``, ``nn.Flatten()`` (in an ``nn.Sequential``), ``x.view(x.size(0),
-1)`` and ``x.reshape(x.shape[0], -1)``, for 1D (N×C×L) and 2D (N×C×H×W) maps.

:func:`source` writes the text of a factory file ``make(input_shape, num_classes, quant)`` (the user contract of
``model.name: file.py:make``), :func:`random_spec` draws a small random :class:`FlattenSpec` from a seeded
generator. Loaded by the tests through ``importlib`` (as ``tests/pruning/graph_models.py`` is).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: every flatten spelling; ``nn_flatten`` is written as an ``nn.Sequential`` model, the others as a module's forward
SPELLINGS = ("flatten1", "torch_flatten", "nn_flatten", "view", "reshape")

_FORWARD_FLATTEN = {
    "flatten1": "x = x.flatten(1)",
    "torch_flatten": "x = torch.flatten(x, 1)",
    "view": "x = x.view(x.size(0), -1)",
    "reshape": "x = x.reshape(x.shape[0], -1)",
}


@dataclass(frozen=True)
class FlattenSpec:
    """One conv stack → flatten → FC model: ``channels`` per conv (kernel 3, ``padding``), an optional 2-wide
    max-pool after the last conv, an optional hidden FC of ``hidden`` neurons, then the classifier."""

    dim: int  # 1: QuantConv1d on C×L, 2: QuantConv2d on C×H×W
    spelling: str
    channels: tuple[int, ...]
    padding: int = 1
    pool: bool = False
    hidden: int = 0  # 0: the flattened map goes straight into the classifier
    input_quant: bool = False  # Brevitas' signed 8-bit QuantIdentity in front
    quant_tensor: bool = False  # activations return QuantTensors (return_quant_tensor=True)
    fc_bias: bool = False  # the classifier has a bias

    def map_size(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial size of the flattened map for inputs of ``input_shape`` (C, then L or H, W)."""
        size = tuple(int(s) for s in input_shape[1:])
        for _ in self.channels:
            size = tuple(s + 2 * self.padding - 2 for s in size)
        return tuple(s // 2 for s in size) if self.pool else size


def source(spec: FlattenSpec) -> str:
    """The text of a model file whose ``make(input_shape, num_classes, quant)`` builds ``spec``."""
    if spec.spelling == "nn_flatten":
        return _sequential_source(spec)
    return _module_source(spec)


def _names(spec: FlattenSpec) -> tuple[str, str, str]:
    d = spec.dim
    return f"QuantConv{d}d", f"nn.BatchNorm{d}d", f"nn.MaxPool{d}d"


_HEAD = """import math
from collections import OrderedDict

import torch
import torch.nn as nn
from brevitas.nn import QuantConv1d, QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

"""


def _features(spec: FlattenSpec, bind: str) -> list[str]:
    """Lines building the conv stack as ``{bind}name = module`` statements, plus the spatial bookkeeping."""
    conv, bn, pool = _names(spec)
    qt = spec.quant_tensor
    lines = ["c, *size = input_shape"]
    if spec.input_quant:
        lines.append(f"{bind}inp = QuantIdentity(bit_width=8, return_quant_tensor=True)")
    for i, ch in enumerate(spec.channels):
        lines += [
            f"{bind}conv{i} = {conv}(c, {ch}, 3, padding={spec.padding}, bias=False, "
            f"weight_bit_width=quant.weight_bits_of({i}))",
            f"{bind}bn{i} = {bn}({ch})",
            f"{bind}act{i} = QuantReLU(bit_width=quant.act_bits_of({i}), return_quant_tensor={qt})",
            f"c, size = {ch}, [s + {2 * spec.padding - 2} for s in size]",
        ]
    if spec.pool:
        lines += [f"{bind}pool = {pool}(2)", "size = [s // 2 for s in size]"]
    return lines


def _classifier(spec: FlattenSpec, bind: str) -> list[str]:
    n = len(spec.channels)
    lines = []
    if spec.hidden:
        lines += [
            f"{bind}fc0 = QuantLinear(c * math.prod(size), {spec.hidden}, bias=False, "
            f"weight_bit_width=quant.weight_bits_of({n}))",
            f"{bind}bnf = nn.BatchNorm1d({spec.hidden})",
            f"{bind}actf = QuantReLU(bit_width=quant.act_bits_of({n}), return_quant_tensor={spec.quant_tensor})",
            f"{bind}out = QuantLinear({spec.hidden}, num_classes, bias={spec.fc_bias}, "
            f"weight_bit_width=quant.weight_bits_of({n + 1}))",
        ]
    else:
        lines.append(f"{bind}out = QuantLinear(c * math.prod(size), num_classes, bias={spec.fc_bias}, "
                     f"weight_bit_width=quant.weight_bits_of({n}))")
    return lines


def _module_source(spec: FlattenSpec) -> str:
    init = _features(spec, "self.") + _classifier(spec, "self.")
    fwd = ["x = self.inp(x)"] if spec.input_quant else []
    for i in range(len(spec.channels)):
        fwd.append(f"x = self.act{i}(self.bn{i}(self.conv{i}(x)))")
    if spec.pool:
        fwd.append("x = self.pool(x)")
    fwd.append(_FORWARD_FLATTEN[spec.spelling])
    if spec.hidden:
        fwd.append("x = self.actf(self.bnf(self.fc0(x)))")
    fwd.append("return self.out(x)")
    body = "\n".join("        " + ln for ln in init)
    forward = "\n".join("        " + ln for ln in fwd)
    return (_HEAD + "class Net(nn.Module):\n    def __init__(self, input_shape, num_classes, quant):\n"
            f"        super().__init__()\n{body}\n\n    def forward(self, x):\n{forward}\n\n\n"
            "def make(input_shape, num_classes, quant):\n    return Net(input_shape, num_classes, quant)\n")


def _sequential_source(spec: FlattenSpec) -> str:
    lines = _features(spec, "layers['") + _classifier(spec, "layers['")
    lines = [_to_item(ln) for ln in lines]
    flatten_at = next(i for i, ln in enumerate(lines) if "fc0" in ln or "'out'" in ln)
    lines.insert(flatten_at, "layers['flatten'] = nn.Flatten()")
    body = "\n".join("    " + ln for ln in ["layers = {}", *lines])
    return (_HEAD + "def make(input_shape, num_classes, quant):\n"
            f"{body}\n    return nn.Sequential(OrderedDict(layers))\n")


def _to_item(line: str) -> str:
    """``layers['name = module`` (from :func:`_features` with ``bind="layers['"``) → ``layers['name'] = module``."""
    if not line.startswith("layers['"):
        return line
    name, rest = line[len("layers['"):].split(" = ", 1)
    return f"layers['{name}'] = {rest}"


def random_spec(rng, dim: int | None = None, spelling: str | None = None) -> FlattenSpec:
    """A small random spec (numpy ``Generator``): 1–2 convs of 2–8 channels, pool or not, hidden FC or not,
    with or without the input quantiser and QuantTensor activations; ``dim``/``spelling`` fixed if given."""
    n_conv = int(rng.integers(1, 3))
    spec = FlattenSpec(
        dim=int(dim or rng.integers(1, 3)),
        spelling=spelling or str(rng.choice(SPELLINGS)),
        channels=tuple(int(c) for c in rng.integers(2, 9, size=n_conv)),
        padding=int(rng.integers(0, 2)),
        pool=bool(rng.random() < 0.5),
        hidden=int(rng.choice([0, 8, 12])),
        input_quant=bool(rng.random() < 0.5),
        quant_tensor=bool(rng.random() < 0.3),
        fc_bias=bool(rng.random() < 0.3),
    )
    return replace(spec, padding=1) if spec.padding == 0 and n_conv == 2 else spec


def random_input_shape(rng, spec: FlattenSpec) -> tuple[int, ...]:
    """An input shape whose flattened map is longer than 1 in at least one axis (2–3 channels; L 4–16 in 1D,
    H, W 4–7 in 2D, not necessarily square)."""
    c = int(rng.integers(1, 4))
    while True:
        size = (int(rng.integers(4, 17)),) if spec.dim == 1 else tuple(int(s) for s in rng.integers(4, 8, size=2))
        shape = (c, *size)
        m = spec.map_size(shape)
        if min(m) >= 1 and max(m) > 1:
            return shape

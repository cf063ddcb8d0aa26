"""Read and check a FINN folding file (``{"Defaults": {}, "<node>": {"PE": 8, ...}}``) against a layer list."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..types import FoldingPlan, LayerFolding
from .context import FoldingError
from .core import cost_of, ctx_for, effective_folding
from .layers import LayerSpec

__all__ = ["load_folding", "check_plan"]


def check_plan(plan: FoldingPlan, layers: Sequence[LayerSpec]) -> None:
    """Raise ``FoldingError`` (one sentence) for a node not in ``layers`` or an illegal PE/SIMD/style."""
    by_name = {layer.name: layer for layer in layers}
    for name, f in plan:
        layer = by_name.get(name)
        if layer is None:
            near = ", ".join(sorted(by_name)[:4])
            raise FoldingError(f"The folding names node '{name}', which is not in the model; "
                               f"use the FINN node names of this model ({near}, ...).")
        for knob, dim in layer.fold_limits().items():
            v = getattr(f, knob)
            if v is not None and (not isinstance(v, int) or v < 1 or dim % v):
                raise FoldingError(f"{name}: {knob.upper()}={v} does not divide its dimension {dim}; "
                                   f"choose a divisor of {dim}.")
        cost_of(layer, effective_folding(layer, f), ctx_for(None))  # formula-level checks


def load_folding(source: str | Path | Mapping[str, Any], layers: Sequence[LayerSpec]) -> FoldingPlan:
    """A FINN folding file (path or parsed dict) as a checked ``FoldingPlan``."""
    if isinstance(source, Mapping):
        data = source
        where = "the folding"
    else:
        path = Path(source)
        where = f"folding file '{path}'"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"The {where} does not exist; give the path of a FINN folding JSON file.") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"The {where} is not valid JSON ({e.msg} at line {e.lineno}); fix the file.") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"The {where} must be a JSON object of node names; it is a {type(data).__name__}.")
    entries = []
    for name, entry in data.items():
        if name == "Defaults":
            continue
        if not isinstance(entry, Mapping):
            raise ConfigError(f"Entry '{name}' of {where} must be an object like {{\"PE\": 4}}.")
        try:
            entries.append((name, LayerFolding.from_finn(entry)))
        except KeyError as e:
            raise ConfigError(f"Entry '{name}' of {where} has unknown key(s) {e.args[0]}; use FINN's folding keys "
                              "(PE, SIMD, ram_style, resType, mem_mode, ...).") from None
    plan = FoldingPlan(tuple(entries))
    check_plan(plan, layers)
    return plan

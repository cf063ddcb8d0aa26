"""Typed, frozen value objects shared by the pure core (estimator, folding, pruning plan).

Nothing here imports torch or finn.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = [
    "RESOURCE_KEYS",
    "FOLDING_KEYS",
    "Resources",
    "LayerCost",
    "LayerFolding",
    "FoldingPlan",
    "QuantSpec",
]

#: Resource names, spelled as FINN's ``estimate_layer_resources.json`` spells them.
RESOURCE_KEYS: tuple[str, ...] = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


@dataclass(frozen=True, init=False)
class Resources:
    """FPGA resources. ``BRAM_18K`` counts 18 Kb block RAMs (a RAMB36 is two)."""

    LUT: float = 0.0
    FF: float = 0.0
    BRAM_18K: float = 0.0
    URAM: float = 0.0
    DSP: float = 0.0

    def __init__(self, LUT: float = 0.0, FF: float = 0.0, BRAM_18K: float = 0.0, URAM: float = 0.0,  # noqa: N803
                 DSP: float = 0.0) -> None:
        # the dataclass's generated __init__ of a frozen class calls object.__setattr__ per field; the estimator
        # builds tens of these per network estimate, and storing into __dict__ is ~3x faster (same fields, values)
        d = self.__dict__
        d["LUT"] = LUT
        d["FF"] = FF
        d["BRAM_18K"] = BRAM_18K
        d["URAM"] = URAM
        d["DSP"] = DSP

    def __add__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        return Resources(*(getattr(self, k) + getattr(other, k) for k in RESOURCE_KEYS))

    def __radd__(self, other: Any) -> Resources:
        if other == 0:  # lets sum() work
            return self
        return self.__add__(other)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(*(getattr(self, k) - getattr(other, k) for k in RESOURCE_KEYS))

    def __mul__(self, factor: float) -> Resources:
        return Resources(*(getattr(self, k) * factor for k in RESOURCE_KEYS))

    __rmul__ = __mul__

    def scaled(self, limits: Resources) -> Resources:
        """Element-wise product, e.g. capacity × utilisation limits."""
        return Resources(*(getattr(self, k) * getattr(limits, k) for k in RESOURCE_KEYS))

    def fits_in(self, budget: Resources, keys: Iterable[str] = RESOURCE_KEYS) -> bool:
        return not self.over(budget, keys)

    def over(self, budget: Resources, keys: Iterable[str] = RESOURCE_KEYS) -> list[str]:
        """Names of the resources that exceed ``budget`` (empty when it fits)."""
        return [k for k in keys if getattr(self, k) > getattr(budget, k) + 1e-9]

    def utilisation(self, capacity: Resources) -> dict[str, float]:
        """Fraction of ``capacity`` used per resource (NaN-free: 0 capacity and 0 use gives 0)."""
        out = {}
        for k in RESOURCE_KEYS:
            cap, use = getattr(capacity, k), getattr(self, k)
            out[k] = (use / cap) if cap else (math.inf if use else 0.0)
        return out

    def as_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in RESOURCE_KEYS}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Resources:
        return cls(**{k: float(d.get(k, 0.0)) for k in RESOURCE_KEYS})


@dataclass(frozen=True, init=False)
class LayerCost:
    """Estimated cost of one layer: resources and expected cycles per frame."""

    name: str
    kind: str
    resources: Resources
    cycles: int

    def __init__(self, name: str, kind: str, resources: Resources, cycles: int) -> None:
        d = self.__dict__  # a fast frozen __init__, as in Resources
        d["name"] = name
        d["kind"] = kind
        d["resources"] = resources
        d["cycles"] = cycles

    def as_dict(self) -> dict[str, float]:
        return {**self.resources.as_dict(), "cycles": self.cycles}


#: Keys of FINN's folding_config_file that LayerFolding knows (FINN's spelling -> field name).
FOLDING_KEYS: dict[str, str] = {
    "PE": "pe",
    "SIMD": "simd",
    "ram_style": "ram_style",
    "ram_style_thresholds": "ram_style_thresholds",
    "resType": "res_type",
    "mem_mode": "mem_mode",
    "parallel_window": "parallel_window",
    "runtime_writeable_weights": "runtime_writeable_weights",
    "depth_trigger_uram": "depth_trigger_uram",
    "depth_trigger_bram": "depth_trigger_bram",
    "depth": "depth",
    "impl_style": "impl_style",
    "inFIFODepths": "in_fifo_depths",  # FINN's InsertFIFO: an edge's depth = max(producer out, consumer in)
}


@dataclass(frozen=True)
class LayerFolding:
    """Folding and implementation knobs of one FINN node; ``None`` means "FINN's default".

    Field names are pythonic; ``to_finn`` / ``from_finn`` speak FINN's folding-file keys.
    """

    pe: int | None = None
    simd: int | None = None
    ram_style: str | None = None
    ram_style_thresholds: str | None = None
    res_type: str | None = None
    mem_mode: str | None = None
    parallel_window: int | None = None
    runtime_writeable_weights: int | None = None
    depth_trigger_uram: int | None = None
    depth_trigger_bram: int | None = None
    depth: int | None = None
    impl_style: str | None = None
    #: depth of the FIFO in front of each input (FINN ``inFIFODepths``); set for joins (skip-branch FIFOs)
    in_fifo_depths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.in_fifo_depths is not None and not isinstance(self.in_fifo_depths, tuple):
            object.__setattr__(self, "in_fifo_depths", tuple(int(d) for d in self.in_fifo_depths))

    def __hash__(self) -> int:
        # the estimator's per-layer memos hash each folding on lookup and on store: hash the fields once per
        # object (the value dataclass would give; not pickled, since str hashes differ between processes)
        h = self.__dict__.get("_hash")
        if h is None:
            h = self.__dict__["_hash"] = hash((
                self.pe, self.simd, self.ram_style, self.ram_style_thresholds, self.res_type, self.mem_mode,
                self.parallel_window, self.runtime_writeable_weights, self.depth_trigger_uram,
                self.depth_trigger_bram, self.depth, self.impl_style, self.in_fifo_depths))
        return h

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def to_finn(self) -> dict[str, Any]:
        out = {}
        for finn_key, attr in FOLDING_KEYS.items():
            v = getattr(self, attr)
            if v is not None:
                out[finn_key] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_finn(cls, d: Mapping[str, Any]) -> LayerFolding:
        """Build from one entry of a FINN folding file; unknown keys raise ``KeyError`` naming them."""
        unknown = sorted(set(d) - set(FOLDING_KEYS))
        if unknown:
            raise KeyError(", ".join(unknown))
        return cls(**{FOLDING_KEYS[k]: v for k, v in d.items()})

    def with_(self, **changes: Any) -> LayerFolding:
        return replace(self, **changes)

    def filled_from(self, defaults: tuple[tuple[str, Any], ...]) -> LayerFolding:
        """This folding with each unset (``None``) field named in ``defaults`` (``(field, value)`` pairs taken from
        another ``LayerFolding``) set to that value: the estimator's merge of a folding over a layer's attributes.

        Built without ``__init__`` (the estimator's hot path; ``dataclasses.replace`` costs several times more):
        every value already comes from a constructed ``LayerFolding``, so ``__post_init__`` has nothing to do.
        """
        d = self.__dict__.copy()
        d.pop("_hash", None)
        for k, v in defaults:
            if d[k] is None:
                d[k] = v
        out = object.__new__(LayerFolding)
        object.__setattr__(out, "__dict__", d)
        return out


@dataclass(frozen=True)
class FoldingPlan:
    """Per-node folding, keyed by FINN node name (``MVAU_hls_0``...), in graph order."""

    layers: tuple[tuple[str, LayerFolding], ...] = ()
    meta: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def __iter__(self) -> Iterator[tuple[str, LayerFolding]]:
        return iter(self.layers)

    def __getitem__(self, name: str) -> LayerFolding:
        for n, f in self.layers:
            if n == name:
                return f
        raise KeyError(name)

    def get(self, name: str, default: LayerFolding | None = None) -> LayerFolding | None:
        try:
            return self[name]
        except KeyError:
            return default

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.layers]

    @classmethod
    def from_mapping(cls, m: Mapping[str, LayerFolding]) -> FoldingPlan:
        return cls(tuple(m.items()))

    def to_finn_dict(self) -> dict[str, Any]:
        """Exactly FINN's ``folding_config_file`` format: ``{"Defaults": {}, node: {...}}``."""
        out: dict[str, Any] = {"Defaults": {}}
        for name, f in self.layers:
            out[name] = f.to_finn()
        return out

    def to_finn_json(self) -> str:
        return json.dumps(self.to_finn_dict(), indent=2) + "\n"

    @classmethod
    def from_finn_dict(cls, d: Mapping[str, Any]) -> FoldingPlan:
        return cls(tuple((k, LayerFolding.from_finn(v)) for k, v in d.items() if k != "Defaults"))


@dataclass(frozen=True)
class QuantSpec:
    """Quantisation of a model: bits of weights and activations (per layer where given).

    ``layer_weight_bits`` / ``layer_act_bits`` override the defaults by layer index (0-based,
    in the order the model's quantised layers are defined).
    """

    weight_bits: int = 2
    act_bits: int = 2
    input_bits: int = 8
    layer_weight_bits: tuple[tuple[int, int], ...] = ()
    layer_act_bits: tuple[tuple[int, int], ...] = ()

    def weight_bits_of(self, i: int) -> int:
        return dict(self.layer_weight_bits).get(i, self.weight_bits)

    def act_bits_of(self, i: int) -> int:
        return dict(self.layer_act_bits).get(i, self.act_bits)


def dataclass_to_dict(obj: Any) -> Any:
    """Plain-data view of (nested) dataclasses, for JSON reports."""
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: dataclass_to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [dataclass_to_dict(x) for x in obj]
    if isinstance(obj, dict):
        return {k: dataclass_to_dict(v) for k, v in obj.items()}
    return obj

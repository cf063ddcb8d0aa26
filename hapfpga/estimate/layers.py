"""Typed, frozen descriptions of the FINN dataflow layers the estimator models.

One dataclass per FINN layer kind. Fields carry the shape and data types FINN keeps in node
attributes (names in the comments); folding knobs (PE, SIMD, ram_style, ...) are *not* fields:
they come as a :class:`~hapfpga.types.LayerFolding`, and ``default_folding`` holds what the FINN
graph had when it was read. Data types are FINN's names (``"INT2"``, ``"UINT8"``, ``"BIPOLAR"``).

The only code that builds these from a FINN graph is :mod:`hapfpga.finn.graph`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar

from ..types import LayerFolding
from .dtypes import bits

__all__ = [
    "LayerSpec",
    "MVAU",
    "VVAU",
    "Thresholding",
    "ConvolutionInputGenerator",
    "Pool",
    "StreamingMaxPool",
    "FMPadding",
    "LabelSelect",
    "ElementwiseBinary",
    "ElementwiseMul",
    "ElementwiseAdd",
    "StreamingDataWidthConverter",
    "StreamingFIFO",
    "Reshape",
    "DuplicateStreams",
    "LAYER_KINDS",
]


_UNSET = object()


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """Base of all layer descriptions.

    ``name`` is FINN's node name (``MVAU_hls_0``), ``impl`` the backend (``"hls"``/``"rtl"``),
    ``producers``/``consumers`` the names of neighbouring FINN nodes (empty at graph edges).
    """

    kind: ClassVar[str] = ""
    #: folding knobs that split a dimension: knob -> name of the field it must divide
    fold_dims: ClassVar[dict[str, str]] = {}

    name: str
    impl: str = "hls"
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    default_folding: LayerFolding = field(default_factory=LayerFolding)

    def memo(self, table: Hashable) -> dict:
        """A per-instance cache dict (not a field: ignored by ==, hash and repr; pickles safely as a dict).

        The estimator keeps per-layer results here keyed by folding, so a network evaluation does not
        re-hash the layer description for every lookup.
        """
        d = self.__dict__.get("_memo")
        if d is None:
            d = {}
            object.__setattr__(self, "_memo", d)
        t = d.get(table)
        if t is None:
            t = d[table] = {}
        return t

    def derived(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(self)``, computed once per layer object and kept: for values that depend on the layer description
        alone (parsed data-type widths, folding-independent products of its dimensions), never on a folding.

        Kept apart from :meth:`memo`: ``estimate.core.clear_caches`` forgets every folding-dependent memo but not
        these, since a new folding of the same layer does not change them (docs/estimator.md, "Speed").
        """
        d = self.__dict__.get("_derived")
        if d is None:
            d = {}
            object.__setattr__(self, "_derived", d)
        v = d.get(fn, _UNSET)
        if v is _UNSET:
            v = d[fn] = fn(self)
        return v

    @cached_property
    def folding_defaults(self) -> tuple[tuple[str, Any], ...]:
        """``(field, value)`` of every folding field the layer's FINN attributes set (``default_folding``): what
        a folding's ``None`` falls through to. Computed once per layer (a cached attribute: the estimator reads
        it for every folding it merges)."""
        base = self.default_folding
        return tuple((f.name, v) for f in fields(base) if (v := getattr(base, f.name)) is not None)

    def __getstate__(self) -> dict:
        """Pickle the fields only, not the memo nor the derived values (all rebuilt on demand)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_memo", "_derived", "folding_defaults")}

    def fold_limits(self) -> dict[str, int]:
        """Upper bound of each folding knob (the dimension it must divide)."""
        return {k: int(getattr(self, v)) for k, v in self.fold_dims.items()}

    def legal_values(self, knob: str) -> list[int]:
        """Legal values of ``knob`` ("pe"/"simd"): the divisors of its dimension, ascending."""
        n = self.fold_limits()[knob]
        return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True, kw_only=True)
class MVAU(LayerSpec):
    """Matrix-vector-activation unit (FINN ``MVAU``): fully connected or conv after an SWG.

    ``mw`` = MW (input features, K*K*IFMCh for conv), ``mh`` = MH (output features),
    ``n_vectors`` = prod(numInputVectors) (1 for FC, OFMDim^2 for conv).
    """

    kind: ClassVar[str] = "MVAU"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "mh", "simd": "mw"}

    mw: int
    mh: int
    n_vectors: int = 1
    idt: str = "INT8"
    wdt: str = "INT2"
    odt: str = "INT2"
    acc_dt: str = "INT32"
    no_activation: bool = False
    binary_xnor: bool = False
    num_steps: int = 0  # thresholds per channel (2^odt bits - 1 when activation is fused)
    #: weights never reach the type's minimum (FINN's ``NARROW_WEIGHTS`` of the RTL MVU); None = unknown
    narrow_weights: bool | None = None

    @property
    def weight_bits(self) -> int:
        return self.mw * self.mh * bits(self.wdt)


@dataclass(frozen=True, kw_only=True)
class VVAU(LayerSpec):
    """Vector-vector-activation unit (FINN ``VVAU``): depthwise conv. ``dim`` = output spatial dims."""

    kind: ClassVar[str] = "VVAU"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels", "simd": "kernel_elems"}

    channels: int
    kernel: tuple[int, int] = (3, 3)
    dim: tuple[int, int] = (1, 1)
    idt: str = "INT8"
    wdt: str = "INT2"
    odt: str = "INT2"
    acc_dt: str = "INT32"
    no_activation: bool = False

    @property
    def kernel_elems(self) -> int:
        return self.kernel[0] * self.kernel[1]


@dataclass(frozen=True, kw_only=True)
class Thresholding(LayerSpec):
    """Multi-threshold activation (FINN ``Thresholding``): ``channels`` = NumChannels,
    ``tdt`` = weightDataType (threshold type), ``num_steps`` = numSteps."""

    kind: ClassVar[str] = "Thresholding"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels"}

    channels: int
    n_vectors: int = 1
    idt: str = "INT8"
    tdt: str = "INT8"
    odt: str = "UINT2"
    num_steps: int = 3
    uniform_thres: bool = False


@dataclass(frozen=True, kw_only=True)
class ConvolutionInputGenerator(LayerSpec):
    """Sliding-window generator (FINN ``ConvolutionInputGenerator``, im2col on a stream)."""

    kind: ClassVar[str] = "ConvolutionInputGenerator"
    fold_dims: ClassVar[dict[str, str]] = {"simd": "ifm_ch"}

    ifm_ch: int
    ifm_dim: tuple[int, int]
    ofm_dim: tuple[int, int]
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    idt: str = "INT8"
    depthwise: bool = False


@dataclass(frozen=True, kw_only=True)
class Pool(LayerSpec):
    """Pooling over the windows an SWG produces (FINN ``Pool``): ``function`` in MaxPool/AvgPool/...."""

    kind: ClassVar[str] = "Pool"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels"}

    channels: int
    kernel: tuple[int, ...] = (2, 2)
    out_dims: tuple[int, ...] = (1, 1)
    idt: str = "INT8"
    odt: str = "INT8"
    function: str = "MaxPool"
    batch: int = 1
    accum_bits: int = 0


@dataclass(frozen=True, kw_only=True)
class StreamingMaxPool(LayerSpec):
    """Streaming max-pool (FINN ``StreamingMaxPool``, not produced by finn-plus 1.6.1's CNV flow)."""

    kind: ClassVar[str] = "StreamingMaxPool"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels"}

    channels: int
    ifm_dim: tuple[int, int]
    pool_dim: tuple[int, int] = (2, 2)
    idt: str = "INT8"
    ceil_mode: bool = False


@dataclass(frozen=True, kw_only=True)
class FMPadding(LayerSpec):
    """Feature-map padding (FINN ``FMPadding``): ``padding`` = (top, left, bottom, right)."""

    kind: ClassVar[str] = "FMPadding"
    fold_dims: ClassVar[dict[str, str]] = {"simd": "channels"}

    channels: int
    ifm_dim: tuple[int, int]
    padding: tuple[int, int, int, int] = (1, 1, 1, 1)
    idt: str = "INT8"


@dataclass(frozen=True, kw_only=True)
class LabelSelect(LayerSpec):
    """Top-K label selection (FINN ``LabelSelect``): ``labels`` classes, ``k`` outputs."""

    kind: ClassVar[str] = "LabelSelect"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "labels"}

    labels: int
    k: int = 1
    idt: str = "INT32"
    odt: str = "UINT8"
    n_vectors: int = 1


@dataclass(frozen=True, kw_only=True)
class ElementwiseBinary(LayerSpec):
    """Element-wise binary op (FINN ``ElementwiseBinaryOperation`` family).

    ``lhs_shape``/``rhs_shape``/``out_shape`` are the normal (unfolded) shapes, channels last;
    ``rhs_const`` says whether the right-hand side is a constant stored in the layer.
    """

    kind: ClassVar[str] = "ElementwiseBinary"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels"}

    lhs_shape: tuple[int, ...]
    rhs_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    lhs_dt: str = "INT8"
    rhs_dt: str = "INT8"
    odt: str = "INT8"
    lhs_const: bool = False
    rhs_const: bool = True

    @property
    def channels(self) -> int:
        return self.out_shape[-1]


@dataclass(frozen=True, kw_only=True)
class ElementwiseMul(ElementwiseBinary):
    kind: ClassVar[str] = "ElementwiseMul"


@dataclass(frozen=True, kw_only=True)
class ElementwiseAdd(ElementwiseBinary):
    kind: ClassVar[str] = "ElementwiseAdd"


@dataclass(frozen=True, kw_only=True)
class StreamingDataWidthConverter(LayerSpec):
    """Stream width converter between two layers (FINN ``StreamingDataWidthConverter``)."""

    kind: ClassVar[str] = "StreamingDataWidthConverter"

    in_width: int
    out_width: int
    n_words_in: int = 1  # input words per frame
    dt: str = "INT8"


@dataclass(frozen=True, kw_only=True)
class StreamingFIFO(LayerSpec):
    """A FIFO between two layers (FINN ``StreamingFIFO``): ``depth`` words of ``width`` bits."""

    kind: ClassVar[str] = "StreamingFIFO"

    width: int
    depth: int = 2
    ram_style: str = "auto"
    impl_style: str = "rtl"
    n_words: int = 0  # words per frame through the FIFO (its cycles)


@dataclass(frozen=True, kw_only=True)
class DuplicateStreams(LayerSpec):
    """Stream fan-out (FINN ``DuplicateStreams``, in front of a residual ElementwiseAdd)."""

    kind: ClassVar[str] = "DuplicateStreams"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "channels"}

    channels: int
    n_vectors: int = 1
    n_outputs: int = 2
    idt: str = "INT8"


@dataclass(frozen=True, kw_only=True)
class Reshape(LayerSpec):
    """Stream reshape (finn-plus ``Reshape``, e.g. the flatten in front of TFC): shapes channels last."""

    kind: ClassVar[str] = "Reshape"
    fold_dims: ClassVar[dict[str, str]] = {"pe": "out_channels"}

    inp_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    dt: str = "INT8"

    @property
    def out_channels(self) -> int:
        return self.out_shape[-1]


#: kind name -> dataclass
LAYER_KINDS: dict[str, type[LayerSpec]] = {
    c.kind: c
    for c in (
        MVAU,
        VVAU,
        Thresholding,
        ConvolutionInputGenerator,
        Pool,
        StreamingMaxPool,
        FMPadding,
        LabelSelect,
        ElementwiseMul,
        ElementwiseAdd,
        StreamingDataWidthConverter,
        StreamingFIFO,
        Reshape,
        DuplicateStreams,
    )
}

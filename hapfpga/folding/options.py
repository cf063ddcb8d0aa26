"""``FoldingOptions``: every setting of one folding, as one frozen value built once from the config.

The fold stage, ``hapfpga fold``, the pruning stage's hardware predictor and the benchmarks all fold through
:func:`hapfpga.folding.optimise.optimise` with one of these, so the predictor folds at the fold stage's budget
(``margin``), for its cycles (``finn_cycles``) and on the layers FINN builds for it (``open_simulatable``)
without anyone passing those settings by hand (FINN's builder resolves derived settings once on its config the
same way). :meth:`FoldingOptions.from_config` reads the run config's ``folding:`` section;
:meth:`FoldingOptions.for_predictor` is the pruning search's variant of the same options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from .legal import KnobSpace
from .margin import Margin, resolve_margin
from .solver import DEFAULT_KEYS

if TYPE_CHECKING:  # pragma: no cover
    from ..runconfig import FoldingConfig

__all__ = ["FoldingOptions", "FAST_SPACE"]

#: the pruning predictor's ``fast`` knob space: PE/SIMD only, block RAM, LUT arithmetic (conservative, ~5x faster)
FAST_SPACE = KnobSpace(ram_styles=("block",), res_types=("lut",), threshold_styles=("auto",),
                       swg_ram_styles=("block",), parallel_window=False)


@dataclass(frozen=True)
class FoldingOptions:
    """How ``optimise`` folds (everything but the layers, the board, an FPS target and an explicit budget).

    ``clock_mhz``: None = the board's clock. ``margin``: fractions of the budget kept free, one for every
    resource or a per-resource :class:`~hapfpga.folding.margin.Margin` (None: the measured default,
    ``folding/margin.py``). ``finn_cycles``: fold for FINN's estimate report's cycles too (default on).
    ``open_simulatable``: fold FINN's RTL layer variants (read by whoever converts the model to layers).
    ``space``: the knob space (None: every knob the board has). ``time_limit``: solver seconds per solve.
    ``estimate``: check the design with ``estimate_network`` and tighten until it fits. ``finn_compat``: cost
    layers as FINN's estimate does. ``infrastructure``: width converters and FIFOs count against the budget
    (``edge_cost`` overrides their cost, None ignores them). ``fps_only``: one of the fastest designs, no
    least-utilisation tie-break or binding resource (the pruning predictor). ``cost_fn``: a layer cost model
    other than the estimator's. ``impl_knob``: each RTL MVAU of ``layers`` (FINN's standalone-threshold graph) may
    also be HLS, a per-node knob (``folding/variants.py``); the plan's ``impl_style`` says which.
    """

    clock_mhz: float | None = None
    margin: float | Mapping[str, float] | Margin | None = None
    finn_cycles: bool = True
    open_simulatable: bool = False
    space: KnobSpace | None = None
    time_limit: float = 60.0
    estimate: bool = True
    finn_compat: bool = False
    infrastructure: bool = True
    max_tightenings: int = 5
    tie_conv_swg: bool = False
    fps_only: bool = False
    keys: tuple[str, ...] = tuple(DEFAULT_KEYS)
    cost_fn: Callable[..., Any] | None = None
    edge_cost: Callable[..., Any] | None | Literal["default"] = "default"
    impl_knob: bool = False

    @classmethod
    def from_config(cls, folding: FoldingConfig, clock_mhz: float | None = None, part: str = "") -> FoldingOptions:
        """The fold stage's options from the run config's ``folding:`` section, the effective clock and the
        board's ``part``: the margin is resolved here (the measured default for the part's family, or the
        config's fractions over it), so a stage keyed on these options re-runs when the measured default moves."""
        return cls(clock_mhz=clock_mhz, margin=resolve_margin(folding.margin, part),
                   finn_cycles=bool(folding.finn_cycles),
                   open_simulatable=bool(folding.open_simulatable))

    def for_predictor(self, time_limit: float, space: Literal["full", "fast"] = "full") -> FoldingOptions:
        """The pruning search's FPS predictor folding as these options do: only the fastest max cycles
        (``fps_only``), no network-estimate check, ``time_limit`` per solve; ``space="fast"`` restricts the knobs
        to PE/SIMD (:data:`FAST_SPACE`, no width converters), ``"full"`` keeps the fold stage's space."""
        fast = {"space": FAST_SPACE, "edge_cost": None} if space == "fast" else {}
        return replace(self, time_limit=float(time_limit), estimate=False, fps_only=True, **fast)

"""Each MVAU's implementation as a folding knob: finn-plus's RTL MVAU (DSP-packed) or its HLS MVAU, per node.

finn-plus 1.6.1 specialises an MVAU to RTL only when its thresholds are a standalone layer, its weights signed
(narrow-range on DSP48E1) and both widths at least 2 bits (``_mvu_rtl_possible`` in
``finn/transformation/fpgadataflow/specialize_layers.py``); a node's ``preferred_impl_style`` (FINN's
``specialize_layers_config_file``) picks the variant. On the layers of such a graph
(``hw_layers_from_qonnx(..., rtl=True)``) :func:`mixed_impl_problem` gives every RTL MVAU the HLS foldings of the same
layer as further candidates, marked by ``LayerFolding.impl_style``; its RTL candidates count DSPs twice-judged (the
larger of our packing rule, ``estimate.mvau.mvu_rtl_dsp``, and FINN's report's ``ceil(PE/4)*SIMD``), so a design
that fits fits both. :func:`specialize_config` and :func:`finn_folding` turn a chosen design into FINN's two
files: after a mixed specialisation FINN's ``GiveUniqueNodeNames`` numbers ``MVAU_hls_i`` and ``MVAU_rtl_j``
separately (:func:`finn_names`).

Measured on CNV-w2a2 (``benchmarks/folding_rtl_mix.py``, docs/margin.md "A wider knob space"): no gain where LUTs
bind (the RTL MVU sums each packed lane across SIMD in fabric), 10,629 -> 13,889 FPS on ZCU104, where RTL MVAUs are
free of HLS's PE*SIMD*W <= 8191 weight-stream rule; FINN's report of that design says the same FPS. The fold
stage, ``hapfpga fold`` and ``hapfpga build`` fold this graph next to the embedded-threshold one and keep the
faster (``folding.variants``, ``hapfpga/stages/variant.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..types import LayerFolding, Resources
from .solver import Problem, Unit

__all__ = ["rtl_mvaus", "twice_judged_rtl_cost", "impl_cost", "mixed_impl_problem", "finn_names", "specialize_config",
           "finn_folding"]


def rtl_mvaus(layers: Sequence[Any]) -> list[str]:
    """Names of the RTL MVAUs of ``layers`` in graph order: the nodes whose implementation is a knob."""
    return [x.name for x in layers if x.kind == "MVAU" and x.impl == "rtl"]


def twice_judged_rtl_cost(board: Any, clock_mhz: float) -> Callable[[Any, LayerFolding], tuple[Resources, int]]:
    """Our resources and cycles of a folding, with an RTL MVAU's DSPs the larger of ours and FINN's report's."""
    from ..estimate import estimate_layer

    def cost(layer: Any, f: LayerFolding) -> tuple[Resources, int]:
        ours = estimate_layer(layer, f, clock_mhz, board=board)
        if layer.kind != "MVAU" or layer.impl != "rtl":
            return ours.resources, int(ours.cycles)
        finn = estimate_layer(layer, f, clock_mhz, board=board, finn_compat=True)
        return replace(ours.resources, DSP=max(ours.resources.DSP, finn.resources.DSP)), int(ours.cycles)

    return cost


def impl_cost(board: Any, clock_mhz: float, default: Callable[[Any, LayerFolding], tuple[Resources, int]]
              ) -> Callable[[Any, LayerFolding], tuple[Resources, int]]:
    """The cost an RTL-MVAU graph's layers get under the implementation knob: :func:`twice_judged_rtl_cost` on the
    RTL MVAUs, ``default`` (the HLS twins' cost, FINN's cycles included where it says so) on every other layer.
    ``folding.optimise`` builds its problem with it and ``pruning.fpsbound`` bounds that problem with it."""
    rtl = twice_judged_rtl_cost(board, clock_mhz)

    def cost(layer: Any, f: LayerFolding) -> tuple[Resources, int]:
        return rtl(layer, f) if layer.kind == "MVAU" and layer.impl == "rtl" else default(layer, f)

    return cost


def mixed_impl_problem(
    layers: Sequence[Any],
    board: Any,
    budget: Resources,
    *,
    build: Callable[..., Problem],
    rtl_cost: Callable[[Any, LayerFolding], tuple[Resources, int]],
    hls_cost: Callable[[Any, LayerFolding], tuple[Resources, int]],
    **kw: Any,
) -> Problem:
    """``build(layers, budget, cost, **kw)`` (``optimise.build_problem``) for the RTL graph, with each RTL MVAU's
    candidates widened by the HLS foldings of its twin (the same layer with ``impl="hls"``, costed by
    ``hls_cost``). Ties and width-converter edges depend on stream widths only, which both variants share."""
    knob = set(rtl_mvaus(layers))
    twins = [replace(x, impl="hls") if x.name in knob else x for x in layers]
    rtl = build(layers, budget, rtl_cost, **kw)
    hls = build(twins, budget, hls_cost, **kw)
    units = []
    for a, b in zip(rtl.units, hls.units, strict=True):
        if a.name not in knob:
            units.append(a)
            continue
        cands = tuple(replace(c, folding=c.folding.with_(impl_style="rtl")) for c in a.candidates)
        cands += tuple(replace(c, folding=c.folding.with_(impl_style="hls")) for c in b.candidates)
        units.append(Unit(a.name, a.kind, cands))
    return replace(rtl, units=tuple(units))


def finn_names(layers: Sequence[Any], impl: dict[str, str]) -> dict[str, str]:
    """Each node's name after specialising with ``impl`` (MVAU name -> "hls"/"rtl"; an MVAU not in it keeps its
    ``impl``; ``layers`` in graph order): ``MVAU_hls_i`` / ``MVAU_rtl_j`` numbered per variant over all MVAUs in
    graph order, other names unchanged."""
    count = {"hls": 0, "rtl": 0}
    out = {}
    for x in layers:
        if x.kind != "MVAU":
            out[x.name] = x.name
            continue
        style = impl.get(x.name, x.impl)
        out[x.name] = f"MVAU_{style}_{count[style]}"
        count[style] += 1
    return out


def specialize_config(layers: Sequence[Any], impl: dict[str, str]) -> dict[str, Any]:
    """FINN's ``specialize_layers_config_file``: RTL wherever a layer has it, HLS on the MVAUs ``impl`` says.
    Keys are the names FINN gives before specialising (``GiveUniqueNodeNamesRecursive``: ``MVAU_k``, the k-th
    MVAU in graph order)."""
    out: dict[str, Any] = {"Defaults": {"preferred_impl_style": ["rtl", "all"]}}
    for k, name in enumerate(x.name for x in layers if x.kind == "MVAU"):
        if impl.get(name) == "hls":
            out[f"MVAU_{k}"] = {"preferred_impl_style": "hls"}
    return out


def finn_folding(layers: Sequence[Any], choice: dict[str, LayerFolding]) -> dict[str, Any]:
    """FINN's ``folding_config_file`` for a chosen design (node -> folding, ``impl_style`` set on the MVAUs that
    are a knob), under the names FINN gives after specialising; ``impl_style`` is not a node attribute and is
    dropped."""
    impl = {n: f.impl_style for n, f in choice.items() if f.impl_style}
    names = finn_names(layers, impl)
    out: dict[str, Any] = {"Defaults": {}}
    out.update({names[n]: f.with_(impl_style=None).to_finn() for n, f in choice.items()})
    return out


def as_built(layers: Sequence[Any], plan: Any) -> tuple[list[Any], Any]:
    """``layers`` and ``plan`` (a ``FoldingPlan``) as FINN builds them: each MVAU whose folding carries an
    ``impl_style`` gets that implementation, and the folding drops it (not a node attribute). Names unchanged."""
    from ..types import FoldingPlan

    impl = {n: f.impl_style for n, f in plan if f.impl_style}
    if not impl:
        return list(layers), plan
    out = [replace(x, impl=impl[x.name]) if x.name in impl else x for x in layers]
    return out, FoldingPlan(tuple((n, f.with_(impl_style=None)) for n, f in plan), plan.meta)


def finn_design(layers: Sequence[Any], plan: Any) -> tuple[list[Any], Any]:
    """:func:`as_built` under the names FINN gives after specialising (:func:`finn_names`), neighbours renamed
    too: the layers and plan whose per-node estimate lines up with FINN's report of the built design."""
    from ..types import FoldingPlan

    names = finn_names(layers, {n: f.impl_style for n, f in plan if f.impl_style})
    built, bplan = as_built(layers, plan)

    def ren(xs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(names.get(x, x) for x in xs)

    out = [replace(x, name=names[x.name], producers=ren(x.producers), consumers=ren(x.consumers)) for x in built]
    return out, FoldingPlan(tuple((names[n], f) for n, f in bplan), bplan.meta)

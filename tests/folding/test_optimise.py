"""``optimise`` on estimator layer descriptions: optimality against brute force, ties, the network
estimate's own accounting, the --fps mode and the infeasible-request errors."""

from __future__ import annotations

import itertools

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import InfeasibleError
from hapfpga.estimate import estimate_network
from hapfpga.estimate import layers as L
from hapfpga.folding import FoldingOptions, optimise
from hapfpga.folding.optimise import _default_edge_cost, build_problem, default_cost_fn
from hapfpga.folding.solver import brute_force, evaluate_choice, solve_max_fps, ties_hold
from hapfpga.types import Resources

BOARD = load_board("pynq-z2")


def _fc_net() -> list:
    """Thresholding -> MVAU -> MVAU, small enough to enumerate every combination of legal foldings."""
    return [
        L.Thresholding(
            name="Thresholding_rtl_0",
            impl="rtl",
            channels=4,
            idt="UINT8",
            tdt="UINT8",
            odt="UINT2",
            num_steps=3,
            consumers=("MVAU_hls_0",),
        ),
        L.MVAU(
            name="MVAU_hls_0",
            mw=4,
            mh=4,
            n_vectors=1,
            idt="UINT2",
            wdt="INT2",
            odt="UINT2",
            acc_dt="INT8",
            num_steps=3,
            producers=("Thresholding_rtl_0",),
            consumers=("MVAU_hls_1",),
        ),
        L.MVAU(
            name="MVAU_hls_1",
            mw=4,
            mh=2,
            n_vectors=1,
            idt="UINT2",
            wdt="INT2",
            odt="INT8",
            acc_dt="INT8",
            no_activation=True,
            producers=("MVAU_hls_0",),
        ),
    ]


def _problem(layers: list, budget: Resources, tie: bool = False):
    dwc, fifo = _default_edge_cost(BOARD)
    return build_problem(
        layers,
        budget,
        default_cost_fn(100.0, BOARD, False),
        edge_cost=dwc,
        stream_cost=fifo,
        tie_conv_swg=tie,
    )


_OTHER = {"BRAM_18K": 2, "DSP": 2}


def _cheapest_luts(layers: list) -> float:
    """Least LUTs of any combination within the BRAM/DSP budget (by enumeration, not the solver)."""
    p = _problem(layers, BOARD.budget)
    best = None
    for combo in itertools.product(*(u.candidates for u in p.units)):
        choice = {u.name: c for u, c in zip(p.units, combo, strict=True)}
        total = evaluate_choice(p, choice)[1]
        if all(getattr(total, k) <= v for k, v in _OTHER.items()):
            best = total.LUT if best is None else min(best, total.LUT)
    return best


@pytest.mark.parametrize("extra_luts", [0, 300, 3000])
def test_fc_net_optimum_equals_brute_force(extra_luts: int) -> None:
    layers = _fc_net()
    lut = _cheapest_luts(layers) + extra_luts
    budget = Resources(LUT=lut, URAM=0, **_OTHER)
    p = _problem(layers, budget)
    ref = brute_force(p)
    sol = solve_max_fps(p)
    assert ref is not None and sol is not None
    assert sol.optimal and sol.max_cycles == ref[0]


def test_optimise_result_is_what_the_network_estimate_says(conv_net: list) -> None:
    layers = conv_net
    budget = Resources(LUT=4000, FF=1e9, BRAM_18K=4, URAM=0, DSP=4)
    r = optimise(layers, BOARD, FoldingOptions(clock_mhz=100, tie_conv_swg=True), budget=budget)
    est = estimate_network(layers, r.plan, BOARD, clock_mhz=100)
    assert est.fits  # on the board, as the optimiser promised
    assert est.total.fits_in(budget, ("LUT", "BRAM_18K", "URAM", "DSP"))
    assert est.max_cycles == r.max_cycles
    assert est.fps == pytest.approx(r.fps)
    # the solver's own accounting (layers + FIFOs + width converters) is the network estimate's
    for k in ("LUT", "BRAM_18K", "URAM", "DSP"):
        assert getattr(est.total, k) == pytest.approx(getattr(r.total, k))
    # SWG output stream feeds the MVAU without a width converter
    swg, mvau = r.plan["ConvolutionInputGenerator_rtl_0"], r.plan["MVAU_hls_0"]
    if swg.parallel_window:
        assert mvau.simd == 36
    else:
        assert mvau.simd == swg.simd
    assert not [n for n in est.infrastructure if n.startswith("DWC_ConvolutionInputGenerator")]
    assert r.bound_fps == pytest.approx(r.fps) and r.optimal


@pytest.mark.parametrize(("tie", "lut"), [(True, 900), (True, 1000), (False, 900), (False, 1000)])
def test_conv_net_optimum_equals_brute_force(tie: bool, lut: float, tiny_conv_net: list) -> None:
    layers = tiny_conv_net
    budget = Resources(LUT=lut, BRAM_18K=1, URAM=0, DSP=0)
    p = _problem(layers, budget, tie)
    ref = brute_force(p)
    sol = solve_max_fps(p)
    assert ref is not None and sol is not None
    assert sol.max_cycles == ref[0]
    assert ties_hold(p, sol.choice)
    unbounded = solve_max_fps(_problem(layers, Resources(LUT=1e9, BRAM_18K=1e9, URAM=0, DSP=1e9), tie))
    assert unbounded.max_cycles < sol.max_cycles  # the budget binds: the test is not trivial


def test_fps_only_reaches_the_same_fps_within_the_budget_over_many_budgets(make_conv_chain) -> None:
    """``fps_only`` (the pruning predictor's solve: no least-utilisation tie-break, no binding-resource solve)
    proves the same max cycles as the full solve, on conv chains of several shapes under budgets from tight to
    loose; its design fits the budget and is exactly what its cycles say."""
    import random

    rng = random.Random(0)
    for _ in range(12):
        layers = make_conv_chain(ch=rng.choice([2, 4, 6]), dim=rng.choice([5, 6, 8]), conv_out=rng.choice([4, 8, 12]),
                            fc_out=rng.choice([2, 4]))
        budget = Resources(LUT=rng.choice([1500, 2500, 4000, 8000]), BRAM_18K=rng.choice([0, 2, 8]), URAM=0,
                           DSP=rng.choice([0, 4]))
        try:
            full = optimise(layers, BOARD, FoldingOptions(estimate=False), budget=budget)
        except InfeasibleError:
            with pytest.raises(InfeasibleError):
                optimise(layers, BOARD, FoldingOptions(estimate=False, fps_only=True), budget=budget)
            continue
        fast = optimise(layers, BOARD, FoldingOptions(estimate=False, fps_only=True), budget=budget)
        assert fast.optimal and fast.max_cycles == full.max_cycles, (layers[0].channels, budget)
        assert fast.total.fits_in(budget) and "fps_only" in fast.binding_resource
        assert max(c for _, c in fast.layer_costs.values()) == fast.max_cycles


def _maxpool_net(ch: int, dim: int) -> list:
    """MVAU (1x1 conv) -> depthwise SWG (2x2, stride 2) -> Pool: the CNV max-pool, where FINN's SWG cycle formula
    exceeds finn-rtllib's steady state (docs/estimator.md D10)."""
    return [
        L.MVAU(name="MVAU_hls_0", mw=ch, mh=ch, n_vectors=dim * dim, idt="UINT2", wdt="INT2", odt="UINT2",
               acc_dt="INT8", consumers=("ConvolutionInputGenerator_rtl_0",)),
        L.ConvolutionInputGenerator(name="ConvolutionInputGenerator_rtl_0", impl="rtl", ifm_ch=ch, ifm_dim=(dim, dim),
                                    ofm_dim=(dim // 2, dim // 2), kernel=(2, 2), stride=(2, 2), idt="UINT2",
                                    depthwise=True, producers=("MVAU_hls_0",), consumers=("Pool_hls_0",)),
        L.Pool(name="Pool_hls_0", channels=ch, kernel=(2, 2), out_dims=(dim // 2, dim // 2), idt="UINT2", odt="UINT2",
               producers=("ConvolutionInputGenerator_rtl_0",)),
    ]


@pytest.mark.parametrize(("ch", "dim", "lut"), [(16, 16, 3000), (32, 8, 4000), (16, 12, 6000), (64, 12, 8000)])
def test_finn_cycles_folds_for_the_fps_finns_report_says(ch: int, dim: int, lut: float) -> None:
    """With ``finn_cycles`` the FPS folded for is what FINN's own cycle formulas (``finn_compat``) say of the
    design, never more; without it FINN's report can say less than we folded for (the depthwise SWG)."""
    from hapfpga.estimate import estimate_layer

    layers = _maxpool_net(ch, dim)
    budget = Resources(LUT=lut, BRAM_18K=20, URAM=0, DSP=20)

    def finn_max_cycles(r) -> int:
        return max(int(estimate_layer(lay, r.plan[lay.name], 100.0, board=BOARD, finn_compat=True).cycles)
                   for lay in layers)

    judged = optimise(layers, BOARD, FoldingOptions(estimate=False, finn_cycles=True), budget=budget)
    assert finn_max_cycles(judged) <= judged.max_cycles
    plain = optimise(layers, BOARD, FoldingOptions(estimate=False, finn_cycles=False), budget=budget)
    assert optimise(layers, BOARD, FoldingOptions(estimate=False), budget=budget).max_cycles == judged.max_cycles
    assert plain.max_cycles <= judged.max_cycles  # ours alone is never slower to fold for
    if lut >= 4000 and ch <= 32:  # the max-pool SWG binds: FINN's report says less than we folded for
        assert finn_max_cycles(plain) > plain.max_cycles


def test_more_budget_never_slower_and_target_mode_is_cheaper(conv_net: list) -> None:
    layers = conv_net
    small = optimise(layers, BOARD, budget=Resources(LUT=2500, BRAM_18K=2, URAM=0, DSP=0))
    big = optimise(layers, BOARD, budget=Resources(LUT=8000, BRAM_18K=8, URAM=0, DSP=8))
    assert big.max_cycles <= small.max_cycles
    target = small.fps * 0.999
    cheap = optimise(layers, BOARD, budget=Resources(LUT=8000, BRAM_18K=8, URAM=0, DSP=8), target_fps=target)
    assert cheap.mode == "fps" and cheap.fps >= target
    w = {"LUT": 8000, "BRAM_18K": 8, "DSP": 8}
    assert (
        sum(getattr(cheap.total, k) / v for k, v in w.items())
        <= sum(getattr(big.total, k) / v for k, v in w.items()) + 1e-9
    )
    assert cheap.bound_fps == pytest.approx(big.fps)  # the bound is the max-fps optimum


def test_budget_too_small_names_the_binding_resource(conv_net: list) -> None:
    layers = conv_net
    with pytest.raises(InfeasibleError) as e:
        optimise(layers, BOARD, budget=Resources(LUT=100, BRAM_18K=8, URAM=0, DSP=8))
    msg = str(e.value)
    assert (
        "binding resource is LUTs" in msg and "budget of 100 LUTs" in msg and "cheapest design needs" in msg
    )


def test_unreachable_target_is_a_user_error(conv_net: list) -> None:
    layers = conv_net
    best = optimise(layers, BOARD, budget=Resources(LUT=3000, BRAM_18K=2, URAM=0, DSP=0))
    with pytest.raises(InfeasibleError, match="cannot be met"):
        optimise(
            layers, BOARD, budget=Resources(LUT=3000, BRAM_18K=2, URAM=0, DSP=0), target_fps=best.fps * 1.01
        )


def test_finn_json_has_finn_node_names_and_keys(conv_net: list) -> None:
    r = optimise(conv_net, BOARD)
    d = r.plan.to_finn_dict()
    assert d["Defaults"] == {}
    assert set(d) - {"Defaults"} == {layer.name for layer in conv_net}
    assert {"PE", "SIMD", "ram_style", "resType", "mem_mode"} <= set(d["MVAU_hls_0"])
    assert set(d["ConvolutionInputGenerator_rtl_0"]) >= {"SIMD", "parallel_window", "ram_style"}


def test_network_check_tightens_until_the_full_estimate_fits(conv_net: list) -> None:
    """With FIFOs/DWCs left out of the solver (edge_cost=None) but counted by estimate_network, the
    first design overflows; optimise must tighten the budget and re-solve until the network fits."""
    layers = conv_net
    first = optimise(
        layers, BOARD, FoldingOptions(edge_cost=None, estimate=False), budget=Resources(LUT=3000, BRAM_18K=2, URAM=0, DSP=0)
    )
    budget = Resources(LUT=first.total.LUT, BRAM_18K=2, URAM=0, DSP=0)  # no room left for FIFOs
    loose = optimise(layers, BOARD, FoldingOptions(edge_cost=None, estimate=False), budget=budget)
    net = estimate_network(layers, loose.plan, BOARD)
    assert net.total.over(budget, ("LUT", "BRAM_18K", "URAM", "DSP")) == ["LUT"]
    r = optimise(layers, BOARD, FoldingOptions(edge_cost=None), budget=budget)
    assert r.notes and "tightened" in r.notes[0]
    assert r.estimate.total.fits_in(budget, ("LUT", "BRAM_18K", "URAM", "DSP"))
    assert r.max_cycles >= loose.max_cycles


def test_untied_swg_pays_for_its_width_converter_exactly_as_the_network_estimate(conv_net: list) -> None:
    layers = conv_net
    budget = Resources(LUT=3500, BRAM_18K=2, URAM=0, DSP=0)
    tied = optimise(layers, BOARD, FoldingOptions(tie_conv_swg=True), budget=budget)
    free = optimise(layers, BOARD, budget=budget)
    assert free.max_cycles <= tied.max_cycles  # a superset of designs
    est = estimate_network(layers, free.plan, BOARD)
    for k in ("LUT", "BRAM_18K", "URAM", "DSP"):
        assert getattr(est.total, k) == pytest.approx(getattr(free.total, k))
    assert est.total.fits_in(budget, ("LUT", "BRAM_18K", "URAM", "DSP"))

"""``least_loaded``: what reaching an FPS takes, on the same problem ``optimise`` solves.

The property that makes it a proof: over many budgets and targets, ``optimise(target_fps=...)`` (no network check)
finds a design exactly when the least-loaded design reaching that FPS uses at most the whole budget, and the
utilisation it reports is the largest share of the budget its own design uses."""

from __future__ import annotations

import pytest

from hapfpga.boards import load_board
from hapfpga.errors import InfeasibleError
from hapfpga.folding import FoldingOptions, least_loaded, optimise
from hapfpga.folding.optimise import _problem_for
from hapfpga.folding.solver import cycle_levels, evaluate_choice
from hapfpga.types import Resources

BOARD = load_board("pynq-z2")
KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")


@pytest.mark.parametrize("lut", [1800, 2600, 9000])
@pytest.mark.parametrize("dsp", [0, 8])
def test_reachable_exactly_when_optimise_finds_a_design(conv_net: list, lut: float, dsp: float) -> None:
    budget = Resources(LUT=lut, BRAM_18K=4, URAM=0, DSP=dsp)
    opts = FoldingOptions(estimate=False, margin=0.0)
    problem, clock, _, _ = _problem_for(conv_net, BOARD, opts, budget)
    levels = cycle_levels(problem)
    checked = {True: 0, False: 0}
    for lv in levels[:: max(1, len(levels) // 12)]:
        fps = clock * 1e6 / lv
        c = least_loaded(conv_net, BOARD, fps, opts, budget=budget)
        assert c.cycle_limit >= lv - 1 and c.optimal
        used = {k: getattr(c.total, k) / getattr(budget, k) for k in KEYS if getattr(budget, k) > 0}
        assert c.utilisation == pytest.approx(max(used.values()))
        assert c.binding == max(used, key=used.get)
        chosen = {n: next(x for x in u.candidates if x.folding == c.plan[n]) for n, u in
                  ((u.name, u) for u in problem.units)}
        assert evaluate_choice(problem, chosen)[0] <= c.cycle_limit  # its design does reach the FPS
        try:
            r = optimise(conv_net, BOARD, opts, budget=budget, target_fps=fps)
            found = True
            assert r.fps >= fps * (1 - 1e-9)
        except InfeasibleError:
            found = False
        assert found == c.reachable, (lv, c.utilisation)
        checked[found] += 1
    assert checked[True] and (checked[False] or lut >= 4000)


def test_default_margin_is_applied_to_the_ceiling(conv_net: list) -> None:
    """Without an explicit budget, the ceiling is against the board budget after the default margin, as ``optimise``'s."""
    r = optimise(conv_net, BOARD, FoldingOptions(estimate=False))
    c = least_loaded(conv_net, BOARD, r.fps, FoldingOptions(estimate=False))
    assert c.budget == r.budget and c.reachable
    assert c.budget.LUT < BOARD.budget.LUT


def test_faster_than_any_legal_folding_is_a_user_error(conv_net: list) -> None:
    with pytest.raises(InfeasibleError, match="even without a budget"):
        least_loaded(conv_net, BOARD, 1e12)

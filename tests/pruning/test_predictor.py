"""The pruning search's FPS predictor predicts the fold that is actually made of the pruned model.

* A solve cut by its time limit is never taken as the prediction: HiGHS's incumbent at a 2 s limit was 63 FPS
  for a pruned CNV whose optimum is 7,972, and a cut without any design read as "does not fit". The predictor
  solves once with the whole allowance and says so (a user error naming ``pruning.folding_time_limit``) if that
  is cut.
* The predictor folds as the fold stage: ``folding.margin`` and ``folding.finn_cycles`` reach it from
  ``run_pruning_stage``.
* (FINN) the predicted FPS of pruned plans equals our optimiser's on FINN's own conversion of the pruned model,
  at the default margin (the fold stage) and at none (``benchmarks/pruning_vs_finn.py``'s ``ours_job``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hapfpga.errors import InfeasibleError, SolverTimeLimitError
from hapfpga.folding import FoldingOptions
from hapfpga.pruning.predictor import ALLOWANCE, HwPredictor, HwTarget, PredictorSpec
from hapfpga.pruning.search import HwPoint
from hapfpga.types import Resources

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")

_spec = importlib.util.spec_from_file_location("graph_models", Path(__file__).with_name("graph_models.py"))
gm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gm)


class _Solver:
    """A stand-in for ``folding.optimise`` that answers from a script of (fps, optimal) or exceptions."""

    def __init__(self, script):
        self.script, self.limits = list(script), []

    def __call__(self, layers, board, options):
        self.limits.append(options.time_limit)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        fps, optimal = step
        return SimpleNamespace(fps=fps, optimal=optimal, total=Resources(LUT=1.0), budget=Resources(LUT=10.0),
                               bottleneck="MVAU_hls_0", plan=None)


@pytest.fixture
def counts_as_layers(monkeypatch):
    """The stand-in solvers get the channel counts as their "layers" (no FINN specs to scale)."""
    import hapfpga.pruning.plan as plan

    monkeypatch.setattr(plan, "scale_layers", lambda layers, b, a, *rest: list(a))


def _hw(solver, time_limit=2.0):
    spec = PredictorSpec((), ("fc0",), {"fc0": 8}, SimpleNamespace(budget=Resources(LUT=10.0)),
                         FoldingOptions(time_limit=time_limit))
    return HwPredictor(spec, optimise=solver)


def test_one_solve_gets_the_whole_allowance_at_once(counts_as_layers):
    """HiGHS is deterministic and a cut solve's answer is thrown away, so the predictor solves once with
    ``ALLOWANCE`` times the limit (the former 1x, 4x, 16x ladder spent up to 5x longer for the same answer)."""
    solver = _Solver([(7971.9, True)])
    point = _hw(solver)({"fc0": 8})
    assert point.fps == 7971.9 and point.fits
    assert solver.limits == [2.0 * ALLOWANCE]


def test_a_proven_solve_is_taken_at_once_and_a_real_infeasible_is_no_fit(counts_as_layers):
    solver = _Solver([(5000.0, True)])
    assert _hw(solver)({"fc0": 8}).fps == 5000.0 and len(solver.limits) == 1
    nofit = _Solver([InfeasibleError("No legal folding fits the budget.")])
    assert _hw(nofit)({"fc0": 8}) == HwPoint(0.0, Resources(), False) and len(nofit.limits) == 1


@pytest.mark.parametrize("cut", [(63.3, False), SolverTimeLimitError("The folding solver stopped.")])
def test_a_cut_solve_is_a_user_error_naming_the_time_limit(cut, counts_as_layers):
    """HiGHS's incumbent at a time limit (63 FPS for a pruned CNV whose optimum is 7,972), or no design at all,
    is never taken as the prediction (nor as "does not fit")."""
    solver = _Solver([cut])
    with pytest.raises(SolverTimeLimitError, match="pruning.folding_time_limit"):
        _hw(solver, time_limit=0.5)({"fc0": 8})
    assert solver.limits == [0.5 * ALLOWANCE]


@pytest.mark.parametrize(("margin", "finn_cycles"), [(None, False), (0.0, True), (0.3, False)])
def test_the_stage_folds_its_predictions_as_the_fold_stage(tmp_path, counts_as_layers, monkeypatch, margin,
                                                           finn_cycles):
    """``run_pruning_stage`` with the fold stage's ``FoldingOptions`` (the pipeline's ``folding.margin`` and
    ``folding.finn_cycles``) folds every candidate with them (``optimise`` sees them, in predictor mode)."""
    import hapfpga.pruning.hwmodel as hwmodel
    import hapfpga.pruning.stage as stage

    seen: list[FoldingOptions] = []

    def fake_build(model, graph, input_shape, board, work_dir, options, **kw):
        def optimise(layers, board, options):
            seen.append(options)
            return SimpleNamespace(fps=1e6 / sum(lay for lay in layers), optimal=True, total=Resources(LUT=1.0),
                                   budget=Resources(LUT=10.0), bottleneck="x", plan=None)

        order = tuple(graph.groups)
        spec = PredictorSpec((), order, {n: graph.groups[n].channels for n in order},
                             SimpleNamespace(budget=Resources(LUT=10.0)), options)
        return HwPredictor(spec, optimise=optimise), [], tmp_path

    monkeypatch.setattr(hwmodel, "build_predictor", fake_build)
    cfg = {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.9, "finetune_epochs": 0,
           "step_finetune_epochs": 0, "sensitivity": False, "min_ratio": 0.5, "candidate_steps": 2, "max_steps": 2}
    folding = FoldingOptions(margin=margin, finn_cycles=finn_cycles)
    stage.run_pruning_stage(cfg, gm.build("Mlp"), gm.random_data((20,), n=64), HwTarget(None, folding), tmp_path)
    assert seen and all(o.margin == margin and o.finn_cycles == finn_cycles and o.fps_only and not o.estimate
                        for o in seen)


def _small_board():
    """Pynq-Z2 with a tenth of its LUTs and BRAM: a budget that binds the small test CNN's folding."""
    from hapfpga.boards import load_board

    b = load_board("pynq-z2")
    return replace(b, capacity=replace(b.capacity, LUT=b.capacity.LUT / 10, BRAM_18K=b.capacity.BRAM_18K / 4))


@pytest.mark.slow
def test_predicted_fps_is_the_fold_of_finns_conversion_of_the_pruned_model(tmp_path):
    """Predictor (FINN conversion of the unpruned model once, scaled specs) == ``optimise`` on FINN's conversion
    of each pruned model, at the fold stage's default margin and at none (``ours_job``: the board's whole
    budget), for three plans of a zoo CNN on a budget that binds. The embedded-threshold graph alone (the graph
    choice is the next test's)."""
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions, optimise
    from hapfpga.pruning.apply import ChannelGraph, prune_to_counts
    from hapfpga.pruning.hwmodel import build_predictor, export_for_finn
    from hapfpga.pruning.importance import make_importance
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    board = _small_board()
    shape = (1, 16, 16)
    m = build_model(ModelConfig(name="cnv", options={"channels": [16, 16, 32, 32], "pool_after": [1],
                                                     "fc": [64]}), shape, 10, seed=0).eval()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    graph = ChannelGraph(m, x)
    full = {g: grp.channels for g, grp in graph.groups.items() if grp.prunable}
    hws = {mg: build_predictor(m, graph, shape, board, tmp_path / f"pred{mg}",
                               FoldingOptions(clock_mhz=100.0, margin=mg).for_predictor(10.0),
                               variants="embedded")[0] for mg in (None, 0.0)}
    names = sorted(full)
    plans = [dict(full), {g: full[g] // 2 for g in names},
             {g: (full[g] // 4 if i % 2 else full[g]) for i, g in enumerate(names)}]
    gaps = []
    for i, counts in enumerate(plans):
        pruned = prune_to_counts(m, x, counts, make_importance("l1"), graph=graph)[0] if i else m
        real, _ = hw_layers_from_qonnx(export_for_finn(pruned, shape, tmp_path / f"p{i}.onnx"), tmp_path / "f",
                                       board, 100.0)
        fold = optimise(real, board, FoldingOptions(clock_mhz=100.0)).fps  # the fold stage
        ours = optimise(real, board, FoldingOptions(clock_mhz=100.0, margin=0.0, estimate=False),
                        budget=board.budget).fps
        assert hws[None](counts).fps == pytest.approx(fold, rel=1e-9), counts
        assert hws[0.0](counts).fps == pytest.approx(ours, rel=1e-9), counts
        gaps.append(ours / fold)
    assert max(gaps) > 1.05  # the margin binds: a predictor at the other margin would be off


def test_pruned_accumulator_width_is_never_narrower_than_finns_over_random_layers():
    """``plan.pruned_acc_dt`` against FINN's rule (``MVAU.minimize_accumulator_width``: per column the sum of
    each weight's contribution at the input type's max/min, the widest column) on the rows of a random subset
    of input channels, over 300 random layers (weights INT2/INT4/ternary, inputs UINT2/UINT4/INT2, 1x1/2x2/3x3
    kernels, 8-64 channels): never narrower (a narrower one would let the predictor fold a design FINN's
    conversion does not fit), exact in most cases, and narrower than the unpruned width in most (not trivial)."""
    from hapfpga.pruning.plan import _finn_acc_dt, pruned_acc_dt

    rng = np.random.default_rng(0)

    def bits(t: str) -> int:
        return int(t.lstrip("UINT"))

    counts = {"exact": 0, "narrow": 0, "below_unpruned": 0}
    for trial in range(300):
        k2, old, mh = int(rng.choice([1, 4, 9])), int(rng.choice([8, 16, 32, 64])), int(rng.choice([8, 16, 64]))
        wmin, wmax = [(-2, 1), (-8, 7), (-1, 1)][trial % 3]
        xmin, xmax = [(0, 3), (0, 15), (-2, 1)][(trial // 3) % 3]
        w = rng.integers(wmin, wmax + 1, size=(k2 * old, mh)).astype(float)
        hi, lo = w * np.where(w > 0, xmax, xmin), w * np.where(w > 0, xmin, xmax)
        new = int(rng.integers(1, old))
        kept = set(rng.choice(old, size=new, replace=False).tolist())
        rows = [i for i in range(k2 * old) if i % old in kept]  # FINN's rows: channel fastest
        real = _finn_acc_dt(float(lo[rows].sum(0).min()), float(hi[rows].sum(0).max()))
        pred, unpruned = pruned_acc_dt((hi, lo), old, new)
        assert unpruned == _finn_acc_dt(float(lo.sum(0).min()), float(hi.sum(0).max()))
        counts["exact"] += pred == real
        counts["narrow"] += bits(pred) < bits(real)
        counts["below_unpruned"] += bits(pred) < bits(unpruned)
    assert counts["narrow"] == 0 and counts["exact"] >= 200 and counts["below_unpruned"] >= 150, counts



class _Graphs:
    """A stand-in ``optimise`` for a spec with a variant: the embedded graph's fold answers from ``emb``, the mixed
    graph's (``options.impl_knob``) from ``mix``, each a counts -> (fps, fits) function of the layers (counts)."""

    def __init__(self, emb, mix):
        self.emb, self.mix, self.calls = emb, mix, []

    def __call__(self, layers, board, options):
        self.calls.append("mixed" if options.impl_knob else "embedded")
        fps, fits = (self.mix if options.impl_knob else self.emb)(layers[0])
        return SimpleNamespace(fps=fps, optimal=True, total=Resources(LUT=1.0 if fits else 20.0),
                               budget=Resources(LUT=10.0), bottleneck="x", plan=None)


def _hw_with_variant(solver):
    board = SimpleNamespace(budget=Resources(LUT=10.0))
    main = PredictorSpec((), ("fc0",), {"fc0": 8}, board, FoldingOptions())
    return HwPredictor(replace(main, variant=replace(main, options=FoldingOptions(impl_knob=True))), optimise=solver)


#: (embedded fold, mixed fold, the fold stage's choice) as (fps, fits) pairs and the chosen FPS
CHOICES = [
    ((100.0, True), (200.0, True), 200.0),  # the mixed graph faster: kept
    ((100.0, True), (50.0, True), 100.0),  # slower: the embedded graph
    ((100.0, True), (100.0, True), 100.0),  # a tie keeps the embedded graph
    ((100.0, True), (300.0, False), 100.0),  # faster but over the budget: not kept
    ((0.0, False), (80.0, True), 80.0),  # only the mixed graph fits
]


@pytest.mark.parametrize("emb, mix, want", CHOICES)
def test_a_prediction_is_the_fold_stages_choice_of_graph(counts_as_layers, emb, mix, want):
    """``choose_design``'s rule (``stages/variant.py``): the faster fold that fits, a tie the embedded graph."""
    solver = _Graphs(lambda c: emb, lambda c: mix)
    point = _hw_with_variant(solver)({"fc0": 4})
    assert point.fps == want and point.fits == (emb[1] or mix[1])
    assert sorted(solver.calls) == ["embedded", "mixed"]


@pytest.mark.parametrize("emb, mix, want", CHOICES)
def test_the_gate_keeps_the_mixed_graph_as_the_fold_stage_and_hands_over_the_unpruned_fold(
        counts_as_layers, monkeypatch, emb, mix, want):
    """``hwmodel._gate``: the predictor carries the mixed graph iff the fold stage keeps it for the unpruned model,
    and is handed that fold: the search's first question (the unpruned model) costs no second solve."""
    from hapfpga.pruning.hwmodel import _gate

    fo = importlib.import_module("hapfpga.folding.optimise")  # the package exports the function under this name
    monkeypatch.setattr(fo, "optimise", _Graphs(lambda c: emb, lambda c: mix))
    main = PredictorSpec((), ("fc0",), {"fc0": 8}, SimpleNamespace(budget=Resources(LUT=10.0)), FoldingOptions())
    mixed = replace(main, options=FoldingOptions(impl_knob=True))
    spec, point = _gate(main, mixed)
    assert point.fps == want and (spec.variant is mixed) == (want != emb[0])
    solver = _Graphs(lambda c: pytest.fail("solved again") if c == 8 else emb,
                     lambda c: pytest.fail("solved again") if c == 8 else mix)
    hw = HwPredictor(spec, optimise=solver)
    hw.remember({}, point)
    assert hw({"fc0": 8}) == point and hw({}) == point  # any spelling of the unpruned counts
    assert hw.stats["solves"] == 0 and solver.calls == []
    assert hw({"fc0": 4}).fps == want and hw.stats["solves"] == 1  # another candidate is folded


def test_bits_below_the_rtl_minimum_fold_the_embedded_graph_alone(monkeypatch):
    """FINN makes no RTL MVAU below 2-bit operands: such a candidate is not folded on the mixed graph."""
    import hapfpga.pruning.predictor as pred

    monkeypatch.setattr(pred, "scaled_layers", lambda spec, counts: [dict(counts)])
    solver = _Graphs(lambda c: (100.0, True), lambda c: (500.0, True))
    hw = _hw_with_variant(solver)
    assert hw({"fc0": 4, "bits:fc0": 1}).fps == 100.0 and solver.calls == ["embedded"]
    assert hw({"fc0": 4, "bits:fc0": 2}).fps == 500.0



@pytest.mark.parametrize("section, want", [
    ({}, "auto"),
    ({"folding": {"variants": "embedded"}}, "embedded"),
    ({"folding": {"variants": "mixed"}}, "mixed"),
    ({"rtlsim": {}}, "embedded"),  # open tools take the design: the fold keeps the embedded graph
    ({"deploy": {"emulate": True}}, "embedded"),
])
def test_the_prune_stage_predicts_the_graphs_the_fold_stage_folds(section, want):
    """``hapfpga run``'s prune stage hands the predictor the fold's graph choice, and it is in the stage's key."""
    from hapfpga.config import from_dict
    from hapfpga.runconfig import RunConfig
    from hapfpga.stages.model import PRUNE, predictor_variants

    cfg = from_dict(RunConfig, {"pruning": {"method": "greedy"}, **section}, "")
    assert predictor_variants(SimpleNamespace(cfg=cfg)) == want
    assert PRUNE.key_extra is predictor_variants


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ds_cnn", "cnv"])
def test_prediction_is_the_default_folds_choice_on_finns_conversion_of_pruned_lowered_models(kind, tmp_path):
    """With ``variants: auto`` the predictor folds both graphs the fold stage folds (embedded thresholds, and the
    mixed RTL/HLS-MVAU graph) where the fold keeps the mixed one for the unpruned model, and answers the faster:
    equal to ``choose_design`` (the fold stage, the benchmark's margin) on FINN's own conversion of each pruned and
    bit-lowered model. DS-CNN: the mixed graph wins (the unpruned model 2x). Where the fold keeps the embedded
    graph for the unpruned model the predictor folds it alone: equal to the embedded fold, never above the fold
    stage's choice. The CNV-like chain: lowered bits reach the standalone thresholds."""
    from hapfpga.boards import load_board
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.pruning.apply import ChannelGraph, prune_to_counts
    from hapfpga.pruning.hwmodel import build_predictor, export_for_finn
    from hapfpga.pruning.importance import make_importance
    from hapfpga.pruning.mixed import bits_knobs, with_operand_bits
    from hapfpga.runconfig import ModelConfig
    from hapfpga.stages.variant import choose_design
    from hapfpga.zoo import build_model

    board = load_board("pynq-z2")
    if kind == "ds_cnn":
        shape, opts = (1, 28, 28), {"channels": [64] * 5, "stem_kernel": 3, "stem_stride": 2, "pool": "avg"}
    else:
        shape, opts = (3, 16, 16), {"channels": [16, 16, 32, 32], "pool_after": [1], "fc": [64]}
    m = build_model(ModelConfig(name=kind, weight_bits=4, act_bits=4, options=opts), shape, 10, seed=0).eval()
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))
    graph = ChannelGraph(m, x)
    bits0, cands = bits_knobs(m, [4, 3, 2])
    fold = FoldingOptions(clock_mhz=100.0, margin=0.0, finn_cycles=True)
    hw, _, _ = build_predictor(m, graph, shape, board, tmp_path / "pred", fold.for_predictor(10.0),
                               base_bits={k.split(":", 1)[1]: v for k, v in bits0.items()})
    kept = hw.spec.variant is not None
    full = {g: grp.channels for g, grp in graph.groups.items() if grp.prunable}
    names, knobs = sorted(full), sorted(cands)
    plans = [dict(full), {g: full[g] // 2 for g in names},
             {**{g: (full[g] * 3 // 4 if i % 2 else full[g]) for i, g in enumerate(names)},
              **{k: 3 for k in knobs[1::2]}}]
    chosen = []
    for i, counts in enumerate(plans):
        chans = {k: v for k, v in counts.items() if not k.startswith("bits:")}
        pruned = prune_to_counts(m, x, chans, make_importance("l1"), graph=graph)[0] if i else m
        lowered = with_operand_bits(pruned, {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("bits:")})
        q = export_for_finn(lowered, shape, tmp_path / f"p{i}.onnx")
        layers, _ = hw_layers_from_qonnx(q, tmp_path / f"f{i}", board, 100.0)
        d = choose_design(q, layers, tmp_path / f"f{i}", board, fold)
        got = hw({**bits0, **counts}).fps
        assert i or hw.stats["solves"] == 0  # the gate's unpruned fold is the first answer (hwmodel._gate)
        if not kept:
            emb = choose_design(q, layers, tmp_path / f"f{i}", board, fold, variants="embedded").result.fps
            assert got == pytest.approx(emb, rel=1e-9) and got <= d.result.fps * (1 + 1e-9), (counts, d.fps)
        else:
            assert got == pytest.approx(d.result.fps, rel=1e-9), (counts, d.fps)
            assert hw.upper_bound({**bits0, **counts}) >= d.result.fps * (1 - 1e-9)
        chosen.append(d.variant)
    assert kept == (chosen[0] == "mixed")  # the predictor carries the mixed graph where the unpruned fold keeps it
    if kind == "ds_cnn":
        assert kept  # the graph the embedded-only predictor missed

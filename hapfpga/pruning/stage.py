"""The pruning stage of ``hapfpga run`` and ``hapfpga prune``: config → pruned, fine-tuned model + report dict.

Search decisions use a validation split carved from the training data (``val_fraction``); the test split is
only used for the reported accuracies. Hardware predictions come from the unpruned model's FINN layer specs,
scaled to each candidate's channel counts, and the folding optimiser (no FINN run per candidate).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .config import PruningConfig, parse_pruning_config
from .search import HwPoint, SearchResult

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["run_pruning_stage", "split_validation", "build_hw_evaluator", "export_for_finn"]


def split_validation(x: Any, y: Any, fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """Deterministic split of training data into (x_fit, y_fit, x_val, y_val)."""
    import numpy as np

    n = len(x)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(n * fraction))
    if n_val == 0:
        return x, y, x, y
    val, fit = perm[:n_val], perm[n_val:]
    return x[fit], y[fit], x[val], y[val]


def export_for_finn(model: torch.nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    """QONNX export for FINN: the ML side's ``hapfpga.export.export_qonnx`` when present, else Brevitas + cleanup."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from ..export import export_qonnx as _export  # type: ignore[import-not-found]

        return Path(_export(model, tuple(input_shape), path))
    except ImportError:
        import torch
        from brevitas.export import export_qonnx
        from qonnx.util.cleanup import cleanup

        was = model.training
        model.eval()
        export_qonnx(model, torch.zeros(1, *input_shape), str(path))
        model.train(was)
        cleanup(str(path), out_file=str(path))
        return path


def _layer_order(graph: Any) -> list[str]:
    return graph.layers_in_order()


def build_hw_evaluator(
    model: torch.nn.Module,
    graph: Any,
    input_shape: tuple[int, ...],
    board: Any,
    work_dir: Path,
    *,
    clock_mhz: float | None = None,
    time_limit: float = 20.0,
    cost_fn: Any = None,
    space: str = "full",
    workers: int = 0,
    open_simulatable: bool = False,
    base_bits: Mapping[str, int] | None = None,
    margin: float | None = None,
    finn_cycles: bool = False,
) -> tuple[Callable[[Mapping[str, int]], HwPoint], list[Any], Path]:
    """``counts -> HwPoint`` for this model (FINN conversion of the unpruned model once, then scaling).

    ``space="full"`` is the fold stage's design space (``folding.optimise`` with its default knobs and width
    converters, the layers FINN makes with ``open_simulatable``), so the FPS the search targets is the FPS the
    fold stage reaches; ``"fast"`` (PE/SIMD only) is a quicker, conservative approximation. ``margin`` is the
    fold stage's ``folding.margin`` (``None``: its measured default): the LUTs kept free bind most pruned
    designs, so a predictor at another margin than the fold's is off by 15-35% (``0`` for a fold at the
    board's whole budget, as ``benchmarks/pruning_vs_finn.py``'s); ``finn_cycles`` its ``folding.finn_cycles``.
    Each solve only needs the fastest max
    cycles (``fps_only``) and is proven optimal (``search._solve_proven``); pruned MVAUs get the narrower
    accumulators FINN gives them (``plan.pruned_acc_dt``, from the unpruned weights).
    """
    from ..finn.graph import accumulator_contributions, hw_layers_from_qonnx
    from .apply import hw_layer_shapes
    from .search import make_hw_evaluator

    onnx = export_for_finn(model, input_shape, work_dir / "unpruned_for_hw.qonnx.onnx")
    layers, spec_path = hw_layers_from_qonnx(onnx, work_dir / "finn", board, clock_mhz, rtl=open_simulatable)
    order = _layer_order(graph)
    mods = dict(model.named_modules())
    before = {n: (mods[n].out_features if hasattr(mods[n], "out_features") else mods[n].out_channels) for n in order}
    l2g = {p: g.name for g in graph.groups.values() for p in g.producers}

    kw: dict[str, Any] = {"time_limit": time_limit, "estimate": False, "fps_only": True, "margin": margin,
                          "finn_cycles": finn_cycles}
    if space == "fast":
        from ..folding.legal import KnobSpace

        kw["space"] = KnobSpace(ram_styles=("block",), res_types=("lut",), threshold_styles=("auto",),
                                swg_ram_styles=("block",), parallel_window=False)
        kw["edge_cost"] = None
    if cost_fn is not None:
        kw["cost_fn"] = cost_fn
    hw = make_hw_evaluator(layers, order, before, board, clock_mhz=clock_mhz, layer_to_group=l2g,
                           optimise_kwargs=kw, workers=workers, model_layers=hw_layer_shapes(model, order),
                           base_bits=base_bits, acc_contributions=accumulator_contributions(spec_path))
    return hw, layers, spec_path


def _counts_of(model: torch.nn.Module, groups: Mapping[str, Any]) -> dict[str, int]:
    from .apply import layer_channels

    ch = layer_channels(model)
    return {g: ch[g] for g in groups}


def _target_met(
    cfg: PruningConfig, fps_before: float | None, fps_after: float | None, log: Callable[[str], None] | None,
    unpruned: bool,
) -> bool | None:
    """Whether the predicted FPS reaches ``pruning.target_fps`` (None for other targets); says so when not."""
    if cfg.target != "fps" or fps_after is None:
        return None
    met = fps_after >= float(cfg.target_fps or 0)
    if not met:
        kept = "kept the unpruned model" if unpruned else f"reached {fps_after:,.0f} FPS"
        msg = (f"warning: pruning could not reach the target of {cfg.target_fps:,.0f} FPS on this board "
               f"({kept}, from {fps_before or 0:,.0f} FPS); lower pruning.target_fps or pruning.min_ratio, "
               "or use a larger board.")
        if log is not None:
            log(msg)
        else:
            print(msg, file=sys.stderr)
    return met


@dataclass
class _Run:
    """What every step of one pruning run shares: config, device, data splits, the unpruned model."""

    cfg: PruningConfig
    dev: Any
    seed: int
    log: Callable[[str], None] | None
    say: Callable[[str], None]
    t0: float
    out_dir: Path
    x_fit: Any
    y_fit: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    input_shape: tuple[int, ...]
    example: Any
    base: Any
    teacher: Any
    n_workers: int
    step_ft: Any
    finetuned: bool = False  # the search already gave the model its final fine-tune (backtracking)
    lineage_epochs: float = 0.0  # fine-tune epochs (steps, rescues) in the chosen model's own history
    lineage_epochs_of: dict[Any, float] | None = None  # the same for every snapshot of a greedy search
    backtracked: list[dict[str, Any]] | None = None

    def final_ft(self) -> Any:
        from ..train import FinetuneConfig

        return FinetuneConfig(epochs=self.cfg.finetune_epochs, lr=self.cfg.lr, distill=self.cfg.distill,
                              schedule=self.cfg.finetune_schedule)

    def evaluate(self, m: Any, x: Any, y: Any) -> float:
        from ..train import evaluate as _evaluate

        return _evaluate(m, x, y, device=self.dev)

    def finetune(self, m: Any, x: Any, y: Any, c: Any, **kw: Any) -> Any:
        from ..train import finetune as _finetune

        return _finetune(m, x, y, c, device=self.dev, **kw)

    def tune(self, m: Any, c: Any, *, checkpoint: Path | None = None) -> tuple[Any, float]:
        """Fine-tune ``m`` in place on the fit split; returns it and its validation accuracy. With
        ``pruning.select_best`` the best-on-validation weights are kept (``hapfpga.train.finetune_best``: most
        accurate, ties broken by the lower cross-entropy); otherwise a plain fine-tune, resumable
        from ``checkpoint`` when given (selection has no resumable state, so it does not use one)."""
        from ..train import finetune_best

        if c.epochs <= 0 and c.max_steps is None:
            return m.eval(), self.evaluate(m, self.x_val, self.y_val)
        if self.cfg.select_best:
            m, sel = finetune_best(m, self.x_fit, self.y_fit, (self.x_val, self.y_val), c, teacher=self.teacher,
                                   seed=self.seed, device=self.dev)
            return m, sel.accuracy
        self.finetune(m, self.x_fit, self.y_fit, c, teacher=self.teacher, seed=self.seed, checkpoint=checkpoint)
        return m.eval(), self.evaluate(m, self.x_val, self.y_val)


@dataclass
class _Channels:
    """The unpruned model's channel groups, the search's knobs (channel counts and operand bits) and predictor."""

    graph: Any
    groups: dict[str, Any]
    full: dict[str, int]
    importance: Any
    acc_val0: float
    start: dict[str, int]
    cands: dict[str, Any]
    hw_eval: Callable[[Mapping[str, int]], HwPoint] | None

    def realise(self, run: _Run, m: Any, m_graph: Any, knobs: Mapping[str, int]) -> Any:
        """``m`` pruned to the knobs' channel counts, then at their operand bits (a new model)."""
        from .apply import prune_to_counts
        from .mixed import split_knobs, with_operand_bits

        chans, bits = split_knobs(knobs)
        pm = prune_to_counts(m, run.example, {g: chans[g] for g in self.groups}, self.importance, graph=m_graph)[0]
        return with_operand_bits(pm, bits) if bits else pm


def _prepare_run(cfg: PruningConfig, model: Any, dataset: Any, run_dir: str | Path, train_cfg: Any, seed: int,
                 log: Callable[[str], None] | None) -> _Run:
    import torch

    from ..train import FinetuneConfig, resolve_device
    from .parallel import resolve_workers

    dev = resolve_device(getattr(train_cfg, "device", "auto"))  # fine-tunes and accuracies run there
    n_workers = 1 if dev.type == "cuda" else resolve_workers(cfg.search.workers)  # forked workers: CPU only
    say = log or (lambda s: None)
    t0 = time.time()
    out_dir = Path(run_dir) / "pruning"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x_fit, y_fit, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, cfg.val_fraction, seed)
    example = torch.as_tensor(x_fit[:2], dtype=torch.float32)
    base = copy.deepcopy(model).eval()
    step_ft = FinetuneConfig(epochs=cfg.step_finetune_epochs, lr=cfg.lr, distill=cfg.distill,
                             schedule=cfg.finetune_schedule)
    return _Run(cfg=cfg, dev=dev, seed=seed, log=log, say=say, t0=t0, out_dir=out_dir, x_fit=x_fit, y_fit=y_fit,
                x_val=x_val, y_val=y_val, x_test=dataset.x_test, y_test=dataset.y_test,
                input_shape=tuple(dataset.input_shape), example=example, base=base,
                teacher=base if cfg.distill else None, n_workers=n_workers, step_ft=step_ft)


def _run_unstructured(run: _Run, report: dict[str, Any], acc_before: float, params_before: int,
                      macs_before: int) -> tuple[Any, dict[str, Any]]:
    from ..train import FinetuneConfig
    from .unstructured import apply_masks, prune_unstructured, sparsity_report

    cfg = run.cfg
    pruned = copy.deepcopy(run.base)
    n_iter = max(1, cfg.iterations)
    per_iter = FinetuneConfig(epochs=cfg.finetune_epochs / n_iter, lr=cfg.lr, distill=cfg.distill)

    def ft_step(m: Any, after: Callable[[Any], None]) -> None:
        run.finetune(m, run.x_fit, run.y_fit, per_iter, teacher=run.teacher, seed=run.seed,
                     l1_sparsity=cfg.l1_sparsity, after_step=after)

    masks = prune_unstructured(pruned, cfg.sparsity, n_iter=n_iter, finetune_step=ft_step)
    apply_masks(pruned, masks)
    acc_after = run.evaluate(pruned, run.x_test, run.y_test)
    report.update(
        {
            "sparsity": sparsity_report(pruned),
            "channels_before": {},
            "channels_after": {},
            "params": {"before": params_before, "after": params_before},
            "macs": {"before": macs_before, "after": macs_before},
            "compression": 1.0,
            "accuracy": {"before": acc_before, "after": acc_after},
            "accuracy_drop": acc_before - acc_after,
            "fps_before": None,
            "fps_after": None,
            "limited_by": None,  # weight masks change no FINN cycles (sparsity_report's note)
            "pareto": [],
            "seconds": time.time() - run.t0,
        }
    )
    (run.out_dir / "pruning.json").write_text(json.dumps(report, indent=2, default=str))
    return pruned, report


def _candidates(cfg: PruningConfig, full: Mapping[str, int]) -> dict[str, Any]:
    """Candidate channel counts per group (fold-aware divisors, else evenly spaced down to ``min_ratio``)."""
    from .plan import candidate_counts

    if cfg.fold_aware:
        return {g: candidate_counts(n, min_ratio=cfg.min_ratio, steps=cfg.candidate_steps) for g, n in full.items()}
    return {
        g: sorted({max(1, round(n * (1 - (1 - cfg.min_ratio) * i / cfg.candidate_steps)))
                   for i in range(cfg.candidate_steps + 1)}, reverse=True)
        for g, n in full.items()
    }


def _setup_channels(run: _Run, report: dict[str, Any], board: Any, clock_mhz: float | None,
                    hw_eval: Callable[[Mapping[str, int]], HwPoint] | None, open_simulatable: bool,
                    margin: float | None = None, finn_cycles: bool = False) -> _Channels:
    from .apply import ChannelGraph
    from .importance import make_importance
    from .sensitivity import analyse_sensitivity

    cfg, base = run.cfg, run.base
    graph = ChannelGraph(base, run.example)
    for g in cfg.exclude:
        if g not in graph.groups:
            raise ConfigError(f"pruning.exclude names '{g}', which is not a channel group; use one of {sorted(graph.groups)}.")
    groups = {g: grp for g, grp in graph.groups.items() if grp.prunable and g not in cfg.exclude}
    if not groups and not cfg.bits:  # with pruning.bits the search may lower bits only
        raise ConfigError("The model has no prunable channel group; remove pruning: from the config.")
    full = {g: grp.channels for g, grp in groups.items()}
    importance = make_importance(cfg.importance, x=run.x_fit[:512], y=run.y_fit[:512])
    acc_val0 = run.evaluate(base, run.x_val, run.y_val)

    if cfg.sensitivity:
        sens = analyse_sensitivity(base, graph, importance, run.x_val, run.y_val, ratios=cfg.sensitivity_ratios,
                                   groups=list(groups), fold_aware=cfg.fold_aware, device=run.dev)
        sens.save(run.out_dir)
        report["sensitivity"] = sens.as_dict()

    from .mixed import bits_knobs

    # mixed precision: operand bits per layer are knobs beside the channel counts (``bits:<layer>``)
    bits0, bits_cands = bits_knobs(base, cfg.bits) if cfg.bits else ({}, {})
    start = {**full, **bits0}
    need_hw = cfg.method in ("greedy", "j", "nsga2") or cfg.target == "fps"
    if hw_eval is None and need_hw:
        hw_eval, _, _ = build_hw_evaluator(base, graph, run.input_shape, board, run.out_dir, clock_mhz=clock_mhz,
                                           time_limit=cfg.folding_time_limit, space=cfg.predictor_space,
                                           workers=cfg.predictor_workers, open_simulatable=open_simulatable,
                                           margin=margin, finn_cycles=finn_cycles,
                                           base_bits={k.split(":", 1)[1]: v for k, v in bits0.items()})
    cands = _candidates(cfg, full)
    cands.update(bits_cands)
    return _Channels(graph=graph, groups=groups, full=full, importance=importance, acc_val0=acc_val0,
                     start=start, cands=cands, hw_eval=hw_eval)


def _search_uniform(run: _Run, ch: _Channels, report: dict[str, Any]) -> tuple[Any, dict[str, int]]:
    from .apply import ChannelGraph, prune_to_counts
    from .plan import iterative_counts, uniform_counts

    cfg, full, hw_eval = run.cfg, ch.full, ch.hw_eval
    ratio = cfg.ratio
    if cfg.target == "fps" and hw_eval is not None:
        ratio = 1.0  # the largest uniform ratio whose predicted FPS reaches the target
        for r in [1 - i / 64 for i in range(64)]:
            if hw_eval(uniform_counts(full, r, fold_aware=cfg.fold_aware)).fps >= float(cfg.target_fps or 0):
                ratio = r
                break
            ratio = r
    counts = uniform_counts(full, ratio, fold_aware=cfg.fold_aware)
    pruned = run.base
    cur_counts = dict(full)
    for step_counts in iterative_counts(full, counts, cfg.iterations):
        g_cur = ChannelGraph(pruned, run.example)
        pruned, _ = prune_to_counts(pruned, run.example, {g: step_counts[g] for g in ch.groups}, ch.importance,
                                    graph=g_cur)
        if cfg.iterations > 1:
            run.finetune(pruned, run.x_fit, run.y_fit, run.step_ft, teacher=run.teacher, seed=run.seed)
        cur_counts = step_counts
    report["ratio"] = ratio
    return pruned, cur_counts


def _knob_key(knobs: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """A greedy step's knobs as a hashable key (its snapshot and lineage-epochs entry)."""
    return tuple(sorted(knobs.items()))


def _search_greedy(run: _Run, ch: _Channels) -> tuple[Any, dict[str, int], SearchResult]:
    from .apply import ChannelGraph
    from .parallel import map_ordered
    from .search import greedy_search

    cfg, hw_eval = run.cfg, ch.hw_eval
    assert hw_eval is not None
    state = {"model": run.base, "graph": ch.graph, "last": _knob_key(ch.start)}
    snapshots: dict[tuple[tuple[str, int], ...], Any] = {_knob_key(ch.start): run.base}
    epochs = {_knob_key(ch.start): 0.0}  # fine-tune epochs in each snapshot's own lineage

    def try_accuracy(counts: Mapping[str, int]) -> float:
        return run.evaluate(ch.realise(run, state["model"], state["graph"], counts), run.x_val, run.y_val)

    try_accuracy.many = lambda batch: map_ordered(try_accuracy, batch, run.n_workers)  # type: ignore[attr-defined]

    def commit(counts: Mapping[str, int]) -> float:
        m, acc = run.tune(ch.realise(run, state["model"], state["graph"], counts), run.step_ft)
        key = _knob_key(counts)
        epochs[key] = epochs[state["last"]] + run.step_ft.epochs
        state["model"], state["graph"], state["last"] = m, ChannelGraph(m, run.example), key
        snapshots[key] = m
        return acc

    def rescue(counts: Mapping[str, int]) -> float:  # the step just committed, fine-tuned finetune_epochs more
        m, acc = run.tune(state["model"], run.final_ft())
        state["model"], state["graph"] = m, ChannelGraph(m, run.example)
        snapshots[state["last"]] = m
        epochs[state["last"]] += run.final_ft().epochs
        return acc

    def reject(counts: Mapping[str, int]) -> None:  # back to the last accepted step's fine-tuned model
        snapshots.pop(state["last"], None)
        state["last"] = _knob_key(counts)
        state["model"] = snapshots[state["last"]]
        state["graph"] = ChannelGraph(state["model"], run.example)

    result = greedy_search(
        ch.start, ch.cands, hw_eval, try_accuracy, commit, start_accuracy=ch.acc_val0,
        target="fps" if cfg.target == "fps" else "budget", target_fps=cfg.target_fps,
        max_accuracy_drop=cfg.max_accuracy_drop, objective="j" if cfg.method == "j" else "fps_per_sensitivity",
        alpha=cfg.alpha, max_steps=cfg.max_steps, step_tolerance=cfg.step_accuracy_drop, log=run.say,
        reject=reject if cfg.on_step_drop != "stop" else None,
        rescue=rescue if cfg.on_step_drop == "rescue" and cfg.finetune_epochs > 0 else None,
    )
    run.lineage_epochs_of = epochs
    if cfg.method == "greedy" and cfg.target != "fps" and cfg.backtrack and cfg.finetune_epochs > 0:
        return _backtrack(run, ch, result, snapshots)
    counts = dict(result.best.counts)
    if cfg.final_weights == "reprune":  # the architecture only; the final fine-tune follows in _finish_report
        return ch.realise(run, run.base, ch.graph, counts), counts, result
    run.lineage_epochs = epochs[_knob_key(counts)]
    return snapshots[_knob_key(counts)], counts, result


def _backtrack(run: _Run, ch: _Channels, result: SearchResult,
               snapshots: dict[Any, Any]) -> tuple[Any, dict[str, int], SearchResult]:
    """Final fine-tune along the greedy trajectory (``search.backtrack``): the fastest step that meets the rule.
    Each candidate is the model as it would be delivered: the step's own weights or, with ``final_weights:
    reprune``, the unpruned model pruned once to the step's knobs."""
    from .search import Step, backtrack

    finals: dict[int, Any] = {}
    reprune = run.cfg.final_weights == "reprune"

    def final(i: int) -> float:
        knobs = result.history[i].counts
        m = ch.realise(run, run.base, ch.graph, knobs) if reprune else copy.deepcopy(snapshots[_knob_key(knobs)])
        finals[i], acc = run.tune(m, run.final_ft())
        return acc

    i, tried = backtrack(result.history, final, start_accuracy=result.history[0].accuracy,
                         max_accuracy_drop=run.cfg.max_accuracy_drop, log=run.say)
    chosen = result.history[i]
    if i not in finals:  # the unpruned start: its final fine-tune too (equal training for every outcome)
        final(i)
    run.finetuned = True
    run.lineage_epochs = 0.0 if reprune else (run.lineage_epochs_of or {})[_knob_key(chosen.counts)]
    run.backtracked = [{"step": k, "fps": result.history[k].hw.fps, "accuracy_val_final": a} for k, a in tried.items()]
    best = Step(chosen.counts, chosen.hw, tried.get(i, chosen.accuracy), chosen.changed)
    return finals[i], dict(chosen.counts), dataclasses.replace(result, best=best)


def _search_nsga2(run: _Run, ch: _Channels, report: dict[str, Any]) -> tuple[Any, dict[str, int], SearchResult]:
    from ..train import FinetuneConfig
    from .plan import uniform_counts
    from .search import default_storage, nsga2_search
    from .workers import TrialEvaluator, lead_shared_search

    cfg, full, hw_eval, seed = run.cfg, ch.full, ch.hw_eval, run.seed
    assert hw_eval is not None
    evaluate = TrialEvaluator(run.base, run.example, ch.graph, list(ch.groups), ch.importance, (run.x_fit, run.y_fit),
                              (run.x_val, run.y_val), FinetuneConfig(epochs=cfg.nsga2.finetune_epochs, lr=cfg.lr),
                              seed, hw_eval, run.dev)
    storage = cfg.nsga2.storage or default_storage(run.out_dir)
    first = [full, uniform_counts(full, 0.5), uniform_counts(full, 0.25)]
    shared = lead_shared_search(cfg, storage, evaluate, ch.cands, first, seed, run.say) if cfg.search.artifacts else None
    result = nsga2_search(
        ch.cands, evaluate, storage=shared or storage, study_name=cfg.nsga2.study_name,
        n_trials=0 if shared else cfg.nsga2.trials, seed=seed, population=cfg.nsga2.population,
        baseline_accuracy=ch.acc_val0, max_accuracy_drop=cfg.max_accuracy_drop, enqueue=[] if shared else first,
        workers=run.n_workers,
    )
    counts = dict(result.best.counts)
    report["storage"] = storage
    return ch.realise(run, run.base, ch.graph, counts), counts, result


def _finish_report(run: _Run, ch: _Channels, report: dict[str, Any], pruned: Any, counts: dict[str, int],
                   result: SearchResult | None, baseline: tuple[float, int, int]) -> tuple[Any, dict[str, Any]]:
    """Final fine-tune, test/validation accuracies, predicted FPS, and ``pruning.json``."""
    from .apply import count_macs, count_params
    from .mixed import layer_bits, split_knobs
    from .plan import PruningPlan

    cfg, hw_eval, start = run.cfg, ch.hw_eval, ch.start
    acc_before, params_before, macs_before = baseline
    if cfg.finetune_epochs > 0 and not run.finetuned:  # a killed plain fine-tune resumes from its checkpoint
        pruned, _ = run.tune(copy.deepcopy(pruned), run.final_ft(),
                             checkpoint=run.out_dir / "checkpoints" / "finetune.pt")
    pruned.eval()
    acc_after = run.evaluate(pruned, run.x_test, run.y_test)
    params_after = count_params(pruned)
    knobs, (counts, _) = {**start, **counts}, split_knobs(counts)
    plan = PruningPlan(before=ch.full, after=counts, method=cfg.method)
    if cfg.bits:  # per-layer weight/activation bits before and after (the exported QONNX carries the same)
        report.update(bits=list(cfg.bits), bits_before=layer_bits(run.base), bits_after=layer_bits(pruned))
    # the search's decisions are on the validation split; the test split above is only for the figures
    report["accuracy_val"] = {"before": ch.acc_val0, "after": run.evaluate(pruned, run.x_val, run.y_val)}
    fps_before = hw_eval(start).fps if hw_eval is not None else None
    fps_after = hw_eval(knobs).fps if hw_eval is not None else None
    target_met = _target_met(cfg, fps_before, fps_after, run.log, dict(knobs) == dict(start))
    limit = _limited_by(run, ch, knobs)
    report.update(
        {
            **plan.as_dict(),
            "target_fps": cfg.target_fps if cfg.target == "fps" else None,
            "target_met": target_met,
            "limited_by": limit.as_dict() if limit is not None else None,
            "params": {"before": params_before, "after": params_after},
            "macs": {"before": macs_before, "after": count_macs(pruned, run.example[:1])},
            "compression": params_before / max(1, params_after),
            "accuracy": {"before": acc_before, "after": acc_after},
            "accuracy_drop": acc_before - acc_after,
            "fps_before": fps_before,
            "fps_after": fps_after,
            "pareto": _pareto_rows(result),
            "history": [s.as_dict() for s in result.history][-200:] if result is not None else [],
            "rejected": [s.as_dict() for s in result.rejected] if result is not None else [],
            # the chosen model's own training: its greedy steps' fine-tunes plus the final one (epochs)
            "extra_epochs": run.lineage_epochs + cfg.finetune_epochs,
            "backtrack": run.backtracked or [],
            "seconds": time.time() - run.t0,
        }
    )
    (run.out_dir / "pruning.json").write_text(json.dumps(report, indent=2, default=str))
    return pruned, report


def _limited_by(run: _Run, ch: _Channels, knobs: Mapping[str, int]) -> Any:
    """The bottleneck pruning cannot speed up (``limits.PruningLimit``, said in one line), or None."""
    from .limits import pruning_limit

    if ch.hw_eval is None:
        return None
    limit = pruning_limit(ch.hw_eval, knobs, ch.cands, list(ch.groups))
    if limit is not None:
        (run.log or (lambda s: print(s, file=sys.stderr)))(f"note: {limit.sentence()}")
    return limit


def _pareto_rows(result: SearchResult | None) -> list[dict[str, Any]]:
    from .search import pareto_front

    if result is None:
        return []
    return [
        {"accuracy": s.accuracy, "fps": s.hw.fps, "LUT": s.hw.resources.LUT, "counts": dict(s.counts)}
        for s in (result.pareto or tuple(pareto_front(result.history)))
    ]


def run_pruning_stage(
    section: Mapping[str, Any] | PruningConfig | None,
    model: torch.nn.Module,
    dataset: Any,
    board: Any,
    run_dir: str | Path,
    *,
    clock_mhz: float | None = None,
    train_cfg: Any = None,
    seed: int = 0,
    hw_eval: Callable[[Mapping[str, int]], HwPoint] | None = None,
    log: Callable[[str], None] | None = None,
    open_simulatable: bool = False,
    margin: float | None = None,
    finn_cycles: bool = False,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Prune ``model`` per the ``pruning:`` section; returns the pruned, fine-tuned model and the report dict.

    The report has ``method``, ``channels_before``/``channels_after`` (per group, named by its first conv/linear),
    ``params``/``macs`` {before, after}, ``compression``, ``accuracy`` {before, after} on the test split,
    ``accuracy_drop`` (fraction), ``fps_before``/``fps_after`` (predicted), ``target_met`` (``pruning.target:
    fps`` only, else None), ``pareto`` and ``history``. A missed FPS target is one warning line (``log``, else
    stderr), never a silent return of the unpruned model. ``hw_eval`` overrides the hardware predictor (tests,
    benchmarks); ``open_simulatable`` is the fold stage's ``folding.open_simulatable`` (the predictor then folds
    the layers FINN builds for it), ``margin`` and ``finn_cycles`` its ``folding.margin`` and
    ``folding.finn_cycles`` (the predictor folds at the same budget, for the same cycles).
    """
    from .apply import count_macs, count_params

    cfg = parse_pruning_config(section)
    run = _prepare_run(cfg, model, dataset, run_dir, train_cfg, seed, log)
    acc_before = run.evaluate(run.base, run.x_test, run.y_test)
    params_before = count_params(run.base)
    macs_before = count_macs(run.base, run.example[:1])
    report: dict[str, Any] = {"method": cfg.method, "target": cfg.target, "importance": cfg.importance}
    if cfg.method == "unstructured":
        return _run_unstructured(run, report, acc_before, params_before, macs_before)

    ch = _setup_channels(run, report, board, clock_mhz, hw_eval, open_simulatable, margin, finn_cycles)
    result: SearchResult | None = None
    if cfg.method == "uniform" or cfg.target == "ratio":
        pruned, counts = _search_uniform(run, ch, report)
    elif cfg.method in ("greedy", "j"):
        pruned, counts, result = _search_greedy(run, ch)
    elif cfg.method == "nsga2":
        pruned, counts, result = _search_nsga2(run, ch, report)
    else:  # pragma: no cover - Literal in the config prevents this
        raise ConfigError(f"Unknown pruning.method '{cfg.method}'.")
    return _finish_report(run, ch, report, pruned, counts, result, (acc_before, params_before, macs_before))

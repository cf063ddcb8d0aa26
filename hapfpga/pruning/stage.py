"""The pruning stage of ``hapfpga run`` and ``hapfpga prune``: config → pruned, fine-tuned model + ``PruningReport``.

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

from ..errors import ConfigError, InfeasibleError
from .config import PruningConfig, parse_pruning_config
from .predictor import HwPredictor, HwTarget
from .progress import SearchLog, steps_left_bound, steps_to_target
from .reporting import BeforeAfter, PruningReport, SearchRecord, TargetOutcome
from .results import SearchOutcome, SparseModel, UniformPick
from .search import HwPoint, SearchResult, Step
from .selection import within_drop

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["run_pruning_stage", "sparse_train"]


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


@dataclass(frozen=True)
class _Splits:
    """The data of one pruning run: fit and validation parts of the training data (the search decides on the
    validation part), the test split (the reported figures), and an example batch of the input shape."""

    x_fit: Any
    y_fit: Any
    x_val: Any
    y_val: Any
    x_test: Any
    y_test: Any
    example: Any
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class _Run:
    """What every step of one pruning run shares: config, device, data, the model the searches prune (``base``)
    and the unpruned model (``unpruned``: the teacher and the accuracy the rules measure against; the same object
    as ``base`` unless ``pruning.sparsify_epochs`` gave ``base`` its sparse training, described in ``sparsified``)
    (inputs and services; the searches return their results as a ``SearchOutcome``)."""

    cfg: PruningConfig
    dev: Any
    seed: int
    log: Callable[[str], None] | None
    t0: float
    out_dir: Path
    data: _Splits
    base: Any
    teacher: Any
    n_workers: int
    step_ft: Any
    progress: SearchLog  # the console lines (``log``) and DIR/pruning/search.log
    unpruned: Any = None
    sparsified: dict[str, Any] | None = None
    uniform_pick: UniformPick | None = None  # ``pruning.start: uniform`` from an earlier uniform run's pick

    def say(self, line: str) -> None:
        self.progress.line(line)

    def final_ft(self) -> Any:
        from ..train import FinetuneConfig

        return FinetuneConfig(epochs=self.cfg.finetune_epochs, lr=self.cfg.lr, distill=self.cfg.distill,
                              schedule=self.cfg.finetune_schedule, patience=self.cfg.finetune_patience)

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
            return m.eval(), self.evaluate(m, self.data.x_val, self.data.y_val)
        if self.cfg.select_best:
            m, sel = finetune_best(m, self.data.x_fit, self.data.y_fit, (self.data.x_val, self.data.y_val), c, teacher=self.teacher,
                                   seed=self.seed, device=self.dev)
            if sel.stopped_early:
                self.say(f"fine-tune stopped after {c.epochs * sel.steps_done / sel.steps_total:.2g} of {c.epochs:g} "
                         f"epochs: validation accuracy flat for {c.patience:g} (pruning.finetune_patience)")
            return m, sel.accuracy
        self.finetune(m, self.data.x_fit, self.data.y_fit, c, teacher=self.teacher, seed=self.seed, checkpoint=checkpoint)
        return m.eval(), self.evaluate(m, self.data.x_val, self.data.y_val)


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
    sensitivity: dict[str, Any] | None = None  # the sensitivity analysis (``pruning.sensitivity``), for the report

    def realise(self, run: _Run, m: Any, m_graph: Any, knobs: Mapping[str, int]) -> Any:
        """``m`` pruned to the knobs' channel counts, then at their operand bits (a new model)."""
        from .apply import prune_to_counts
        from .mixed import split_knobs, with_operand_bits

        chans, bits = split_knobs(knobs)
        pm = prune_to_counts(m, run.data.example, {g: chans[g] for g in self.groups}, self.importance, graph=m_graph)[0]
        return with_operand_bits(pm, bits) if bits else pm


def _prepare_run(cfg: PruningConfig, model: Any, dataset: Any, run_dir: str | Path, train_cfg: Any, seed: int,
                 log: Callable[[str], None] | None) -> _Run:
    import torch

    from ..data import split_validation
    from ..train import FinetuneConfig, resolve_device
    from .config import resolve_workers

    dev = resolve_device(getattr(train_cfg, "device", "auto"))  # fine-tunes and accuracies run there
    n_workers = 1 if dev.type == "cuda" else resolve_workers(cfg.search.workers)  # forked workers: CPU only
    t0 = time.time()
    out_dir = Path(run_dir) / "pruning"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x_fit, y_fit, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, cfg.val_fraction, seed)
    example = torch.as_tensor(x_fit[:2], dtype=torch.float32)
    base = copy.deepcopy(model).eval()
    step_ft = FinetuneConfig(epochs=cfg.step_finetune_epochs, lr=cfg.lr, distill=cfg.distill,
                             schedule=cfg.finetune_schedule)
    data = _Splits(x_fit, y_fit, x_val, y_val, dataset.x_test, dataset.y_test, example, tuple(dataset.input_shape))
    (out_dir / "search.log").write_text("")  # this run's lines only
    return _Run(cfg=cfg, dev=dev, seed=seed, log=log, t0=t0, out_dir=out_dir, data=data, base=base,
                teacher=base if cfg.distill else None, n_workers=n_workers, step_ft=step_ft,
                progress=SearchLog(out_dir / "search.log", log), unpruned=base)


def _prunable(cfg: PruningConfig, graph: Any) -> dict[str, Any]:
    """The channel groups the search may prune: prunable and not in ``pruning.exclude`` (a name there that is not a
    group is a config error)."""
    for g in cfg.exclude:
        if g not in graph.groups:
            raise ConfigError(f"pruning.exclude names '{g}', which is not a channel group; use one of {sorted(graph.groups)}.")
    return {g: grp for g, grp in graph.groups.items() if grp.prunable and g not in cfg.exclude}


def _sparse_trains(cfg: PruningConfig) -> bool:
    """Whether the section starts with sparse training: a structured method and ``sparsify_epochs`` > 0."""
    return cfg.method != "unstructured" and cfg.sparsify_epochs > 0


def sparse_config(section: Mapping[str, Any] | PruningConfig) -> dict[str, Any]:
    """The pruning settings the sparse training's outcome depends on (with the model, data and seed; ``exclude``
    and the model make its groups): a cache key of :func:`sparse_train`'s model (``benchmarks/pruning_vs_finn.py``)."""
    cfg = parse_pruning_config(section)
    return {"epochs": cfg.sparsify_epochs, "strength": cfg.sparsify_strength, "lr": cfg.lr, "distill": cfg.distill,
            "schedule": cfg.finetune_schedule, "val_fraction": cfg.val_fraction, "exclude": sorted(cfg.exclude)}


def _sparse_settings(run: _Run, groups: list[str]) -> dict[str, Any]:
    """What the sparse training's outcome depends on besides the model and data: checked when one is handed over."""
    return {**sparse_config(run.cfg), "groups": sorted(groups), "seed": run.seed}


def _sparse_train(run: _Run) -> SparseModel:
    """``pruning.sparsify_epochs``: the unpruned model fine-tuned with a group lasso on the channel scales of the
    groups the search may prune (:mod:`hapfpga.pruning.sparsify`), the model the search then prunes. A plain
    fine-tune, no best-on-validation selection (the penalty costs accuracy before it pays, so the starting
    weights would win); the teacher and the rule's reference accuracy stay the unpruned model's."""
    from ..train import FinetuneConfig
    from .apply import ChannelGraph
    from .sparsify import group_lasso

    cfg, data = run.cfg, run.data
    model = copy.deepcopy(run.unpruned)
    graph = ChannelGraph(model, data.example)
    groups = list(_prunable(cfg, graph))
    penalty = group_lasso(model, graph, groups, cfg.sparsify_strength)
    run.progress.restart(f"sparse training: {cfg.sparsify_epochs:g} epochs, group lasso {cfg.sparsify_strength:g} "
                         f"on the channel scales of {len(penalty.groups)} groups (pruning.sparsify_epochs)")
    before = [n.mean().item() for n in penalty.norms()]
    c = FinetuneConfig(epochs=cfg.sparsify_epochs, lr=cfg.lr, distill=cfg.distill, schedule=cfg.finetune_schedule)
    run.finetune(model, data.x_fit, data.y_fit, c, teacher=run.teacher, seed=run.seed, penalty=penalty)
    model.eval()
    acc = run.evaluate(model, data.x_val, data.y_val)
    after = [n.mean().item() for n in penalty.norms()]
    run.progress.step("sparsify", 0, "all groups", None, None, acc, cfg.sparsify_epochs, steps_left=0)
    info = {"epochs": cfg.sparsify_epochs, "strength": cfg.sparsify_strength, "accuracy_val": acc,
            "mean_scale_before": sum(before) / max(1, len(before)), "mean_scale_after": sum(after) / max(1, len(after))}
    return SparseModel(model, _sparse_settings(run, groups), info)


def _sparsify(run: _Run, given: SparseModel | None) -> _Run:
    """The run with its sparse-trained model as the model the searches prune: ``given`` (made by
    :func:`sparse_train` with the same settings; a copy, so the caller's model is never trained here) or trained
    here."""
    if given is None:
        sm = _sparse_train(run)
    else:
        from .apply import ChannelGraph

        own = _sparse_settings(run, list(_prunable(run.cfg, ChannelGraph(run.unpruned, run.data.example))))
        diff = sorted(k for k in own.keys() | given.settings.keys() if own.get(k) != given.settings.get(k))
        if diff:
            raise ValueError(f"the given sparse model was made with other {diff} than this stage's settings")
        sm = dataclasses.replace(given, model=copy.deepcopy(given.model))
        run.say(f"sparse training: the given model ({given.settings['epochs']:g} epochs, validation "
                f"{given.info['accuracy_val']:.4f}), not trained again")
    return dataclasses.replace(run, base=sm.model, sparsified=dict(sm.info))


def sparse_train(section: Mapping[str, Any] | PruningConfig, model: torch.nn.Module, dataset: Any,
                 run_dir: str | Path, *, train_cfg: Any = None, seed: int = 0,
                 log: Callable[[str], None] | None = None) -> SparseModel:
    """The sparse training a structured ``pruning:`` section with ``sparsify_epochs`` > 0 starts with, alone: the
    :class:`~hapfpga.pruning.results.SparseModel` that :func:`run_pruning_stage` (``sparse=``) then takes instead of
    training it again, for any section with the same sparse-training settings, on the same model, data and seed."""
    cfg = parse_pruning_config(section)
    if not _sparse_trains(cfg):
        raise ValueError("sparse_train needs a structured pruning method with sparsify_epochs > 0")
    return _sparse_train(_prepare_run(cfg, model, dataset, run_dir, train_cfg, seed, log))


def _run_unstructured(run: _Run, baseline: tuple[float, int, int]) -> tuple[Any, PruningReport]:
    from ..train import FinetuneConfig
    from .unstructured import apply_masks, prune_unstructured, sparsity_report

    cfg = run.cfg
    pruned = copy.deepcopy(run.base)
    n_iter = max(1, cfg.iterations)
    per_iter = FinetuneConfig(epochs=cfg.finetune_epochs / n_iter, lr=cfg.lr, distill=cfg.distill)

    def ft_step(m: Any, after: Callable[[Any], None]) -> None:
        run.finetune(m, run.data.x_fit, run.data.y_fit, per_iter, teacher=run.teacher, seed=run.seed,
                     l1_sparsity=cfg.l1_sparsity, after_step=after)

    masks = prune_unstructured(pruned, cfg.sparsity, n_iter=n_iter, finetune_step=ft_step)
    apply_masks(pruned, masks)
    acc_before, params_before, macs_before = baseline
    return pruned, PruningReport(
        method=cfg.method, target=TargetOutcome(cfg.target), importance=cfg.importance,
        details={"sparsity": sparsity_report(pruned), "limited_by": None}, channels=BeforeAfter({}, {}),
        params=BeforeAfter(params_before, params_before), macs=BeforeAfter(macs_before, macs_before),
        accuracy=BeforeAfter(acc_before, run.evaluate(pruned, run.data.x_test, run.data.y_test)),
        accuracy_val=None, fps=BeforeAfter(None, None), search=None, seconds=time.time() - run.t0,
    )


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


def _setup_channels(run: _Run, target: HwTarget) -> _Channels:
    from .apply import ChannelGraph
    from .importance import make_importance
    from .sensitivity import analyse_sensitivity

    cfg, base = run.cfg, run.base
    graph = ChannelGraph(base, run.data.example)
    groups = _prunable(cfg, graph)
    if not groups and not cfg.bits:  # with pruning.bits the search may lower bits only
        raise ConfigError("The model has no prunable channel group; remove pruning: from the config.")
    full = {g: grp.channels for g, grp in groups.items()}
    importance = make_importance(cfg.importance, x=run.data.x_fit[:512], y=run.data.y_fit[:512])
    acc_val0 = run.evaluate(run.unpruned, run.data.x_val, run.data.y_val)  # the rule's reference

    if cfg.sensitivity:
        run.say(f"sensitivity analysis of {len(groups)} channel groups")
        sens = analyse_sensitivity(base, graph, importance, run.data.x_val, run.data.y_val, ratios=cfg.sensitivity_ratios,
                                   groups=list(groups), fold_aware=cfg.fold_aware, device=run.dev)
        sens.save(run.out_dir)

    from .mixed import bits_knobs

    # mixed precision: operand bits per layer are knobs beside the channel counts (``bits:<layer>``)
    bits0, bits_cands = bits_knobs(base, cfg.bits) if cfg.bits else ({}, {})
    start = {**full, **bits0}
    need_hw = cfg.method in ("greedy", "j", "nsga2") or cfg.target in ("fps", "max_fps")
    hw_eval = target.predictor
    if hw_eval is None and need_hw:
        from .hwmodel import build_predictor

        run.say("building the FPS predictor (FINN conversion of the unpruned model)")
        options = target.folding.for_predictor(cfg.folding_time_limit, cfg.predictor_space)
        hw_eval, _, _ = build_predictor(base, graph, run.data.input_shape, target.board, run.out_dir, options,
                                        workers=cfg.predictor_workers, variants=target.variants,
                                        base_bits={k.split(":", 1)[1]: v for k, v in bits0.items()})
        if hw_eval.spec.variant is not None:
            run.say("the FPS predictor folds both graphs the fold stage folds (embedded thresholds; RTL/HLS MVAUs) "
                    "and keeps the faster")
    cands = _candidates(cfg, full)
    cands.update(bits_cands)
    return _Channels(graph=graph, groups=groups, full=full, importance=importance, acc_val0=acc_val0,
                     start=start, cands=cands, hw_eval=hw_eval, sensitivity=sens.as_dict() if cfg.sensitivity else None)


def _search_uniform(run: _Run, ch: _Channels) -> SearchOutcome:
    """The same keep ratio in every group: ``pruning.ratio``, or with an FPS target the largest ratio on a 1/64
    grid whose predicted FPS reaches it; pruned in ``pruning.iterations`` steps. ``target: max_fps``: the fastest
    ratio that meets the accuracy rule (:func:`_search_uniform_rule`)."""
    from .apply import ChannelGraph, prune_to_counts
    from .plan import iterative_counts, uniform_counts

    cfg, full, hw_eval = run.cfg, ch.full, ch.hw_eval
    if cfg.target == "max_fps":
        return _search_uniform_rule(run, ch)
    ratio = cfg.ratio
    if cfg.target == "fps" and hw_eval is not None:
        run.say(f"uniform search: the largest keep ratio whose predicted FPS reaches {cfg.target_fps:,.0f}")
        ratio = 1.0  # the largest uniform ratio whose predicted FPS reaches the target
        for r in [1 - i / 64 for i in range(64)]:
            if hw_eval(uniform_counts(full, r, fold_aware=cfg.fold_aware)).fps >= float(cfg.target_fps or 0):
                ratio = r
                break
            ratio = r
    counts = uniform_counts(full, ratio, fold_aware=cfg.fold_aware)
    pruned = run.base
    cur_counts = dict(full)
    steps = iterative_counts(full, counts, cfg.iterations)
    run.progress.restart(f"uniform search: keep ratio {ratio:g} in {len(steps)} step(s)")
    for k, step_counts in enumerate(steps, 1):
        g_cur = ChannelGraph(pruned, run.data.example)
        pruned, _ = prune_to_counts(pruned, run.data.example, {g: step_counts[g] for g in ch.groups}, ch.importance,
                                    graph=g_cur)
        if cfg.iterations > 1:
            run.finetune(pruned, run.data.x_fit, run.data.y_fit, run.step_ft, teacher=run.teacher, seed=run.seed)
        cur_counts = step_counts
        fps = hw_eval({**ch.start, **step_counts}).fps if hw_eval is not None else None
        run.progress.step("uniform", k, "kept", round(sum(step_counts.values()) / max(1, sum(full.values())), 3), fps,
                          run.evaluate(pruned.eval(), run.data.x_val, run.data.y_val),
                          run.step_ft.epochs if cfg.iterations > 1 else 0.0, steps_left=len(steps) - k)
    return SearchOutcome(pruned, cur_counts, ratio=ratio)


#: ``method: uniform, target: max_fps``: the keep ratios tried, k/UNIFORM_GRID down to ``pruning.min_ratio``
UNIFORM_GRID = 32


def _uniform_levels(run: _Run, ch: _Channels) -> tuple[list[Step], list[float]]:
    """The uniform keep ratios as a trajectory for :func:`_backtrack`: the unpruned start, then, ratio by ratio
    (k/``UNIFORM_GRID`` down to ``min_ratio``), each ratio whose predicted design fits and is faster than every
    larger ratio's (the others are never the fastest design meeting the rule); each step's accuracy is the
    unpruned model pruned once to it, before any fine-tune. Returns the steps and their keep ratios."""
    from .greedy import fps_levels
    from .plan import uniform_counts
    from .results import BatchPredictor

    cfg, hw_eval = run.cfg, ch.hw_eval
    assert hw_eval is not None
    ratios = [1.0] + [k / UNIFORM_GRID for k in range(UNIFORM_GRID - 1, 0, -1)
                      if k / UNIFORM_GRID >= cfg.min_ratio - 1e-9]
    plans = [dict(ch.start)] + [{**ch.start, **uniform_counts(ch.full, r, fold_aware=cfg.fold_aware)}
                                for r in ratios[1:]]  # with every other knob (bits) as it starts
    hws = [hw_eval(plans[0])] + (hw_eval.predict_many(plans[1:]) if isinstance(hw_eval, BatchPredictor)
                                 else [hw_eval(c) for c in plans[1:]])
    levels = fps_levels(hws)
    steps = [Step(plans[0], hws[0], ch.acc_val0, "keep 1")] + [
        Step(plans[i], hws[i], run.evaluate(ch.realise(run, run.base, ch.graph, plans[i]), run.data.x_val,
                                            run.data.y_val), f"keep {ratios[i]:g}") for i in levels[1:]]
    return steps, [ratios[i] for i in levels]


def _search_uniform_rule(run: _Run, ch: _Channels) -> SearchOutcome:
    """``method: uniform, target: max_fps``: the fastest uniform keep ratio whose validation accuracy after the
    final fine-tune meets the accuracy rule (``max_accuracy_drop``, or the paired test of ``pruning.selection``).
    Every candidate is the unpruned model pruned once to the ratio and fine-tuned ``finetune_epochs``; the
    candidates are tried as the greedy search's backtracking tries its trajectory (the fastest first, then a
    bisection), so both arms of a comparison are held to the same rule with the same fine-tune."""
    steps, kept = _uniform_levels(run, ch)
    run.say(f"uniform search: {len(steps) - 1} keep ratios from {kept[1] if len(kept) > 1 else 1:g} to "
            f"{kept[-1]:g} with a faster predicted design; the fastest one that meets the rule after "
            f"{run.cfg.finetune_epochs:g} fine-tune epochs")
    result = SearchResult(best=steps[0], history=tuple(steps))
    out = _backtrack(run, ch, result, None, mode="reprune")
    i = next(k for k, s in enumerate(steps) if dict(s.counts) == dict(out.counts))
    return dataclasses.replace(out, ratio=kept[i])


def _knob_key(knobs: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """A greedy step's knobs as a hashable key (its snapshot and lineage-epochs entry)."""
    return tuple(sorted(knobs.items()))


class _Trajectory:
    """The greedy search's model along its trajectory: the current (last accepted) step's fine-tuned model, a
    snapshot per accepted step and each snapshot's fine-tune epochs in its own lineage; the search's callbacks
    (``try_accuracy``, ``commit``, ``rescue``, ``reject``) act on it."""

    def __init__(self, run: _Run, ch: _Channels):
        self.run, self.ch = run, ch
        self.model, self.graph, self.last = run.base, ch.graph, _knob_key(ch.start)
        self.snapshots: dict[tuple[tuple[str, int], ...], Any] = {self.last: run.base}
        self.epochs = {self.last: 0.0}  # fine-tune epochs in each snapshot's own lineage
        self.step_epochs = 0.0  # fine-tune epochs of the last committed step (its short one, plus any rescue)

    def start_at(self, counts: Mapping[str, int], m: Any, epochs: float) -> None:
        """The trajectory starts at ``counts`` with ``m``, a model fine-tuned ``epochs`` (the uniform start)."""
        self._set(m)
        self.last = _knob_key(counts)
        self.snapshots[self.last], self.epochs[self.last] = m, epochs

    def _set(self, m: Any) -> None:
        from .apply import ChannelGraph

        self.model, self.graph = m, ChannelGraph(m, self.run.data.example)

    def try_accuracy(self, counts: Mapping[str, int]) -> float:
        run = self.run
        return run.evaluate(self.ch.realise(run, self.model, self.graph, counts), run.data.x_val, run.data.y_val)

    def commit(self, counts: Mapping[str, int]) -> float:
        run = self.run
        m, acc = run.tune(self.ch.realise(run, self.model, self.graph, counts), run.step_ft)
        key = _knob_key(counts)
        self.epochs[key] = self.epochs[self.last] + run.step_ft.epochs
        self.step_epochs = float(run.step_ft.epochs)
        self._set(m)
        self.last = key
        self.snapshots[key] = m
        return acc

    def rescue(self, counts: Mapping[str, int]) -> float:  # the step just committed, fine-tuned finetune_epochs more
        m, acc = self.run.tune(self.model, self.run.final_ft())
        self._set(m)
        self.snapshots[self.last] = m
        self.epochs[self.last] += self.run.final_ft().epochs
        self.step_epochs += self.run.final_ft().epochs
        return acc

    def reject(self, counts: Mapping[str, int]) -> None:  # back to the last accepted step's fine-tuned model
        self.snapshots.pop(self.last, None)
        self.last = _knob_key(counts)
        self._set(self.snapshots[self.last])


def _greedy_progress(run: _Run, ch: _Channels, tr: _Trajectory,
                     fps0: float) -> Callable[[Step, int, bool, frozenset[str]], None]:
    """The greedy search's ``progress``: a step line per accepted or rejected step, with what is left (an
    extrapolation to an FPS target, else at most ``max_steps`` or the candidates left)."""
    cfg = run.cfg
    run.progress.restart(f"{cfg.method} search: {len(ch.cands)} knobs, at most {cfg.max_steps} steps, "
                         f"{fps0:,.0f} FPS and val_acc {ch.acc_val0:.4f} at the start")
    done = 0

    def on_step(step: Step, index: int, rejected: bool, frozen: frozenset[str]) -> None:
        nonlocal done
        done += 1
        left = steps_left_bound(step.counts if not rejected else dict(tr.last), ch.cands, set(frozen), done,
                                cfg.max_steps)
        if cfg.target == "fps" and not rejected:
            est = steps_to_target(fps0, step.hw.fps, float(cfg.target_fps or 0), index)
            left = left if est is None else min(left, est)
        run.progress.step("rejected" if rejected else "greedy", index, step.changed or "-",
                          step.counts.get(step.changed or "", None), step.hw.fps, step.accuracy, tr.step_epochs,
                          steps_left=left, bound=cfg.target != "fps")

    return on_step


def _fit_first(run: _Run, ch: _Channels, tr: _Trajectory) -> dict[str, int]:
    """Where the unpruned model fits the board with no folding, the greedy search starts from the largest uniform
    keep ratio (a 1/64 grid down to ``min_ratio``) whose predicted design fits, pruned and fine-tuned once (one
    step's fine-tune): a step removes one candidate count of one group, so a model several times over the budget
    would spend every step without reaching a design at all. None fits: one sentence, before any fine-tune."""
    from .plan import uniform_counts

    cfg, hw_eval, start = run.cfg, ch.hw_eval, dict(ch.start)
    assert hw_eval is not None
    if hw_eval(start).fits or not ch.full:
        return start
    ratios = [r for r in (1 - i / 64 for i in range(1, 64)) if r >= cfg.min_ratio - 1e-9]
    for r in ratios:
        counts = {**start, **uniform_counts(ch.full, r, fold_aware=cfg.fold_aware)}
        if hw_eval(counts).fits:
            run.say(f"the unpruned design does not fit the board; starting the search at keep ratio {r:g}, "
                    f"the largest uniform one whose predicted design fits")
            tr.commit(counts)
            return counts
    low = {**start, **uniform_counts(ch.full, ratios[-1] if ratios else 1.0, fold_aware=cfg.fold_aware)}
    hw = hw_eval(low)
    use = ", ".join(f"{k} {v:,.0f}" for k, v in hw.resources.as_dict().items() if v)
    raise InfeasibleError(
        f"Pruning cannot make the model fit this board: even with every channel group kept at pruning.min_ratio "
        f"{cfg.min_ratio:g} the cheapest predicted design ({use or 'no resources reported'}) does not fit its "
        f"budget; choose a larger board, fewer weight bits, or a lower pruning.min_ratio.")


def _uniform_start(run: _Run, ch: _Channels, tr: _Trajectory) -> tuple[dict[str, int], tuple[Any, float] | None]:
    """``pruning.start: uniform``: the uniform search under the rule (:func:`_search_uniform_rule`), or the pick
    of an earlier run of it handed to the stage (``run.uniform_pick``); the greedy trajectory starts at its pick,
    that fine-tuned model. Returns the start knobs and the pick's model and validation accuracy (None when no
    ratio below 1 meets the rule: the search then starts from the trained model)."""
    pick = run.uniform_pick or _uniform_pick(run, ch)
    unknown = sorted(set(pick.counts) - set(ch.start))
    if unknown:
        raise ValueError(f"the given uniform pick names {unknown}, which are not this search's knobs")
    start = {**ch.start, **pick.counts}
    if start == dict(ch.start):
        run.say("uniform start: no keep ratio below 1 meets the rule; the greedy search starts from the trained model")
        return start, None
    given = " (the given uniform search's pick)" if run.uniform_pick is not None else ""
    run.say(f"uniform start: keep ratio {pick.ratio:g} meets the rule (validation {pick.accuracy:.4f}){given}; the "
            f"greedy search goes on from it")
    tr.start_at(start, pick.model, run.cfg.finetune_epochs)
    return start, (pick.model, pick.accuracy)


def _uniform_pick(run: _Run, ch: _Channels) -> UniformPick:
    """The uniform search under the rule, run here: its pick with the validation accuracy its backtracking
    measured after the final fine-tune (the rule's own measure)."""
    out = _search_uniform_rule(run, ch)
    assert out.result is not None and out.ratio is not None
    return UniformPick(dict(out.counts), out.model, out.result.best.accuracy, out.ratio)


def _search_greedy(run: _Run, ch: _Channels) -> SearchOutcome:
    """Greedy (NetAdapt) or J search on the model's trajectory, then backtracking or the chosen step's model."""
    from .parallel import AccuracyOracle
    from .search import greedy_search

    cfg, hw_eval = run.cfg, ch.hw_eval
    assert hw_eval is not None
    tr = _Trajectory(run, ch)
    start, picked = _uniform_start(run, ch, tr) if cfg.start == "uniform" else (
        _fit_first(run, ch, tr) if cfg.target != "fps" else dict(ch.start), None)
    result = greedy_search(
        start, ch.cands, hw_eval, AccuracyOracle(tr.try_accuracy, run.n_workers), tr.commit,
        start_accuracy=ch.acc_val0, target="fps" if cfg.target == "fps" else "budget", target_fps=cfg.target_fps,
        max_accuracy_drop=cfg.max_accuracy_drop, objective="j" if cfg.method == "j" else "fps_per_sensitivity",
        alpha=cfg.alpha, max_steps=cfg.max_steps, step_tolerance=cfg.step_accuracy_drop, log=run.say,
        reject=tr.reject if cfg.on_step_drop != "stop" else None,
        rescue=tr.rescue if cfg.on_step_drop == "rescue" and cfg.finetune_epochs > 0 else None,
        progress=_greedy_progress(run, ch, tr, hw_eval(start).fps),
    )
    if cfg.method == "greedy" and cfg.target != "fps" and cfg.backtrack and cfg.finetune_epochs > 0:
        return _backtrack(run, ch, result, tr, start=picked)
    counts = dict(result.best.counts)
    if cfg.final_weights != "search":  # the architecture only; the final fine-tune follows in _finish_report
        return SearchOutcome(ch.realise(run, run.base, ch.graph, counts), counts, result)
    key = _knob_key(counts)
    return SearchOutcome(tr.snapshots[key], counts, result, lineage_epochs=tr.epochs[key])


class _PairedRule:
    """The backtracking's accuracy rule with ``pruning.selection.confidence`` above 0.5: each candidate against
    the unpruned model on the same validation samples (:func:`hapfpga.pruning.selection.meets_rule`)."""

    def __init__(self, run: _Run):
        from .selection import smallest_certifiable_drop

        self.run, self.cfg = run, run.cfg
        self.conf = run.cfg.selection.confidence
        self.base = self._correct(run.unpruned)
        self.paired: dict[int, Any] = {}
        floor = smallest_certifiable_drop(len(self.base), self.conf)
        if floor > self.cfg.max_accuracy_drop:
            run.say(f"note: {len(self.base)} validation samples cannot show a drop within "
                    f"{100 * self.cfg.max_accuracy_drop:g} pt at {100 * self.conf:g} % confidence (a candidate that "
                    f"changes no sample is bounded at {100 * floor:.2f} pt): only candidates more accurate than the "
                    "unpruned model can pass; raise pruning.val_fraction or lower pruning.selection.confidence.")

    def _correct(self, m: Any) -> Any:
        import numpy as np

        from ..train import predict

        d = self.run.data
        return predict(m, d.x_val, device=self.run.dev).argmax(axis=1) == np.asarray(d.y_val)

    def record(self, i: int, m: Any) -> None:
        from .selection import Paired

        self.paired[i] = Paired.of(self.base, self._correct(m))

    def passes(self, m: Any) -> bool:
        """The paired rule on model ``m``'s validation predictions, without recording or logging it."""
        from .selection import Paired

        return self._meets(Paired.of(self.base, self._correct(m)))

    def _meets(self, p: Any) -> bool:
        from .selection import meets_rule

        return meets_rule(p, self.cfg.max_accuracy_drop, self.conf)

    def accept(self, i: int, acc: float) -> bool:
        p = self.paired[i]
        ok = self._meets(p)
        self.run.say(f"selection: step {i} lost {p.lost}, gained {p.gained} of {p.n} validation samples "
                     f"(drop {100 * p.drop:.2f} pt): {'meets' if ok else 'fails'} the {100 * self.cfg.max_accuracy_drop:g}-pt "
                     f"rule at {100 * self.conf:g} % confidence")
        return ok

    def row(self, i: int) -> dict[str, Any]:
        from .selection import drop_bound

        p = self.paired.get(i)
        if p is None:
            return {}
        return {"lost": p.lost, "gained": p.gained, "n_val": p.n, "drop_bound": drop_bound(p, self.conf)}


def _backtrack(run: _Run, ch: _Channels, result: SearchResult, tr: _Trajectory | None,
               mode: str | None = None, start: tuple[Any, float] | None = None) -> SearchOutcome:
    """Final fine-tune along the greedy trajectory (``search.backtrack``): the fastest step that meets the rule.
    Each candidate is the model as it would be delivered: the step's own weights, the unpruned model pruned once
    to the step's knobs (``final_weights: reprune``), or that and, where it fails the rule, the step's own weights
    fine-tuned the same epochs (``reprune_or_search``: :class:`_Candidates`). ``mode`` replaces
    ``final_weights`` (the uniform search's ``reprune``: it has no trajectory ``tr`` of its own weights).
    ``start``: step 0 is a pick already fine-tuned and judged (the uniform start: its model and validation
    accuracy), delivered as it is when no faster step meets the rule."""
    from .search import backtrack

    cands = _Candidates(run, ch, result, tr, mode)
    if start is not None:
        cands.finals[0], cands.source[0] = start[0], "uniform"
    run.progress.restart(f"backtracking: final fine-tunes ({run.cfg.finetune_epochs:g} ep) of trajectory steps")
    rule = cands.rule
    i, tried = backtrack(result.history, cands.final, start_accuracy=result.history[0].accuracy,
                         max_accuracy_drop=run.cfg.max_accuracy_drop, accept=rule.accept if rule else None)
    chosen = result.history[i]
    if i not in cands.finals:  # the unpruned start: its final fine-tune too (equal training for every outcome)
        cands.final(i)
    backtracked = tuple({"step": k, "fps": result.history[k].hw.fps, "accuracy_val_final": a,
                         **cands.row(k)} for k, a in tried.items())
    if i == 0 and start is not None:
        tried[0] = start[1]
    best = Step(chosen.counts, chosen.hw, tried.get(i, chosen.accuracy), chosen.changed)
    lineage = tr.epochs[_knob_key(chosen.counts)] if tr is not None and cands.source.get(i) == "search" else 0.0
    return SearchOutcome(cands.finals[i], dict(chosen.counts), dataclasses.replace(result, best=best), finetuned=True,
                         lineage_epochs=lineage, backtracked=backtracked)


class _Candidates:
    """The backtracking's candidate models, each fine-tuned ``finetune_epochs`` (``final(i)``, what
    :func:`hapfpga.pruning.search.backtrack` calls). ``final_weights``: ``search`` (the step's own weights),
    ``reprune`` (the unpruned model pruned once to the step's knobs) or ``reprune_or_search``: the re-pruned one
    and, where it fails the rule (the paired test, or the point rule), also the step's own weights fine-tuned the
    same epochs, kept if it passes or is more accurate on validation. A deep trajectory on a residual model can
    lose most of its accuracy when pruned in one shot (issue 24: a resnet8 step at 97 % with its own weights came
    back at 67 % re-pruned), where the re-pruned candidates of a chain model are the better ones (issue 13)."""

    def __init__(self, run: _Run, ch: _Channels, result: SearchResult, tr: _Trajectory | None,
                 mode: str | None = None):
        self.run, self.ch, self.result, self.tr = run, ch, result, tr
        self.mode = mode or run.cfg.final_weights
        self.rule = _PairedRule(run) if run.cfg.selection.confidence > 0.5 else None
        self.finals: dict[int, Any] = {}
        self.source: dict[int, str] = {}  # "reprune" or "search": where the kept candidate's weights came from
        self.other: dict[int, float] = {}  # reprune_or_search: the validation accuracy of the candidate not kept

    def tuned(self, i: int, source: str) -> tuple[Any, float]:
        knobs, run = self.result.history[i].counts, self.run
        m = (self.ch.realise(run, run.base, self.ch.graph, knobs) if source == "reprune"
             else copy.deepcopy(self._trajectory().snapshots[_knob_key(knobs)]))
        return run.tune(m, run.final_ft())

    def _trajectory(self) -> _Trajectory:
        assert self.tr is not None, "final_weights search needs the search's trajectory"
        return self.tr

    def passes(self, m: Any, acc: float) -> bool:
        """The backtracking's rule on a candidate (the paired test, else the point rule), without recording or
        logging it."""
        if self.rule is None:
            return within_drop(self.result.history[0].accuracy, acc, self.run.cfg.max_accuracy_drop)
        return self.rule.passes(m)

    def final(self, i: int) -> float:
        mode = self.mode
        first = "search" if mode == "search" else "reprune"
        m, acc = self.tuned(i, first)
        source = first
        if mode == "reprune_or_search" and i > 0 and not self.passes(m, acc):
            self.run.say(f"backtrack: step {i} re-pruned fails the rule (validation {acc:.4f}); its own search "
                         f"weights, fine-tuned {self.run.cfg.finetune_epochs:g} ep as well")
            m2, acc2 = self.tuned(i, "search")
            if self.passes(m2, acc2) or acc2 > acc:
                self.other[i], m, acc, source = acc, m2, acc2, "search"
            else:
                self.other[i] = acc2
        self.finals[i], self.source[i] = m, source
        if self.rule is not None:
            self.rule.record(i, m)
        s = self.result.history[i]
        self.run.progress.step("backtrack", i, s.changed or "-", s.counts.get(s.changed or "", None), s.hw.fps, acc,
                               self.run.final_ft().epochs)
        return acc

    def row(self, k: int) -> dict[str, Any]:
        """The report's backtracking row extras of step ``k``: the paired counts, the weights kept and, where both
        were fine-tuned, the other candidate's validation accuracy."""
        extra = {"weights": self.source[k]} if k in self.source else {}
        if k in self.other:
            extra["accuracy_val_other"] = self.other[k]
        return {**(self.rule.row(k) if self.rule else {}), **extra}


def _search_nsga2(run: _Run, ch: _Channels) -> SearchOutcome:
    """NSGA-II over the knobs (on this machine, or with the workers of a shared study); the best Pareto point."""
    from ..train import FinetuneConfig
    from .plan import uniform_counts
    from .search import default_storage, nsga2_search
    from .workers import TrialEvaluator, lead_shared_search

    cfg, full, hw_eval, seed = run.cfg, ch.full, ch.hw_eval, run.seed
    assert hw_eval is not None
    evaluate = TrialEvaluator(run.base, run.data.example, ch.graph, list(ch.groups), ch.importance, (run.data.x_fit, run.data.y_fit),
                              (run.data.x_val, run.data.y_val), FinetuneConfig(epochs=cfg.nsga2.finetune_epochs, lr=cfg.lr),
                              seed, hw_eval, run.dev)
    storage = cfg.nsga2.storage or default_storage(run.out_dir)
    first = [full, uniform_counts(full, 0.5), uniform_counts(full, 0.25)]
    shared = lead_shared_search(cfg, storage, evaluate, ch.cands, first, seed, run.say) if cfg.search.artifacts else None
    result = nsga2_search(
        ch.cands, evaluate, storage=shared or storage, study_name=cfg.nsga2.study_name,
        n_trials=0 if shared else cfg.nsga2.trials, seed=seed, population=cfg.nsga2.population,
        baseline_accuracy=ch.acc_val0, max_accuracy_drop=cfg.max_accuracy_drop, enqueue=[] if shared else first,
        workers=run.n_workers, progress=None if shared else _nsga2_progress(run),
    )
    counts = dict(result.best.counts)
    return SearchOutcome(ch.realise(run, run.base, ch.graph, counts), counts, result, storage=storage)


def _nsga2_progress(run: _Run) -> Callable[[int, Mapping[str, int], Any, int], None]:
    """NSGA-II's ``progress``: a step line per trial (its predicted FPS and validation accuracy after the trial's
    fine-tune; a failed trial shows no FPS and accuracy 0)."""
    cfg = run.cfg
    run.progress.restart(f"nsga2 search: {cfg.nsga2.trials} trials in populations of {cfg.nsga2.population}")

    def on_trial(number: int, counts: Mapping[str, int], res: Any, left: int) -> None:
        acc, hw = res if res is not None else (0.0, None)
        run.progress.step("nsga2", number, "trial", None, None if hw is None else hw.fps, acc,
                          cfg.nsga2.finetune_epochs, steps_left=left)

    return on_trial


#: ``pruning.method`` -> the search on the model (``pruning.target: ratio`` is the uniform one for every method).
SEARCHES: dict[str, Callable[[_Run, _Channels], SearchOutcome]] = {
    "uniform": _search_uniform, "greedy": _search_greedy, "j": _search_greedy, "nsga2": _search_nsga2,
}


def _finish_report(run: _Run, ch: _Channels, out: SearchOutcome,
                   baseline: tuple[float, int, int]) -> tuple[Any, PruningReport]:
    """Final fine-tune, test/validation accuracies and predicted FPS of the search's outcome: the report."""
    from .apply import count_macs, count_params
    from .mixed import layer_bits, split_knobs

    cfg, hw_eval, start = run.cfg, ch.hw_eval, ch.start
    pruned, result = out.model, out.result
    knobs, (counts, _) = {**start, **out.counts}, split_knobs(out.counts)
    fps = BeforeAfter(hw_eval(start).fps, hw_eval(knobs).fps) if hw_eval is not None else BeforeAfter()
    if cfg.finetune_epochs > 0 and not out.finetuned:  # a killed plain fine-tune resumes from its checkpoint
        run.progress.restart(f"final fine-tune of the chosen design: {cfg.finetune_epochs:g} epochs")
        pruned, acc_ft = run.tune(copy.deepcopy(pruned), run.final_ft(),
                                  checkpoint=run.out_dir / "checkpoints" / "finetune.pt")
        run.progress.step("final", 0, "chosen design", None, fps.after, acc_ft, cfg.finetune_epochs, steps_left=0)
    pruned.eval()
    acc_after = run.evaluate(pruned, run.data.x_test, run.data.y_test)
    details = {k: v for k, v in (("sensitivity", ch.sensitivity), ("ratio", out.ratio), ("storage", out.storage),
                                 ("sparsify", run.sparsified)) if v is not None}
    if cfg.bits:  # per-layer weight/activation bits before and after (the exported QONNX carries the same)
        details.update(bits=list(cfg.bits), bits_before=layer_bits(run.base), bits_after=layer_bits(pruned))
    met = _target_met(cfg, fps.before, fps.after, run.log, dict(knobs) == dict(start))
    if hw_eval is not None:
        limit = _limited_by(run, ch, knobs)
        details["limited_by"] = limit.as_dict() if limit is not None else None
    search = SearchRecord(
        pareto=_pareto_rows(result),
        history=[s.as_dict() for s in result.history][-200:] if result is not None else [],
        rejected=[s.as_dict() for s in result.rejected] if result is not None else [],
        # the chosen model's own training: its sparse training, its greedy steps' fine-tunes, the final one (epochs)
        extra_epochs=(cfg.sparsify_epochs if run.sparsified else 0.0) + out.lineage_epochs + cfg.finetune_epochs,
        backtrack=list(out.backtracked))
    acc_before, params_before, macs_before = baseline
    return pruned, PruningReport(
        method=cfg.method, target=TargetOutcome(cfg.target, cfg.target_fps if cfg.target == "fps" else None, met),
        importance=cfg.importance, details=details, channels=BeforeAfter(dict(ch.full), _counts_after(ch.full, counts)),
        params=BeforeAfter(params_before, count_params(pruned)),
        macs=BeforeAfter(macs_before, count_macs(pruned, run.data.example[:1])),
        accuracy=BeforeAfter(acc_before, acc_after),
        # the search's decisions are on the validation split; the test split above is only for the figures
        accuracy_val=BeforeAfter(ch.acc_val0, run.evaluate(pruned, run.data.x_val, run.data.y_val)),
        fps=fps, search=search, seconds=time.time() - run.t0,
    )


def _counts_after(full: Mapping[str, int], counts: Mapping[str, int]) -> dict[str, int]:
    """The channel counts of every group after pruning (``PruningPlan``'s, the report's ``channels_after``)."""
    from .plan import PruningPlan

    return PruningPlan(before=dict(full), after=dict(counts)).counts()


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
    target: HwTarget,
    run_dir: str | Path,
    *,
    train_cfg: Any = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    uniform_pick: UniformPick | None = None,
    sparse: SparseModel | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Prune ``model`` per the ``pruning:`` section; returns the pruned, fine-tuned model and the report dict.

    The report has ``method``, ``channels_before``/``channels_after`` (per group, named by its first conv/linear),
    ``params``/``macs`` {before, after}, ``compression``, ``accuracy`` {before, after} on the test split,
    ``accuracy_drop`` (fraction), ``fps_before``/``fps_after`` (predicted), ``target_met`` (``pruning.target:
    fps`` only, else None), ``pareto`` and ``history``. A missed FPS target is one warning line (``log``, else
    stderr), never a silent return of the unpruned model. ``target`` is the board and the fold stage's
    ``FoldingOptions`` (the predictor folds the layers FINN builds with ``open_simulatable``, at the same budget
    ``margin``, for the same ``finn_cycles``); its ``predictor`` replaces the built-in one (tests, benchmarks).
    ``uniform_pick``: with ``pruning.start: uniform``, the pick of an earlier uniform search under the same rule on
    the same model, data and seed (:class:`~hapfpga.pruning.results.UniformPick`), so it is not run again.
    ``sparse``: with ``pruning.sparsify_epochs`` > 0, the sparse-trained model :func:`sparse_train` made with the
    same settings on the same model, data and seed, so it is not trained again (other settings: ValueError).
    """
    from .apply import count_macs, count_params

    cfg = parse_pruning_config(section)
    if uniform_pick is not None and cfg.start != "uniform":
        raise ValueError("a uniform pick is for pruning.start: uniform only")
    if sparse is not None and not _sparse_trains(cfg):
        raise ValueError("a sparse-trained model is for a structured method with pruning.sparsify_epochs > 0 only")
    run = dataclasses.replace(_prepare_run(cfg, model, dataset, run_dir, train_cfg, seed, log),
                              uniform_pick=uniform_pick)
    acc_before = run.evaluate(run.base, run.data.x_test, run.data.y_test)
    params_before = count_params(run.base)
    macs_before = count_macs(run.base, run.data.example[:1])
    baseline = (acc_before, params_before, macs_before)
    if cfg.method == "unstructured":
        pruned, report = _run_unstructured(run, baseline)
    else:
        if _sparse_trains(cfg):
            run = _sparsify(run, sparse)
        ch = _setup_channels(run, target)
        outcome = SEARCHES["uniform" if cfg.target == "ratio" else cfg.method](run, ch)
        pruned, report = _finish_report(run, ch, outcome, baseline)
        if isinstance(ch.hw_eval, HwPredictor) and ch.hw_eval is not target.predictor:
            ch.hw_eval.close()  # the predictor this stage built: stop its worker processes
    doc = report.as_dict()
    (run.out_dir / "pruning.json").write_text(json.dumps(doc, indent=2, default=str))
    return pruned, doc

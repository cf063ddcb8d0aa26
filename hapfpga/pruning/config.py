"""The ``pruning:`` section of ``hapfpga run`` / ``hapfpga prune`` configs (parsed with ``hapfpga.config``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from ..config import from_dict
from ..errors import ConfigError

__all__ = ["PruningConfig", "NSGA2Config", "SearchConfig", "SelectionConfig", "resolve_workers", "parse_pruning_config"]


@dataclass(frozen=True)
class SearchConfig:
    """``pruning.search``: ``workers`` (an int or ``auto`` = this machine's cores) evaluate candidates in parallel;
    ``artifacts`` (a directory every machine can read and write) turns on the multi-machine mode; ``heartbeat``
    and ``grace`` (seconds) detect dead workers; a failed trial is retried up to ``retries`` times."""

    workers: int | Literal["auto"] = 1
    artifacts: str | None = None
    heartbeat: int = 10
    grace: int | None = None  # None: 3 heartbeats
    retries: int = 2

    def __post_init__(self) -> None:
        resolve_workers(self.workers)
        if self.heartbeat < 1 or self.retries < 0 or (self.grace is not None and self.grace <= self.heartbeat):
            raise ConfigError("pruning.search needs heartbeat >= 1, grace > heartbeat and retries >= 0; fix them.")


def resolve_workers(workers: int | str) -> int:
    """``auto`` -> the cores this process may use; an int >= 1 as is."""
    if workers == "auto":
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    if isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
        return workers
    raise ConfigError(f"Config key 'pruning.search.workers' is {workers!r}; use a number >= 1 or 'auto'.")


@dataclass(frozen=True)
class SelectionConfig:
    """``pruning.selection``: how the greedy search's backtracking judges a candidate against
    ``max_accuracy_drop`` on the validation split (``hapfpga.pruning.selection``). ``confidence``: a candidate
    passes only when a paired non-inferiority test against the unpruned model (same validation samples; exact on
    splits up to 600 samples) shows its true drop is within ``max_accuracy_drop`` at this one-sided confidence;
    ``0.5`` is the point rule (observed drop within ``max_accuracy_drop``, the rule before issue 24)."""

    confidence: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.confidence, bool) or not 0.5 <= self.confidence < 1:
            raise ConfigError(
                f"Config key 'pruning.selection.confidence' is {self.confidence}; give a one-sided confidence in "
                "[0.5, 1), e.g. 0.8 (0.5: the observed drop alone)."
            )


@dataclass(frozen=True)
class NSGA2Config:
    """Optuna NSGA-II settings; ``storage`` None = ``sqlite:///RUN_DIR/pruning_optuna.db``."""

    trials: int = 32
    population: int = 16
    storage: str | None = None
    study_name: str = "pruning"
    finetune_epochs: float = 0.0  # per trial (0: accuracy without fine-tuning, the cheap proxy)

    def __post_init__(self) -> None:
        if self.trials < 1 or self.population < 2:
            raise ConfigError("pruning.nsga2 needs trials >= 1 and population >= 2; raise them.")


@dataclass(frozen=True)
class PruningConfig:
    """Structured (channel) or unstructured (weight) pruning.

    ``method``: ``greedy`` (NetAdapt-style, FPS gain per sensitivity), ``j`` (greedy on J = α·acc + (1−α)·FPS),
    ``nsga2`` (Optuna multi-objective), ``uniform`` (same keep ratio everywhere) or ``unstructured`` (magnitude
    masks; no FINN speed-up). ``target``: ``fps`` (reach ``target_fps``), ``budget`` (fastest within the board
    budget and ``max_accuracy_drop``), ``max_fps`` (the same search with the accuracy rule made explicit: the
    fastest design whose validation accuracy is within ``max_accuracy_drop`` of the unpruned model's, which must be
    given in (0, 1); the validation accuracy after the final fine-tune is what must meet it: with ``backtrack`` the
    search may walk past it by ``step_accuracy_drop`` and keeps the fastest trajectory step that meets it after its
    final fine-tune; with ``uniform``: the smallest keep ratio on a 1/32 grid whose candidate, the unpruned model
    pruned once and fine-tuned ``finetune_epochs``, meets it, tried as the backtracking tries a trajectory),
    ``ratio`` (keep ``ratio`` of channels, the uniform baseline).

    ``bits``: mixed precision — FINN-legal bit widths (1–8) each layer's operands (weights and the activation
    feeding it) may be lowered to, searched jointly with the channel counts by ``greedy``/``j`` (a step lowers one
    layer's bits or one group's channels, whichever buys more FPS per unit of sensitivity) and ``nsga2`` (one more
    dimension per layer); empty (default): bits stay as the model config has them. Needs a zoo model.
    """

    method: Literal["greedy", "j", "nsga2", "uniform", "unstructured"] = "greedy"
    target: Literal["fps", "budget", "max_fps", "ratio"] = "budget"
    target_fps: float | None = None
    ratio: float = 0.5
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = "l1"
    alpha: float = 0.5
    max_accuracy_drop: float = 0.01
    bits: tuple[int, ...] = ()
    fold_aware: bool = True
    min_ratio: float = 0.0625
    candidate_steps: int = 16
    max_steps: int = 60
    step_finetune_epochs: float = 0.25
    finetune_epochs: float = 3.0
    lr: float = 1e-3
    #: fine-tune learning-rate schedule (steps and final): ``cosine`` (annealed per batch to 0) or ``constant``
    finetune_schedule: Literal["cosine", "constant"] = "cosine"
    #: keep the best-on-validation weights of every fine-tune (the starting weights included), so a fine-tune
    #: cannot leave a model less accurate on the validation split than it started
    select_best: bool = True
    #: the long fine-tunes (``finetune_epochs``: a rescue, each backtracking probe, the final one) stop when the
    #: validation accuracy has not risen above its best so far for this many epochs (a learning-curve early stop,
    #: checked at every epoch's end; ``hapfpga.train.FinetuneConfig.patience``). None (default): they run their
    #: ``finetune_epochs`` in full. Needs ``select_best`` (the best-on-validation weights are what is kept)
    finetune_patience: float | None = None
    #: greedy targets budget/max_fps: the search goes on while a step's validation drop (after its short
    #: fine-tune) is within this (None: ``max_accuracy_drop``); the final rule stays ``max_accuracy_drop``
    step_accuracy_drop: float | None = None
    #: greedy targets budget/max_fps: fine-tune candidates of the trajectory for ``finetune_epochs`` (fastest
    #: first, then a bisection) and keep the fastest whose validation drop meets ``max_accuracy_drop``
    backtrack: bool = True
    #: greedy, target max_fps: where the search starts — ``full`` (the trained model) or ``uniform`` (first the
    #: ``method: uniform`` search under the same rule: the fastest keep ratio whose candidate, pruned once and
    #: fine-tuned ``finetune_epochs``, meets it; the greedy search then goes on from that fine-tuned model, and
    #: the backtracking keeps it when no faster step meets the rule: never slower than uniform pruning)
    start: Literal["full", "uniform"] = "full"
    #: greedy targets budget/max_fps, a step whose drop is beyond ``step_accuracy_drop``: ``stop`` ends the search
    #: there (backtracking still tries it); ``reject`` undoes it, freezes its group (or bits knob) and goes on with
    #: the others; ``rescue`` first fine-tunes it ``finetune_epochs`` more and rejects it only if still beyond
    on_step_drop: Literal["stop", "reject", "rescue"] = "rescue"
    #: greedy/j: where the final model's weights come from: ``search`` (the chosen step's own weights, fine-tuned
    #: step by step along the search, then ``finetune_epochs``) or ``reprune`` (the unpruned model pruned once to
    #: the chosen step's knobs and fine-tuned ``finetune_epochs``: the search picks the architecture, the weights
    #: start again from the trained model, as in Liu et al., "Rethinking the value of network pruning", ICLR 2019).
    #: With ``backtrack`` every candidate is judged as it would be delivered (re-pruned and fine-tuned).
    #: ``reprune_or_search``: with ``backtrack``, a re-pruned candidate that fails the rule is tried again from the
    #: step's own weights (fine-tuned ``finetune_epochs`` too), kept if it passes or is more accurate; without
    #: backtracking it is ``reprune``.
    final_weights: Literal["search", "reprune", "reprune_or_search"] = "search"
    distill: bool = False
    iterations: int = 1
    val_fraction: float = 0.2
    sensitivity: bool = True
    sensitivity_ratios: tuple[float, ...] = (0.75, 0.5, 0.25, 0.125)
    exclude: tuple[str, ...] = ()
    sparsity: float = 0.5
    l1_sparsity: float = 0.0
    #: sparse training before a structured search (network slimming, hapfpga.pruning.sparsify): the trained model
    #: is fine-tuned this many epochs with a group lasso of ``sparsify_strength`` on each prunable channel's scale
    #: (its BatchNorm's γ, else its filter's norm), and the search prunes from that model; 0 (default): off. Needs
    #: ``importance: bn_scale`` (the scales it trains are the ones that choose the channels)
    sparsify_epochs: float = 0.0
    sparsify_strength: float = 0.01
    nsga2: NSGA2Config = NSGA2Config()
    folding_time_limit: float = 20.0
    #: knob space of the FPS predictor inside the search: "full" (the fold stage's own space: every knob, SWG
    #: parallel window, width converters — the FPS the search targets is the FPS the fold stage reaches) or
    #: "fast" (PE/SIMD only, block RAM, LUT arithmetic — a conservative, ~5× faster prediction)
    predictor_space: Literal["fast", "full"] = "full"
    #: processes folding a greedy step's trials in parallel (0: in this process). Default 2: a step folds several
    #: trials (each a ~2 s MILP on CNV) while this process waits, so two cores fold twice as many per second
    predictor_workers: int = 2
    #: parallel candidate evaluation and the multi-machine search (hapfpga.pruning.workers)
    search: SearchConfig = SearchConfig()
    #: the accuracy rule of the backtracking as a paired statistical test (hapfpga.pruning.selection)
    selection: SelectionConfig = SelectionConfig()

    def __post_init__(self) -> None:
        if self.target == "fps" and not (self.target_fps and self.target_fps > 0):
            raise ConfigError("Config key 'pruning.target_fps' must be a positive number when pruning.target is 'fps'.")
        if not 0 < self.ratio <= 1:
            raise ConfigError(f"Config key 'pruning.ratio' is {self.ratio}; give a keep fraction in (0, 1].")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"Config key 'pruning.alpha' is {self.alpha}; give a weight in [0, 1].")
        if not 0 < self.min_ratio <= 1:
            raise ConfigError(f"Config key 'pruning.min_ratio' is {self.min_ratio}; give a fraction in (0, 1].")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"Config key 'pruning.val_fraction' is {self.val_fraction}; give a fraction in [0, 1).")
        if self.iterations < 1:
            raise ConfigError("Config key 'pruning.iterations' must be 1 or more.")
        if self.target == "max_fps" and not 0 < self.max_accuracy_drop < 1:
            raise ConfigError(
                f"Config key 'pruning.max_accuracy_drop' is {self.max_accuracy_drop}; pruning.target 'max_fps' needs "
                "an accuracy drop in (0, 1), e.g. 0.01 for one point."
            )
        if not 0 <= self.max_accuracy_drop < 1:
            raise ConfigError(
                f"Config key 'pruning.max_accuracy_drop' is {self.max_accuracy_drop}; give a fraction in [0, 1)."
            )
        bad = [b for b in self.bits if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 8]
        if bad:
            raise ConfigError(f"Config key 'pruning.bits' has {bad}; give FINN-legal bit widths from 1 to 8.")
        if self.bits and self.method not in ("greedy", "j", "nsga2"):
            raise ConfigError(
                f"Config key 'pruning.bits' needs pruning.method greedy, j or nsga2 (the searches), not '{self.method}'."
            )
        if self.target == "max_fps":
            self._check_max_fps_method()
        if self.step_accuracy_drop is not None and not 0 <= self.step_accuracy_drop < 1:
            raise ConfigError(
                f"Config key 'pruning.step_accuracy_drop' is {self.step_accuracy_drop}; give a fraction in [0, 1)."
            )
        if self.final_weights != "search" and self.method not in ("greedy", "j"):
            raise ConfigError(
                f"Config key 'pruning.final_weights' '{self.final_weights}' needs pruning.method greedy or j, not "
                f"'{self.method}'."
            )
        if self.finetune_patience is not None and not self.finetune_patience > 0:
            raise ConfigError(f"Config key 'pruning.finetune_patience' is {self.finetune_patience}; give a positive "
                              "number of epochs, or leave it out to fine-tune finetune_epochs in full.")
        if self.finetune_patience is not None and not self.select_best:
            raise ConfigError("Config key 'pruning.finetune_patience' needs pruning.select_best: true (an early stop "
                              "keeps the best-on-validation weights); set it or remove finetune_patience.")
        if not 0 <= self.sparsity < 1:
            raise ConfigError(f"Config key 'pruning.sparsity' is {self.sparsity}; give a fraction in [0, 1).")
        self._check_sparsify()
        self._check_start()

    def _check_sparsify(self) -> None:
        """``sparsify_epochs``: a structured method, ``importance: bn_scale``, a positive strength."""
        if not self.sparsify_epochs >= 0:
            raise ConfigError(f"Config key 'pruning.sparsify_epochs' is {self.sparsify_epochs}; give epochs ≥ 0 "
                              "(0: no sparse training).")
        if not self.sparsify_strength > 0:
            raise ConfigError(f"Config key 'pruning.sparsify_strength' is {self.sparsify_strength}; give a positive "
                              "number, e.g. 0.01.")
        if self.sparsify_epochs > 0 and self.method == "unstructured":
            raise ConfigError("Config key 'pruning.sparsify_epochs' trains channel scales for a structured method; "
                              "method 'unstructured' has pruning.l1_sparsity instead.")
        if self.sparsify_epochs > 0 and self.importance != "bn_scale":
            raise ConfigError(f"Config key 'pruning.sparsify_epochs' needs pruning.importance: bn_scale (the channel "
                              f"scales it trains are what chooses the channels), not '{self.importance}'.")

    def _check_start(self) -> None:
        """``start: uniform``: a greedy search with ``target: max_fps``, backtracking and a final fine-tune (the
        uniform start is the uniform search under the rule, each candidate fine-tuned before it is judged)."""
        if self.start == "full":
            return
        if self.method != "greedy" or self.target != "max_fps":
            raise ConfigError(f"Config key 'pruning.start: uniform' needs pruning.method greedy with target max_fps "
                              f"(the uniform search under the same accuracy rule), not {self.method} with target "
                              f"{self.target}.")
        if not self.backtrack or self.finetune_epochs <= 0:
            raise ConfigError("Config key 'pruning.start: uniform' needs pruning.backtrack: true and a positive "
                              "pruning.finetune_epochs (each uniform candidate is fine-tuned before the rule judges "
                              "it).")

    def _check_max_fps_method(self) -> None:
        """``target: max_fps`` needs a search: greedy, j, nsga2, or uniform over its keep ratios (one shot each,
        each fine-tuned before the rule judges it)."""
        if self.method == "unstructured":
            raise ConfigError(
                "pruning.target 'max_fps' is a search target; use pruning.method greedy, j, nsga2 or uniform, not "
                "'unstructured'."
            )
        if self.method == "uniform" and self.iterations > 1:
            raise ConfigError(
                f"Config key 'pruning.iterations' is {self.iterations}; method 'uniform' with target 'max_fps' prunes "
                "each candidate ratio in one shot, so leave iterations at 1."
            )
        if self.method == "uniform" and self.finetune_epochs <= 0:
            raise ConfigError(
                "Config key 'pruning.finetune_epochs' must be positive for method 'uniform' with target 'max_fps' "
                "(each candidate ratio is fine-tuned before the accuracy rule judges it)."
            )


def parse_pruning_config(section: Any) -> PruningConfig:
    """``PruningConfig`` from the ``pruning:`` mapping (an existing ``PruningConfig`` passes through)."""
    if isinstance(section, PruningConfig):
        return section
    return from_dict(PruningConfig, section or {}, "pruning")

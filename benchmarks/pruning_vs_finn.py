"""Pruning × mixed precision × folding vs FINN's SetFolding, every arm judged by finn-plus's estimate report.

Protocol (one seed; ``--seeds`` runs several and reports mean ± sd). The model is the zoo's FINN CNV topology
(``hapfpga.zoo.models.cnv``, 2-bit weights and activations; ``--model`` takes any zoo name, e.g. ``resnet8``, and
``--model-options`` its ``model.options`` as JSON), the data scikit-learn digits upsampled to 3×32×32 (``load_digits(size=32, channels=3)``;
``--data`` takes the run's ``data`` section as JSON instead, e.g. a local MNIST-format folder with
``max_train``), the board Pynq-Z2 at 100 MHz.

1. **Splits**: the training data is split (seeded, ``--val-fraction``) into a fit and a validation part; every
   training step uses the fit part, every search decision the validation part; the test split is only used for
   the figures below.
2. **Converged baseline**: the unpruned model is trained epoch by epoch; an epoch that does not improve on
   validation (higher accuracy, or equal accuracy and lower cross-entropy: 202 samples saturate at 2–3 errors)
   sends it back to the best weights at half the learning rate, and ``--patience`` such epochs in a row (or
   ``--max-epochs``) end training; the best epoch's weights are kept and the validation curve printed. Then the
   arms' own fine-tune procedure (below) is applied round after round while a round still finds better weights
   on validation (``--polish-rounds``, default 3): reduce-on-plateau alone left seed 0 1.8 test points below
   what 8 more fine-tune epochs gave it.
3. **Arms** (FPS from finn-plus's ``estimate_network_performance.json``, fit from ``estimate_layer_resources.json``
   against FINN's default limits LUT 0.7 / BRAM, DSP 0.8; accuracy on the test split):
   unpruned + SetFolding best fit (a scan of ``target_fps``: coarse, then a fine linear scan around the best),
   unpruned + ours (the fold stage's design, ``stages.variant.choose_design``: the embedded-threshold graph and
   the mixed RTL/HLS-MVAU graph folded, the faster kept; FINN's report of it), hardware-aware pruning (greedy, ``target: max_fps`` within
   ``--max-drop`` of the baseline's validation accuracy, FPS predicted in the fold stage's own knob space) + ours
   and + SetFolding, uniform pruning (the keep ratio whose predicted FPS matches the hardware-aware arm) + ours
   and + SetFolding, uniform pruning held to the same accuracy rule (``--uniform-rule``, default on: the fastest
   keep ratio on a 1/32 grid whose candidate, the converged model pruned once and fine-tuned ``--finetune-epochs``,
   meets the hw-aware search's rule on validation; ``method: uniform, target: max_fps``) + ours, mixed precision (``bits: [2, 1]``; on resnet8/mobilenet_v1/ds_cnn every width from
   ``--bits`` down to 2, per activation quantiser) + pruning + ours.
   The search (``target: max_fps``): each greedy step is fine-tuned ``--step-finetune`` epochs and the search
   goes on while the step's validation drop is within ``--step-drop`` (looser than the rule, so it can walk past
   steps a longer fine-tune recovers); then it backtracks: the fastest step of its trajectory, then a bisection,
   each fine-tuned ``--finetune-epochs``, until the fastest one whose validation drop meets ``--max-drop`` (0.5 pt,
   half the test rule, read as an observed drop: ``--confidence`` 0.5) or, with ``--confidence`` 0.8, a paired test
   against the unpruned model at that one-sided confidence (``pruning.selection``, docs/pruning.md "Selection",
   with ``--max-drop 0.01``: on the 202-sample split it gives up most of the speed, so it is not the default).
   ``--final-weights reprune`` (default): each candidate, and so the delivered model, is the converged model
   pruned once to the step's design and fine-tuned ``--finetune-epochs``; the search's step-by-step weights only
   guide the search (stop 19's three chosen CNV designs, re-pruned and fine-tuned for the same epochs, were
   0.7–2.0 test points better than the search's own weights; issue 13's note), and the final model's extra
   training is that one fine-tune.
4. **One fine-tune procedure, equal training**: every fine-tune (search steps, final, uniform arm, reference) is
   Adam from ``--ft-lr`` on a per-batch cosine schedule with the best-on-validation weights kept (the starting
   weights included, so fine-tuning a converged model cannot make it worse on validation; ties on accuracy go to
   the lower cross-entropy), distilling from the unpruned model with ``--distill`` (off by default). Each pruned
   arm's extra training (its final fine-tune; with ``--final-weights search`` also the chosen model's own greedy
   steps × step fine-tune) is reported; the uniform arm gets the hardware-aware arm's
   budget in one fine-tune; the reference for the accuracy drop is the converged unpruned model fine-tuned for
   the largest extra budget of any arm (so no arm gets more training than the model it is compared with); with
   ``--distill`` the stronger on test of that fine-tune distilled (from itself) and plain, both in the JSON's
   ``references`` (distilling the unpruned model from itself can weaken it).
5. **Caches** (``--cache``, default ``runs/bench_cache/pruning_vs_finn``): one file per result, named by a hash of
   everything that produced it (model, data, split, epochs, seed, flags, the ONNX file's bytes for FINN results,
   and the source of the hapfpga modules involved); ``--smoke`` uses a throw-away cache.

The gain is split into factors: folding (unpruned: ours / SetFolding), channels (pruned / unpruned, both ours),
bits (mixed + pruned / pruned, both ours). The acceptance is per seed: the table gives each arm's worst seed (lowest
ratio, largest drop) beside the mean, then every seed's row. Last line: ``prune_fold_speedup_vs_setfolding <ratio>
accuracy_drop_pts <x> worst_seed_speedup <ratio> worst_seed_drop_pts <x>`` — the mean and the worst seed of the arm
that fits and drops at most 1 point on every seed with the highest worst-seed ratio.

**How sure a seed's drop is** (issue 24: digits' test split has 450 samples, one is 0.22 pt). An arm and the model
its drop is measured against are scored on the same test samples, so the drop is paired: each arm's JSON row has
``test_paired`` {``n``, ``lost`` (the compared model right, the arm wrong), ``gained`` (the reverse)}, counted
where its test accuracy is, and ``drop_pts`` = 100 · (lost − gained) / n. Beside each seed's drop the table
prints the paired 95 % two-sided interval of the arm's *true* drop (on the population the test split is drawn
from): upper end ``pruning.selection.drop_bound`` of (lost, gained) at one-sided 0.975, lower end minus the same
bound of the swapped pair (gained, lost) — exact unconditional bounds of Tango's score test on 450 samples
(docs/pruning.md "Selection"). The unpruned arms are the converged model against itself (lost = gained = 0):
their interval is what the split can tell apart at all, ±0.86 pt on 450 samples. Each seed's verdict: ``meets`` (fits and
observed drop ≤ ``--rule-pts``), ``fails`` (observed drop above the rule and the interval's lower end too: a
real loss at 95 %), ``fails (within test noise)`` (observed drop above the rule, the interval reaching down to
it: the test split cannot tell this loss from one within the rule), ``fails (no fit)``. The acceptance, the
"every seed" column, the best arm and the last line stay on the observed drop: the interval adds information, it
does not relax the rule. ``--combine`` of runs from before ``test_paired`` prints ``[-]`` and ``fails (no
interval)``.

6. **Scheduling** (how the work runs, never what it computes; docs/pruning_bench_schedule.md): the FINN jobs run
   in a 1-worker process pool beside the ML side; with ``--parallel-arms`` (default on 2 or more CPUs) the
   hardware-aware and mixed-precision searches, which both start from the converged baseline, run side by side in
   two spawned processes (1 torch thread each, ``--workers`` predictor processes shared out between them), after
   the unpruned model's FINN conversion is made once; ``--no-parallel-arms`` runs them one after the other. Same
   seed, same arms, same cache keys. Each seed's JSON has ``phases`` (wall and CPU seconds of the baseline, each
   search, uniform, reference, the wait for FINN, the FINN jobs' own, the seed) and ``finn_jobs`` (per job); the
   table prints them.

Usage: ``.venv/bin/python benchmarks/pruning_vs_finn.py [--quick] [--seeds 0 1 2] [--work DIR] [--model cnv]
[--model-options JSON]``;
seeds as separate processes (``--seeds 0 --json s0.json`` …) are summarised by ``--combine s0.json s1.json …``.
The full protocol differs from ``--quick`` in the converged baseline (≤ 40 epochs, patience 4; quick ≤ 10, 3), the
fine SetFolding scan, 3 seeds (quick 1), 14 greedy steps (quick 10) and an 8-epoch final fine-tune (quick 4).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scratch import work_dir  # noqa: E402  (benchmarks/scratch.py)

from hapfpga.boards import load_board  # noqa: E402
from hapfpga.finn.build import FOLD_AND_ESTIMATE_STEPS as TAIL_STEPS  # noqa: E402
from hapfpga.finn.setfolding import FINE, QUICK, finn_estimate, setfolding_best_fit  # noqa: E402
from hapfpga.pruning.importance import IMPORTANCES  # noqa: E402
from hapfpga.types import Resources  # noqa: E402

KEYS = ("LUT", "BRAM_18K", "URAM", "DSP")
T0 = time.perf_counter()
#: sources whose code produced each cached result (hashed into the cache key)
TRAIN_CODE = ("hapfpga/zoo", "hapfpga/quant.py", "hapfpga/data.py", "hapfpga/train.py")
PRUNE_CODE = (*TRAIN_CODE, "hapfpga/pruning", "hapfpga/folding", "hapfpga/estimate", "hapfpga/finn", "hapfpga/export.py")
FINN_CODE = ("hapfpga/finn", "hapfpga/folding", "hapfpga/estimate", "hapfpga/stages/variant.py")  # + choose_design
#: ``ours_job`` folds at the board's whole budget (FINN's report is the judge, as for SetFolding) and for the FPS
#: FINN's report will say (``finn_cycles``: its sliding-window formula where it differs from the RTL's, D10), so the
#: search's FPS predictor folds the same way: no ``folding.margin``, ``folding.finn_cycles``
OURS_MARGIN = 0.0
OURS_FINN_CYCLES = True


def say(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.0f}s] {msg}", flush=True)


def fmt(r: Resources) -> str:
    return f"LUT {r.LUT:,.0f} BRAM18 {r.BRAM_18K:,.0f} DSP {r.DSP:,.0f}"


# ----------------------------------------------------------------------------------------------- timings


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children that have ended (``os.times``): a search's
    FPS-predictor workers count once the search stops them; the FINN pool's worker, alive until the run ends, not."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Phases:
    """Wall and CPU seconds of a seed's phases, in the order they ran: ``with phases("baseline"): ...``."""

    def __init__(self) -> None:
        self.times: dict[str, dict] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        wall, cpu = time.perf_counter(), cpu_seconds()
        try:
            yield
        finally:
            self.times[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}


def timed_job(job, *a) -> dict:
    """``job(*a)`` (a FINN job, in the pool's process) with its own wall and CPU seconds: ``job_wall_s``,
    ``job_cpu_s`` (a cache hit costs next to nothing)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = job(*a)
    return {**out, "job_wall_s": time.perf_counter() - wall, "job_cpu_s": cpu_seconds() - cpu}


# ----------------------------------------------------------------------------------------------- caching


#: ``code_version``'s answers, fixed once per run (a searched arm's process gets the parent's: ``search_arm_job``)
CODE_VERSIONS: dict[tuple[str, ...], str] = {}


def code_version(paths: tuple[str, ...]) -> str:
    """Hash of the source of ``paths`` (files or folders of .py files) plus finn-plus's version; computed once per
    run, at the start of ``main`` (so edits made while a run goes on do not relabel its results)."""
    if paths not in CODE_VERSIONS:
        CODE_VERSIONS[paths] = _code_hash(paths)
    return CODE_VERSIONS[paths]


def _code_hash(paths: tuple[str, ...]) -> str:
    from importlib.metadata import version

    h = hashlib.sha256(version("finn-plus").encode())
    for p in paths:
        q = ROOT / p
        for f in sorted(q.rglob("*.py")) if q.is_dir() else [q]:
            if f.is_file():
                h.update(str(f.relative_to(ROOT)).encode())
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class Cache:
    """Results by a hash of what produced them: ``get(kind, key)`` / ``put(kind, key, value)``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, key: dict, ext: str = "json") -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        return self.root / f"{kind}_{digest}.{ext}"

    def get(self, kind: str, key: dict) -> dict | None:
        p = self.path(kind, key)
        if not p.is_file():
            return None
        d = json.loads(p.read_text())
        return d["value"] if d.get("key") == json.loads(json.dumps(key, sort_keys=True, default=str)) else None

    def put(self, kind: str, key: dict, value: dict) -> None:
        p = self.path(kind, key)
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "value": value}, indent=1, sort_keys=True, default=str))
        os.replace(tmp, p)


# ----------------------------------------------------------------------------------------------- FINN side


def run_tail(model: Path, out: Path, **kw):
    from hapfpga.finn.build import run_finn_steps

    return run_finn_steps(model, out, board="Pynq-Z2", clock_mhz=100.0, steps=TAIL_STEPS, **kw)


def _to_json(rep: dict) -> dict:
    return {**rep, "total": rep["total"].as_dict()}


def _from_json(rep: dict) -> dict:
    return {**rep, "total": Resources.from_dict(rep["total"])}


def setfolding_job(qonnx: str, work: str, quick: bool, smoke: bool, start: float, cache_root: str, code: str) -> dict:
    """SetFolding's best fit for one QONNX model (cached by the file's hash, the scan flags and FINN's code)."""
    from hapfpga.finn.build import run_finn_steps

    board = load_board("pynq-z2")
    cache = Cache(Path(cache_root))
    key = {"onnx": file_hash(Path(qonnx)), "quick": quick, "smoke": smoke, "start": start, "code": code}
    hit = cache.get("setfolding", key)
    if hit is not None:
        return {**_from_json(hit), "cached": True}
    work_p = Path(work)
    base = run_finn_steps(qonnx, work_p / "finn_base", board="Pynq-Z2", clock_mhz=100.0)
    spec = base.step_models["step_specialize_layers"]
    if smoke:  # plumbing only: one target, fit judged like every other
        rep = finn_estimate(run_tail(spec, work_p / "sf_smoke", target_fps=int(start)))
        out = {"target_fps": int(start), "n_targets": 1, "n_builds": 1,
               "fits": not rep["total"].over(board.budget, KEYS), **rep}
    else:  # the shared scan (hapfpga/finn/setfolding.py), started near the design's own FPS range
        settings = dataclasses.replace(QUICK if quick else FINE, start=start)
        out = setfolding_best_fit(spec, work_p, board, clock_mhz=100.0, settings=settings)
    cache.put("setfolding", key, _to_json(out))
    return out


def ours_job(qonnx: str, work: str, cache_root: str, code: str) -> dict:
    """Our folding as the fold stage makes it (``choose_design``: the embedded-threshold graph and the mixed
    RTL/HLS-MVAU graph, the faster kept), then FINN's estimate report of that design (a mixed one built with its
    specialize config); the budget is tightened until FINN's report says it fits. ``variant``: the graph kept."""
    from hapfpga.finn.build import run_finn_steps
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding.optimise import FoldingOptions, tightened
    from hapfpga.stages.variant import choose_design

    board = load_board("pynq-z2")
    cache = Cache(Path(cache_root))
    key = {"onnx": file_hash(Path(qonnx)), "code": code, "margin": OURS_MARGIN, "finn_cycles": OURS_FINN_CYCLES,
           "variants": "auto"}
    hit = cache.get("ours", key)
    if hit is not None:
        return {**_from_json(hit), "cached": True}
    work_p = Path(work)
    layers, spec = hw_layers_from_qonnx(Path(qonnx), work_p / "ours_hw", board, 100.0)
    options = FoldingOptions(clock_mhz=100.0, margin=OURS_MARGIN, estimate=False, time_limit=120,
                             finn_cycles=OURS_FINN_CYCLES)
    budget = board.budget
    for it in range(6):
        d = choose_design(Path(qonnx), layers, work_p / "ours_hw", board, options, budget=budget)
        fold = work_p / f"ours_folding_{it}.json"
        fold.write_text(d.text)
        if d.specialize:  # the mixed graph: FINN's whole estimate flow with the per-node specialize config
            sp = work_p / f"ours_folding_{it}.specialize.json"
            sp.write_text(json.dumps(d.specialize, indent=1))
            run = run_finn_steps(qonnx, work_p / f"ours_{it}", board="Pynq-Z2", clock_mhz=100.0,
                                 specialize_layers_config_file=sp, standalone_thresholds=True,
                                 folding_config_file=fold)
        else:
            run = run_tail(spec, work_p / f"ours_{it}", folding_config_file=fold)
        rep = finn_estimate(run)
        if not rep["total"].over(board.budget, KEYS):
            out = {**rep, "fits": True, "predicted_fps": d.result.fps, "iterations": it + 1, "variant": d.variant,
                   "variant_fps": d.fps}
            cache.put("ours", key, _to_json(out))
            return out
        budget = tightened(budget, d.result.total, rep["total"], KEYS)
    raise SystemExit(f"our folding of {qonnx} did not fit FINN's report after 6 tightenings")


# ----------------------------------------------------------------------------------------------- ML side


def train_converged(model, x_fit, y_fit, x_val, y_val, args, seed: int) -> tuple[object, list[float], int]:
    """Train to convergence on validation: after an epoch that does not improve it (``better_on_validation``:
    higher accuracy, or equal accuracy and lower cross-entropy, so a saturated small split still ranks epochs),
    go back to the best weights and halve the learning rate (reduce-on-plateau); stop after ``args.patience`` such
    epochs in a row (or ``args.max_epochs``). Returns the best epoch's model, the validation accuracy curve and
    the epochs run."""
    from hapfpga.train import FinetuneConfig, accuracy_and_loss, better_on_validation, finetune

    curve: list[float] = []
    best, best_loss, best_state, since, lr = -1.0, float("inf"), None, 0, args.lr
    for e in range(args.max_epochs):
        finetune(model, x_fit, y_fit, FinetuneConfig(epochs=1, lr=lr, batch_size=64), seed=seed * 1000 + e)
        acc, loss = accuracy_and_loss(model, x_val, y_val)
        curve.append(acc)
        say(f"  baseline epoch {e + 1} (lr {lr:.2g}): validation accuracy {100 * acc:.2f}%, loss {loss:.4f}")
        if better_on_validation(acc, loss, best, best_loss):
            best, best_loss, best_state, since = acc, loss, copy.deepcopy(model.state_dict()), 0
            continue
        since += 1
        if since >= args.patience:
            break
        model.load_state_dict(best_state)
        lr *= 0.5
    model.load_state_dict(best_state)
    return model.eval(), curve, len(curve)


def polish(model, splits, args, seed: int) -> tuple[object, list[float], float]:
    """The arms' fine-tune procedure (:func:`ft_settings`, ``--polish-epochs``: by default ``--finetune-epochs``)
    applied to the trained model round after round while a round still finds better weights on validation
    (``better_on_validation``), at most ``--polish-rounds``: so the converged model has had what the reference's
    extra epochs would give it (on seed 0 of issue 13's run, reduce-on-plateau stopped at 97.33 % test and 8 such
    epochs reached 99.11 %). Returns the model, each round's validation accuracy and the epochs of the rounds that
    changed it."""
    from hapfpga.train import FinetuneConfig, finetune_best

    s, accs, epochs = ft_settings(args), [], 0.0
    for r in range(args.polish_rounds):
        cfg = FinetuneConfig(epochs=args.polish_epochs, lr=s["lr"], schedule=s["finetune_schedule"])
        model, sel = finetune_best(model, splits[0], splits[1], (splits[2], splits[3]), cfg, seed=seed * 100 + r)
        accs.append(sel.accuracy)
        say(f"  baseline polish round {r + 1} ({args.polish_epochs:g} epochs): validation accuracy "
            f"{100 * sel.accuracy:.2f}%, loss {sel.loss:.4f}, kept step {sel.step}")
        if sel.step == 0:  # the round kept its starting weights: nothing better on validation
            break
        epochs += args.polish_epochs
    return model.eval(), accs, epochs


def model_key(args) -> dict:
    """What names the baseline's architecture: the zoo name, its bits and ``--model-options`` (only when given, so
    the caches of runs without options keep their keys)."""
    key = {"model": args.model, "bits": args.bits}
    if args.model_options:
        key["model_options"] = args.model_options
    if args.data:  # only when given, so the digits runs keep their keys; the arrays' hash names the files' content
        key["data_section"] = {**args.data, "sha": args.data_sha}
    return key


#: the data without ``--data``: scikit-learn digits upsampled to 3×32×32
DEFAULT_DATA = {"name": "digits", "size": 32, "channels": 3}


def load_bench_data(args):
    """``--data`` (the run's ``data`` section, :class:`hapfpga.runconfig.DataConfig`) or the default digits; sets
    ``args.data_sha``, a hash of the loaded arrays that the cache keys carry. A subset (``max_train`` /
    ``max_test``) is drawn with seed 0 whatever ``--seeds`` say: every seed sees the same data, split its own way.
    A wrong section or unreadable files raise ``ConfigError`` / ``DataError`` (one sentence)."""
    from hapfpga.config import from_dict
    from hapfpga.data import array_digest, load_dataset
    from hapfpga.runconfig import DataConfig

    cfg = from_dict(DataConfig, args.data or DEFAULT_DATA, "data")
    data = load_dataset(cfg, seed=0)
    args.data_sha = array_digest(data.x_train, data.y_train, data.x_test, data.y_test)
    return data


def baseline_key(args, data_name: str, n_fit: int, seed: int) -> dict:
    """The baseline cache's key: everything that produced the converged model."""
    return {**model_key(args), "data": data_name, "n_fit": n_fit, "val_fraction": args.val_fraction, "seed": seed,
            "max_epochs": args.max_epochs, "patience": args.patience, "lr": args.lr,
            "schedule": "plateau-halve-acc-loss", "polish_rounds": args.polish_rounds,
            "polish_epochs": args.polish_epochs, "ft": ft_settings(args), "code": code_version(TRAIN_CODE)}


def build_baseline(args, input_shape, num_classes: int, seed: int):
    """The untrained baseline: zoo model ``--model`` at ``--bits`` with ``--model-options`` as ``model.options``."""
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    cfg = ModelConfig(name=args.model, weight_bits=args.bits, act_bits=args.bits, options=dict(args.model_options))
    return build_model(cfg, input_shape, num_classes, seed=seed)


def baseline(args, data, splits, seed: int, cache: Cache, work: Path):
    """The converged unpruned model (cached as spec + state by everything that produced it)."""
    import torch

    from hapfpga.zoo import load_model, save_model

    x_fit, y_fit, x_val, y_val = splits
    key = baseline_key(args, data.name, len(x_fit), seed)
    hit = cache.get("baseline", key)
    pt = cache.path("baseline", key, "pt")
    if hit is not None and pt.is_file():
        say(f"  baseline from cache {pt.name}")
        return load_model(pt), hit["curve"], hit["epochs"]
    torch.manual_seed(seed)
    model = build_baseline(args, data.input_shape, data.num_classes, seed)
    model, curve, epochs = train_converged(model, x_fit, y_fit, x_val, y_val, args, seed)
    model, rounds, more = polish(model, splits, args, seed)
    curve, epochs = curve + rounds, epochs + more
    save_model(model, pt)
    cache.put("baseline", key, {"curve": curve, "epochs": epochs})
    return model, curve, epochs


def ft_settings(args) -> dict:
    """The one fine-tune procedure of every arm (search steps, final, uniform, reference): Adam from ``--ft-lr``
    on a per-batch cosine schedule, best-on-validation weights kept, distillation from the unpruned model with
    ``--distill``."""
    return {"lr": args.ft_lr, "finetune_schedule": "cosine", "select_best": True, "distill": args.distill}


def tune(model, splits, epochs: float, seed: int, args, teacher=None):
    """``model`` fine-tuned in place by :func:`ft_settings`' procedure on the fit split, selected on validation."""
    from hapfpga.train import FinetuneConfig, finetune_best

    s = ft_settings(args)
    cfg = FinetuneConfig(epochs=epochs, lr=s["lr"], schedule=s["finetune_schedule"], distill=s["distill"])
    return finetune_best(model, splits[0], splits[1], (splits[2], splits[3]), cfg, teacher=teacher, seed=seed)[0]


def prune_cfg(args, bits: bool) -> dict:
    """The hardware-aware search of the benchmark: fastest design within ``--max-drop`` on validation."""
    cfg = {
        "method": "greedy", "target": "max_fps", "max_accuracy_drop": args.max_drop, "importance": args.importance,
        "candidate_steps": args.candidate_steps, "min_ratio": 0.125, "predictor_workers": args.workers,
        "predictor_space": "full",  # the fold stage's space: the search optimises the bottleneck our fold sees
        "max_steps": args.max_steps, "step_finetune_epochs": args.step_finetune,
        "finetune_epochs": args.finetune_epochs, "final_weights": args.final_weights, "sensitivity": False,
        "folding_time_limit": args.fold_time,
        "val_fraction": args.val_fraction, "step_accuracy_drop": args.step_drop, "backtrack": True,
        "selection": {"confidence": args.confidence}, **ft_settings(args),
    }
    if args.sparsify_epochs > 0:  # only then, so the keys of runs without it stay as they were
        cfg.update(sparsify_epochs=args.sparsify_epochs, sparsify_strength=args.sparsify_strength)
    if args.start != "full":  # likewise
        cfg["start"] = args.start
    return {**cfg, "bits": bits_allowed(args)} if bits else cfg


def arm_cfg(name: str, args) -> dict:
    """A pruning-stage arm's config: ``hw`` (:func:`prune_cfg`), ``mixed`` (and bits) or ``urule``: uniform
    pruning held to the same rule (``method: uniform, target: max_fps``: the fastest uniform keep ratio whose
    candidate, the converged model pruned once and fine-tuned ``--finetune-epochs``, meets the hw arm's accuracy
    rule on validation), so "hardware-aware ≥ uniform" compares two designs that both meet it."""
    if name != "urule":
        return prune_cfg(args, bits=name == "mixed")
    keep = ("target", "max_accuracy_drop", "importance", "min_ratio", "predictor_workers", "predictor_space",
            "finetune_epochs", "sensitivity", "folding_time_limit", "val_fraction", "selection", "sparsify_epochs",
            "sparsify_strength", *ft_settings(args))
    return {**{k: v for k, v in prune_cfg(args, bits=False).items() if k in keep}, "method": "uniform"}


def bits_allowed(args) -> list[int]:
    """The mixed-precision arm's widths: the baseline's and 1 on a chain model (XNOR), every width down to
    ``DAG_MIN_BITS`` on a residual or depthwise one (a knob there is one activation quantiser and the layers it
    feeds: ``hapfpga.pruning.bits.DAG_BITS_MODELS``)."""
    from hapfpga.pruning.bits import DAG_MIN_BITS, is_dag_bits_model

    if is_dag_bits_model(args.model):
        return list(range(args.bits, DAG_MIN_BITS - 1, -1))
    return [args.bits, 1]


def full_key(key: dict) -> dict:
    """A model cache's key: ``key`` and the hash of the code that trains and prunes."""
    return {**key, "code": code_version(PRUNE_CODE)}


def is_cached(cache: Cache, kind: str, key: dict) -> bool:
    """Whether :func:`cached_model` would load ``kind``/``key`` from the cache."""
    key = full_key(key)
    return cache.get(kind, key) is not None and cache.path(kind, key, "pt").is_file()


def cached_model(cache: Cache, kind: str, key: dict, make):
    """``make() -> (model, info)``, or both from the cache (zoo spec + state, and the info as JSON)."""
    from hapfpga.zoo import load_model, save_model

    key = full_key(key)
    hit, pt = cache.get(kind, key), cache.path(kind, key, "pt")
    if hit is not None and pt.is_file():
        say(f"  {kind} from cache {pt.name}")
        return load_model(pt), hit
    model, info = make()
    save_model(model, pt)
    cache.put(kind, key, info)
    return model, info


def arm_key(name: str, args, base_key: dict) -> dict:
    """A searched arm's cache key (the search's config, ``predictor_workers`` included as it always was)."""
    return {"arm": name, "base": base_key, "cfg": arm_cfg(name, args), "margin": OURS_MARGIN,
            "finn_cycles": OURS_FINN_CYCLES}


def searched_arm(name: str, args, model, data, board, seed: int, cache: Cache, work: Path, base_key: dict,
                 workers: int | None = None, pick=None, sparse=None):
    """A pruning-stage arm (hardware-aware, or mixed precision + pruning), cached as spec + state + report.
    ``workers``: the FPS predictor's processes for this search when it runs beside another (not in the key: the
    predictor's answers do not depend on how many processes compute them). ``pick``: with ``--start uniform``, the
    uniform-under-the-rule arm's pick (:func:`urule_pick`), the start the arm's own uniform search would find (not
    in the key: the same model, data, seed and rule give the same pick; tests/pruning/test_uniform_start.py).
    ``sparse``: with ``--sparsify-epochs``, the sparse-trained model every arm starts from (:func:`sparse_start`;
    not in the key either: the arm's config has the settings that made it; tests/pruning/test_sparsify.py)."""
    from hapfpga.folding import FoldingOptions
    from hapfpga.pruning.predictor import HwTarget
    from hapfpga.pruning.stage import run_pruning_stage

    cfg = arm_cfg(name, args)
    run_cfg = cfg if workers is None else {**cfg, "predictor_workers": workers}
    for conv in ("finn", "finn_rtl"):  # the same unpruned model's FINN conversions (both graphs)
        finn_dir, hw_finn = work / name / "pruning" / conv, work / "hw" / "pruning" / conv
        if name != "hw" and hw_finn.is_dir() and not finn_dir.exists():
            finn_dir.parent.mkdir(parents=True, exist_ok=True)
            finn_dir.symlink_to(hw_finn.resolve(), target_is_directory=True)

    def make():
        target = HwTarget(board, FoldingOptions(clock_mhz=100.0, margin=OURS_MARGIN, finn_cycles=OURS_FINN_CYCLES))
        pruned, rep = run_pruning_stage(run_cfg, model, data, target, work / name, seed=seed,
                                        log=lambda s: say(f"  {name} " + s), uniform_pick=pick, sparse=sparse)
        info = {k: rep[k] for k in ("channels_before", "channels_after", "fps_before", "fps_after", "accuracy",
                                    "accuracy_val", "history", "bits_after", "backtrack", "extra_epochs") if k in rep}
        if "ratio" in rep:  # the uniform search's keep ratio (a row's "ratio" is its FPS over SetFolding's)
            info["keep_ratio"] = rep["ratio"]
        info["steps"] = len(rep["history"]) - 1  # taken by the search; extra_epochs: the chosen model's own
        return pruned, info

    return cached_model(cache, name, arm_key(name, args, base_key), make)


def shares_uniform_search(args) -> bool:
    """``--start uniform`` with the uniform-under-the-rule arm: the searched arms start at that arm's pick (the
    same uniform search under the same rule), so it runs first, once, instead of inside each search."""
    return args.start == "uniform" and bool(args.uniform_rule)


def sparse_start(args, model, data, seed: int, cache: Cache, work: Path, base_key: dict):
    """``--sparsify-epochs``: the sparse training every searched arm starts with (``hapfpga.pruning.stage.
    sparse_train`` under the hw arm's config: the uniform and mixed arms train the same way), made once a seed and
    cached, instead of once in each arm (three times, two of them side by side)."""
    from hapfpga.pruning.results import SparseModel
    from hapfpga.pruning.stage import sparse_config, sparse_train

    cfg = arm_cfg("hw", args)

    def make():
        sm = sparse_train(cfg, model, data, work / "sparse", seed=seed, log=lambda s: say("  " + s))
        return sm.model, {"settings": dict(sm.settings), "info": dict(sm.info)}

    m, info = cached_model(cache, "sparse", {"base": base_key, **sparse_config(cfg)}, make)
    return SparseModel(m, info["settings"], info["info"])


def urule_pick(model, rep: dict):
    """The uniform-under-the-rule arm's pick as the pruning stage takes it (``uniform_pick``)."""
    from hapfpga.pruning.results import UniformPick

    return UniformPick(dict(rep["channels_after"]), model, float(rep["accuracy_val"]["after"]),
                       float(rep["keep_ratio"]))


def side_by_side_workers(workers: int, n_searches: int) -> int:
    """FPS-predictor processes per search when ``n_searches`` run at once: ``--workers`` shared out (at least 1
    each). A search alternates fine-tuning (1 torch thread) and predicting (its workers), so with ``--workers 2``
    and two searches at most 2 predictor processes (plus the FINN pool's one) compete for the cores, as in the
    serial run, instead of 4."""
    return max(1, workers // n_searches)


def convert_unpruned_once(model, data, board, args, work: Path) -> None:
    """The unpruned model's FINN conversion for the searches' FPS predictors, made in ``work/hw/pruning/finn``
    (where the hardware-aware search and the uniform arm look for it, and the mixed search links to; the mixed
    RTL/HLS-MVAU graph's in ``work/hw/pruning/finn_rtl``) before the
    searches start side by side: otherwise both would convert it at once, or one would link to a folder the other
    is still writing."""
    from hapfpga.errors import HapError
    from hapfpga.finn.graph import hw_layers_from_qonnx
    from hapfpga.folding import FoldingOptions
    from hapfpga.pruning.hwmodel import export_for_finn

    options = FoldingOptions(clock_mhz=100.0, margin=OURS_MARGIN, finn_cycles=OURS_FINN_CYCLES).for_predictor(
        args.fold_time, prune_cfg(args, bits=False)["predictor_space"])
    d = work / "hw" / "pruning"
    onnx = export_for_finn(model, tuple(data.input_shape), d / "unpruned_for_hw.qonnx.onnx")
    hw_layers_from_qonnx(onnx, d / "finn", board, options.clock_mhz, rtl=options.open_simulatable)
    with contextlib.suppress(HapError):  # the mixed graph (hwmodel._mixed_variant), where FINN converts it
        hw_layers_from_qonnx(onnx, d / "finn_rtl", board, options.clock_mhz, rtl=True, strict=False)


def run_started() -> float:
    """When this run started, as wall-clock time: what a spawned job gets as ``t_start`` (:func:`as_parent`)."""
    return time.time() - (time.perf_counter() - T0)


def as_parent(versions: dict, t_start: float, threads: int) -> None:
    """A spawned job's process takes the parent's code hashes (so its cache keys are the parent's), log times
    (``t_start``: :func:`run_started`) and torch threads, and ends when the parent does (stop 29: a stopped run's
    searches went on computing as orphans)."""
    global T0
    import torch

    from hapfpga.pruning.parallel import die_with_parent

    die_with_parent()
    T0 = time.perf_counter() - (time.time() - t_start)
    CODE_VERSIONS.update(versions)
    torch.set_num_threads(threads)


def search_arm_job(name: str, args, model_path: str, data, board, seed: int, cache_root: str, work: str,
                   base_key: dict, versions: dict, t_start: float, workers: int, pick: tuple | None,
                   sparse: tuple | None = None) -> dict:
    """One searched arm in its own spawned process (``--parallel-arms``, :func:`as_parent`); the arm lands in the
    cache, where the parent reads it. ``pick`` and ``sparse``: the uniform arm's pick and the sparse-trained model
    each as (model file, the object without its model), else None. Returns the arm's wall and CPU seconds (its
    predictor workers included)."""
    from hapfpga.zoo import load_model

    as_parent(versions, t_start, args.threads)
    phases = Phases()
    with phases("job"):
        searched_arm(name, args, load_model(model_path), data, board, seed, Cache(Path(cache_root)), Path(work),
                     base_key, workers=workers, pick=with_model(pick), sparse=with_model(sparse))
    return {**phases.times["job"], "parallel": True}


def with_model(sent: tuple | None):
    """An object sent to a spawned job as (model file, the object without its model), whole again."""
    from hapfpga.zoo import load_model

    return None if sent is None else dataclasses.replace(sent[1], model=load_model(sent[0]))


def to_send(obj, path: Path) -> tuple | None:
    """``obj`` (a ``UniformPick`` or ``SparseModel``) as :func:`with_model` takes it: its model saved to ``path``."""
    from hapfpga.zoo import save_model

    return None if obj is None else (str(save_model(obj.model, path)), dataclasses.replace(obj, model=None))


def parallel_searches(names: list[str], args, model, data, board, seed: int, cache: Cache, work: Path,
                      base_key: dict, pick=None, sparse=None):
    """Run the searched arms ``names`` at once, one spawned process each (:func:`search_arm_job`); yields
    ``(name, timings)`` as each one ends. Same seed, same data, same cache keys: the arms of the serial run."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from hapfpga.zoo import save_model

    convert_unpruned_once(model, data, board, args, work)
    pt = save_model(model, work / "searched_arms_baseline.pt")
    sent = to_send(pick, work / "searched_arms_uniform_pick.pt")
    sent_sparse = to_send(sparse, work / "searched_arms_sparse.pt")
    workers = side_by_side_workers(args.workers, len(names))
    say(f"  searches {' and '.join(names)} side by side, {workers} predictor worker(s) each")
    t_start = run_started()
    with ProcessPoolExecutor(max_workers=len(names), mp_context=mp.get_context("spawn")) as ex:
        futs = {ex.submit(search_arm_job, n, args, str(pt), data, board, seed, str(cache.root), str(work),
                          base_key, dict(CODE_VERSIONS), t_start, workers, sent, sent_sparse): n for n in names}
        for fut in as_completed(futs):
            yield futs[fut], fut.result()


def searches_side_by_side(names: list[str], args, cache: Cache, base_key: dict) -> bool:
    """Whether :func:`run_searches` runs the searched arms side by side: ``--parallel-arms`` and two or more of
    them missing from the cache."""
    todo = [n for n in names if not is_cached(cache, n, arm_key(n, args, base_key))]
    return bool(args.parallel_arms) and len(todo) > 1


def run_searches(names: list[str], args, model, data, board, seed: int, cache: Cache, work: Path, base_key: dict,
                 phases: Phases, done, pick=None, sparse=None) -> None:
    """The searched arms, each handed to ``done(name, model, report)`` as soon as it is there (its FINN jobs, and
    after the hardware-aware arm the uniform one, then run beside the search still going). With
    ``--parallel-arms``, those the cache lacks (two or more) run side by side (phase ``searches``: the block's
    wall and the CPU of everything in it, what ``done`` ran included; each arm's own phase is its process's),
    each read from the cache as it ends; without, each is searched in turn. ``pick``: the uniform arm's pick
    (:func:`urule_pick`) where the searches start from it (:func:`shares_uniform_search`); ``sparse``: the
    sparse-trained model they start from (:func:`sparse_start`)."""
    todo = [n for n in names if not is_cached(cache, n, arm_key(n, args, base_key))]
    parallel = searches_side_by_side(names, args, cache, base_key)

    def take(n: str, timing: dict | None = None) -> None:
        with phases(n):
            pm, rep = searched_arm(n, args, model, data, board, seed, cache, work, base_key, pick=pick, sparse=sparse)
        phases.times[n] = {**(timing or phases.times[n]), "cached": n not in todo}
        done(n, pm, rep)

    if parallel:
        with phases("searches"):
            for n, timing in parallel_searches(todo, args, model, data, board, seed, cache, work, base_key, pick,
                                               sparse):
                take(n, timing)
    for n in names:
        if not (parallel and n in todo):
            take(n)


def uniform_arm(args, model, data, splits, board, seed: int, fps_goal: float, epochs: float, work: Path, teacher):
    """The same keep ratio in every layer: the largest (1/32 grid) whose predicted FPS reaches ``fps_goal`` (the
    same predictor as the search's), fine-tuned for ``epochs`` (the hardware-aware arm's whole extra budget)."""
    import torch

    from hapfpga.folding import FoldingOptions
    from hapfpga.pruning.apply import ChannelGraph, prune_to_counts
    from hapfpga.pruning.hwmodel import build_predictor
    from hapfpga.pruning.importance import make_importance
    from hapfpga.pruning.plan import uniform_counts

    x_fit, y_fit, _, _ = splits
    example = torch.as_tensor(x_fit[:2], dtype=torch.float32)
    graph = ChannelGraph(model.eval(), example)
    full = graph.channels()
    full = {g: full[g] for g, grp in graph.groups.items() if grp.prunable}
    # the hardware-aware arm's predictor directory: the same unpruned model, so FINN's conversion is reused
    options = FoldingOptions(clock_mhz=100.0, margin=OURS_MARGIN, finn_cycles=OURS_FINN_CYCLES)
    hw, _, _ = build_predictor(model, graph, data.input_shape, board, work / "hw" / "pruning",
                               options.for_predictor(args.fold_time, prune_cfg(args, bits=False)["predictor_space"]))
    lo, hi = 1, 32  # ratio k/32; the FPS falls as the ratio grows
    if hw(uniform_counts(full, 1.0)).fps >= fps_goal:
        lo = 32
    while hi - lo > 1 and lo < 32:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if hw(uniform_counts(full, mid / 32)).fps >= fps_goal else (lo, mid)
    counts = uniform_counts(full, lo / 32)
    uni, _ = prune_to_counts(model, example, counts, make_importance("l1"), graph=graph)
    uni = tune(uni, splits, epochs, seed, args, teacher)
    return uni.eval(), {"ratio": lo / 32, "channels": counts, "predicted_fps": hw(counts).fps, "extra_epochs": epochs}


def finetuned_copy(model, splits, epochs: float, seed: int, args):
    m = copy.deepcopy(model)
    if epochs > 0:
        m = tune(m, splits, epochs, seed, args, model if args.distill else None)
    return m.eval(), {"extra_epochs": epochs}


# ----------------------------------------------------------------------------------------------- one seed

ARMS = (
    ("unpruned+setfolding", "unpruned + SetFolding best fit"),
    ("unpruned+ours", "unpruned + our folding"),
    ("uniform+setfolding", "uniform pruning + SetFolding"),
    ("uniform+ours", "uniform pruning + our folding"),
    ("hw+setfolding", "hw-aware pruning + SetFolding"),
    ("hw+ours", "hw-aware pruning + our folding"),
    ("urule+ours", "uniform under the rule + ours"),
    ("mixed+ours", "mixed precision + pruning + ours"),
)


class FinnJobs:
    """A seed's FINN jobs in the 1-worker pool beside the ML side: ``submit(arm, model)`` exports the model and
    queues our folding, ``submit(arm, model, sf_start)`` SetFolding's best-fit scan; ``results()`` waits for them
    and returns ``{arm: result}``, each with the job's own ``job_wall_s`` and ``job_cpu_s``."""

    def __init__(self, pool, wd: Path, shape: tuple, args, cache_root: str):
        self.pool, self.wd, self.shape, self.args, self.croot = pool, wd, shape, args, cache_root
        self.futures: dict = {}

    def submit(self, arm: str, m, sf_start: float | None = None) -> None:
        from hapfpga.pruning.hwmodel import export_for_finn

        onnx, out = str(export_for_finn(m, self.shape, self.wd / f"{arm}.qonnx.onnx")), str(self.wd / arm)
        job = ((ours_job, onnx, out, self.croot, code_version(FINN_CODE)) if sf_start is None else
               (setfolding_job, onnx, out, self.args.quick, self.args.smoke, sf_start, self.croot,
                code_version(FINN_CODE)))
        self.futures[arm] = self.pool.submit(timed_job, *job)

    def results(self) -> dict[str, dict]:
        return {arm: fut.result() for arm, fut in self.futures.items()}


#: an arm row's per-sample test correctness while the seed runs (:func:`finish_drops` turns it into
#: ``test_paired`` and takes it out of the row: not in the JSON)
TEST_CORRECT = "_test_correct"


def held_out_correct(m, data):
    """Per test sample, whether ``m``'s top-1 prediction is right (bool vector in the test split's order): the
    figure ``hapfpga.train.evaluate`` averages (same batches, same argmax)."""
    import numpy as np

    from hapfpga.train import predict

    return predict(m, data.x_test).argmax(axis=1) == np.asarray(data.y_test)


def reference_row(args, model, data, splits, seed: int, cache: Cache, base_key: dict, e_ref: float):
    """The unpruned model fine-tuned for the largest extra budget by the arms' procedure: its ``held_out_row``
    and ``{procedure: test accuracy}``. With ``--distill`` the arms distil from the unpruned model, and the same
    procedure applied to the unpruned model distils it from itself, which can leave it below a plain fine-tune
    (seed 2 of the CNV ``--quick --distill`` run: 98.44 % distilled, 98.67 % plain): the reference is then the
    stronger of the plain and the distilled fine-tune on the test split (both cached), so no arm's drop is
    measured against a reference its own procedure weakened."""
    rows = {}
    for a in reference_variants(args):
        ref, _ = cached_model(cache, "reference", reference_key(a, base_key, e_ref),
                              lambda a=a: finetuned_copy(model, splits, e_ref, seed, a))
        rows["distilled" if a.distill else "plain"] = held_out_row(ref, data)
    best = max(rows, key=lambda k: rows[k]["accuracy"])  # ties: the arms' own procedure (listed first)
    return rows[best], {k: r["accuracy"] for k, r in rows.items()}


def reference_variants(args) -> list:
    """The fine-tune procedures of :func:`reference_row`: the arms' own, and with ``--distill`` the plain one too."""
    return [args] + ([argparse.Namespace(**{**vars(args), "distill": False})] if args.distill else [])


def reference_key(a, base_key: dict, e_ref: float) -> dict:
    return {"base": base_key, "epochs": e_ref, "ft": ft_settings(a)}


def train_reference(a, model, splits, seed: int, cache: Cache, base_key: dict, e_ref: float) -> None:
    """One reference of :func:`reference_row` (fine-tune procedure ``a``) into the cache, unless it is there."""
    cached_model(cache, "reference", reference_key(a, base_key, e_ref),
                 lambda: finetuned_copy(model, splits, e_ref, seed, a))


def train_references(args, model, data, splits, seed: int, cache: Cache, base_key: dict, e_ref: float, wd: Path,
                     phases: Phases, ahead: ReferencesAhead) -> None:
    """The references :func:`reference_row` will read, into the cache: those ``ahead`` is not training already
    (it is stopped if its budget is not ``e_ref``), two of them (``--distill``) with ``--parallel-arms`` the second
    in a spawned process beside the first (phase ``reference_beside``), so the fine-tunes take both cores.
    Scheduling only: same keys, same models."""
    ahead.stop_unless(e_ref)
    missing = [a for a in reference_variants(args)
               if not is_cached(cache, "reference", reference_key(a, base_key, e_ref)) and not ahead.trains(a)]
    beside = ReferencesAhead("reference_beside")
    if len(missing) > 1 and args.parallel_arms:
        beside.start(missing[1:], model, data, splits, seed, cache, base_key, e_ref, wd)
        missing = missing[:1]
    for a in missing:
        train_reference(a, model, splits, seed, cache, base_key, e_ref)
    for r in (ahead, beside):
        r.settle(phases)


def reference_job(variants: list, model_path: str, splits, seed: int, cache_root: str, base_key: dict,
                  versions: dict, t_start: float, e_ref: float, out: str) -> None:
    """:func:`train_reference` of each of ``variants`` in a spawned process (:class:`ReferencesAhead`,
    :func:`as_parent`); the models land in the cache, and the job's wall and CPU seconds in ``out`` (JSON)."""
    from hapfpga.zoo import load_model

    as_parent(versions, t_start, variants[0].threads)
    phases = Phases()
    with phases("job"):
        model = load_model(model_path)
        for a in variants:
            train_reference(a, model, splits, seed, Cache(Path(cache_root)), base_key, e_ref)
    Path(out).write_text(json.dumps(phases.times["job"]))


class ReferencesAhead:
    """Reference fine-tunes in a spawned process, beside other work (scheduling only: same keys, same models).

    With the searches side by side, once the hardware-aware arm and the uniform one are done the main process
    only waits for the mixed search, a core idle. The reference's budget is the largest extra budget of any arm:
    the arms so far and ``--finetune-epochs`` (a re-pruned arm's, so the mixed arm's unless it keeps its search
    weights), so :meth:`start` trains the arms' own reference procedure at that budget in a spawned process
    (phase ``reference_ahead``), which puts it in the cache; at the end :func:`train_references` stops it when the
    arms ended with another budget (:meth:`stop_unless`), trains what it does not (with ``--distill`` the plain
    reference; two missing: one of them in a second such process, phase ``reference_beside``) and waits for it
    (:meth:`settle`: the phase's wall and CPU seconds, and whether it was used)."""

    def __init__(self, phase: str = "reference_ahead") -> None:
        self.phase, self.proc, self.epochs, self.out, self.variants = phase, None, None, None, []
        self.used: bool | None = None  # False once stopped for another budget

    def start(self, variants: list, model, data, splits, seed: int, cache: Cache, base_key: dict, e_ref: float,
              work: Path) -> None:
        import multiprocessing as mp

        from hapfpga.zoo import save_model

        pt = save_model(model, work / f"{self.phase}_baseline.pt")
        self.out, self.epochs, self.variants = work / f"{self.phase}.json", e_ref, list(variants)
        self.out.unlink(missing_ok=True)
        t_start = run_started()
        say(f"  {self.phase}: {' and '.join('distilled' if a.distill else 'plain' for a in variants)} reference "
            f"({e_ref:g} extra epochs) in its own process")
        self.proc = mp.get_context("spawn").Process(target=reference_job, args=(
            self.variants, str(pt), splits, seed, str(cache.root), base_key, dict(CODE_VERSIONS), t_start, e_ref,
            str(self.out)))
        self.proc.start()

    def trains(self, a) -> bool:
        """Whether this process trains (or trained) the reference of procedure ``a`` at its budget."""
        return self.proc is not None and any(ft_settings(v) == ft_settings(a) for v in self.variants)

    def stop_unless(self, e_ref: float) -> None:
        """Stop the process if the arms' budget ``e_ref`` is not the one it trains for (its models are unused)."""
        if self.proc is not None and e_ref != self.epochs:
            say(f"  {self.phase} was for {self.epochs:g} extra epochs, the arms need {e_ref:g}: stopped")
            self.proc.terminate()
            self.proc.join()
            self.proc, self.used = None, False

    def settle(self, phases: Phases) -> None:
        """Wait for the process; its timings into ``phases`` (zeros and ``used: false`` when it was stopped)."""
        if self.proc is None:
            if self.used is False:
                phases.times[self.phase] = {"wall_s": 0.0, "cpu_s": 0.0, "parallel": True, "used": False}
            return
        self.proc.join()
        if self.proc.exitcode != 0:
            raise RuntimeError(f"the {self.phase} process ended with exit code {self.proc.exitcode}")
        phases.times[self.phase] = {**json.loads(self.out.read_text()), "parallel": True, "used": True}


def held_out_row(m, data) -> dict:
    """``accuracy`` on the test split (``evaluate``'s figure) and the per-sample correctness it comes from."""
    correct = held_out_correct(m, data)
    return {"accuracy": float(correct.mean()), TEST_CORRECT: correct}


def run_seed(seed: int, args, data, board, cache: Cache, work: Path, pool) -> dict:
    """Every arm for one seed: FINN's FPS and fit, test accuracy, extra training epochs; ``phases``: where the
    seed's time went (wall and CPU seconds per phase, the FINN jobs' own beside them)."""
    import torch

    from hapfpga.data import split_validation
    from hapfpga.pruning.mixed import BITS_MODELS

    t_seed, cpu_seed, phases = time.perf_counter(), cpu_seconds(), Phases()
    wd = work / f"seed{seed}"
    wd.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    splits = split_validation(data.x_train, data.y_train, args.val_fraction, seed)
    say(f"seed {seed}: fit {len(splits[0])}, validation {len(splits[2])}, test {len(data.x_test)}")
    with phases("baseline"):
        model, curve, epochs = baseline(args, data, splits, seed, cache, wd)
    base_key = {**model_key(args), "seed": seed, "curve": curve}
    finn = FinnJobs(pool, wd, tuple(data.input_shape), args, str(cache.root))
    arms: dict[str, dict] = {"unpruned+setfolding": {**held_out_row(model, data), "extra_epochs": 0.0}}
    arms["unpruned+ours"] = dict(arms["unpruned+setfolding"])
    say(f"  converged baseline: {epochs} epochs, test accuracy {100 * arms['unpruned+ours']['accuracy']:.2f}%")
    finn.submit("unpruned+setfolding", model, 400.0)
    finn.submit("unpruned+ours", model)
    names = ["hw", "mixed"] if args.model in BITS_MODELS else ["hw"]  # bits: the zoo models it knows
    side_by_side = searches_side_by_side(names, args, cache, base_key)
    ahead = ReferencesAhead()
    pick, sparse = None, None
    searched = names + ["urule"] * bool(args.uniform_rule)
    if args.sparsify_epochs > 0 and not all(is_cached(cache, n, arm_key(n, args, base_key)) for n in searched):
        with phases("sparse"):  # once for every arm that starts from it
            sparse = sparse_start(args, model, data, seed, cache, wd, base_key)
    if shares_uniform_search(args):  # the searches start at its pick: run it first, once
        with phases("urule"):
            if not is_cached(cache, "urule", arm_key("urule", args, base_key)):
                convert_unpruned_once(model, data, board, args, wd)  # where the searched arms look for it
            pm, rep = searched_arm("urule", args, model, data, board, seed, cache, wd, base_key, sparse=sparse)
        searched_done("urule", pm, rep, arms, finn, data)
        pick = urule_pick(pm, rep)

    def done(name: str, pm, rep: dict) -> None:
        searched_done(name, pm, rep, arms, finn, data)
        if name == "hw":  # the uniform arm needs the hw arm only: with --parallel-arms it runs beside the mixed one
            with phases("uniform"):
                uniform_done(args, model, data, splits, board, seed, cache, wd, base_key, arms, finn)
            if args.uniform_rule and "urule+ours" not in arms:
                with phases("urule"):
                    searched_done("urule", *searched_arm("urule", args, model, data, board, seed, cache, wd,
                                                         base_key, sparse=sparse), arms, finn, data)
            if side_by_side and "mixed+ours" not in arms:  # the mixed search still going: a core to spare
                e_now = max([args.finetune_epochs] + [a["extra_epochs"] for a in arms.values()])
                ahead.start(reference_variants(args)[:1], model, data, splits, seed, cache, base_key, e_now, wd)

    run_searches(names, args, model, data, board, seed, cache, wd, base_key, phases, done, pick, sparse)
    e_ref = max(a["extra_epochs"] for a in arms.values())
    with phases("reference"):
        train_references(args, model, data, splits, seed, cache, base_key, e_ref, wd, phases, ahead)
        ref_row, refs = reference_row(args, model, data, splits, seed, cache, base_key, e_ref)
    acc_ref = ref_row["accuracy"]
    say(f"  reference: unpruned + {e_ref:g} extra epochs, test accuracy {100 * acc_ref:.2f}%"
        + (f" (the stronger of {', '.join(f'{k} {100 * v:.2f}%' for k, v in refs.items())})" if len(refs) > 1 else ""))
    with phases("finn_wait"):
        finn_results = finn.results()
    finn_jobs = record_finn(arms, finn_results, phases)
    finish_drops(arms, acc_ref, e_ref, ref_row[TEST_CORRECT])
    phases.times["seed"] = {"wall_s": time.perf_counter() - t_seed, "cpu_s": cpu_seconds() - cpu_seed}
    say(f"  seed {seed} phases (wall/CPU s): {phase_line(phases.times)}")
    return {"seed": seed, "curve": curve, "baseline_epochs": epochs, "reference_epochs": e_ref,
            "reference_accuracy": acc_ref, "references": refs, "arms": arms, "phases": phases.times, "finn_jobs": finn_jobs}


def searched_done(name: str, pm, rep: dict, arms: dict, finn: FinnJobs, data) -> None:
    """A searched arm's row (test accuracy) and its FINN jobs queued."""
    arms[f"{name}+ours"] = {**rep, "search_accuracy": rep["accuracy"], **held_out_row(pm, data)}
    say(f"  {name}: {rep['steps']} {'keep ratios' if name == 'urule' else 'steps'}, keep {rep.get('keep_ratio', '-')}, channels {rep['channels_after']}, bits {rep.get('bits_after', '-')}, "
        f"predicted {rep['fps_after']:,.0f} FPS, test accuracy {100 * arms[name + '+ours']['accuracy']:.2f}%")
    finn.submit(f"{name}+ours", pm)
    if name == "hw":
        arms["hw+setfolding"] = dict(arms["hw+ours"])
        finn.submit("hw+setfolding", pm, max(400.0, rep["fps_after"] / 4))


def uniform_done(args, model, data, splits, board, seed: int, cache: Cache, wd: Path, base_key: dict, arms: dict,
                 finn: FinnJobs) -> None:
    """The uniform arm at the hardware-aware arm's predicted FPS and extra budget: its rows and FINN jobs."""
    goal, budget = arms["hw+ours"]["fps_after"], arms["hw+ours"]["extra_epochs"]
    uni, urep = cached_model(cache, "uniform", {"base": base_key, "fps_goal": goal, "epochs": budget,
                                              "ft": ft_settings(args), "fold_time": args.fold_time,
                                              "margin": OURS_MARGIN, "finn_cycles": OURS_FINN_CYCLES},
                             lambda: uniform_arm(args, model, data, splits, board, seed, goal, budget, wd,
                                                 model if args.distill else None))
    # the keep ratio under its own key: finish_drops sets a row's "ratio" to its FPS over SetFolding's
    arms["uniform+ours"] = {**urep, "keep_ratio": urep["ratio"], **held_out_row(uni, data)}
    arms["uniform+setfolding"] = dict(arms["uniform+ours"])
    say(f"  uniform keep ratio {urep['ratio']:.3f}: predicted {urep['predicted_fps']:,.0f} FPS, test accuracy "
        f"{100 * arms['uniform+ours']['accuracy']:.2f}%")
    finn.submit("uniform+ours", uni)
    finn.submit("uniform+setfolding", uni, max(400.0, urep["predicted_fps"] / 4))


def record_finn(arms: dict, results: dict[str, dict], phases: Phases) -> dict[str, dict]:
    """FINN's FPS, fit and resources into each arm's row; returns each job's own seconds and adds their sum as
    phase ``finn_jobs`` (they ran in the pool, beside the ML side)."""
    jobs = {}
    for arm, r in results.items():
        arms[arm].update(fps=r["fps"], fits=bool(r["fits"]), finn_total=r["total"].as_dict(),
                         bottleneck=r["bottleneck"], target_fps=r.get("target_fps"))
        jobs[arm] = {"wall_s": r["job_wall_s"], "cpu_s": r["job_cpu_s"], "cached": bool(r.get("cached"))}
        say(f"  {arm}: FINN {r['fps']:,.0f} FPS, {fmt(r['total'])}, fits {r['fits']}")
    phases.times["finn_jobs"] = {k: sum(j[k] for j in jobs.values()) for k in ("wall_s", "cpu_s")}
    return jobs


def finish_drops(arms: dict, acc_ref: float, e_ref: float, ref_correct) -> None:
    """Equal training: an arm without extra epochs against the converged model (both converged), else against
    the reference (converged + the largest extra budget); ratios to the unpruned SetFolding best fit. The same
    comparison per test sample: ``test_paired`` {``n``, ``lost`` (the model compared with right, the arm wrong),
    ``gained`` (the reverse)}, from the per-sample correctness ``held_out_row`` kept in the row (then removed), so
    ``drop_pts`` = 100 · (lost − gained) / n. ``ref_correct``: the reference's per-sample correctness."""
    from hapfpga.pruning.selection import Paired

    acc_base, base_correct = arms["unpruned+ours"]["accuracy"], arms["unpruned+ours"].get(TEST_CORRECT)
    for a in arms.values():
        extra = a["extra_epochs"] > 0
        a["reference"] = f"converged + {e_ref:g} ep" if extra else "converged"
        a["drop_pts"] = 100 * ((acc_ref if extra else acc_base) - a["accuracy"])
        a["ratio"] = a["fps"] / arms["unpruned+setfolding"]["fps"]
        own, against = a.pop(TEST_CORRECT, None), ref_correct if extra else base_correct
        if own is not None and against is not None:
            p = Paired.of(against, own)
            a["test_paired"] = {"n": p.n, "lost": p.lost, "gained": p.gained}


#: phases with their labels (``searches``: the side-by-side block, which ``uniform`` may overlap)
PHASES = (("baseline", "baseline"), ("sparse", "sparse training"), ("searches", "searches side by side"),
          ("hw", "hw search"),
          ("mixed", "mixed search"), ("uniform", "uniform"), ("urule", "uniform under the rule"),
          ("reference_ahead", "reference ahead"),
          ("reference", "reference"), ("reference_beside", "plain reference beside"),
          ("finn_jobs", "FINN jobs (pool, beside)"), ("finn_wait", "waiting for FINN"), ("seed", "seed total"))


def phase_line(times: dict[str, dict]) -> str:
    """``baseline 358/340; hw search 960/1,210 (parallel); …`` for the phases a seed ran."""
    parts = []
    for key, label in PHASES:
        t = times.get(key)
        if t is not None:
            note = " (parallel)" if t.get("parallel") else " (cached)" if t.get("cached") else ""
            parts.append(f"{label} {t['wall_s']:,.0f}/{t['cpu_s']:,.0f}{note}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------- summary


def mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


#: the two-sided level of the test-drop interval: each end a one-sided bound at (1 + CI_LEVEL) / 2
CI_LEVEL = 0.95
#: the bounds' bisection tolerance (fraction): 0.001 pt, below the table's 0.01 pt
CI_TOL = 1e-5


@functools.cache
def drop_interval(n: int, lost: int, gained: int) -> tuple[float, float]:
    """The paired two-sided ``CI_LEVEL`` interval of the true test drop (fractions) of an arm that lost ``lost``
    and gained ``gained`` of ``n`` test samples against the model it is compared with: upper end
    ``pruning.selection.drop_bound`` at one-sided (1 + CI_LEVEL) / 2 (0.975), lower end minus the same bound of
    the swapped pair (the compared model's drop against the arm). Exact unconditional up to
    ``selection.EXACT_MAX_N`` samples, Tango's score interval above."""
    from hapfpga.pruning.selection import Paired, drop_bound

    side = (1 + CI_LEVEL) / 2
    return (-drop_bound(Paired(n, gained, lost), side, CI_TOL), drop_bound(Paired(n, lost, gained), side, CI_TOL))


def drop_interval_pts(arm_row: dict) -> tuple[float, float] | None:
    """:func:`drop_interval` in points of an arm's row (its ``test_paired``), None for a run written before it."""
    t = arm_row.get("test_paired")
    if not t:
        return None
    lo, hi = drop_interval(int(t["n"]), int(t["lost"]), int(t["gained"]))
    return 100 * lo, 100 * hi


def seed_verdict(drop_pts: float, interval_pts: tuple[float, float] | None, fits: bool, rule_pts: float) -> str:
    """One seed of an arm against the rule on its observed test drop: ``meets`` (fits, drop ≤ ``rule_pts``);
    ``fails (no fit)``; ``fails`` (drop > rule and the interval's lower end above it: a real loss at the
    interval's level); ``fails (within test noise)`` (drop > rule, the interval reaching down to the rule);
    ``fails (no interval)`` (drop > rule, a run without ``test_paired``)."""
    if not fits:
        return "fails (no fit)"
    if drop_pts <= rule_pts + 1e-9:
        return "meets"
    if interval_pts is None:
        return "fails (no interval)"
    return "fails" if interval_pts[0] > rule_pts + 1e-9 else "fails (within test noise)"


def seed_rows(runs: list[dict], arm: str, rule_pts: float) -> list[dict]:
    """One row per seed of ``arm`` (the runs that have it), in seed order: FPS (FINN), ratio to that seed's
    unpruned SetFolding best fit, test accuracy %, drop (points) and fit, whether that seed meets the rule
    (fits, drop at most ``rule_pts``), the drop's paired interval (:func:`drop_interval_pts`, None for an old
    run) and the seed's verdict (:func:`seed_verdict`)."""
    rows = []
    for r in sorted(runs, key=lambda r: r["seed"]):
        a = r["arms"].get(arm)
        if a is not None:
            ci = drop_interval_pts(a)
            verdict = seed_verdict(a["drop_pts"], ci, bool(a["fits"]), rule_pts)
            rows.append({"seed": r["seed"], "fps": a["fps"], "ratio": a["ratio"], "accuracy": 100 * a["accuracy"],
                         "drop_pts": a["drop_pts"], "fits": bool(a["fits"]), "meets": verdict == "meets",
                         "drop_ci_pts": ci, "verdict": verdict})
    return rows


def arm_summary(rows: list[dict]) -> dict:
    """Mean ± sd over the seeds of an arm's rows (:func:`seed_rows`) beside its worst seed: the lowest ratio and
    the largest drop (each with its seed), and whether every seed meets the rule (the acceptance is per seed)."""
    worst_r = min(rows, key=lambda a: a["ratio"])
    worst_d = max(rows, key=lambda a: a["drop_pts"])
    return {
        "fps": mean_sd([a["fps"] for a in rows]), "ratio": mean_sd([a["ratio"] for a in rows]),
        "accuracy": mean_sd([a["accuracy"] for a in rows]), "drop_pts": mean_sd([a["drop_pts"] for a in rows]),
        "fits": all(a["fits"] for a in rows), "worst_ratio": worst_r["ratio"], "worst_ratio_seed": worst_r["seed"],
        "worst_drop_pts": worst_d["drop_pts"], "worst_drop_seed": worst_d["seed"],
        "every_seed": all(a["meets"] for a in rows), "seeds": rows,
    }


def summarise(runs: list[dict], args) -> dict:
    """Per arm: mean ± sd over seeds of FPS, ratio, accuracy and drop, the worst seed and the per-seed rows.
    ``best``: the arm that meets the rule (fits, drop ≤ ``rule_pts``) on every seed with the highest worst-seed
    ratio; ``best_on_mean``: the fastest arm on the mean (mean drop within the rule), the older criterion."""
    out: dict[str, dict] = {}
    for arm, _ in ARMS:
        rows = seed_rows(runs, arm, args.rule_pts)
        if len(rows) < len(runs):
            continue  # not run for this model (mixed precision: chain models only)
        out[arm] = arm_summary(rows)
        out[arm]["extra_epochs"] = mean_sd([r["arms"][arm]["extra_epochs"] for r in runs])
    ok = [a for a in out if out[a]["every_seed"]]
    on_mean = [a for a in out if out[a]["fits"] and out[a]["drop_pts"][0] <= args.rule_pts + 1e-9]
    return {"arms": out, "best": max(ok, key=lambda a: out[a]["worst_ratio"]) if ok else None,
            "best_on_mean": max(on_mean, key=lambda a: out[a]["ratio"][0]) if on_mean else None}


def versus_uniform(summary: dict) -> str:
    """The accuracy beside the hw-aware/uniform FPS ratio: the uniform arm is matched to at least the hw-aware
    arm's predicted FPS, so the ratio compares speed and the two mean test drops say at what accuracy."""
    arms = summary["arms"]
    if "hw+ours" not in arms or "uniform+ours" not in arms:
        return ""
    line = (f"at {arms['hw+ours']['drop_pts'][0]:.2f} vs {arms['uniform+ours']['drop_pts'][0]:.2f} pt mean test drop "
            "(uniform keeps the largest ratio reaching the hw arm's predicted FPS)")
    if "urule+ours" in arms:
        hw, ur = arms["hw+ours"], arms["urule+ours"]
        line += (f"; hw-aware vs uniform under the same rule (ours) {hw['fps'][0] / ur['fps'][0]:.2f}× mean, "
                 f"worst seed {min(h['fps'] / u['fps'] for h, u in zip(hw['seeds'], ur['seeds'], strict=True)):.2f}×, "
                 f"at {hw['drop_pts'][0]:.2f} vs {ur['drop_pts'][0]:.2f} pt")
    return line


def print_table(runs: list[dict], summary: dict, args) -> None:
    n = len(runs)
    e_ref = mean_sd([r["reference_epochs"] for r in runs])[0]
    print(f"\n{n} seed(s) {[r['seed'] for r in runs]}; FPS and fit: finn-plus estimate reports (Pynq-Z2, 100 MHz); "
          f"accuracy: held-out test split")
    for r in runs:
        print(f"seed {r['seed']}: baseline converged in {r['baseline_epochs']} epochs, validation curve "
              + " ".join(f"{100 * a:.1f}" for a in r["curve"]))
    print(f"equal training: drop = reference − arm on the test split; an unpruned arm (no extra training) against the "
          f"converged model (both converged), a pruned arm against the converged model fine-tuned for {e_ref:g} "
          f"extra epochs (the largest extra budget of any arm) at "
          f"{statistics.fmean(100 * r['reference_accuracy'] for r in runs):.2f}% (mean)")
    print(f"{'arm':<34}{'FPS (FINN)':>16}{'ratio':>13}{'worst':>7}{'test acc %':>15}{'drop pts':>14}{'worst':>7}"
          f"{'extra ep':>9} fits  every seed")
    for arm, label in ARMS:
        a = summary["arms"].get(arm)
        if a is None:
            print(f"{label:<34}{'not run for this model':>30}")
            continue
        print(f"{label:<34}{a['fps'][0]:>9,.0f} ±{a['fps'][1]:>5,.0f}{a['ratio'][0]:>7.2f} ±{a['ratio'][1]:>4.2f}"
              f"{a['worst_ratio']:>7.2f}{a['accuracy'][0]:>8.2f} ±{a['accuracy'][1]:>5.2f}"
              f"{a['drop_pts'][0]:>7.2f} ±{a['drop_pts'][1]:>5.2f}{a['worst_drop_pts']:>7.2f}"
              f"{a['extra_epochs'][0]:>9.2f} {'yes' if a['fits'] else 'NO ':<4} {'meets' if a['every_seed'] else 'FAILS'}")
    print_seed_rows(summary, args.rule_pts)
    print_phases(runs)
    r = {k: summary["arms"][k]["fps"][0] if k in summary["arms"] else float("nan") for k, _ in ARMS}
    bits_factor = (f"bits {r['mixed+ours'] / r['hw+ours']:.2f}× (mixed + pruned / pruned, ours)"
                   if "mixed+ours" in summary["arms"] else "bits not measured (no mixed-precision arm for this model)")
    print(f"where the gain comes from (mean FPS ratios, both sides judged by FINN): folding {r['unpruned+ours'] / r['unpruned+setfolding']:.2f}× "
          f"(unpruned: ours / SetFolding); channels {r['hw+ours'] / r['unpruned+ours']:.2f}× (hw-aware pruned / unpruned, "
          f"ours); {bits_factor}; pruning under SetFolding "
          f"{r['hw+setfolding'] / r['unpruned+setfolding']:.2f}×; hw-aware vs uniform (ours) {r['hw+ours'] / r['uniform+ours']:.2f}× "
          f"{versus_uniform(summary)}")
    best, on_mean = summary["best"], summary.get("best_on_mean")
    print(f"accuracy rule, per seed: drop ≤ {args.rule_pts:g} pt and fits on every seed; best arm (highest worst-seed "
          f"ratio): {dict(ARMS)[best] if best else 'none meets it'}; on the mean alone: "
          f"{dict(ARMS)[on_mean] if on_mean else 'none'}")


def print_seed_rows(summary: dict, rule_pts: float) -> None:
    """The per-seed rows of every arm: ratio, drop with its paired interval on the test split, the verdict."""
    print(f"per seed (ratio to that seed's unpruned SetFolding best fit; drop in points on the test split and "
          f"[its paired {100 * CI_LEVEL:g} % interval]; rule ≤ {rule_pts:g} pt on the drop; 'within test noise': "
          f"the interval reaches the rule):")
    for arm, label in ARMS:
        a = summary["arms"].get(arm)
        if a is not None:
            print(f"  {label:<34}" + "; ".join(
                f"seed {r['seed']}: {r['ratio']:.2f}× at {r['drop_pts']:.2f} pt {interval_text(r.get('drop_ci_pts'))} "
                f"{r['verdict']}" for r in a["seeds"]))


def interval_text(ci) -> str:
    """``[-0.45, 2.67]`` (points), ``[-]`` where the run has no per-sample test results."""
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "[-]"


def print_phases(runs: list[dict]) -> None:
    """Where each seed's minutes went: wall / CPU seconds per phase (runs from before the timings: none)."""
    timed = [r for r in runs if r.get("phases")]
    if timed:
        print("where the time goes (wall / CPU seconds; a search's CPU includes its predictor workers; FINN jobs run "
              "in their own process beside the ML side):")
    for r in timed:
        print(f"  seed {r['seed']}: {phase_line(r['phases'])}")


def print_last_line(summary: dict) -> None:
    """``prune_fold_speedup_vs_setfolding <mean ratio> accuracy_drop_pts <mean drop> worst_seed_speedup <ratio>
    worst_seed_drop_pts <drop>`` of the best arm meeting the rule on every seed (zeros and nan when none does)."""
    best = summary["best"]
    a = summary["arms"][best] if best else None
    ratio, drop = (a["ratio"][0], a["drop_pts"][0]) if a else (0.0, float("nan"))
    w_ratio, w_drop = (a["worst_ratio"], a["worst_drop_pts"]) if a else (0.0, float("nan"))
    print(f"prune_fold_speedup_vs_setfolding {ratio:.3f} accuracy_drop_pts {drop:.2f} "
          f"worst_seed_speedup {w_ratio:.3f} worst_seed_drop_pts {w_drop:.2f}")


#: protocol flags added after some runs' JSON was written: those runs had the flag's default
LATER_FLAGS = ("importance", "sparsify_epochs", "sparsify_strength", "start")


def combine(paths: list[str], rule_pts: float) -> int:
    """The summary over the seeds of several ``--json`` results (one seed per process): settings checked equal
    (seeds, work and cache directories and output file aside), then the same table and last line as one run."""
    results = [json.loads(Path(p).read_text()) for p in paths]
    # where results are kept and how the work was scheduled, not the protocol
    own = {"seeds", "work", "json", "combine", "cache", "parallel_arms"}
    # flags added after runs were recorded: a JSON without one ran as its default does
    later = {k: make_parser().get_default(k) for k in LATER_FLAGS}
    settings = [{**later, **{k: v for k, v in r["args"].items() if k not in own}} for r in results]
    if any(s != settings[0] for s in settings[1:]):
        diff = sorted({k for s in settings[1:] for k in s if s[k] != settings[0].get(k)})
        raise SystemExit(f"--combine: the runs differ in {', '.join(diff)}; combine runs of one protocol only.")
    runs = sorted((r for res in results for r in res["runs"]), key=lambda r: r["seed"])
    if len({r["seed"] for r in runs}) < len(runs):
        raise SystemExit("--combine: a seed appears in more than one file.")
    args = argparse.Namespace(**{**results[0]["args"], "rule_pts": rule_pts, "seeds": [r["seed"] for r in runs]})
    summary = summarise(runs, args)
    print_table(runs, summary, args)
    for p, res in zip(paths, results, strict=True):
        print(f"{p}: seeds {[r['seed'] for r in res['runs']]}, {res['seconds']:.0f}s, load average "
              f"{res['load_average']['start'][0]:.1f} at start, {res['load_average']['end'][0]:.1f} at end")
    print_last_line(summary)
    return 0


def json_object(text: str) -> dict:
    """``--model-options`` / ``--data``: a JSON object, or argparse's one-line error (exit 2)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({e.msg}); give an object, e.g. '{{\"channels\": [64, 64]}}'") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is a JSON {type(value).__name__}; give an object")
    return value


def make_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="build directory, kept (default: a new temporary one, deleted at exit)")
    ap.add_argument("--cache", default=str(ROOT / "runs" / "bench_cache" / "pruning_vs_finn"))
    ap.add_argument("--model", default="cnv", help="zoo model name")
    ap.add_argument("--model-options", type=json_object, default={}, metavar="JSON",
                    help="the zoo model's model.options as a JSON object, e.g. '{\"channels\": [64, 64, 64, 64, 64], "
                         "\"stem_stride\": 2, \"pool\": \"avg\"}' for ds_cnn (in every cache key)")
    ap.add_argument("--data", type=json_object, default={}, metavar="JSON",
                    help="the run's data section as a JSON object (default digits 3x32x32), e.g. '{\"name\": "
                         "\"mnist\", \"path\": \"DIR\", \"max_train\": 6000}' (in every cache key, with a hash of "
                         "the arrays)")
    ap.add_argument("--bits", type=int, default=2, help="weight and activation bits of the baseline")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    ap.add_argument("--quick", action="store_true", help="one seed, fewer epochs and steps, coarse SetFolding scan")
    ap.add_argument("--smoke", action="store_true", help="plumbing check: tiny budgets, throw-away cache")
    ap.add_argument("--max-epochs", type=int, default=None, help="baseline epochs at most (default 40, quick 10)")
    ap.add_argument("--patience", type=int, default=None, help="epochs without validation gain (default 4, quick 3)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--polish-rounds", type=int, default=None,
                    help="after reduce-on-plateau, rounds of the arms' fine-tune on the baseline while one still "
                         "improves validation (default 3, quick 1)")
    ap.add_argument("--polish-epochs", type=float, default=None,
                    help="epochs of each polish round (default --finetune-epochs; give the old value to keep a "
                         "cached baseline while changing --finetune-epochs)")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--max-drop", type=float, default=0.005,
                    help="search's validation accuracy drop (fraction; 0.005: half the test rule, read as an observed "
                         "drop; with --confidence above 0.5 give the test rule, 0.01)")
    ap.add_argument("--confidence", type=float, default=0.5,
                    help="pruning.selection.confidence: a backtracking candidate passes when a paired test against "
                         "the unpruned model on the validation split shows its drop within --max-drop at this "
                         "one-sided confidence (0.5: the observed drop, the rule before issue 24)")
    ap.add_argument("--rule-pts", type=float, default=1.0, help="accuracy rule on the test split (mean points)")
    ap.add_argument("--max-steps", type=int, default=None, help="greedy steps at most (default 14, quick 10)")
    ap.add_argument("--candidate-steps", type=int, default=None, help="counts per group (default 3, quick 3)")
    ap.add_argument("--step-finetune", type=float, default=0.5, help="fine-tune epochs after each greedy step")
    ap.add_argument("--finetune-epochs", type=float, default=None,
                    help="final fine-tune epochs of a searched design (default 8, quick 4)")
    ap.add_argument("--final-weights", choices=("reprune", "search", "reprune_or_search"), default="reprune",
                    help="the final model: the converged model pruned once to the searched design (reprune), the "
                         "search's own fine-tuned weights (search), or the re-pruned one and, where it fails the "
                         "rule, the search's own weights fine-tuned the same epochs (reprune_or_search)")
    ap.add_argument("--uniform-rule", action=argparse.BooleanOptionalAction, default=True,
                    help="the arm 'uniform under the rule': the fastest uniform keep ratio that meets the same "
                         "accuracy rule as the hw-aware search (a bisection of --finetune-epochs fine-tunes; "
                         "--no-uniform-rule leaves it out)")
    ap.add_argument("--ft-lr", type=float, default=5e-4,
                    help="fine-tune learning rate (Adam, cosine per batch; the baseline ends at 1.25e-4-5e-4)")
    ap.add_argument("--step-drop", type=float, default=0.08,
                    help="search tolerance: validation drop after a step's fine-tune that still lets it go on")
    ap.add_argument("--fold-time", type=float, default=None,
                    help="seconds per folding solve inside the search's FPS predictor (default 4; a cut solve is re-run at 4x, then 16x)")
    ap.add_argument("--distill", action="store_true", help="fine-tunes distil from the unpruned model")
    ap.add_argument("--importance", choices=IMPORTANCES, default="l1",
                    help="the searched arms' channel importance (pruning.importance; the speed-matched uniform arm "
                         "stays l1)")
    ap.add_argument("--sparsify-epochs", type=float, default=0.0,
                    help="sparse training before the searched arms' searches (pruning.sparsify_epochs: a group "
                         "lasso on the channel scales; needs --importance bn_scale); its epochs count in each "
                         "arm's extra training and so in the reference's")
    ap.add_argument("--sparsify-strength", type=float, default=0.01, help="pruning.sparsify_strength")
    ap.add_argument("--start", choices=("full", "uniform"), default="full",
                    help="the searched arms' pruning.start (uniform: the greedy search goes on from the uniform "
                         "search's pick under the same rule)")
    ap.add_argument("--workers", type=int, default=2,
                    help="processes for the FPS predictor (with --parallel-arms shared out between the searches "
                         "running at once, at least 1 each)")
    ap.add_argument("--parallel-arms", action=argparse.BooleanOptionalAction, default=None,
                    help="run the hardware-aware and mixed-precision searches side by side, one process each "
                         "(default: on with 2 or more CPUs); the same arms as --no-parallel-arms, which runs them "
                         "one after the other")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared, oversubscribed machine 2 threads ran a CNV step 4x slower)")
    ap.add_argument("--json", default=None)
    ap.set_defaults(data_sha=None)  # load_bench_data's hash of the --data arrays
    ap.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                    help="print the table and last line over the seeds of several runs' --json files (seeds run as "
                         "separate processes); the runs must share every other setting")
    return ap


def resolve_defaults(args) -> argparse.Namespace:
    """The defaults that depend on ``--quick`` / ``--smoke`` (and ``--polish-epochs`` on ``--finetune-epochs``)."""
    q = args.quick or args.smoke
    args.seeds = args.seeds or ([0] if q else [0, 1, 2])
    args.max_epochs = args.max_epochs or (1 if args.smoke else 10 if q else 40)
    args.patience = args.patience or (3 if q else 4)
    args.max_steps = args.max_steps or (1 if args.smoke else 10 if q else 14)
    args.candidate_steps = args.candidate_steps or 3
    args.fold_time = args.fold_time or 4.0
    args.finetune_epochs = args.finetune_epochs or (1.0 if args.smoke else 4.0 if q else 8.0)
    args.polish_rounds = args.polish_rounds if args.polish_rounds is not None else (1 if q else 3)
    args.polish_epochs = args.polish_epochs or args.finetune_epochs
    args.parallel_arms = args.parallel_arms if args.parallel_arms is not None else (os.cpu_count() or 1) >= 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    # the FPS predictor's answers live under --cache too, so a fresh --cache is a cold run (timings, fairness)
    os.environ.setdefault("HAPFPGA_PREDICTOR_CACHE", str(Path(args.cache) / "predictor"))
    if args.combine:
        return combine(args.combine, args.rule_pts)
    if args.sparsify_epochs > 0 and args.importance != "bn_scale":
        make_parser().error("--sparsify-epochs needs --importance bn_scale (the scales it trains choose the channels)")
    resolve_defaults(args)

    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from hapfpga.errors import ConfigError, DataError
    from hapfpga.pruning.parallel import die_with_parent

    try:
        data = load_bench_data(args)
    except (ConfigError, DataError) as e:
        print(f"pruning_vs_finn.py: error: --data: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)  # hapfpga.train trains with 1 thread (TRAIN_THREADS) whatever this says
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the FINN and predictor worker processes inherit it
    board = load_board("pynq-z2")
    work = work_dir(args.work, "prune_vs_finn_")
    cache = Cache(work_dir(None, "prune_vs_finn_smoke_cache_") if args.smoke else Path(args.cache))
    for paths in (TRAIN_CODE, PRUNE_CODE, FINN_CODE):
        code_version(paths)  # fixed now: the code this run loaded
    load0 = os.getloadavg()
    say(f"data {data.name}: train {len(data.x_train)}, test {len(data.x_test)}; board {board.name} budget "
        f"{fmt(board.budget)}; work {work}; cache {cache.root}; load average {load0[0]:.1f} on {os.cpu_count()} CPUs")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"), initializer=die_with_parent)
    try:
        runs = [run_seed(s, args, data, board, cache, work, pool) for s in args.seeds]
    finally:
        pool.shutdown()
    summary = summarise(runs, args)
    wall = time.perf_counter() - T0
    result = {"args": vars(args), "runs": runs, "summary": summary, "seconds": wall,
              "load_average": {"start": load0, "end": os.getloadavg()}}
    (work / "pruning_vs_finn.json").write_text(json.dumps(result, indent=2, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    print_table(runs, summary, args)
    print(f"total time {wall:.0f}s; load average {load0[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end "
          f"({os.cpu_count()} CPUs)")
    print_last_line(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

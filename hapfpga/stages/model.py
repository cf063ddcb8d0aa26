"""The PyTorch stages: quantisation-aware training and (optional) hardware-aware pruning + fine-tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runstate import atomic_path
from .base import Conf, Context, Stage, StageOutput

__all__ = ["TRAIN", "PRUNE", "save_model", "load_model", "final_model_file"]


def save_model(model: Any, path: Path) -> None:
    """Save as rebuild spec + state_dict (Brevitas models cannot be pickled whole), atomically."""
    from ..zoo import save_model as _save

    with atomic_path(path) as tmp:
        _save(model, tmp)


def load_model(path: Path) -> Any:
    from ..zoo import load_model as _load

    return _load(path)


def final_model_file(ctx: Context) -> Path:
    """The model the hardware is built from: the pruned one when the prune stage is part of the run."""
    return ctx.path("pruned.pt" if "prune" in ctx.results else "baseline.pt")


def train(ctx: Context, conf: Conf) -> StageOutput:
    from ..bipolar_pad import check_bipolar_padding
    from ..modelcheck import check_before_training
    from ..train import train as qat
    from ..zoo import build_model

    ds = ctx.dataset
    model = build_model(conf.model, ds.input_shape, ds.num_classes, seed=conf.seed)
    # milliseconds: a padded conv after a bipolar activation (FINN refuses it in 2D, miscomputes it in 1D)
    check_bipolar_padding(model, ds.input_shape, f"model '{conf.model.name}'")
    # seconds of export + FINN conversion of the untrained model before minutes of training
    check_before_training(model, conf.model.name, ds.input_shape, ds.num_classes, ctx.path("work/check"),
                          ctx.board, ctx.clock_mhz, rtl=ctx.cfg.folding.open_simulatable)
    res = qat(model, ds, conf.train, seed=conf.seed, run_dir=ctx.run_dir, progress=True, console=ctx.console)
    out = ctx.path("baseline.pt")
    save_model(model, out)
    return [out], {"accuracy": float(res.accuracy)}


def prune(ctx: Context, conf: Conf) -> StageOutput:
    from ..pruning import run_pruning_stage

    model, rep = run_pruning_stage(
        conf.pruning, load_model(ctx.path("baseline.pt")), ctx.dataset, conf.board, ctx.run_dir,
        clock_mhz=conf.clock_mhz, train_cfg=conf.train, seed=conf.seed,
        open_simulatable=ctx.cfg.folding.open_simulatable, margin=ctx.cfg.folding.margin,
        finn_cycles=ctx.cfg.folding.finn_cycles,
    )
    out = ctx.path("pruned.pt")
    save_model(model, out)
    return [out], rep


def _model_source(ctx: Context) -> str | None:
    """The content hash of a user's model file: editing the .py re-runs training."""
    from ..zoo import model_source_hash

    return model_source_hash(ctx.cfg.model.name)


def _fold_layers(ctx: Context) -> Any:
    """The search predicts the fold stage's design: FINN's RTL layers when ``folding.open_simulatable``, folded
    at the same budget (``folding.margin``) for the same cycles (``folding.finn_cycles``)."""
    f = ctx.cfg.folding
    # the old key (a bool) while the rest is the default, so existing runs keep their pruned models
    if f.margin is None and not f.finn_cycles:
        return bool(f.open_simulatable)
    return [bool(f.open_simulatable), f.margin, bool(f.finn_cycles)]


TRAIN = Stage(
    "train", train, outputs=("baseline.pt",), config=("model", "data", "train", "seed"), key_extra=_model_source,
    produces="the trained model",
)
PRUNE = Stage(
    "prune", prune, inputs=("train",), outputs=("pruned.pt",),
    config=("pruning", "train", "seed", "board", "clock_mhz"), enabled=lambda cfg: bool(cfg.pruning),
    key_extra=_fold_layers, produces="the pruned model",
)

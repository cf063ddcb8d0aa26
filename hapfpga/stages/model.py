"""The PyTorch stages: quantisation-aware training and (optional) hardware-aware pruning + fine-tuning."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..runstate import atomic_path
from .base import Conf, Context, Stage, StageOutput

__all__ = ["TRAIN", "PRUNE", "save_model", "load_model", "final_model_file", "given_model"]


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
    from ..pruning import HwTarget, run_pruning_stage

    model, rep = run_pruning_stage(
        conf.pruning, load_model(ctx.path("baseline.pt")), ctx.dataset,
        HwTarget(conf.board, conf.folding_options, variants=predictor_variants(ctx)),
        ctx.run_dir, train_cfg=conf.train, seed=conf.seed,
        # one line per search step (also in DIR/pruning/search.log): plain text, not wrapped
        log=lambda line: ctx.console.print(line, markup=False, highlight=False, soft_wrap=True),
    )
    out = ctx.path("pruned.pt")
    save_model(model, out)
    return [out], rep


def given_model(ctx: Context, path: Path) -> tuple[str, dict[str, Any]]:
    """The train stage's place taken by a trained model the user gives (``hapfpga prune --model``): saved as
    ``baseline.pt``; returns the key that stands for the train stage (the file's content hash) and its result.

    ``path`` is a file of ``hapfpga.zoo.save_model`` (a run's ``baseline.pt``) or a whole module saved with
    ``torch.save(model)`` (a zoo or user model built by ``hapfpga.zoo.build_model``, which carries its spec)."""
    import torch

    from ..errors import ConfigError
    from ..runstate import stage_key
    from ..train import evaluate

    if not path.is_file():
        raise ConfigError(f"Model file '{path}' does not exist; give a run's baseline.pt or a torch.save(model) file.")
    try:
        blob = torch.load(path, weights_only=False)
    except Exception as e:  # not a torch file, or classes this process cannot import
        raise ConfigError(f"Model file '{path}' cannot be read by torch.load ({str(e).splitlines()[0]}); give a "
                          "run's baseline.pt or a file written by torch.save(model).") from e
    if isinstance(blob, dict) and "spec" in blob:
        model = load_model(path)
    elif isinstance(blob, torch.nn.Module):
        model = blob.eval()
    else:
        raise ConfigError(f"Model file '{path}' holds neither a saved hapfpga model nor a torch.nn.Module; give a "
                          "run's baseline.pt or a file written by torch.save(model).")
    save_model(model, ctx.path("baseline.pt"))
    digest = stage_key("given-model", hashlib.sha256(path.read_bytes()).hexdigest())
    acc = float(evaluate(model, ctx.dataset.x_test, ctx.dataset.y_test))
    return digest, {"accuracy": acc, "given": str(path)}


def _model_source(ctx: Context) -> str | None:
    """The content hash of a user's model file: editing the .py re-runs training."""
    from ..zoo import model_source_hash

    return model_source_hash(ctx.cfg.model.name)


TRAIN = Stage(
    "train", train, outputs=("baseline.pt",), config=("model", "data", "train", "seed"), key_extra=_model_source,
    produces="the trained model",
)
def predictor_variants(ctx: Context) -> str:
    """The graphs the fold stage will fold (``folding.variants``), which the pruning predictor folds too; with
    open tools taking the design, the embedded one (``fold._for_open_tools`` keeps it over a mixed design)."""
    from .fold import open_tool_stages

    return "embedded" if open_tool_stages(ctx.cfg) else ctx.cfg.folding.variants


PRUNE = Stage(
    "prune", prune, inputs=("train",), outputs=("pruned.pt",),
    # folding_options: the fold stage's FoldingOptions (hapfpga.folding.options), which the predictor folds with
    config=("pruning", "train", "seed", "board", "clock_mhz", "folding_options"), enabled=lambda cfg: bool(cfg.pruning),
    key_extra=predictor_variants,
    produces="the pruned model",
)

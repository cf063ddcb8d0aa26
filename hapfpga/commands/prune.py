"""``hapfpga prune CONFIG.yaml --out DIR``: train (or load) a model, prune it per ``pruning:``, save it and a report.

Stops before folding and the FINN build (``hapfpga run`` does the whole flow). Writes ``DIR/pruned.pt``,
``DIR/final.qonnx.onnx``, ``DIR/pruning/pruning.json`` (+ sensitivity plot, Optuna storage) and prints a summary.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Prune a trained model for the board (hardware-aware channel pruning or weight pruning) and save it."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config with model/data/train sections and a pruning: section")
    p.add_argument("--out", default=None, help="output directory (default: runs/<config name>-prune)")
    p.add_argument("--model", default=None,
                   help="a trained model (skips training): a run's baseline.pt/pruned.pt, or a torch.save'd model")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .. import data as data_mod
    from ..boards import load_board
    from ..errors import ConfigError
    from ..pruning.stage import export_for_finn, run_pruning_stage
    from ..runconfig import load_run_config
    from ..zoo import save_model

    cfg = load_run_config(args.config)
    if not cfg.pruning:
        raise ConfigError(f"Config '{args.config}' has no pruning: section; add one (see hapfpga/pruning/config.py).")
    out = Path(args.out or Path("runs") / f"{Path(args.config).stem}-prune")
    out.mkdir(parents=True, exist_ok=True)
    args.out = str(out)
    board = load_board(cfg.board)
    dataset = data_mod.load_dataset(cfg.data, seed=cfg.seed)
    if args.model:
        p = Path(args.model)
        if not p.is_file():
            raise ConfigError(f"Model file '{p}' does not exist; give a run's baseline.pt or pruned.pt.")
        model = _load_trained(p)
    else:
        from ..train import train
        from ..zoo import build_model

        model = build_model(cfg.model, dataset.input_shape, dataset.num_classes)
        train(model, dataset, cfg.train, seed=cfg.seed, run_dir=out, progress=True)
    pruned, report = run_pruning_stage(
        cfg.pruning, model, dataset, board, out, clock_mhz=cfg.clock_mhz or board.clock_mhz, train_cfg=cfg.train,
        seed=cfg.seed, log=print,
    )
    save_model(pruned, out / "pruned.pt")  # spec + state_dict: the pruned channels rebuild from the factory
    export_for_finn(pruned, tuple(dataset.input_shape), out / "final.qonnx.onnx")
    summary = {k: report.get(k) for k in ("method", "channels_before", "channels_after", "compression",
                                          "accuracy", "accuracy_drop", "fps_before", "fps_after", "limited_by")}
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _load_trained(path: Any) -> Any:
    """A model saved by hapfpga (``save_model``: rebuild spec + state_dict, pruned or not, zoo or user factory) or a
    whole model pickled with ``torch.save(model)``."""
    import pickle

    import torch

    from ..zoo import load_model

    try:
        blob = torch.load(path, weights_only=True)
    except pickle.UnpicklingError:  # a pickled model (classes, not plain tensors)
        return torch.load(path, weights_only=False)
    if isinstance(blob, dict) and {"spec", "state_dict"} <= set(blob):
        return load_model(path)
    from ..errors import ConfigError

    raise ConfigError(f"Model file '{path}' holds no model (a state_dict?); give a run's baseline.pt or pruned.pt.")

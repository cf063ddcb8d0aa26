"""``hapfpga prune CONFIG --out DIR --model M``: the command end to end on the zoo's digits_cnn (uniform ratio)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_prune_command_saves_pruned_model_and_report(tmp_path):
    from hapfpga.cli import main
    from hapfpga.pruning.apply import layer_channels
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model, load_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="digits_cnn", options={"per_channel": True}), (1, 8, 8), 10)
    from hapfpga.data import load_digits
    from hapfpga.train import FinetuneConfig, finetune

    d = load_digits()
    finetune(model, d.x_train, d.y_train, FinetuneConfig(max_steps=3), seed=0)  # a trained model (stats set)
    before = layer_channels(model)
    torch.save(model, tmp_path / "m.pt")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "data: {name: digits}\n"
        "model: {name: digits_cnn}\n"
        "pruning: {method: uniform, target: ratio, ratio: 0.5, finetune_epochs: 0.1, sensitivity: false}\n"
    )
    out = tmp_path / "out"
    assert main(["prune", str(cfg), "--out", str(out), "--model", str(tmp_path / "m.pt")]) == 0
    pruned = load_model(out / "pruned.pt")  # the pruned channels rebuild from the factory
    rep = json.loads((out / "pruning" / "pruning.json").read_text())
    after = layer_channels(pruned)
    assert rep["channels_after"] == {g: after[g] for g in rep["channels_after"]}
    assert all(after[g] == before[g] // 2 for g in rep["channels_after"])
    assert (out / "final.qonnx.onnx").stat().st_size > 1000


def test_prune_command_without_pruning_section_is_a_user_error(tmp_path, capsys):
    from hapfpga.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits}\n")
    assert main(["prune", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "pruning" in capsys.readouterr().err

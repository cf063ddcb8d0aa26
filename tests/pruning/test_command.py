"""``hapfpga prune CONFIG --out DIR [--model M]``: the command end to end on the zoo's digits_cnn (uniform ratio),
and the same design as ``hapfpga run --to prune`` for the same YAML (one orchestrator: the run's stages)."""

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


def test_prune_command_with_an_unreadable_model_is_one_sentence(tmp_path, capsys):
    from hapfpga.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits, max_train: 100, max_test: 50}\nmodel: {name: digits_cnn}\n"
                   "pruning: {method: uniform, target: ratio, sensitivity: false}\n")
    (tmp_path / "m.pt").write_text("not a model")
    assert main(["prune", str(cfg), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err
    assert "m.pt' cannot be read by torch.load" in err and "Traceback" not in err
    assert main(["prune", str(cfg), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_prune_command_without_pruning_section_is_a_user_error(tmp_path, capsys):
    from hapfpga.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits}\n")
    assert main(["prune", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "pruning" in capsys.readouterr().err


def test_prune_is_the_runs_train_and_prune_stages(tmp_path, capsys):
    """For one YAML, ``hapfpga prune`` and ``hapfpga run --to prune`` give the same pruned design: the same
    channel counts, report figures and weights (both are the run's stages, seeded and keyed alike); ``prune``
    also writes the QONNX export, and a second ``prune`` into the same directory resumes every stage."""
    from hapfpga.cli import main
    from hapfpga.zoo import load_model

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "data: {name: digits, max_train: 400, max_test: 100}\n"
        "model: {name: digits_cnn}\n"
        "train: {epochs: 1, device: cpu}\n"
        "folding: {margin: 0.1}\n"
        "pruning: {method: uniform, target: ratio, ratio: 0.5, finetune_epochs: 0.2, sensitivity: false}\n"
    )
    a, b = tmp_path / "prune", tmp_path / "run"
    assert main(["prune", str(cfg), "--out", str(a)]) == 0
    assert main(["run", str(cfg), "--out", str(b), "--to", "prune"]) == 0
    ra, rb = (json.loads((d / "pruning" / "pruning.json").read_text()) for d in (a, b))
    for key in ("channels_before", "channels_after", "params", "macs", "accuracy", "accuracy_val"):
        assert ra[key] == rb[key], key
    assert ra["channels_after"] != ra["channels_before"]
    ma, mb = load_model(a / "pruned.pt").state_dict(), load_model(b / "pruned.pt").state_dict()
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)
    assert (a / "final.qonnx.onnx").stat().st_size > 1000 and not (b / "final.qonnx.onnx").exists()
    keys = json.loads((a / "manifest.json").read_text())
    # one key for both: the same config sections, the folding options included
    assert keys["stages"]["prune"]["key"] == json.loads((b / "manifest.json").read_text())["stages"]["prune"]["key"]
    capsys.readouterr()
    assert main(["prune", str(cfg), "--out", str(a)]) == 0
    assert "already done" in capsys.readouterr().err
    assert json.loads((a / "manifest.json").read_text()) == keys

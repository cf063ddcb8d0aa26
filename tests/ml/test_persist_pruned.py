"""Pruned models of any origin persist and reload (issue 21, capability 1).

``hapfpga.zoo.save_model`` stores every conv/linear layer's channels beside the weights; ``load_model`` calls the
factory as the config did and prunes the fresh model to those channels, so a user's factory needs no width option.
Property: over many random channel-count vectors (4 per model by default, 24 with ``-m slow``; random kept
indices, any count from 1 to all) on user factories of every graph kind (a file written here, loaded by
``model.name: file.py:make`` as a user's would be) and on zoo models, save → load gives the same channels and
bit-equal outputs, and so does a second save → load of the loaded model. A saved model that its factory can no longer rebuild is one sentence, not a ``load_state_dict`` traceback.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
np = pytest.importorskip("numpy")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.pruning.apply import ChannelGraph, layer_channels, prune_to_counts  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.zoo import build_model, load_model, save_model  # noqa: E402

GRAPH_MODELS = Path(__file__).resolve().parents[1] / "pruning" / "graph_models.py"
USER_KINDS = ("Separable", "Residual", "IdentityResidual", "Conv1dNet", "Mlp")
#: zoo models (name, options, input shape): per-channel weight scales, a residual net with 1x1 shortcuts,
#: depthwise-separable blocks and a 1D stack
ZOO = (("digits_cnn", {"per_channel": True}, (1, 8, 8)), ("resnet8", {}, (3, 16, 16)),
       ("ds_cnn", {}, (1, 16, 10)), ("cnn1d", {}, (2, 64)))


def _factory_file(tmp: Path) -> str:
    """graph_models.py's classes in a user's model file, with a factory ``make(..., kind)``; no hapfpga import."""
    f = tmp / "user_models.py"
    f.write_text(GRAPH_MODELS.read_text() + "\n\ndef make(input_shape, num_classes, kind='Residual'):\n"
                 "    return GRAPH_MODELS[kind]()\n")
    return f"{f}:make"


def _trained_like(model, shape, rng):
    """Quantiser statistics initialised (a few training-mode batches) and BN statistics off the identity."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, *shape))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.as_tensor(rng.uniform(-0.2, 0.2, m.num_features)))
                m.running_var.copy_(torch.as_tensor(rng.uniform(0.5, 1.5, m.num_features)))
    return model.eval()


def _random_pruned(model, shape, rng):
    """``model`` pruned to random counts (every prunable group, 1..all channels) with random kept indices."""
    example = torch.rand(2, *shape)
    graph = ChannelGraph(model, example)
    counts = {g: int(rng.integers(1, grp.channels + 1)) for g, grp in graph.groups.items() if grp.prunable}
    scores = {g: torch.as_tensor(rng.random(grp.channels)) for g, grp in graph.groups.items()}
    pruned, _ = prune_to_counts(model, example, counts, lambda m, gr, grp: scores[grp.name], graph=graph)
    return pruned, counts


def _round_trips(model, shape, tmp: Path, rng) -> dict[str, int]:
    pruned, counts = _random_pruned(model, shape, rng)
    x = torch.rand(5, *shape)
    with torch.no_grad():
        want = torch.as_tensor(getattr(pruned(x), "value", pruned(x))).numpy()
    loaded = load_model(save_model(pruned, tmp / "m.pt"))
    again = load_model(save_model(loaded, tmp / "m2.pt"))
    for m in (loaded, again):
        assert layer_channels(m) == layer_channels(pruned), counts
        with torch.no_grad():
            got = torch.as_tensor(getattr(m(x), "value", m(x))).numpy()
        np.testing.assert_array_equal(got, want, err_msg=str(counts))
    return counts


#: plans per model: a few in the default suite, many in the slow one (``make test-slow``)
PLANS = [pytest.param(4, id="4plans"), pytest.param(24, id="24plans", marks=pytest.mark.slow)]


@pytest.mark.parametrize("plans", PLANS)
@pytest.mark.parametrize("kind", USER_KINDS)
def test_property_user_factory_pruned_to_random_counts_round_trips_bit_equal(kind, plans, tmp_path):
    name = _factory_file(tmp_path)
    rng = np.random.default_rng(zlib.crc32(kind.encode()) + plans)
    fresh = build_model(ModelConfig(name=name, options={"kind": kind}), (1,), 5)
    shape = type(fresh).input_shape
    removed = 0
    for _ in range(plans):
        model = _trained_like(build_model(ModelConfig(name=name, options={"kind": kind}), shape, 5), shape, rng)
        counts = _round_trips(model, shape, tmp_path, rng)
        removed += sum(layer_channels(fresh)[g] - n for g, n in counts.items())
    assert removed > 0  # the plans really removed channels


@pytest.mark.parametrize("plans", PLANS)
@pytest.mark.parametrize("name,options,shape", ZOO, ids=[z[0] for z in ZOO])
def test_property_zoo_model_pruned_to_random_counts_round_trips_bit_equal(name, options, shape, plans, tmp_path):
    rng = np.random.default_rng(zlib.crc32(name.encode()) + plans)
    for _ in range(plans // 2):
        model = _trained_like(build_model(ModelConfig(name=name, options=options), shape, 7), shape, rng)
        _round_trips(model, shape, tmp_path, rng)


def test_saved_blob_holds_the_pruned_channels_and_the_factory_options_as_called(tmp_path):
    """No width option is needed: the spec keeps the options the config gave, the channels are recorded."""
    name = _factory_file(tmp_path)
    rng = np.random.default_rng(0)
    model = _trained_like(build_model(ModelConfig(name=name, options={"kind": "Residual"}), (3, 8, 8), 5),
                          (3, 8, 8), rng)
    pruned, counts = _random_pruned(model, (3, 8, 8), rng)
    blob = torch.load(save_model(pruned, tmp_path / "m.pt"), weights_only=True)
    assert blob["spec"]["options"] == {"kind": "Residual"}
    assert blob["spec"]["channels"] == layer_channels(pruned)
    assert blob["spec"]["channels"]["sc"] == blob["spec"]["channels"]["c2"] == counts["c2"]  # the coupled group


@pytest.mark.parametrize("edit,message", [
    (("self.fc1", "self.fc_mid"), r"^The saved model's layers 'fc1', 'fc_mid' .*the factory changed since the model "
                                  r"was saved, re-run training"),
    (("QuantLinear(24, self.classes, bias=False", "QuantLinear(24, self.classes, bias=True"),
     r"^Model file .* does not fit model .*user_models.py:make.*Missing key.*fc2.bias.*re-run the stage"),
], ids=["layer renamed", "bias added"])
def test_a_saved_model_its_factory_no_longer_builds_is_one_sentence(edit, message, tmp_path):
    name = _factory_file(tmp_path)
    rng = np.random.default_rng(1)
    model = _trained_like(build_model(ModelConfig(name=name, options={"kind": "Mlp"}), (20,), 5), (20,), rng)
    pruned, _ = _random_pruned(model, (20,), rng)
    path = save_model(pruned, tmp_path / "m.pt")
    file = Path(name.rsplit(":", 1)[0])
    assert edit[0] in file.read_text()
    file.write_text(file.read_text().replace(*edit))
    with pytest.raises(ConfigError, match=message) as e:
        load_model(path)
    assert "\n" not in str(e.value)


def _user_run_config(tmp: Path, pruning: dict) -> Path:
    """examples/my_model.py as a user's own file in ``tmp``, with per-channel weight scales (whose quantiser state
    the pruner cuts per channel), and a short run config with ``pruning``."""
    import yaml

    src = (Path(__file__).resolve().parents[2] / "examples" / "my_model.py").read_text()
    src = src.replace("weight_bit_width=quant.weight_bits_of(i))",
                      "weight_bit_width=quant.weight_bits_of(i), weight_scaling_per_output_channel=True)")
    assert "weight_scaling_per_output_channel=True" in src
    (tmp / "user_cnn.py").write_text(src)
    cfg = {"board": "pynq-z2", "seed": 0,
           "model": {"name": str(tmp / "user_cnn.py") + ":make", "weight_bits": 2, "act_bits": 2,
                     "options": {"channels": [16, 32], "hidden": 64}},
           "data": {"name": "digits", "max_train": 384, "max_test": 64}, "train": {"epochs": 2},
           "pruning": pruning, "folding": {"mode": "max_fps"}, "verify": {"n_samples": 16}}
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slow
def test_user_model_pruned_by_hapfpga_run_reloads_in_every_later_stage_resume_and_prune_command(tmp_path):
    """The issue's crash: a user factory + ``pruning: uniform`` ended in an internal error at export. Now the run
    passes verification with fewer channels and parameters, ``--from export`` and a resumed run rebuild the
    pruned model from the factory, and ``hapfpga prune --model`` takes the run's model and writes one that
    ``load_model`` rebuilds."""
    import json

    from hapfpga.cli import main

    cfg = _user_run_config(tmp_path, {"method": "uniform", "target": "ratio", "ratio": 0.5, "finetune_epochs": 0.5,
                                      "sensitivity": False})
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    prun = rep["pruning"]
    assert all(prun["channels_after"][g] < n for g, n in prun["channels_before"].items())
    assert rep["model"]["params"] < rep["model"]["baseline"]["params"] and rep["verification"]["passed"] is True
    pruned = load_model(out / "pruned.pt")
    assert {g: layer_channels(pruned)[g] for g in prun["channels_after"]} == prun["channels_after"]

    assert main(["run", str(cfg), "--out", str(out), "--from", "export"]) == 0  # reloads pruned.pt
    again = json.loads((out / "report.json").read_text())
    assert {"train", "prune"} <= set(again["resumed_stages"]) and "export" not in again["resumed_stages"]
    assert again["verification"]["passed"] is True and again["model"]["params"] == rep["model"]["params"]
    assert main(["run", str(cfg), "--out", str(out)]) == 0  # everything resumed
    assert "verify" in json.loads((out / "report.json").read_text())["resumed_stages"]

    out2 = tmp_path / "prune"
    assert main(["prune", str(cfg), "--out", str(out2), "--model", str(out / "baseline.pt")]) == 0
    again = load_model(out2 / "pruned.pt")
    assert {g: layer_channels(again)[g] for g in prun["channels_after"]} == prun["channels_after"]


@pytest.mark.slow
def test_user_model_whose_first_window_bounds_max_fps_says_so_in_report_and_summary(tmp_path, capsys, monkeypatch):
    """Issue 21's silent case through the user path: ``target: max_fps`` on a small CNN whose first sliding window
    bounds the FPS: report.json's ``pruning.limited_by`` names the window and the knob, the summary prints it, and
    never says "after pruning" unless the model changed."""
    import json

    from hapfpga.cli import main

    monkeypatch.setenv("COLUMNS", "250")  # the summary table unwrapped
    cfg = _user_run_config(tmp_path, {"method": "greedy", "target": "max_fps", "max_accuracy_drop": 0.5,
                                      "finetune_epochs": 0.2, "step_finetune_epochs": 0.1, "sensitivity": False,
                                      "max_steps": 2, "candidate_steps": 3})
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    lim = rep["pruning"]["limited_by"]
    assert lim["kind"] == "ConvolutionInputGenerator" and lim["layer"].endswith("_0"), lim
    assert rep["pruning"]["fps_after"] == pytest.approx(rep["pruning"]["fps_before"])
    assert rep["verification"]["passed"] is True and rep["finn_estimate"]["fits"] is True
    text = capsys.readouterr().out
    assert "pruning limited by" in text and lim["layer"] in text
    changed = rep["pruning"]["channels_after"] != rep["pruning"]["channels_before"]
    assert ("after pruning" in text) == changed


@pytest.mark.parametrize("user", [False, True])
def test_a_run_with_train_epochs_0_exports_the_untrained_model(tmp_path, user):
    """``train.epochs: 0`` (a user checking the flow before training) saved a model whose activation scales had
    seen no training step; the export stage then refused it as "saved by an older hapfpga". The run now goes on
    to export, with the zoo's model and with a user's factory file (examples/my_model.py)."""
    import yaml

    from hapfpga.cli import main

    cfg = yaml.safe_load(_user_run_config(tmp_path, {}).read_text())
    cfg.pop("pruning")
    cfg["train"]["epochs"] = 0
    if not user:
        cfg["model"] = {"name": "digits_cnn"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "c.yaml"), "--out", str(out), "--to", "export"]) == 0
    m = load_model(out / "baseline.pt")
    x = torch.rand(4, 1, 8, 8)
    again = load_model(save_model(m, tmp_path / "again.pt"))
    np.testing.assert_array_equal(m(x).detach().numpy(), again(x).detach().numpy())


def test_a_user_model_sparse_trained_then_pruned_by_hapfpga_run(tmp_path, capsys):
    """The user path of ``pruning.sparsify_epochs``: a user's factory file (BatchNorm after every layer), sparse
    training, uniform pruning by the trained scales, export. The pruned model has half the channels, reloads from
    the factory, and the report counts the sparse epochs; with ``importance: l1`` the same config is one sentence,
    exit 2, before any training."""
    import json

    import yaml

    from hapfpga.cli import main

    pruning = {"method": "uniform", "target": "ratio", "ratio": 0.5, "importance": "bn_scale", "sparsify_epochs": 1,
               "sparsify_strength": 0.05, "finetune_epochs": 0.5, "sensitivity": False}
    cfg = _user_run_config(tmp_path, pruning)
    out = tmp_path / "run"
    assert main(["run", str(cfg), "--out", str(out), "--to", "export"]) == 0
    prun = json.loads((out / "pruning" / "pruning.json").read_text())  # report.json's pruning section, at export
    assert all(prun["channels_after"][g] < n for g, n in prun["channels_before"].items())
    assert prun["sparsify"]["epochs"] == 1 and prun["sparsify"]["mean_scale_after"] < prun["sparsify"]["mean_scale_before"]
    assert prun["extra_epochs"] == pytest.approx(1.5)
    pruned = load_model(out / "pruned.pt")
    assert {g: layer_channels(pruned)[g] for g in prun["channels_after"]} == prun["channels_after"]

    bad = yaml.safe_load(cfg.read_text())
    bad["pruning"]["importance"] = "l1"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs pruning.importance: bn_scale" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "bad" / "baseline.pt").exists()

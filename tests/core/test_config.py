"""The config system: typed sections, key-path errors, round trips."""

import pytest

from hapfpga.config import config_hash, from_dict, load_yaml, to_dict
from hapfpga.errors import ConfigError
from hapfpga.runconfig import RunConfig, load_run_config


def test_examples_load(tmp_path):
    cfg = load_run_config("examples/demo.yaml")
    assert cfg.board == "pynq-z2" and cfg.model.name == "digits_cnn" and cfg.data.name == "digits"
    cnv = load_run_config("examples/cnv_digits.yaml")
    assert cnv.model.name == "cnv" and cnv.data.size == 32 and cnv.data.channels == 3


def test_round_trip_and_hash():
    cfg = from_dict(RunConfig, {"model": {"name": "tfc", "layer_weight_bits": {0: 4}}, "train": {"epochs": 3}})
    again = from_dict(RunConfig, to_dict(cfg))
    assert again == cfg
    assert config_hash(cfg) == config_hash(again)
    assert config_hash(cfg) != config_hash(from_dict(RunConfig, {"train": {"epochs": 4}}))
    assert cfg.model.quant.weight_bits_of(0) == 4 and cfg.model.quant.weight_bits_of(1) == 2


@pytest.mark.parametrize(
    "data, match",
    [
        ({"modle": {}}, "Unknown config key 'modle'"),
        ({"model": {"nmae": "x"}}, "Unknown config key 'model.nmae'"),
        ({"train": {"epochs": "ten"}}, "'train.epochs' must be an integer"),
        ({"train": {"lr": -1}}, "'train.lr'"),
        ({"data": {"name": "imagenet"}}, "'data.name' is 'imagenet'; choose one of"),
        ({"folding": {"mode": "fps"}}, "'folding.fps' must be a positive number"),
        ({"model": {"weight_bits": 0}}, "'model.weight_bits' is 0"),
        ({"verify": {"n_samples": 0}}, "'verify.n_samples'"),
        ({"model": []}, "'model' must be a mapping"),
        ({"train": {"epochs": True}}, "'train.epochs' must be an integer"),
    ],
)
def test_bad_config_names_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(RunConfig, data)


def test_yaml_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml(lst)

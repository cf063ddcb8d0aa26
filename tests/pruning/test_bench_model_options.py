"""``benchmarks/pruning_vs_finn.py --model-options JSON`` (issue 24, a depthwise model a KWS user would use): the
options reach the zoo factory that builds the baseline, they are part of every cache key that names the
baseline's architecture, runs without them keep their old keys, and a malformed value is argparse's exit 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "pruning_vs_finn", Path(__file__).resolve().parents[2] / "benchmarks" / "pruning_vs_finn.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _args(*extra: str):
    return bench.make_parser().parse_args(["--model", "ds_cnn", "--bits", "4", *extra])


def _convs(model) -> list[torch.nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("channels, stride", [([64, 64, 64, 64, 64], 2), ([8, 12], 1), ([24, 16, 32, 8], 2),
                                              ([5, 7, 3], 1)])
def test_options_reach_the_model(channels, stride):
    opts = {"channels": channels, "stem_stride": stride, "pool": "avg" if stride == 2 else "max"}
    args = _args("--model-options", json.dumps(opts))
    model = bench.build_baseline(args, (3, 32, 32), 10, seed=0)
    convs = _convs(model)
    # stem, then per block a depthwise conv (channels kept, groups = channels) and a pointwise one
    assert [c.out_channels for c in convs[::2]] == channels
    assert [c.groups for c in convs[1::2]] == channels[:-1]
    assert convs[0].stride == (stride, stride)
    side = 32 // stride
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert model.features[:3](torch.rand(1, 3, 32, 32)).shape == (1, channels[0], side, side)


def test_no_options_is_the_zoo_default():
    model = bench.build_baseline(_args(), (3, 32, 32), 10, seed=0)
    assert [c.out_channels for c in _convs(model)[::2]] == [16, 16, 16]
    assert _convs(model)[0].stride == (1, 1)


def test_options_change_the_cache_keys():
    plain = _args()
    opts = [_args("--model-options", json.dumps({"channels": c, "stem_stride": 2, "pool": "avg"}))
            for c in ([64] * 5, [64] * 4, [32] * 5)]
    keys = [json.dumps(bench.baseline_key(a, "digits", 1145, 0), sort_keys=True, default=str) for a in [plain, *opts]]
    assert len(set(keys)) == len(keys)
    # without options the key is the one before the flag existed (old caches stay valid)
    assert "model_options" not in bench.baseline_key(plain, "digits", 1145, 0)
    assert bench.model_key(plain) == {"model": "ds_cnn", "bits": 4}
    assert bench.model_key(opts[0])["model_options"]["channels"] == [64] * 5


@pytest.mark.parametrize("bad", ["[64, 64]", "{channels: 3}", "7", "\"ds\""])
def test_malformed_options_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--model", "ds_cnn", "--model-options", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--model-options" in err and len(err.strip().splitlines()[-1]) < 300

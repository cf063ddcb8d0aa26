"""``benchmarks/pruning_vs_finn.py --data JSON`` (issue 24, capability 1: a selection split of 1,000+ samples needs
a dataset larger than digits): the section is the run's ``data`` section, loaded as ``hapfpga run`` loads it; the
loaded arrays' hash is in every cache key (a changed file is a new key, the same files the same key); runs without
``--data`` keep their old keys; a wrong section is one sentence and exit 2."""

from __future__ import annotations

import gzip
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "pruning_vs_finn", Path(__file__).resolve().parents[2] / "benchmarks" / "pruning_vs_finn.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def _idx(path: Path, arr: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    path.with_name(path.name + ".gz").write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


def _mnist_folder(root: Path, n_train: int, n_test: int, seed: int) -> dict:
    """An MNIST-format folder (Fashion-MNIST's Debian package has this layout: gzipped idx files in one folder)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[split] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        _idx(root / f"{split}-images-idx3-ubyte", arrays[split][0])
        _idx(root / f"{split}-labels-idx1-ubyte", arrays[split][1])
    return arrays


def _args(*extra: str):
    return bench.make_parser().parse_args(["--model", "resnet8", "--bits", "4", *extra])


def _key(args) -> str:
    return json.dumps(bench.baseline_key(args, "mnist", 100, 0), sort_keys=True, default=str)


def test_default_is_digits_and_keys_unchanged():
    args = _args()
    data = bench.load_bench_data(args)
    assert data.name.startswith("digits") and data.input_shape == (3, 32, 32) and len(data.x_train) + len(data.x_test) == 1797
    assert len(args.data_sha) == 16
    assert bench.model_key(args) == {"model": "resnet8", "bits": 4}  # the key before --data existed


@pytest.mark.parametrize("n_train, n_test, max_train, max_test", [(40, 9, None, None), (57, 20, 30, 7),
                                                                   (25, 13, 24, None), (33, 5, 100, 2)])
def test_data_section_loads_and_names_the_content(tmp_path, n_train, n_test, max_train, max_test):
    arrays = _mnist_folder(tmp_path / "a", n_train, n_test, seed=n_train)
    section = {"name": "mnist", "path": str(tmp_path / "a")}
    section.update({k: v for k, v in (("max_train", max_train), ("max_test", max_test)) if v is not None})
    args = _args("--data", json.dumps(section))
    data = bench.load_bench_data(args)
    assert data.input_shape == (1, 28, 28)
    assert len(data.x_train) == min(n_train, max_train or n_train)
    assert len(data.x_test) == min(n_test, max_test or n_test)
    # a subset is the same whatever the seed of the run (every seed sees the same data, split its own way)
    again = _args("--data", json.dumps(section))
    np.testing.assert_array_equal(bench.load_bench_data(again).y_train, data.y_train)
    assert again.data_sha == args.data_sha and _key(again) == _key(args)
    # the images are the files' own (k/255, in the original order)
    if max_train is None:
        np.testing.assert_allclose(data.x_train[:, 0] * 255, arrays["train"][0], atol=1e-3)
    key = bench.model_key(args)["data_section"]
    assert {k: key[k] for k in section} == section and key["sha"] == args.data_sha

    # the same files with one pixel of every training image changed, in place: the same section, another key
    imgs = arrays["train"][0].copy()
    imgs[:, 0, 0] = (imgs[:, 0, 0] + 1) % 256
    _idx(tmp_path / "a" / "train-images-idx3-ubyte", imgs)
    changed = _args("--data", json.dumps(section))
    bench.load_bench_data(changed)
    assert changed.data_sha != args.data_sha and _key(changed) != _key(args)
    assert _key(args) != _key(_args())


def test_same_content_same_sha(tmp_path):
    _mnist_folder(tmp_path / "a", 30, 6, seed=3)
    _mnist_folder(tmp_path / "b", 30, 6, seed=3)
    a = _args("--data", json.dumps({"name": "mnist", "path": str(tmp_path / "a")}))
    b = _args("--data", json.dumps({"name": "mnist", "path": str(tmp_path / "b")}))
    bench.load_bench_data(a), bench.load_bench_data(b)
    assert a.data_sha == b.data_sha


@pytest.mark.parametrize("section, words", [
    ({"name": "mnist"}, "needs data.path"),
    ({"name": "mnist", "path": "/nonexistent/fmnist"}, "does not exist"),
    ({"name": "digits", "sise": 32}, "Unknown config key 'data.sise'"),
    ({"name": "imagenet"}, "data.name"),
    ({"name": "digits", "max_train": "many"}, "data.max_train"),
])
def test_wrong_section_is_one_sentence_and_exit_2(section, words, capsys):
    assert bench.main(["--model", "resnet8", "--data", json.dumps(section)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and err[0].startswith("pruning_vs_finn.py: error: --data:")

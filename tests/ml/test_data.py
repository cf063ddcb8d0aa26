"""Datasets: digits split and grid, upsampling, npz validation, local MNIST/CIFAR-10 folders (fakes made here)."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from hapfpga.data import INPUT_SCALE, load_cifar10, load_dataset, load_digits, load_mnist, load_npz, to_uint8
from hapfpga.errors import DataError
from hapfpga.runconfig import DataConfig


def test_digits_split_is_sklearns_stratified_split():
    from sklearn.datasets import load_digits as sk
    from sklearn.model_selection import train_test_split

    d = sk()
    _, _, y_tr, y_te = train_test_split(d.data, d.target, test_size=0.25, random_state=0, stratify=d.target)
    ds = load_digits()
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert len(ds.x_train) + len(ds.x_test) == len(d.target) == 1797
    np.testing.assert_array_equal(ds.y_train, y_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.x_train.dtype == np.float32 and ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0


def test_digits_pixels_are_exactly_the_uint8_grid_the_graph_computes():
    ds = load_digits()
    k = to_uint8(ds.x_test)
    # the exported graph computes float32(k) * float32(1/255): the dataset must hold exactly those numbers
    np.testing.assert_array_equal(k.astype(np.float32) * INPUT_SCALE, ds.x_test)
    # and every pixel is the rounding of one of the 17 source levels 0..16 (scaled to [0, 1])
    levels = np.float32(np.round(np.arange(17) / 16.0 * 255.0)) * INPUT_SCALE
    assert set(np.unique(ds.x_train).tolist()) <= set(levels.tolist())


def test_digits_upsampled_and_repeated_for_cnv():
    small, big = load_digits(), load_digits(size=32, channels=3)
    assert big.input_shape == (3, 32, 32)
    np.testing.assert_array_equal(big.y_test, small.y_test)
    for c in range(3):  # nearest-neighbour: every 4x4 block repeats one pixel, on every channel
        np.testing.assert_array_equal(big.x_test[:, c, ::4, ::4], small.x_test[:, 0])
        np.testing.assert_array_equal(big.x_test[:, c, 3::4, 3::4], small.x_test[:, 0])
    with pytest.raises(DataError, match="multiple of 8"):
        load_digits(size=30)


def _save(tmp_path, **arrs):
    p = tmp_path / "d.npz"
    np.savez(p, **arrs)
    return p


def _good(n=20, shape=(1, 4, 4)):
    rng = np.random.default_rng(0)
    return dict(
        x_train=rng.random((n, *shape), dtype=np.float32),
        y_train=np.arange(n) % 3,
        x_test=rng.random((n // 2, *shape), dtype=np.float32),
        y_test=np.arange(n // 2) % 3,
    )


@pytest.mark.parametrize("shape", [(1, 4, 4), (2, 16), (7,)])
def test_npz_used_exactly_as_given(tmp_path, shape):
    g = _good(shape=shape)
    ds = load_npz(_save(tmp_path, **g))
    np.testing.assert_array_equal(ds.x_train, g["x_train"])  # not snapped to a grid: exactly as given
    np.testing.assert_array_equal(ds.y_test, g["y_test"])
    assert ds.input_shape == shape and ds.num_classes == 3


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda g: g.pop("y_test"), "lacks key"),
        (lambda g: g.update(x_train=g["x_train"].astype(np.float64)), "float32"),
        (lambda g: g["x_train"].__setitem__((0, 0, 0, 0), np.nan), "NaN"),
        (lambda g: g["x_test"].__setitem__((0, 0, 0, 0), 3.0), r"\[0, 1\]"),
        (lambda g: g.update(y_train=g["y_train"][:-1]), "one label per row"),
        (lambda g: g.update(y_train=-g["y_train"] - 1), "negative"),
        (lambda g: g.update(y_train=g["y_train"].astype(np.float32)), "integers"),
        (lambda g: g.update(x_test=g["x_test"][:0], y_test=g["y_test"][:0]), "empty"),
        (lambda g: g.update(x_test=g["x_test"][:, :, :2]), "same shape"),
        (lambda g: g.update(x_train=g["x_train"][:, 0, 0, 0]), "N×F"),
        (lambda g: g.update(y_test=g["y_test"] + 5), "never shows"),
    ],
)
def test_npz_errors_are_one_sentence(tmp_path, change, match):
    g = _good()
    change(g)
    with pytest.raises(DataError, match=match) as e:
        load_npz(_save(tmp_path, **g))
    assert "\n" not in str(e.value)


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(name="npz", path=str(tmp_path / "nope.npz")))
    with pytest.raises(DataError, match="data.path"):
        load_dataset(DataConfig(name="npz"))


def _idx(path, arr, gz):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_torchvision_folder(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    imgs = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 6), ("t10k", 3))}
    labs = {s: rng.integers(0, 10, len(v)) for s, v in imgs.items()}
    for s in imgs:
        _idx(raw / f"{s}-images-idx3-ubyte", imgs[s], gz)
        _idx(raw / f"{s}-labels-idx1-ubyte", labs[s], gz)
    ds = load_dataset(DataConfig(name="mnist", path=str(tmp_path)))
    assert ds.input_shape == (1, 28, 28) and len(ds.x_train) == 6 and len(ds.x_test) == 3
    np.testing.assert_array_equal(to_uint8(ds.x_train)[:, 0], imgs["train"])
    np.testing.assert_array_equal(ds.y_test, labs["t10k"])


def test_mnist_missing_file_never_downloads(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(DataError, match="nothing is downloaded"):
        load_mnist(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist(tmp_path / "absent")


def test_cifar10_from_torchvision_folder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(2)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072)).astype(np.uint8)
        labels = rng.integers(0, 10, 2).tolist()
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
    ds = load_cifar10(tmp_path)
    assert ds.input_shape == (3, 32, 32) and len(ds.x_train) == 10 and len(ds.x_test) == 2
    np.testing.assert_array_equal(to_uint8(ds.x_test).reshape(2, -1), batches["test_batch"][0])
    np.testing.assert_array_equal(ds.y_train[:2], batches["data_batch_1"][1])
    (folder / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch"):
        load_cifar10(folder)


def test_max_train_and_test_take_seeded_subsets():
    a = load_dataset(DataConfig(max_train=100, max_test=50), seed=3)
    b = load_dataset(DataConfig(max_train=100, max_test=50), seed=3)
    c = load_dataset(DataConfig(max_train=100, max_test=50), seed=4)
    assert len(a.x_train) == 100 and len(a.x_test) == 50
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train)


# -- the procedural 1D dataset and the dataset table ------------------------------------------------------------


def test_signals_are_fixed_balanced_n_c_l_on_the_uint8_grid():
    from hapfpga.data import SIGNAL_CLASSES, load_signals

    a, b = load_signals(size=32, channels=2), load_signals(size=32, channels=2)
    np.testing.assert_array_equal(a.x_train, b.x_train)  # the dataset is fixed, not drawn per run
    assert a.input_shape == (2, 32) and a.num_classes == len(SIGNAL_CLASSES) == 4
    assert a.x_train.dtype == np.float32 and a.x_train.min() >= 0.0 and a.x_train.max() <= 1.0
    np.testing.assert_array_equal(to_uint8(a.x_test).astype(np.float32) * INPUT_SCALE, a.x_test)
    counts = np.bincount(a.y_train, minlength=4)
    assert counts.min() > 0.2 * len(a.y_train)  # every class present, roughly balanced
    # the class is not readable off the raw values (random phase): a linear model on raw samples is near chance,
    # so a model must find the waveform's shape (a 1D convolution's job)
    from sklearn.linear_model import LogisticRegression

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    lin = LogisticRegression(max_iter=500).fit(flat(a.x_train), a.y_train).score(flat(a.x_test), a.y_test)
    assert lin < 0.45
    # but the classes differ: the per-sample spectrum separates them well above chance
    spec = lambda x: np.abs(np.fft.rfft(x[:, 0], axis=1))  # noqa: E731
    feat = LogisticRegression(max_iter=2000).fit(spec(a.x_train), a.y_train).score(spec(a.x_test), a.y_test)
    assert feat > 0.6


def test_dataset_table_and_shape_keys():
    from hapfpga.data import DATASETS

    assert set(DATASETS) == {"digits", "signals", "npz", "mnist", "cifar10"}
    ds = load_dataset(DataConfig(name="signals", size=16, channels=3, max_train=20, max_test=10))
    assert ds.input_shape == (3, 16) and len(ds.x_train) == 20 and len(ds.x_test) == 10
    with pytest.raises(DataError, match="apply to digits, signals only"):
        load_dataset(DataConfig(name="npz", path="x.npz", size=8))
    with pytest.raises(DataError, match="needs data.path"):
        load_dataset(DataConfig(name="mnist"))
    with pytest.raises(DataError, match="length of 8"):
        load_dataset(DataConfig(name="signals", size=4))

"""Datasets, offline only: scikit-learn's bundled digits, procedural 1D signals, ``.npz`` files, local MNIST and
CIFAR-10 folders, looked up in one table (:data:`DATASETS`).

Every loader returns a :class:`Dataset` of float32 arrays in [0, 1] (images N×C×H×W, signals N×C×L, vectors N×F)
and int64 labels.
Nothing is ever downloaded: MNIST and CIFAR-10 are read from folders in torchvision's on-disk format.

Input convention for FINN: the hardware takes UINT8 pixels ``k`` and the exported graph multiplies them by
``1/255`` (:func:`hapfpga.export.export_qonnx`). The built-in loaders therefore put pixels on that grid exactly
as the graph computes it, ``float32(k) * float32(1/255)`` (:func:`to_uint8_grid`), so training, the Brevitas
model and the hardware see the same numbers. ``npz`` data is used exactly as given (the issue asks for that);
verification always feeds both sides the UINT8 grid (:func:`hapfpga.verify.verify_chain`).

Digits split: ``train_test_split(test_size=0.25, random_state=0, stratify=y)`` (scikit-learn), as the issue fixes.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from .runconfig import DataConfig

__all__ = [
    "Dataset",
    "load_dataset",
    "load_digits",
    "load_signals",
    "load_npz",
    "DATASETS",
    "DatasetEntry",
    "load_mnist",
    "load_cifar10",
    "to_uint8_grid",
    "INPUT_SCALE",
    "split_validation",
]

#: The factor the exported graph applies to the UINT8 input (float32, as ONNX computes it).
INPUT_SCALE = np.float32(1.0 / 255.0)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/test arrays: ``x`` float32 in [0, 1] (N×C×H×W, N×C×L or N×F), ``y`` int64 class indices."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the batch dimension."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


def to_uint8_grid(x: np.ndarray) -> np.ndarray:
    """Snap values in [0, 1] to ``k/255`` exactly as the exported graph computes it: ``float32(k) * float32(1/255)``."""
    k = np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.float32)
    return k * INPUT_SCALE


def to_uint8(x: np.ndarray) -> np.ndarray:
    """The UINT8 pixels ``k = round(255 x)`` the hardware receives for inputs ``x`` in [0, 1]."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


# -- loaders ---------------------------------------------------------------------------------------------


def load_digits(size: int | None = None, channels: int = 1) -> Dataset:
    """scikit-learn's bundled 8×8 digits (values 0..16 scaled to [0, 1]), optionally upsampled and repeated.

    ``size``: upsample 8×8 to ``size``×``size`` by nearest-neighbour repetition (``size`` must be a multiple
    of 8, e.g. 32 for FINN's CNV); ``channels``: repeat the grey channel (3 for CNV). Split as the issue fixes:
    ``train_test_split(test_size=0.25, random_state=0, stratify=y)``.
    """
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    d = sk_digits()
    x = (d.images.astype(np.float64) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    if size is not None and size != 8:
        if size < 8 or size % 8:
            raise DataError(f"data.size is {size}; digits can be upsampled to a multiple of 8 (e.g. 32).")
        r = size // 8
        x = x.repeat(r, axis=2).repeat(r, axis=3)
    if channels < 1:
        raise DataError(f"data.channels is {channels}; use 1 or more channels.")
    if channels > 1:
        x = np.repeat(x, channels, axis=1)
    x = to_uint8_grid(x)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    name = "digits" if size in (None, 8) and channels == 1 else f"digits-{size or 8}x{channels}"
    return Dataset(name, np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te, 10)


#: The waveforms of :func:`load_signals`, one class each.
SIGNAL_CLASSES: tuple[str, ...] = ("sine", "square", "sawtooth", "chirp")


def load_signals(size: int | None = None, channels: int = 1, n_train: int = 768, n_test: int = 256) -> Dataset:
    """A procedural 1D dataset (no files): N×C×L signals of four waveform classes (:data:`SIGNAL_CLASSES`).

    Each sample is a waveform with random frequency (2 to 6 periods per window), phase and amplitude plus
    Gaussian noise (σ = 0.35 of full scale); channel ``c`` is the waveform shifted by a quarter period per
    channel (2 channels: an I/Q pair, as radio data). ``size`` is the length L (default 64, at least 8). Values
    are mapped to [0, 1] on the UINT8 grid. Always generated from the same seed, so the dataset is fixed.
    """
    length = 64 if size is None else int(size)
    if length < 8:
        raise DataError(f"data.size is {length}; signals need a length of 8 or more samples.")
    if channels < 1:
        raise DataError(f"data.channels is {channels}; use 1 or more channels.")
    rng = np.random.default_rng(20_241_126)
    n = n_train + n_test
    y = np.arange(n) % len(SIGNAL_CLASSES)
    rng.shuffle(y)
    t = np.arange(length, dtype=np.float64)[None, None, :] / length  # (1, 1, L) in [0, 1)
    periods = rng.uniform(2.0, 6.0, (n, 1, 1))
    phase = rng.uniform(0.0, 1.0, (n, 1, 1)) + np.arange(channels)[None, :, None] * 0.25
    amp = rng.uniform(0.5, 1.0, (n, 1, 1))
    cyc = periods * t + phase  # (n, C, L) in periods
    chirp = periods * t * (0.5 + t) + phase  # frequency rising over the window
    waves = np.stack([np.sin(2 * np.pi * cyc), np.sign(np.sin(2 * np.pi * cyc)),
                      2.0 * (cyc % 1.0) - 1.0, np.sin(2 * np.pi * chirp)])  # (4, n, C, L)
    x = amp * waves[y, np.arange(n)] + rng.normal(0.0, 0.35, (n, channels, length))
    x = to_uint8_grid(np.clip(0.5 + 0.3 * x, 0.0, 1.0))
    name = f"signals-{channels}x{length}"
    return Dataset(name, x[:n_train], y[:n_train].astype(np.int64), x[n_train:], y[n_train:].astype(np.int64),
                   len(SIGNAL_CLASSES))


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz(path: str | Path) -> Dataset:
    """An ``.npz`` with ``x_train, y_train, x_test, y_test``: x float32 in [0, 1] (N×C×H×W, N×C×L or N×F), y integer
    labels 0..K-1. Used exactly as given; anything else is a one-sentence DataError naming the fix."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"Dataset file '{p}' does not exist; set data.path to an .npz file.")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrs = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(
            f"Dataset file '{p}' is not a readable .npz ({type(e).__name__}); save it with numpy.savez."
        ) from e
    missing = [k for k in _NPZ_KEYS if k not in arrs]
    if missing:
        raise DataError(
            f"Dataset file '{p}' lacks key(s) {', '.join(missing)}; it needs {', '.join(_NPZ_KEYS)}."
        )
    xs = {}
    for k in ("x_train", "x_test"):
        x = arrs[k]
        if x.dtype != np.float32:
            raise DataError(f"'{k}' in '{p}' is {x.dtype}; store inputs as float32 in [0, 1].")
        if x.ndim not in (2, 3, 4):
            raise DataError(
                f"'{k}' in '{p}' has shape {x.shape}; use N×F vectors, N×C×L signals or N×C×H×W images."
            )
        if len(x) == 0:
            raise DataError(f"'{k}' in '{p}' is empty; give at least one sample.")
        if not np.isfinite(x).all():
            raise DataError(f"'{k}' in '{p}' contains NaN or infinite values; clean the data.")
        if x.min() < 0.0 or x.max() > 1.0:
            raise DataError(
                f"'{k}' in '{p}' has values in [{x.min():.4g}, {x.max():.4g}]; scale inputs to [0, 1] (pixels / 255)."
            )
        xs[k] = x
    if xs["x_train"].shape[1:] != xs["x_test"].shape[1:]:
        raise DataError(
            f"x_train samples have shape {xs['x_train'].shape[1:]} but x_test samples {xs['x_test'].shape[1:]} "
            f"in '{p}'; give both the same shape."
        )
    ys = {}
    for k, xk in (("y_train", "x_train"), ("y_test", "x_test")):
        y = arrs[k]
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"'{k}' in '{p}' is {y.dtype}; store labels as integers 0..K-1.")
        if y.ndim != 1 or len(y) != len(xs[xk]):
            raise DataError(
                f"'{k}' in '{p}' has shape {y.shape}; it needs one label per row of {xk} ({len(xs[xk])})."
            )
        if y.min() < 0:
            raise DataError(f"'{k}' in '{p}' has negative label {int(y.min())}; use labels 0..K-1.")
        ys[k] = y.astype(np.int64)
    num_classes = int(max(ys["y_train"].max(), ys["y_test"].max())) + 1
    if num_classes < 2:
        raise DataError(f"Dataset '{p}' has a single class; classification needs at least two labels.")
    unseen = sorted(set(np.unique(ys["y_test"]).tolist()) - set(np.unique(ys["y_train"]).tolist()))
    if unseen:
        raise DataError(
            f"y_test in '{p}' has label(s) {unseen[:5]} that y_train never shows; check the labels."
        )
    return Dataset(p.stem, xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], num_classes)


def _open_maybe_gz(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _find(folder: Path, names: list[str], dataset: str) -> Path:
    for n in names:
        for cand in (folder / n, folder / f"{n}.gz"):
            if cand.is_file():
                return cand
    raise DataError(
        f"{dataset} file '{names[0]}[.gz]' is not in '{folder}'; point data.path at torchvision's folder "
        "(nothing is downloaded)."
    )


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format: magic 0x0000080D with D dimensions of big-endian uint32, uint8 data)."""
    with _open_maybe_gz(path) as f:
        raw = f.read()
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"MNIST file '{path}' is truncated; replace it with torchvision's raw file.")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or dims != ndim:
        raise DataError(
            f"MNIST file '{path}' is not an IDX uint8 file with {ndim} dimension(s); check the folder."
        )
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(
            f"MNIST file '{path}' holds {data.size} values but its header says {shape}; it is damaged."
        )
    return data.reshape(shape)


def load_mnist(path: str | Path) -> Dataset:
    """MNIST from a local folder in torchvision's format: ``ROOT/MNIST/raw/`` (or the folder itself) holding
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``). Images become N×1×28×28 float32 ``k/255``."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"MNIST folder '{root}' does not exist; set data.path to torchvision's MNIST root.")
    folder = next(
        (f for f in (root / "MNIST" / "raw", root / "raw", root) if f.is_dir() and any(f.glob("*idx*"))), root
    )
    xs, ys = {}, {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = _read_idx(
            _find(folder, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"], "MNIST"), 3
        )
        lab = _read_idx(
            _find(folder, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"], "MNIST"), 1
        )
        if len(img) != len(lab):
            raise DataError(f"MNIST {split} split in '{folder}' has {len(img)} images but {len(lab)} labels.")
        xs[split] = img[:, None, :, :].astype(np.float32) * INPUT_SCALE
        ys[split] = lab.astype(np.int64)
    return Dataset("mnist", xs["train"], ys["train"], xs["test"], ys["test"], 10)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as e:
        raise DataError(
            f"CIFAR-10 file '{path}' is not a readable pickle ({type(e).__name__}); re-extract it."
        ) from e


def load_cifar10(path: str | Path) -> Dataset:
    """CIFAR-10 from a local folder in torchvision's format: ``ROOT/cifar-10-batches-py/`` (or that folder) with
    ``data_batch_1..5`` and ``test_batch`` (Python pickles of ``data`` N×3072 uint8, ``labels``). Images become
    N×3×32×32 float32 ``k/255``. Only local files are read (they are the dataset authors' own pickles)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"CIFAR-10 folder '{root}' does not exist; set data.path to torchvision's CIFAR-10 root."
        )
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root

    def read(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for n in names:
            f = folder / n
            if not f.is_file():
                raise DataError(
                    f"CIFAR-10 file '{n}' is not in '{folder}'; point data.path at torchvision's cifar-10-batches-py."
                )
            d = _unpickle(f)
            data, labels = d.get(b"data"), d.get(b"labels")
            if data is None or labels is None:
                raise DataError(f"CIFAR-10 file '{f}' lacks 'data' or 'labels'; re-extract it.")
            xs.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(labels, dtype=np.int64))
        return np.concatenate(xs).astype(np.float32) * INPUT_SCALE, np.concatenate(ys)

    x_tr, y_tr = read([f"data_batch_{i}" for i in range(1, 6)])
    x_te, y_te = read(["test_batch"])
    return Dataset("cifar10", x_tr, y_tr, x_te, y_te, 10)


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator, what: str):
    if n is None or n >= len(x):
        return x, y
    if n < 1:
        raise DataError(f"data.{what} is {n}; use 1 or more samples.")
    idx = np.sort(rng.permutation(len(x))[:n])
    return x[idx], y[idx]


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of :data:`DATASETS`: its loader and which ``data`` keys it takes."""

    load: Callable[[DataConfig], Dataset]
    #: "file" or "folder" when ``data.path`` is required, None when the dataset is built in
    path: str | None
    #: takes ``data.size`` / ``data.channels``
    shaped: bool


#: Every dataset, by ``data.name``: one lookup, no if/elif chain.
DATASETS: dict[str, DatasetEntry] = {
    "digits": DatasetEntry(lambda c: load_digits(c.size, c.channels), None, True),
    "signals": DatasetEntry(lambda c: load_signals(c.size, c.channels), None, True),
    "npz": DatasetEntry(lambda c: load_npz(c.path), "file", False),
    "mnist": DatasetEntry(lambda c: load_mnist(c.path), "folder", False),
    "cifar10": DatasetEntry(lambda c: load_cifar10(c.path), "folder", False),
}


def load_dataset(cfg: DataConfig, seed: int = 0) -> Dataset:
    """The dataset of a run's ``data`` section; ``max_train`` / ``max_test`` keep a seeded random subset
    (in the original order)."""
    entry = DATASETS.get(cfg.name)
    if entry is None:
        raise DataError(f"Unknown dataset '{cfg.name}'; use one of {', '.join(DATASETS)}.")
    if not entry.shaped and (cfg.size is not None or cfg.channels != 1):
        shaped = ", ".join(n for n, e in DATASETS.items() if e.shaped)
        raise DataError(
            f"data.size and data.channels apply to {shaped} only, not to '{cfg.name}'; remove them."
        )
    if entry.path and not cfg.path:
        raise DataError(f"Dataset '{cfg.name}' needs data.path (a local {entry.path}).")
    ds = entry.load(cfg)
    if cfg.max_train is None and cfg.max_test is None:
        return ds
    rng = np.random.default_rng(seed)
    x_tr, y_tr = _subset(ds.x_train, ds.y_train, cfg.max_train, rng, "max_train")
    x_te, y_te = _subset(ds.x_test, ds.y_test, cfg.max_test, rng, "max_test")
    return Dataset(ds.name, x_tr, y_tr, x_te, y_te, ds.num_classes)


def array_digest(*arrays: Any) -> str:
    """A hash of ``arrays``' shapes and bytes (16 hex digits): what names a dataset in a cache key or a check that
    two processes hold the same data."""
    import hashlib

    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def split_validation(x: Any, y: Any, fraction: float, seed: int) -> tuple[Any, Any, Any, Any]:
    """Deterministic split of training data into (x_fit, y_fit, x_val, y_val) (the pruning search decides on the
    validation part; a ``fraction`` that rounds to no sample gives the whole set as both)."""
    n = len(x)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_val = int(round(n * fraction))
    if n_val == 0:
        return x, y, x, y
    val, fit = perm[:n_val], perm[n_val:]
    return x[fit], y[fit], x[val], y[val]

"""The accelerator API shared by the board runtime and the simulated backend (numpy only).

This module is shipped to the board inside the deployment package (``deploy/hapfpga_deploy/``), so
it imports nothing but the standard library and numpy: no torch, finn or qonnx.

An accelerator takes inputs in the *dataset's* domain (float32, the shape of one sample, batch first),
maps them to the accelerator's input domain with the package manifest's ``input_scale``
(``x_acc = x * input_scale``; 255 for an 8-bit unsigned image input, 1 when the network quantises its
own float input), runs them and returns the raw output (scores, or class indices when the
network ends in FINN's LabelSelect).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MANIFEST", "Accelerator", "Measurement", "load_manifest"]

#: File name of the package manifest (inside the ``deploy/`` directory).
MANIFEST = "manifest.json"


def load_manifest(package_dir: str | Path) -> dict[str, Any]:
    """The manifest of a deployment package directory."""
    path = Path(package_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; is {package_dir} a hapfpga deployment package (DIR/deploy)?")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class Measurement:
    """What ``Accelerator.measure`` found.

    ``fps``: samples / wall-clock second over the whole set, batched; ``latency_ms``: median wall-clock
    time of one single-sample call. On the simulated backend both are host timings of FINN's Python
    execution, *not* board figures: ``estimated_fps`` (FINN's estimate, clock / max cycles) is the
    board prediction.
    """

    backend: str
    n: int
    batch_size: int
    fps: float
    latency_ms: float
    accuracy: float | None
    estimated_fps: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        est = "" if self.estimated_fps is None else f", FINN-estimated board throughput {self.estimated_fps:,.0f} FPS"
        return (f"[{self.backend}] {self.n} samples, batch {self.batch_size}: throughput {self.fps:,.1f} FPS, "
                f"latency {self.latency_ms:.3f} ms, accuracy {acc}{est}")


class Accelerator(ABC):
    """One deployed network: ``run`` (raw outputs), ``predict`` (labels), ``measure`` (FPS, latency, accuracy)."""

    backend: str = "?"

    def __init__(self, package_dir: str | Path):
        self.package_dir = Path(package_dir).resolve()
        self.manifest = load_manifest(self.package_dir)

    # -- to implement -----------------------------------------------------------------------------
    @abstractmethod
    def _run_acc(self, x_acc: np.ndarray) -> np.ndarray:
        """Run a batch already in the accelerator's input domain; returns the raw output batch."""

    # -- shared -----------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (no batch dimension)."""
        return tuple(self.manifest["input_shape"][1:])

    @property
    def input_scale(self) -> float:
        return float(self.manifest.get("input_scale", 1.0))

    def to_accelerator_domain(self, x: np.ndarray) -> np.ndarray:
        """Dataset floats -> accelerator input (``x * input_scale``, rounded for integer inputs)."""
        x = np.asarray(x, dtype=np.float32).reshape((-1, *self.input_shape))
        xa = x * np.float32(self.input_scale)
        if self.manifest.get("input_integer", False):
            xa = np.round(xa)
        return xa.astype(np.float32)

    def run(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw outputs for dataset-domain inputs ``x`` (batch first), in batches of ``batch_size``."""
        xa = self.to_accelerator_domain(x)
        bs = int(batch_size or self.manifest.get("batch_size", 1) or 1)
        outs = [self._run_acc(xa[i : i + bs]) for i in range(0, len(xa), bs)]
        return np.concatenate(outs, axis=0) if outs else np.zeros((0,))

    def predict(self, x: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Class index per sample (argmax of the scores, or the LabelSelect output)."""
        out = self.run(x, batch_size)
        if self.manifest.get("output_kind") == "label":
            return out.reshape(len(out), -1)[:, 0].astype(np.int64)
        return out.reshape(len(out), -1).argmax(axis=1)

    def measure(self, x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int | None = None,
                latency_repeats: int = 5) -> Measurement:
        """Throughput over all of ``x`` (batched), median single-sample latency, accuracy against ``y``."""
        x = np.asarray(x, dtype=np.float32)
        bs = int(batch_size or self.manifest.get("batch_size", 1) or 1)
        self.predict(x[:1], 1)  # warm-up (first call loads/allocates)
        t0 = time.perf_counter()
        pred = self.predict(x, bs)
        dt = time.perf_counter() - t0
        lat = []
        for i in range(max(1, latency_repeats)):
            t = time.perf_counter()
            self.predict(x[i % len(x) : i % len(x) + 1], 1)
            lat.append(time.perf_counter() - t)
        acc = None if y is None else float(np.mean(pred == np.asarray(y).reshape(-1)))
        est = self.manifest.get("estimated_fps")
        return Measurement(backend=self.backend, n=int(len(x)), batch_size=bs, fps=float(len(x) / dt),
                           latency_ms=float(np.median(lat) * 1e3), accuracy=acc,
                           estimated_fps=None if est is None else float(est))

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """The test samples shipped in the package (``test_data.npz``: x, y)."""
        d = np.load(self.package_dir / self.manifest.get("test_data", "test_data.npz"))
        return d["x"], d["y"]

"""The on-board runtime: FINN's PYNQ driver under hapfpga's ``Accelerator`` API (numpy + pynq only).

Shipped to the board in the deployment package. finn-plus 1.6.1 no longer writes driver code into
the build: its driver is the ``finn-plus-driver`` package (``pip install finn-plus-driver`` on the
board), configured by the build's ``driver/settings.json`` (``driver_information``: platform,
``io_shape_dict`` with the I/O datatypes and normal/folded/packed shapes, clock). We load the overlay
through its ``FINNDMAOverlay`` and feed it full hardware batches, padding the last one. A layout change the
graph makes before the accelerator (CNV's NCHW -> NHWC ``Transpose``) is the manifest's ``input_transpose``;
the float ``Mul``/``Add`` after it is ``output_tail``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .api import Accelerator

__all__ = ["BoardAccelerator"]


class BoardAccelerator(Accelerator):
    """The accelerator on a PYNQ board: bitfile + FINN's driver settings from the package."""

    backend = "pynq"

    def __init__(self, package_dir: str | Path, *, batch_size: int | None = None, download: bool = True,
                 overlay_cls: Any = None):
        super().__init__(package_dir)
        bit = self.manifest.get("bitfile")
        settings_file = self.package_dir / (self.manifest.get("driver_settings") or "driver/settings.json")
        if not bit or not (self.package_dir / bit).is_file() or not settings_file.is_file():
            raise FileNotFoundError(
                f"The package {self.package_dir} has no bitfile/driver settings (it was built without Vivado); "
                "use the simulated backend (hapfpga.deploy.open_accelerator(dir, backend='sim')) on a host."
            )
        self._open(self.package_dir / bit, settings_file, overlay_cls, download=download, batch_size=batch_size)

    def _open(self, bitfile: Path, settings_file: Path, overlay_cls: Any, *, download: bool,
              batch_size: int | None) -> None:
        """FINN's overlay on ``bitfile``, configured by the driver settings (``driver_information``)."""
        if self.manifest.get("input_head_ops"):
            raise RuntimeError(
                f"The graph runs {', '.join(self.manifest['input_head_ops'])} before the accelerator, which the board "
                "runtime cannot apply; move it into the network's dataflow partition or into your preprocessing."
            )
        info = json.loads(settings_file.read_text())["driver_information"]
        self.io_shape_dict = info["io_shape_dict"]
        self.batch_size = int(batch_size or self.manifest.get("batch_size", 1) or 1)
        if overlay_cls is None:  # FINN's driver, installed on the board
            from finn_plus_driver import get_driver_class

            overlay_cls = get_driver_class(info.get("driver_type", "FINNDMAOverlay"))
        rt_dir = self.package_dir / "driver" / "runtime_weights"
        self.overlay = overlay_cls(
            bitfile_name=str(bitfile),
            platform=info.get("platform", "zynq-iodma"),
            io_shape_dict=self.io_shape_dict,
            batch_size=self.batch_size,
            fclk_mhz=float(info.get("fclk_mhz", self.manifest.get("clock_mhz", 100.0))),
            download=download,
            runtime_weight_dir=str(rt_dir) + "/",
            runtime_weights=bool(info.get("runtime_weights", False)),
        )

    def _run_acc(self, x_acc: np.ndarray) -> np.ndarray:
        n = len(x_acc)
        shape = tuple(self.io_shape_dict["ishape_normal"][0])[1:]
        perm = self.manifest.get("input_transpose")
        if perm:  # the graph's layout change before the accelerator (e.g. CNV's NCHW -> NHWC Transpose)
            x_acc = np.transpose(x_acc, perm)
        outs = []
        for i in range(0, n, self.batch_size):
            chunk = x_acc[i : i + self.batch_size].reshape((-1, *shape))
            m = len(chunk)
            if m < self.batch_size:  # the hardware batch is fixed at construction: pad, then drop
                pad = np.zeros((self.batch_size - m, *shape), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad], axis=0)
            out = np.asarray(self.overlay.execute(chunk))
            outs.append(out.reshape(self.batch_size, -1)[:m])
        y = np.concatenate(outs, axis=0).astype(np.float64)
        tail = self.manifest.get("output_tail")
        if tail:  # the graph's Mul/Add after the accelerator (scales of the last layer)
            y = y * np.asarray(tail["mul"]) + np.asarray(tail["add"])
        return y.astype(np.float32)

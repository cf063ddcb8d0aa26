"""Helpers that tests of several folders share: a random-size conv chain for the folding optimiser and the pruning
predictor, and the export of an untrained ``brevitas_examples`` bnn_pynq model to QONNX.

Use the fixtures (``make_conv_chain``, ``brevitas_export``); a module-level helper may import the functions with
``from ..conftest import conv_chain`` (pytest's importlib mode names this module ``tests.conftest``). Heavy
packages (torch, brevitas, qonnx) are imported inside the functions, so every test collects without them.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two pytest-xdist workers on CI's two cores: one OpenMP/BLAS thread each (set here, before
    # numpy (imported by hapfpga below) or torch load their thread pools; the subprocesses the tests start
    # inherit it), so the workers do not oversubscribe the cores. Training uses one thread either way
    # (hapfpga.train.TRAIN_THREADS).
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

from hapfpga.estimate import layers as L  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded_global_rngs():
    """Every test starts from the same global random state (Python's, numpy's and, where a test module imported
    it, torch's), so its outcome does not depend on which tests ran before it in its process: xdist's workers
    run the files in an order that changes from run to run."""
    random.seed(0)
    for name, seed in (("numpy", lambda m: m.random.seed(0)), ("torch", lambda m: m.manual_seed(0))):
        if name in sys.modules:
            seed(sys.modules[name])


def conv_chain(ch: int, dim: int, conv_out: int, fc_out: int, *, wbits: int = 2, acc_dt: str = "INT8",
               out_dt: str = "INT8") -> list[L.LayerSpec]:
    """Thresholding -> SWG (3x3, valid) -> MVAU (conv, ``conv_out`` channels) -> MVAU (FC to ``fc_out``):
    a network that exercises the SWG/MVAU tie. ``dim``: input height = width; ``wbits``: both MVAUs' weight
    bits; ``acc_dt``: the conv MVAU's accumulator; ``out_dt``: the FC MVAU's output (its accumulator is INT16)."""
    out = dim - 2
    return [
        L.Thresholding(name="Thresholding_rtl_0", impl="rtl", channels=ch, n_vectors=dim * dim, idt="UINT8",
                       tdt="UINT8", odt="UINT2", num_steps=3, consumers=("ConvolutionInputGenerator_rtl_0",)),
        L.ConvolutionInputGenerator(name="ConvolutionInputGenerator_rtl_0", impl="rtl", ifm_ch=ch,
                                    ifm_dim=(dim, dim), ofm_dim=(out, out), kernel=(3, 3), idt="UINT2",
                                    producers=("Thresholding_rtl_0",), consumers=("MVAU_hls_0",)),
        L.MVAU(name="MVAU_hls_0", mw=9 * ch, mh=conv_out, n_vectors=out * out, idt="UINT2", wdt=f"INT{wbits}",
               odt="UINT2", acc_dt=acc_dt, num_steps=3, producers=("ConvolutionInputGenerator_rtl_0",),
               consumers=("MVAU_hls_1",)),
        L.MVAU(name="MVAU_hls_1", mw=conv_out * out * out, mh=fc_out, n_vectors=1, idt="UINT2", wdt=f"INT{wbits}",
               odt=out_dt, acc_dt="INT16", no_activation=True, producers=("MVAU_hls_0",)),
    ]


def bnn_pynq_model(name: str, seed: int = 0):  # noqa: ANN201
    """The untrained ``brevitas_examples`` bnn_pynq model ``name`` (``model_with_cfg``), its weights drawn after
    ``torch.manual_seed(seed)``, in eval mode."""
    import torch
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    torch.manual_seed(seed)
    model, _ = model_with_cfg(name, pretrained=False)
    return model.eval()


def export_to_qonnx(model, shape: tuple[int, ...], path: Path, *, clean: bool = True) -> Path:  # noqa: ANN001
    """Export ``model`` for an input of ``shape`` to QONNX at ``path``: cleaned by qonnx's ``cleanup`` (the raw
    export kept next to it as ``*.raw.onnx``), or as Brevitas wrote it with ``clean=False``."""
    import torch
    from brevitas.export import export_qonnx

    if not clean:
        export_qonnx(model, torch.randn(*shape), str(path))
        return path
    from qonnx.util.cleanup import cleanup

    raw = path.with_suffix(".raw.onnx")
    export_qonnx(model, torch.randn(*shape), str(raw))
    cleanup(str(raw), out_file=str(path))
    return path


def export_brevitas(name: str, shape: tuple[int, ...], path: Path, seed: int = 0, *, clean: bool = True) -> Path:
    """:func:`bnn_pynq_model` ``name`` exported by :func:`export_to_qonnx`."""
    return export_to_qonnx(bnn_pynq_model(name, seed), shape, path, clean=clean)


@pytest.fixture(scope="session")
def make_conv_chain():
    """:func:`conv_chain` itself, for tests that build many chains."""
    return conv_chain


@pytest.fixture(scope="session")
def brevitas_export():
    """:func:`export_brevitas` itself: ``brevitas_export(name, shape, path)``."""
    return export_brevitas

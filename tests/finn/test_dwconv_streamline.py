"""``step_streamline_dwconv`` (hapfpga/finn/streamline.py): Brevitas' own MobileNet-v1 converts to FINN hardware.

``brevitas_examples.imagenet_classification``'s ``MobileNet`` (the network finn-examples builds at w4a4; nobody on
the project wrote it) scales its pointwise activations per channel. Without the step FINN's streamlining leaves a
channelwise ``Mul`` in front of every depthwise ``Conv`` and ``step_convert_to_hw`` maps their ``Im2Col`` to no
hardware layer ("Input is not int"); the step is finn-examples' ``step_mobilenet_streamline``. Properties, over
random widths, depths, bit widths and input sizes: every node of the network maps to a FINN HW layer (one VVAU per
depthwise convolution), and FINN's streamlined graph computes what Brevitas computes on random UINT8 images. On
graphs without such a ``Mul`` (the zoo's depthwise models) the step returns FINN's model untouched.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("finn")
pytest.importorskip("brevitas_examples")

USERFILE = Path(__file__).parents[1] / "conformance" / "userfiles" / "mobilenet_v1_model.py"


def _userfile():
    import importlib.util

    spec = importlib.util.spec_from_file_location("mobilenet_v1_userfile", USERFILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _calibrated(model, shape, seed):
    """Give the activation quantisers and batch norms statistics (a few training-mode passes), then eval."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, *shape, generator=g))
    return model.eval()


def _case(seed: int) -> tuple[float, int, int, int]:
    r = random.Random(seed)
    return r.choice([0.0625, 0.125]), r.randint(2, 5), r.randint(2, 3), 16


#: (width, bits, stages, input side): random small networks (16-pixel images, the default suite), and the
#: conformance member's network (``slow``: 2 minutes)
CASES = [_case(s) for s in range(3)] + [pytest.param(0.25, 4, 4, 32, marks=pytest.mark.slow)]


@pytest.mark.parametrize("width,bits,stages,side", CASES)
def test_brevitas_mobilenet_maps_to_hw_and_streamlines_exactly(width, bits, stages, side, tmp_path):
    import qonnx.core.onnx_exec as oxe
    from qonnx.core.modelwrapper import ModelWrapper

    from hapfpga.boards import load_board
    from hapfpga.export import export_qonnx
    from hapfpga.finn.build import SPECIALIZE_STEPS, run_finn_steps
    from hapfpga.finn.graph import hw_layers_from_qonnx

    shape = (3, side, side)
    model = _calibrated(_userfile().make(shape, 10, width=width, bits=bits, stages=stages), shape, bits)
    qonnx = export_qonnx(model, shape, tmp_path / "m.onnx")
    layers, _ = hw_layers_from_qonnx(qonnx, tmp_path / "hw", load_board("pynq-z2"), 100.0)
    n_dw = sum(1 for m in model.modules() if getattr(m, "groups", 1) > 1)
    assert sum(1 for x in layers if x.kind == "VVAU") == n_dw > 0

    upto = SPECIALIZE_STEPS[: SPECIALIZE_STEPS.index("step_streamline") + 1]
    res = run_finn_steps(qonnx, tmp_path / "s", steps=upto)
    before, after = (ModelWrapper(str(res.step_models[s])) for s in ("step_streamline_forks", "step_streamline_dwconv"))
    assert _muls_before_dw(before) and not _muls_before_dw(after)  # the step did it, FINN alone does not
    stream = ModelWrapper(str(res.step_models["step_streamline"]))
    rng = np.random.default_rng(side * 10 + bits)
    x = rng.integers(0, 256, size=(4, *shape)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x / 255.0)).numpy()
    got = np.concatenate([oxe.execute_onnx(stream, {stream.graph.input[0].name: x[i:i + 1]})[
        stream.graph.output[0].name] for i in range(len(x))])
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _muls_before_dw(mw) -> list[str]:
    """The depthwise Convs of ``mw`` whose input is a Mul's output (a float scale FINN cannot build)."""
    out = []
    for n in mw.graph.node:
        groups = next((a.i for a in n.attribute if a.name == "group"), 1)
        prod = mw.find_producer(n.input[0]) if n.op_type == "Conv" else None
        if groups > 1 and prod is not None and prod.op_type == "Mul":
            out.append(n.name)
    return out


@pytest.mark.parametrize("name,opts", [
    ("mobilenet_v1", {}),
    ("ds_cnn", {"channels": [16, 16, 16], "stem_kernel": 3, "stem_stride": 2, "pool": "avg"}),
])
def test_the_step_leaves_the_zoos_depthwise_models_as_finn_made_them(name, opts, tmp_path):
    from hapfpga.export import export_qonnx
    from hapfpga.finn.build import SPECIALIZE_STEPS, run_finn_steps
    from hapfpga.runconfig import ModelConfig
    from hapfpga.zoo import build_model

    shape = (1, 28, 28)
    m = build_model(ModelConfig(name=name, weight_bits=4, act_bits=4, options=opts), shape, 10, seed=0).eval()
    qonnx = export_qonnx(m, shape, tmp_path / "m.onnx")
    res = run_finn_steps(qonnx, tmp_path / "s", steps=SPECIALIZE_STEPS[: SPECIALIZE_STEPS.index("step_tidy_up") + 1])
    a, b = (res.step_models[s].read_bytes() for s in ("step_streamline_forks", "step_streamline_dwconv"))
    assert a == b

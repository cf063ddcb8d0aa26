"""The zoo's registry and its newer models (cnn1d, mobilenet_v1, ds_cnn, kws_mlp, mlp_autoencoder): topologies
against their published shapes, options, input checks, and a property test over random widths (build, forward,
save at the built widths, rebuild, same outputs)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.zoo import MODELS, build_model, load_factory, load_model, model_spec, save_model  # noqa: E402
from hapfpga.zoo.separable import MOBILENET_V1_CHANNELS, MOBILENET_V1_STRIDES  # noqa: E402

#: a small input each zoo model takes
SHAPES = {
    "digits_cnn": (1, 8, 8), "tfc": (1, 8, 8), "cnv": (3, 32, 32), "cnn1d": (2, 64), "mobilenet_v1": (3, 32, 32),
    "ds_cnn": (1, 8, 8), "kws_mlp": (1, 8, 8), "mlp_autoencoder": (1, 8, 8), "resnet8": (3, 32, 32),
}


def _convs(m, depthwise=None):
    out = [x for x in m.modules() if isinstance(x, (qnn.QuantConv1d, qnn.QuantConv2d))]
    if depthwise is not None:
        out = [x for x in out if (x.groups > 1) == depthwise]
    return out


def test_registry_is_one_table_of_resolvable_entries():
    for name, entry in MODELS.items():
        assert callable(load_factory(name)), name
        assert entry.factory.startswith("hapfpga.zoo.") and entry.summary
    assert {"cnn1d", "mobilenet_v1", "ds_cnn", "kws_mlp", "mlp_autoencoder"} <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_zoo_model_builds_runs_and_rebuilds_at_its_widths(name, tmp_path):
    shape = SHAPES[name]
    m = build_model(ModelConfig(name=name), shape, 5).train()
    with torch.no_grad():
        m(torch.rand(4, *shape))  # activation quantisers initialise their scales in training mode
    m.eval()
    x = torch.rand(3, *shape)
    y = m(x)
    assert tuple(y.shape) == (3, 5)
    m2 = load_model(save_model(m, tmp_path / "m.pt"))
    np.testing.assert_array_equal(m2(x).detach().numpy(), y.detach().numpy())


def test_mobilenet_v1_width_multiplier_and_full_schedule():
    m = build_model(ModelConfig(name="mobilenet_v1", options={"width": 0.25, "blocks": 13}), (3, 96, 96), 2)
    pw = [c.out_channels for c in _convs(m, depthwise=False)]
    assert pw == [round(c * 0.25) for c in MOBILENET_V1_CHANNELS]  # Howard et al. Table 1 × 0.25
    dw = _convs(m, depthwise=True)
    assert len(dw) == 13 and all(c.groups == c.in_channels == c.out_channels for c in dw)
    assert [c.stride[0] for c in dw] == list(MOBILENET_V1_STRIDES[1:])
    # 96 / 2 (stem) / 2^4 (four stride-2 blocks) = 3×3 before the average pool
    assert m.features.pool.kernel_size == (3, 3)
    assert tuple(m.eval()(torch.rand(1, 3, 96, 96)).shape) == (1, 2)
    m1 = build_model(ModelConfig(name="mobilenet_v1", options={"width": 1.0, "blocks": 2}), (3, 32, 32), 10)
    assert [c.out_channels for c in _convs(m1, depthwise=False)] == [32, 64, 128]


def test_ds_cnn_mlperf_shape():
    opts = {"channels": [64] * 5, "stem_kernel": [10, 4], "stem_stride": 2, "stem_padding": [5, 1], "pool": "avg"}
    m = build_model(ModelConfig(name="ds_cnn", options=opts), (1, 49, 10), 12)
    stem = m.features.conv0
    assert stem.kernel_size == (10, 4) and stem.stride == (2, 2)
    assert len(_convs(m, depthwise=True)) == 4
    assert m.features.pool.kernel_size == (25, 5)  # 49×10 -> 25×5 after the stride-2 stem, as in MLPerf Tiny
    assert tuple(m.eval()(torch.rand(1, 1, 49, 10)).shape) == (1, 12)


def test_cnn1d_vgg10_shape():
    opts = {"channels": [64] * 7, "fc": [128, 128]}
    m = build_model(ModelConfig(name="cnn1d", options=opts), (2, 1024), 24)
    convs = _convs(m)
    assert len(convs) == 7 and all(isinstance(c, qnn.QuantConv1d) and c.kernel_size == (3,) for c in convs)
    assert [f.in_features for f in m.modules() if isinstance(f, qnn.QuantLinear)] == [64 * 8, 128, 128]
    assert tuple(m.eval()(torch.rand(1, 2, 1024)).shape) == (1, 24)


def test_mlp_autoencoder_mlperf_shape_and_head():
    m = build_model(ModelConfig(name="mlp_autoencoder", options={"encoder": [128] * 4, "bottleneck": 8}), (640,), 2)
    outs = [f.out_features for f in m.modules() if isinstance(f, qnn.QuantLinear)]
    assert outs == [128] * 4 + [8] + [128] * 4 + [640] + [2]  # the AD autoencoder, then the classifier head
    k = build_model(ModelConfig(name="kws_mlp", options={"fc": [256, 256, 256]}), (1, 49, 10), 12)
    assert [f.out_features for f in k.modules() if isinstance(f, qnn.QuantLinear)] == [256, 256, 256, 12]


@pytest.mark.parametrize(
    ("name", "shape", "match"),
    [("cnn1d", (1, 8, 8), "signals C×L"), ("mobilenet_v1", (2, 64), "C×H×W"), ("ds_cnn", (64,), "C×H×W"),
     ("cnn1d", (2, 4), "nothing|cannot max-pool"), ("cnn1d", (2, 1), "nothing|cannot max-pool")],
)
def test_wrong_inputs_are_one_sentence_config_errors(name, shape, match):
    with pytest.raises(ConfigError, match=match):
        build_model(ModelConfig(name=name), shape, 4)


@pytest.mark.parametrize("opts", [{"blocks": 14}, {"width": 0}, {"pool": "sum"}, {"channels": [8, 8], "strides": [1]}])
def test_mobilenet_bad_options(opts):
    with pytest.raises(ConfigError, match="blocks|width|pool|stride"):
        build_model(ModelConfig(name="mobilenet_v1", options=opts), (3, 32, 32), 4)


def _random_options(name: str, rng: np.random.Generator) -> dict:
    w = lambda n: [int(v) for v in rng.integers(1, 12, n)]  # noqa: E731
    return {
        "cnn1d": lambda: {"channels": w(int(rng.integers(1, 4))), "fc": w(int(rng.integers(0, 3)))},
        "mobilenet_v1": lambda: {"channels": w(3), "pool": str(rng.choice(["max", "none"]))},
        "ds_cnn": lambda: {"channels": w(int(rng.integers(1, 4))), "pool": str(rng.choice(["max", "none"]))},
        "kws_mlp": lambda: {"fc": w(int(rng.integers(0, 4)))},
        "mlp_autoencoder": lambda: {"encoder": w(int(rng.integers(1, 3))), "bottleneck": int(rng.integers(1, 9))},
    }[name]()


@pytest.mark.parametrize("name", ["cnn1d", "mobilenet_v1", "ds_cnn", "kws_mlp", "mlp_autoencoder"])
def test_property_random_widths_build_forward_and_rebuild_exactly(name):
    """12 random width choices per model: it builds, runs, and its spec rebuilds it with the same outputs."""
    rng = np.random.default_rng(12)
    shape = SHAPES[name]
    for _ in range(12):
        opts = _random_options(name, rng)
        m = build_model(ModelConfig(name=name, options=opts), shape, 3)
        m.train()
        with torch.no_grad():
            m(torch.rand(4, *shape))  # move BN / activation statistics off their initial values
        m.eval()
        x = torch.rand(2, *shape)
        spec = model_spec(m)
        m2 = build_model(ModelConfig(name=name, options=spec["options"]), shape, 3)
        m2.load_state_dict(m.state_dict())
        np.testing.assert_array_equal(m2.eval()(x).detach().numpy(), m(x).detach().numpy(), err_msg=str(opts))


def test_average_pool_narrower_than_its_output_is_refused():
    """Brevitas' TruncAvgPool2d and finn-plus's QuantAvgPool2d disagree by a power of two when the pooled sum is
    narrower than the 8-bit output (measured: outputs 4× apart); such a pool is refused in one sentence, a wide
    enough one is built (MLPerf's DS-CNN: 2-bit activations over 25×5 = 9 bits)."""
    with pytest.raises(ConfigError, match="pool: max"):
        build_model(ModelConfig(name="mobilenet_v1", act_bits=4, options={"pool": "avg"}), (1, 16, 16), 10)
    m = build_model(ModelConfig(name="ds_cnn", options={"pool": "avg"}), (1, 8, 8), 10)  # 2 + 6 bits
    assert isinstance(m.features.pool, qnn.TruncAvgPool2d)

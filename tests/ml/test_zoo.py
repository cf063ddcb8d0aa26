"""Model zoo: FINN's CNV/TFC topologies (checked against brevitas_examples), options, bits, user factories, pickling."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")

from hapfpga.errors import ConfigError  # noqa: E402
from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.summary import model_summary  # noqa: E402
from hapfpga.zoo import MODELS, build_model, load_model, save_model  # noqa: E402


def _layers(model, types):
    return [m for m in model.modules() if isinstance(m, types)]


def test_cnv_is_finns_cnv_topology():
    from brevitas_examples.bnn_pynq.models import model_with_cfg

    ref, _ = model_with_cfg("cnv_2w2a", pretrained=False)
    ours = build_model(ModelConfig(name="cnv"), (3, 32, 32), 10)
    for t in (
        qnn.QuantConv2d,
        qnn.QuantLinear,
        torch.nn.MaxPool2d,
        torch.nn.BatchNorm2d,
        torch.nn.BatchNorm1d,
    ):
        r, o = _layers(ref, t), _layers(ours, t)
        assert len(r) == len(o), t
        for a, b in zip(r, o, strict=True):
            for attr in (
                "in_channels",
                "out_channels",
                "kernel_size",
                "padding",
                "stride",
                "in_features",
                "out_features",
                "num_features",
            ):
                assert getattr(a, attr, None) == getattr(b, attr, None), (t, attr)
            if hasattr(a, "bias") and isinstance(a, (qnn.QuantConv2d, qnn.QuantLinear)):
                assert (a.bias is None) == (b.bias is None)

    # pools sit after the same convs: the sequence of layer kinds matches
    def kinds(m):
        return [type(x).__name__ for x in m.modules() if isinstance(x, (qnn.QuantConv2d, torch.nn.MaxPool2d))]  # noqa: E731

    assert kinds(ours) == kinds(ref)
    # same weight bit widths as cnv_2w2a
    for a, b in zip(_layers(ref, qnn.QuantConv2d), _layers(ours, qnn.QuantConv2d), strict=True):
        assert int(a.quant_weight().bit_width) == int(b.quant_weight().bit_width) == 2


def test_tfc_is_fc_64_64_64_and_channels_are_options():
    m = build_model(ModelConfig(name="tfc"), (1, 8, 8), 10)
    assert [x.out_features for x in _layers(m, qnn.QuantLinear)] == [64, 64, 64, 10]
    assert _layers(m, qnn.QuantLinear)[0].in_features == 64
    m = build_model(
        ModelConfig(name="cnv", options={"channels": [8, 8, 16, 16, 32, 32], "fc": [64, 32]}), (3, 32, 32), 7
    )
    assert [x.out_channels for x in _layers(m, qnn.QuantConv2d)] == [8, 8, 16, 16, 32, 32]
    assert [x.out_features for x in _layers(m, qnn.QuantLinear)] == [64, 32, 7]
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 7)


def test_models_are_named_blocks_a_pruner_can_walk():
    m = build_model(ModelConfig(), (1, 8, 8), 10)
    assert [n for n, _ in m.named_children()] == ["features", "classifier"]
    assert [n for n, _ in m.features.named_children()] == [
        "conv0",
        "bn0",
        "act0",
        "conv1",
        "bn1",
        "act1",
        "pool1",
    ]
    assert [n for n, _ in m.classifier.named_children()] == ["fc0", "bn0", "act0", "fc1"]
    s = model_summary(m, (1, 8, 8))
    assert s["channels"] == {
        "features.conv0": 16,
        "features.conv1": 32,
        "classifier.fc0": 64,
        "classifier.fc1": 10,
    }


def test_per_layer_bits():
    cfg = ModelConfig(weight_bits=2, act_bits=2, layer_weight_bits={0: 4, 3: 8}, layer_act_bits={1: 3})
    m = build_model(cfg, (1, 8, 8), 10)
    wb = [int(x.quant_weight().bit_width) for x in _layers(m, (qnn.QuantConv2d, qnn.QuantLinear))]
    assert wb == [4, 2, 2, 8]
    m.eval()
    acts = _layers(m, qnn.QuantReLU)
    assert [int(a.act_quant.bit_width()) for a in acts] == [2, 3, 2]


def test_cnv_on_too_small_input_is_a_config_error():
    with pytest.raises(ConfigError, match="larger inputs"):
        build_model(ModelConfig(name="cnv"), (3, 8, 8), 10)


def test_unknown_model_and_option():
    with pytest.raises(ConfigError, match="Unknown model 'resnet'"):
        build_model(ModelConfig(name="resnet"), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="no option 'width'"):
        build_model(ModelConfig(name="cnv", options={"width": 2}), (3, 32, 32), 10)
    assert {"digits_cnn", "tfc", "cnv"} <= set(MODELS)
    with pytest.raises(ConfigError, match="UINT8"):
        build_model(ModelConfig(input_bits=4), (1, 8, 8), 10)


def test_user_factory_from_file(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(
        "import torch\n"
        "def make(input_shape, num_classes, hidden=5):\n"
        "    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(torch.tensor(input_shape).prod()), hidden),"
        " torch.nn.ReLU(), torch.nn.Linear(hidden, num_classes))\n"
        "def not_a_model(**kw):\n    return 3\n"
    )
    m = build_model(ModelConfig(name=f"{f}:make", options={"hidden": 7}), (1, 8, 8), 10)
    assert m[1].out_features == 7 and m(torch.rand(1, 1, 8, 8)).shape == (1, 10)
    with pytest.raises(ConfigError, match="no function 'nope'"):
        build_model(ModelConfig(name=f"{f}:nope"), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="not a torch.nn.Module"):
        build_model(ModelConfig(name=f"{f}:not_a_model"), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="does not exist"):
        build_model(ModelConfig(name=f"{tmp_path}/absent.py:make"), (1, 8, 8), 10)


def _trained_a_bit(m, shape):
    torch.manual_seed(0)
    m.train()
    with torch.no_grad():  # let the activation quantisers collect statistics, move BN stats
        for _ in range(3):
            m(torch.rand(16, *shape))
    return m.eval()


def _pickled(model):
    """``model`` through ``torch.save`` and ``torch.load`` (a whole-model pickle, in memory)."""
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_torch_save_and_deepcopy_roundtrip_brevitas_models(tmp_path):
    """Brevitas injectors are not picklable; zoo models pickle as spec + state_dict and come back identical."""
    m = _trained_a_bit(
        build_model(ModelConfig(name="digits_cnn", options={"channels": [4, 6]}), (1, 8, 8), 10), (1, 8, 8)
    )
    x = torch.rand(8, 1, 8, 8)
    ref = m(x).detach().numpy()
    m2 = _pickled(m)
    np.testing.assert_array_equal(m2(x).detach().numpy(), ref)
    np.testing.assert_array_equal(copy.deepcopy(m)(x).detach().numpy(), ref)
    m3 = load_model(save_model(m, tmp_path / "m.pt"))
    np.testing.assert_array_equal(m3(x).detach().numpy(), ref)


@pytest.mark.parametrize("steps", [1, 5, 40])
def test_saved_model_trains_like_the_original_while_its_quantisers_collect_statistics(tmp_path, steps):
    """An activation quantiser collects statistics for its first 300 training steps (Brevitas
    ``ParameterFromRuntimeStatsScaling``), a count ``state_dict`` leaves out: a model saved (``save_model``) or
    pickled part-way must train on exactly as the original does, not come back with the collection finished."""
    from hapfpga.train import FinetuneConfig, finetune, runtime_state

    rng = np.random.default_rng(steps)
    x, y = rng.random((64 * steps, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 64 * steps)
    m = build_model(ModelConfig(), (1, 8, 8), 10, seed=steps)
    finetune(m, x, y, FinetuneConfig(epochs=1, lr=1e-3), seed=0)
    counters = {k: v["counter"] for k, v in runtime_state(m).items()}
    assert counters and set(counters.values()) == {steps}
    copies = [load_model(save_model(m, tmp_path / "m.pt")), _pickled(m), copy.deepcopy(m)]
    for c in copies:
        assert {k: v["counter"] for k, v in runtime_state(c).items()} == counters
    finetune(m, x, y, FinetuneConfig(epochs=1, lr=1e-3), seed=1)
    xt = torch.as_tensor(x[:32])
    for c in copies:
        finetune(c, x, y, FinetuneConfig(epochs=1, lr=1e-3), seed=1)
        np.testing.assert_array_equal(c(xt).detach().numpy(), m(xt).detach().numpy())


def test_a_model_saved_before_any_training_step_loads_and_trains_like_the_original(tmp_path):
    """Brevitas leaves a runtime-statistics scale that has not seen a training step out of ``state_dict``, and
    ``load_state_dict`` then calls it missing: a model saved untrained (``train.epochs: 0``) could not be loaded
    back ("does not fit model ... as its factory rebuilds it"). Saved and pickled, it loads, still collects its
    statistics from step 0 and trains exactly as the original."""
    from hapfpga.train import FinetuneConfig, finetune, runtime_state

    rng = np.random.default_rng(0)
    x, y = rng.random((128, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 128)
    m = build_model(ModelConfig(), (1, 8, 8), 10, seed=3)
    assert set(v["counter"] for v in runtime_state(m).values()) == {0}
    copies = [load_model(save_model(m, tmp_path / "m.pt")), _pickled(m)]
    for c in copies:
        assert {k: v["counter"] for k, v in runtime_state(c).items()} == {k: 0 for k in runtime_state(m)}
    finetune(m, x, y, FinetuneConfig(epochs=1, lr=1e-3), seed=1)
    xt = torch.as_tensor(x[:32])
    for c in copies:
        finetune(c, x, y, FinetuneConfig(epochs=1, lr=1e-3), seed=1)
        np.testing.assert_array_equal(c(xt).detach().numpy(), m(xt).detach().numpy())


def test_pickled_model_keeps_pruned_widths():
    m = _trained_a_bit(build_model(ModelConfig(), (1, 8, 8), 10), (1, 8, 8))
    # shrink conv1 from 32 to 20 channels by hand (what a structured pruner does), consistently downstream
    keep = torch.arange(20)
    f = m.features
    f.conv1.weight = torch.nn.Parameter(f.conv1.weight.detach()[keep])
    f.conv1.out_channels = 20
    bn = torch.nn.BatchNorm2d(20, eps=1e-4)
    bn.load_state_dict({k: v[keep] if v.ndim else v for k, v in f.bn1.state_dict().items()})
    f.bn1 = bn.eval()
    fc = m.classifier.fc0
    fc.weight = torch.nn.Parameter(fc.weight.detach().view(64, 32, 4)[:, keep].reshape(64, 80))
    fc.in_features = 80
    x = torch.rand(4, 1, 8, 8)
    ref = m(x).detach().numpy()
    m2 = _pickled(m)
    assert m2.features.conv1.out_channels == 20
    np.testing.assert_array_equal(m2(x).detach().numpy(), ref)

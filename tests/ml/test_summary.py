"""model_summary: parameters, MACs and channels, against hand-derived counts for FINN's CNV on 3×32×32."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hapfpga.runconfig import ModelConfig  # noqa: E402
from hapfpga.summary import model_summary  # noqa: E402
from hapfpga.zoo import build_model  # noqa: E402


def test_cnv_macs_and_channels():
    m = build_model(ModelConfig(name="cnv"), (3, 32, 32), 10)
    s = model_summary(m, (3, 32, 32))
    # CNV: 3x3 valid convs 32→30→28, pool 14→12→10, pool 5→3→1; MACs = H·W·Cout·Cin·9 (+ FC in·out)
    convs = [(30, 3, 64), (28, 64, 64), (12, 64, 128), (10, 128, 128), (3, 128, 256), (1, 256, 256)]
    expected = sum(h * h * co * ci * 9 for h, ci, co in convs) + 256 * 512 + 512 * 512 + 512 * 10
    assert s["macs"] == expected
    assert list(s["channels"].values()) == [64, 64, 128, 128, 256, 256, 512, 512, 10]
    weights = sum(co * ci * 9 for _, ci, co in convs) + 256 * 512 + 512 * 512 + 512 * 10
    bn = 2 * (64 + 64 + 128 + 128 + 256 + 256 + 512 + 512)
    assert weights + bn <= s["params"] <= weights + bn + 16  # + one learned scale per activation quantiser
    assert s["params"] == sum(p.numel() for p in m.parameters())


def test_one_counter_for_pruning_and_reports():
    """The pruning stage's counter is this one; MACs are per input whatever the batch of the example."""
    from hapfpga.pruning import apply
    from hapfpga.summary import count_macs, count_params

    assert apply.count_macs is count_macs and apply.count_params is count_params
    m = build_model(ModelConfig(name="cnv"), (3, 32, 32), 10)
    one = count_macs(m, torch.zeros(1, 3, 32, 32))
    assert count_macs(m, torch.rand(5, 3, 32, 32)) == one == model_summary(m, (3, 32, 32))["macs"]
    assert count_params(m) == model_summary(m, (3, 32, 32))["params"]

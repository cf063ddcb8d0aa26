"""matches_estimate: the 5 % / 8-cycle rule, and no pass for a layer without an estimate."""

from __future__ import annotations

import pytest

from hapfpga.rtlsim.perf import ABS_TOLERANCE_CYCLES, matches_estimate


def test_within_five_percent_or_a_few_cycles():
    assert matches_estimate(1049.0, 1000)
    assert matches_estimate(951.0, 1000)
    assert not matches_estimate(1051.0, 1000)
    assert not matches_estimate(949.0, 1000)
    assert matches_estimate(20.0 + ABS_TOLERANCE_CYCLES, 20)  # tiny layers: absolute tolerance
    assert not matches_estimate(20.0 + ABS_TOLERANCE_CYCLES + 1, 20)


def test_no_estimate_is_not_a_match():
    with pytest.raises(TypeError):
        matches_estimate(1000.0, None)  # type: ignore[arg-type]

"""The float stages' tolerance: float32 rounding of large accumulations passes, any integer difference fails.

ResNet-18 4w4a (bnn_pynq) ends in logits of up to ~31,000 integer units; its Brevitas and QONNX graphs compute
them as float32 matmuls over scaled values, which err by a few ulps of what the last layer accumulates, Σ|a·W|
(a logit of 841 came out 0.0028 off beside one of 30,950). Verification refused that model on float noise alone
with an absolute tolerance; these tests pin the rule that replaced it.
"""

from __future__ import annotations

import numpy as np

from hapfpga.verify import FLOAT_REL_TOL, _within_float_tol


def _float_layer(a: np.ndarray, w: np.ndarray, sa: float, sw: float, add: np.ndarray) -> np.ndarray:
    """A last layer as a float graph computes it: float32 matmul of scaled integers, then the affine tail, read
    back in float64 integer units."""
    y = (a.astype(np.float32) * np.float32(sa)) @ (w.astype(np.float32) * np.float32(sw)) + add.astype(np.float32)
    return (y.astype(np.float64) - add) / (sa * sw)


def test_float32_accumulation_of_large_logits_is_within_tolerance_of_the_accumulation_scale():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, k, c = int(rng.integers(1, 9)), int(rng.integers(8, 1024)), int(rng.integers(2, 20))
        a = rng.integers(0, 2 ** int(rng.integers(1, 9)), (n, k)).astype(np.float64)  # 1-8 bit activations
        wmax = 2 ** int(rng.integers(0, 7))
        w = rng.integers(-wmax, wmax + 1, (k, c)).astype(np.float64)
        sa, sw = float(2.0 ** rng.uniform(-8, 0)), float(2.0 ** rng.uniform(-10, 0))
        t = a @ w  # the exact integer accumulator
        add = rng.normal(0, 1, c)
        scale = np.abs(a) @ np.abs(w) + np.abs(add) / (sa * sw)  # what _Tail.float_scale computes
        units = _float_layer(a, w, sa, sw, add)
        assert _within_float_tol(units, t, 1e-3, scale), (float(scale.max()), float(np.max(np.abs(units - t))))


def test_one_integer_unit_anywhere_is_caught_below_2_to_the_20():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n, c = int(rng.integers(1, 9)), int(rng.integers(2, 20))
        mag = float(2.0 ** rng.uniform(0, 19.9))
        t = np.round(rng.uniform(-mag, mag, (n, c)))
        wrong = t.copy()
        i, j = int(rng.integers(n)), int(rng.integers(c))
        wrong[i, j] += rng.choice([-1.0, 1.0])
        assert not _within_float_tol(wrong, t, 1e-3)


def test_the_relative_allowance_is_below_one_unit_where_it_applies():
    # the rule's promise: for values up to ~2^20 the allowance (with float_tol 1e-3) stays under one integer unit
    assert 1e-3 + FLOAT_REL_TOL * 0.99 * 2.0 ** 20 < 1.0
    # an absolute difference above float_tol on small values still fails
    t = np.array([[3.0, -7.0]])
    assert not _within_float_tol(t + 0.01, t, 1e-3)
    assert _within_float_tol(t + 0.0005, t, 1e-3)
    # the allowance is per sample: a large logit in one sample does not loosen another sample
    big = np.array([[30000.0, 5.0], [3.0, -7.0]])
    off = big + np.array([[0.0, 0.02], [0.0, 0.02]])
    assert not _within_float_tol(off, big, 1e-3)
    assert _within_float_tol(off[:1], big[:1], 1e-3)

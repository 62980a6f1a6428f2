"""Logicle / hyperlog kernels vs flowutils' C implementation (the Moore-Parks reference code)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cytophen.kernels import transforms as kt


@pytest.fixture(autouse=True)
def _parallel_paths_even_on_a_busy_machine(monkeypatch):
    """Large inputs take the parallel kernels whatever the machine's load (they are tested)."""
    monkeypatch.setenv("CYTOPHEN_PARALLEL", "always")


fu = pytest.importorskip("flowutils.transforms")

# (T, W, M, A): FlowJo/FlowKit defaults, the GatingML conformance parameters, and extremes
LOGICLE_PARAMS = [
    (262144.0, 0.5, 4.5, 0.0),
    (10000.0, 0.5, 4.5, 0.0),
    (10000.0, 1.0, 4.0, 0.5),
    (262144.0, 1.0, 4.5, 1.0),
    (262144.0, 2.0, 4.5, -1.0),
    (1.0, 0.2, 2.0, 0.1),
    (1e6, 0.05, 6.0, 0.0),
]
HYPERLOG_PARAMS = [(10000.0, 1.0, 4.5, 0.0), (262144.0, 0.5, 4.5, 0.0), (10000.0, 1.0, 4.0, 0.5)]

RTOL = 1e-9


def wide_values(T: float, rng: np.random.Generator, n: int = 50_000) -> np.ndarray:
    """Uniform over [-T, T], log-uniform magnitudes from 1e-20 T to 100 T with both signs, and
    the edge values 0, ±T, tiny and subnormal numbers."""
    mags = np.exp(rng.uniform(np.log(T * 1e-20), np.log(T * 100), n)) * rng.choice([-1.0, 1.0], n)
    edges = np.array(
        [0.0, -0.0, T, -T, 1.0, -1.0, 5e-324, -5e-324, 1e-300, T * 2**8, T * 2**8 * 1.0001]
    )
    return np.concatenate([rng.uniform(-T, T, n), mags, edges])


def assert_close(got, exp, rtol=RTOL):
    """Relative agreement; near the scale's zero crossing, where relative error is meaningless,
    the absolute difference must be at machine precision of the unit scale."""
    got, exp = np.asarray(got), np.asarray(exp)
    diff = np.abs(got - exp)
    ok = diff <= np.maximum(rtol * np.abs(exp), 1e-15)
    assert ok.all(), (
        f"max rel diff {np.max(diff / np.maximum(np.abs(exp), 1e-300)):.3g} at {np.argmax(~ok)}"
    )


@pytest.mark.parametrize("T,W,M,A", LOGICLE_PARAMS)
def test_logicle_matches_flowutils(T, W, M, A):
    rng = np.random.default_rng(int(T) % 1000 + int(10 * W))
    v = wide_values(T, rng)
    exp = fu._logicle(v, T, M, W, A)
    p, taylor = kt.logicle_params(T, W, M, A)
    assert not np.any(exp == -1), "flowutils did not converge on the test values"
    assert_close(kt.logicle_scale(v, p, taylor), exp)  # fast path (table + Halley)
    assert_close(kt.logicle_scale(v, p, taylor, exact=True), exp)  # reference iteration
    y = np.linspace(-0.3, 1.2, 20001)
    assert_close(kt.logicle_inverse(y, p, taylor), fu._logicle_inverse(y, T, M, W, A))


@pytest.mark.parametrize("T,W,M,A", LOGICLE_PARAMS[:3])
def test_logicle_fixed_points_and_special_values(T, W, M, A):
    p, taylor = kt.logicle_params(T, W, M, A)
    x1 = (W + A) / (M + A)
    out = kt.logicle_scale(np.array([0.0, T, np.nan, np.inf, -np.inf]), p, taylor)
    assert out[0] == pytest.approx(x1, abs=1e-15)  # data zero maps to x1 (Parks 2006)
    assert out[1] == pytest.approx(1.0, abs=1e-14)  # top of scale maps to 1
    assert np.isnan(out[2])
    assert out[3] == np.inf and out[4] == -np.inf
    # symmetry about x1 (negative values are reflected)
    v = np.array([1.0, 10.0, 1e3, 1e5])
    np.testing.assert_allclose(
        kt.logicle_scale(-v, p, taylor), 2 * x1 - kt.logicle_scale(v, p, taylor), rtol=0, atol=1e-15
    )


@pytest.mark.parametrize("T,W,M,A", LOGICLE_PARAMS)
def test_logicle_roundtrip(T, W, M, A):
    rng = np.random.default_rng(5)
    v = wide_values(T, rng, 20_000)
    v = v[np.abs(v) < T * 200]
    p, taylor = kt.logicle_params(T, W, M, A)
    back = kt.logicle_inverse(kt.logicle_scale(v, p, taylor), p, taylor)
    np.testing.assert_allclose(back, v, rtol=1e-9, atol=1e-9 * T)


def test_logicle_parallel_path_equals_serial():
    rng = np.random.default_rng(11)
    T, W, M, A = LOGICLE_PARAMS[0]
    p, taylor = kt.logicle_params(T, W, M, A)
    v = rng.normal(1000, 30000, kt.PARALLEL_MIN * 3)
    big = kt.logicle_scale(v, p, taylor)
    small = np.concatenate([kt.logicle_scale(c, p, taylor) for c in np.array_split(v, 200)])
    np.testing.assert_array_equal(big, small)
    assert kt.logicle_scale(np.empty(0), p, taylor).shape == (0,)
    assert kt.logicle_scale(np.ones((3, 2)), p, taylor).shape == (3, 2)


@settings(max_examples=200, deadline=None)
@given(
    v=st.lists(st.floats(-1e7, 1e7, allow_nan=False), min_size=1, max_size=50),
    params=st.sampled_from(LOGICLE_PARAMS),
)
def test_logicle_property_vs_flowutils(v, params):
    T, W, M, A = params
    v = np.array(v)
    p, taylor = kt.logicle_params(T, W, M, A)
    exp = fu._logicle(v, T, M, W, A)
    keep = exp != -1  # flowutils' "did not converge" marker (beyond its 40 iterations)
    assert_close(kt.logicle_scale(v, p, taylor)[keep], exp[keep])


@pytest.mark.parametrize("T,W,M,A", HYPERLOG_PARAMS)
def test_hyperlog_matches_flowutils(T, W, M, A):
    rng = np.random.default_rng(2)
    v = wide_values(T, rng, 20_000)
    exp = fu._hyperlog(v, T, M, W, A)
    keep = exp != -1
    assert keep.mean() > 0.99
    p, taylor = kt.hyperlog_params(T, W, M, A)
    got = kt.hyperlog_scale(v, p, taylor)
    assert_close(got[keep], exp[keep])
    y = np.linspace(-0.3, 1.2, 5001)
    assert_close(kt.hyperlog_inverse(y, p, taylor), fu._hyperlog_inverse(y, T, M, W, A))
    sel = np.abs(v) < 100 * T
    np.testing.assert_allclose(
        kt.hyperlog_inverse(got[sel], p, taylor), v[sel], rtol=1e-9, atol=1e-9 * T
    )
    special = kt.hyperlog_scale(np.array([np.nan, 0.0]), p, taylor)
    assert np.isnan(special[0]) and special[1] == pytest.approx((W + A) / (M + A))


def _parks_constants(T, W, M, A):
    """Logicle constants from the formulas of Parks, Roederer & Moore (2006), solved independently
    (scipy's brentq for d), for a plain-numpy check of the kernel's roots."""
    from scipy.optimize import brentq

    w = W / (M + A)
    x2 = A / (M + A)
    x1 = x2 + w
    x0 = x2 + 2 * w
    b = (M + A) * np.log(10)
    d = brentq(
        lambda d: 2 * (np.log(d) - np.log(b)) + w * (b + d), 1e-12, b, xtol=1e-15, rtol=1e-15
    )
    c_a = np.exp(x0 * (b + d))
    mf_a = np.exp(b * x1) - c_a * np.exp(-d * x1)
    a = T / (np.exp(b) - mf_a - c_a * np.exp(-d))
    return a, b, c_a * a, d, mf_a * a, x1


@pytest.mark.parametrize("T,W,M,A", LOGICLE_PARAMS)
def test_logicle_roots_satisfy_the_biexponential(T, W, M, A):
    """B(y) = a e^{by} - c e^{-dy} - f must give back the data value (plain numpy), to round-off
    of the two exponential terms; B(x1) = 0 and B(1) = T by construction. (B defines the scale for
    data >= 0; negative data take the mirror image about x1, tested above.)"""
    a, b, c, d, f, x1 = _parks_constants(T, W, M, A)
    rng = np.random.default_rng(9)
    v = wide_values(T, rng, 20_000)
    v = np.abs(v[np.abs(v) <= 10 * T])
    p, taylor = kt.logicle_params(T, W, M, A)
    y = kt.logicle_scale(v, p, taylor)
    pos, neg = a * np.exp(b * y), c * np.exp(-d * y)
    resid = np.abs(pos - neg - f - v)
    scale = np.maximum(pos + neg + abs(f), np.abs(v))
    assert np.all(resid <= 1e-11 * scale)
    assert a * np.exp(b * x1) - c * np.exp(-d * x1) - f == pytest.approx(0.0, abs=1e-9 * T)
    assert a * np.exp(b) - c * np.exp(-d) - f == pytest.approx(T, rel=1e-12)

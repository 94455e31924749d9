"""Black-76 without a reference library: stdlib cross-check, limits, parity, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core.pricing import (
    DAYS_PER_YEAR,
    PricingError,
    black76_greeks,
    black76_price,
    call_from_put,
    implied_forward,
    intrinsic,
    norm_cdf,
    norm_pdf,
    parity_residual,
    price_bounds,
    put_from_call,
)

PROPS = settings(max_examples=300, deadline=None, derandomize=True)

forwards = st.floats(1.0, 1e5)
ratios = st.floats(0.2, 5.0)
expiries = st.floats(0.0, 5.0)
vols = st.floats(0.0, 3.0)
rates = st.floats(-0.02, 0.15)


def _stdlib_price(F: float, K: float, T: float, s: float, r: float, call: bool) -> float:
    N = lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0))  # noqa: E731
    sd = s * math.sqrt(T)
    d1 = math.log(F / K) / sd + sd / 2.0
    d2 = d1 - sd
    sign = 1.0 if call else -1.0
    return math.exp(-r * T) * sign * (F * N(sign * d1) - K * N(sign * d2))


def test_norm_cdf_against_math_erfc_within_2e15_relative():
    x = np.linspace(-37.0, 37.0, 20001)
    ref = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    assert np.max(np.abs(norm_cdf(x) - ref) / ref) < 2e-15


def test_norm_cdf_limits_are_exact():
    assert norm_cdf(-np.inf) == 0.0 and norm_cdf(np.inf) == 1.0 and norm_cdf(0.0) == 0.5
    assert norm_pdf(0.0) == pytest.approx(1.0 / math.sqrt(2.0 * math.pi), rel=1e-16)


def test_price_on_grid_matches_stdlib_formula_within_1e13_relative(grid):
    p = black76_price(grid["F"], grid["K"], grid["T"], grid["sigma"], grid["r"], grid["is_call"])
    ref = np.array([
        _stdlib_price(*args)
        for args in zip(*(grid[n].tolist() for n in ("F", "K", "T", "sigma", "r", "is_call")))
    ])
    assert np.all(np.abs(p - ref) <= 1e-13 * np.abs(ref) + 1e-15 * grid["F"])


def test_scalar_inputs_return_scalar_and_broadcast_to_shape():
    assert np.ndim(black76_price(100.0, 100.0, 1.0, 0.5)) == 0
    out = black76_price(100.0, np.array([[90.0], [110.0]]), np.array([0.5, 1.0, 2.0]), 0.5)
    assert out.shape == (2, 3)


def test_expired_option_is_intrinsic_with_step_delta():
    K = np.array([90.0, 100.0, 110.0])
    g = black76_greeks(100.0, K, 0.0, 0.8, 0.05, True)
    np.testing.assert_array_equal(g.price, [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(g.delta, [1.0, 0.5, 0.0])
    for name in ("gamma", "vega", "theta", "rho"):
        np.testing.assert_array_equal(getattr(g, name), 0.0)
    gp = black76_greeks(100.0, K, 0.0, 0.8, 0.05, False)
    np.testing.assert_array_equal(gp.price, [0.0, 0.0, 10.0])
    np.testing.assert_array_equal(gp.delta, [-0.0, -0.5, -1.0])


def test_zero_vol_is_discounted_intrinsic_with_atm_vega_limit():
    T, r = 0.5, 0.04
    D = math.exp(-r * T)
    g = black76_greeks(100.0, np.array([90.0, 100.0, 110.0]), T, 0.0, r, True)
    np.testing.assert_allclose(g.price, D * np.array([10.0, 0.0, 0.0]), rtol=1e-15)
    np.testing.assert_allclose(g.delta, D * np.array([1.0, 0.5, 0.0]), rtol=1e-15)
    np.testing.assert_array_equal(g.gamma, 0.0)
    np.testing.assert_allclose(g.vega, [0.0, D * 100.0 * math.sqrt(T) / math.sqrt(2 * math.pi), 0.0])
    np.testing.assert_allclose(g.theta, r * g.price, rtol=1e-15)


def test_tiny_vol_and_expiry_converge_to_zero_vol_limit():
    for s, T in [(1e-9, 1.0), (0.5, 1e-16)]:
        assert black76_price(100.0, 90.0, T, s) == pytest.approx(10.0, abs=1e-12)
        assert black76_price(100.0, 110.0, T, s) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bad", [
    dict(F=0.0), dict(F=-1.0), dict(K=0.0), dict(T=-1e-9), dict(sigma=-0.1),
    dict(F=math.nan), dict(sigma=math.inf), dict(r=math.nan), dict(is_call=1),
])
def test_bad_input_raises_pricing_error(bad):
    args = dict(F=100.0, K=100.0, T=1.0, sigma=0.5, r=0.0, is_call=True) | bad
    with pytest.raises(PricingError):
        black76_price(**args)


def test_theta_per_day_and_vega_per_point_are_scaled():
    g = black76_greeks(3000.0, 3100.0, 30 / 365, 0.6, 0.03, True)
    assert g.theta_per_day == g.theta / DAYS_PER_YEAR
    assert g.vega_per_point == g.vega / 100.0


def test_greeks_match_central_finite_differences():
    F, K, T, s, r = 2500.0, 2700.0, 0.3, 0.7, 0.04
    for call in (True, False):
        g = black76_greeks(F, K, T, s, r, call)
        p = lambda **kw: float(black76_price(**({"F": F, "K": K, "T": T, "sigma": s, "r": r, "is_call": call} | kw)))  # noqa: E731
        h = 1e-3
        assert g.delta == pytest.approx((p(F=F + h) - p(F=F - h)) / (2 * h), rel=1e-7)
        assert g.gamma == pytest.approx((p(F=F + 1) - 2 * p() + p(F=F - 1)) / 1.0, rel=1e-5)
        assert g.vega == pytest.approx((p(sigma=s + 1e-6) - p(sigma=s - 1e-6)) / 2e-6, rel=1e-7)
        assert g.theta == pytest.approx(-(p(T=T + 1e-6) - p(T=T - 1e-6)) / 2e-6, rel=1e-6)
        assert g.rho == pytest.approx((p(r=r + 1e-6) - p(r=r - 1e-6)) / 2e-6, rel=1e-6)


def test_parity_helpers_on_grid_are_consistent(grid):
    F, K, T, s, r = (grid[n] for n in ("F", "K", "T", "sigma", "r"))
    c = black76_price(F, K, T, s, r, True)
    p = black76_price(F, K, T, s, r, False)
    scale = 1e-12 * np.maximum(F, K)
    assert np.all(np.abs(parity_residual(c, p, F, K, T, r)) <= scale)
    assert np.all(np.abs(put_from_call(c, F, K, T, r) - p) <= scale)
    assert np.all(np.abs(call_from_put(p, F, K, T, r) - c) <= scale)
    assert np.all(np.abs(implied_forward(c, p, K, T, r) - F) <= 1e-11 * np.maximum(F, K))


def test_intrinsic_and_bounds_are_the_payoff_limits():
    np.testing.assert_array_equal(intrinsic(100.0, [90.0, 110.0], [True, False]), [10.0, 10.0])
    lo, hi = price_bounds(100.0, 90.0, 1.0, 0.0, False)
    assert (lo, hi) == (0.0, 90.0)


@PROPS
@given(F=forwards, m=ratios, T=expiries, s1=vols, s2=vols, r=rates, call=st.booleans())
def test_price_is_monotonic_in_sigma_property(F, m, T, s1, s2, r, call):
    lo, hi = sorted((s1, s2))
    p_lo, p_hi = black76_price(F, F * m, T, [lo, hi], r, call)
    assert p_hi >= p_lo - 1e-13 * F


@PROPS
@given(F1=forwards, F2=forwards, K=st.floats(1.0, 1e5), T=expiries, s=vols, r=rates)
def test_call_price_is_monotonic_in_forward_property(F1, F2, K, T, s, r):
    lo, hi = sorted((F1, F2))
    p_lo, p_hi = black76_price([lo, hi], K, T, s, r, True)
    assert p_hi >= p_lo - 1e-13 * hi
    q_lo, q_hi = black76_price([lo, hi], K, T, s, r, False)
    assert q_hi <= q_lo + 1e-13 * max(hi, K)


@PROPS
@given(F=forwards, m=ratios, T=expiries, s=vols, r=rates, call=st.booleans())
def test_price_and_greeks_within_bounds_property(F, m, T, s, r, call):
    K = F * m
    g = black76_greeks(F, K, T, s, r, call)
    lo, hi = price_bounds(F, K, T, r, call)
    assert lo <= g.price <= hi
    D = math.exp(-r * T)
    assert (0.0 <= g.delta <= D) if call else (-D <= g.delta <= 0.0)
    assert g.gamma >= 0.0 and g.vega >= 0.0


@PROPS
@given(F=forwards, m=ratios, T=expiries, s=vols, r=rates)
def test_put_call_parity_property(F, m, T, s, r):
    K = F * m
    c, p = black76_price(F, K, T, s, r, [True, False])
    assert abs(parity_residual(c, p, F, K, T, r)) <= 1e-12 * max(F, K)

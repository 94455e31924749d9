"""Implied volatility: round trips over a wide grid, the no-arbitrage rule, properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aggregator.core.pricing import (
    PricingError,
    black76_greeks,
    black76_price,
    implied_vol,
    price_bounds,
)

MINUTE = 1.0 / (365.0 * 24 * 60)


def _wide_grid() -> tuple[np.ndarray, ...]:
    """Strikes from 1/20 to 20x the forward (deep ITM and OTM), expiries from one minute
    to five years, vols 1% to 500%, calls and puts, two rates: 12,320 options."""
    F = 3000.0
    K = F * np.exp(np.linspace(-3.0, 3.0, 77))
    T = np.array([MINUTE, 60 * MINUTE, 1 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 5.0])
    s = np.array([0.01, 0.1, 0.5, 1.0, 2.0])
    r = np.array([0.0, 0.05])
    c = np.array([True, False])
    KK, TT, SS, RR, CC = (a.ravel() for a in np.meshgrid(K, T, s, r, c, indexing="ij"))
    return np.full(KK.shape, F), KK, TT, SS, RR, CC


def test_round_trip_price_on_wide_grid_within_1e12_of_forward():
    F, K, T, s, r, c = _wide_grid()
    p = black76_price(F, K, T, s, r, c)
    iv = implied_vol(p, F, K, T, r, c)
    assert not np.any(np.isnan(iv)), "every in-bounds price has a vol"
    back = black76_price(F, K, T, iv, r, c)
    assert np.max(np.abs(back - p)) <= 1e-12 * F[0]


def test_round_trip_vol_on_wide_grid_where_identifiable():
    """Where a 1e-8 relative move in vol moves the price by more than rounding, the vol
    comes back to 1e-9 relative."""
    F, K, T, s, r, c = _wide_grid()
    g = black76_greeks(F, K, T, s, r, c)
    iv = implied_vol(g.price, F, K, T, r, c)
    identifiable = g.vega * s * 1e-8 > 1e-12 * F
    assert identifiable.sum() > 3000
    rel = np.abs(iv[identifiable] - s[identifiable]) / s[identifiable]
    assert rel.max() <= 1e-9


@pytest.mark.parametrize("K, T, s", [
    (100.0, MINUTE, 0.8),        # one minute, at the money
    (100.5, MINUTE, 0.8),        # one minute, 0.5% OTM
    (20.0, 1.0, 0.3),            # deep ITM call / deep OTM put
    (500.0, 1.0, 0.3),           # deep OTM call
    (300.0, 7 / 365, 1.5),       # deep OTM, short, high vol
    (100.0, 5.0, 2.0),           # price near the upper bound (97% of F)
])
@pytest.mark.parametrize("is_call", [True, False])
def test_round_trip_hard_cases_recover_vol(K, T, s, is_call):
    p = black76_price(100.0, K, T, s, 0.02, is_call)
    assert implied_vol(p, 100.0, K, T, 0.02, is_call) == pytest.approx(s, rel=1e-8)


def test_price_at_intrinsic_returns_zero_vol():
    lo, _ = price_bounds(100.0, np.array([80.0, 100.0, 120.0]), 0.5, 0.03, True)
    np.testing.assert_array_equal(implied_vol(lo, 100.0, [80.0, 100.0, 120.0], 0.5, 0.03, True), 0.0)


@pytest.mark.parametrize("price, T, why", [
    (19.0, 0.5, "below intrinsic"),
    (100.0, 0.5, "at upper bound D*F (r = 0)"),
    (150.0, 0.5, "above upper bound"),
    (25.0, 0.0, "expired"),
    (math.nan, 0.5, "NaN price"),
    (math.inf, 0.5, "infinite price"),
    (-1.0, 0.5, "negative price"),
])
def test_price_outside_bounds_returns_nan(price, T, why):
    assert math.isnan(implied_vol(price, 100.0, 80.0, T, 0.0, True)), why


def test_price_outside_bounds_with_raise_names_the_reason():
    with pytest.raises(PricingError, match="below intrinsic"):
        implied_vol([25.0, 19.0], 100.0, 80.0, 0.5, 0.0, True, errors="raise")
    with pytest.raises(PricingError, match="upper bound"):
        implied_vol(100.0, 100.0, 80.0, 0.5, 0.0, True, errors="raise")


def test_bad_inputs_and_bad_errors_mode_raise():
    with pytest.raises(PricingError):
        implied_vol(1.0, -100.0, 80.0, 0.5)
    with pytest.raises(PricingError):
        implied_vol(1.0, 100.0, 80.0, -0.5)
    with pytest.raises(ValueError):
        implied_vol(25.0, 100.0, 80.0, 0.5, errors="ignore")  # type: ignore[arg-type]


def test_mixed_batch_keeps_shape_and_marks_only_bad_elements():
    prices = np.array([[black76_price(100.0, 100.0, 1.0, 0.5), 150.0], [0.0, 1e-3]])
    iv = implied_vol(prices, 100.0, np.array([[100.0, 100.0], [150.0, 150.0]]), 1.0)
    assert iv.shape == (2, 2)
    assert iv[0, 0] == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(iv[0, 1]) and iv[1, 0] == 0.0 and 0.0 < iv[1, 1] < 1.0


def test_solver_is_deterministic():
    F, K, T, s, r, c = _wide_grid()
    p = black76_price(F, K, T, s, r, c)
    np.testing.assert_array_equal(implied_vol(p, F, K, T, r, c), implied_vol(p, F, K, T, r, c))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    F=st.floats(1.0, 1e5),
    x=st.floats(-2.0, 2.0),
    T=st.floats(1e-4, 5.0),
    s=st.floats(0.01, 3.0),
    r=st.floats(-0.02, 0.1),
    call=st.booleans(),
)
def test_round_trip_property(F, x, T, s, r, call):
    K = F * math.exp(x)
    g = black76_greeks(F, K, T, s, r, call)
    iv = implied_vol(g.price, F, K, T, r, call)
    # The price always comes back; the vol wherever it moves the price above rounding.
    assert float(black76_price(F, K, T, iv, r, call)) == pytest.approx(float(g.price), abs=1e-12 * max(F, K))
    assume(g.vega * s * 1e-7 > 1e-12 * max(F, K))
    assert iv == pytest.approx(s, rel=1e-8)

"""Raw SVI: validity, calibration recovering known smiles, butterfly arbitrage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregator.core.pricing import black76_price
from aggregator.core.svi import (
    SviError,
    SviParams,
    calibrate,
    check_butterfly,
    density_factor,
    implied_vol,
    param_violations,
    total_variance,
    total_variance_derivatives,
)

# Axel Vogt's smile (Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility
# surfaces", section 5): valid raw SVI parameters whose density is negative near k ~ 0.9.
VOGT = SviParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)

KNOWN = [
    pytest.param(SviParams(0.04, 0.4, -0.4, 0.05, 0.2), 0.5, id="equity-like skew"),
    pytest.param(SviParams(-0.01, 0.3, -0.3, 0.0, 0.3), 1.0, id="negative a"),
    pytest.param(SviParams(0.01, 0.1, 0.5, -0.2, 0.05), 0.1, id="call skew, sharp"),
    pytest.param(SviParams(0.002, 0.05, 0.1, 0.02, 0.08), 7 / 365, id="one week crypto"),
]


@pytest.mark.parametrize("a, b, rho, m, sigma, why", [
    (0.04, -0.1, 0.0, 0.0, 0.2, "b must be >= 0"),
    (0.04, 0.1, 1.0, 0.0, 0.2, "|rho| must be < 1"),
    (0.04, 0.1, -1.2, 0.0, 0.2, "|rho| must be < 1"),
    (0.04, 0.1, 0.0, 0.0, 0.0, "sigma must be > 0"),
    (-0.5, 0.1, 0.0, 0.0, 0.2, "minimum total variance"),
    (math.nan, 0.1, 0.0, 0.0, 0.2, "a is not finite"),
])
def test_invalid_params_are_refused_with_reason(a, b, rho, m, sigma, why):
    assert any(why in v for v in param_violations(a, b, rho, m, sigma))
    with pytest.raises(SviError, match=re_escape(why)):
        SviParams(a, b, rho, m, sigma)


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_valid_params_have_no_violations_and_min_variance_is_attained():
    p = KNOWN[0].values[0]
    assert param_violations(p.a, p.b, p.rho, p.m, p.sigma) == ()
    k = np.linspace(-2, 2, 400001)
    assert np.min(total_variance(p, k)) == pytest.approx(p.min_total_variance, abs=1e-10)


def test_derivatives_match_finite_differences():
    p = KNOWN[0].values[0]
    k = np.linspace(-1.5, 1.5, 31)
    _, w1, w2 = total_variance_derivatives(p, k)
    e = 1e-6
    np.testing.assert_allclose(w1, (total_variance(p, k + e) - total_variance(p, k - e)) / (2 * e), rtol=1e-7, atol=1e-10)
    h = 1e-4
    np.testing.assert_allclose(
        w2, (total_variance(p, k + h) - 2 * total_variance(p, k) + total_variance(p, k - h)) / h**2, rtol=1e-5, atol=1e-6
    )


def test_implied_vol_is_sqrt_of_total_variance_over_t():
    p = KNOWN[0].values[0]
    K = np.array([80.0, 100.0, 125.0])
    np.testing.assert_allclose(implied_vol(p, K, 100.0, 0.5), np.sqrt(total_variance(p, np.log(K / 100.0)) / 0.5))


@pytest.mark.parametrize("true, T", KNOWN)
def test_calibration_on_exact_points_recovers_known_params(true, T):
    F = 3000.0
    K = F * np.exp(np.linspace(-1.0, 1.0, 25) * max(math.sqrt(T), 0.2))
    fit = calibrate(K, implied_vol(true, K, F, T), F, T)
    got = fit.params
    for name in ("a", "b", "rho", "m", "sigma"):
        assert getattr(got, name) == pytest.approx(getattr(true, name), abs=1e-7), name
    assert fit.rmse_iv < 1e-9 and fit.n_points == 25


def test_calibration_with_noise_stays_close_and_valid():
    true = KNOWN[0].values[0]
    F, T = 100.0, 0.5
    K = F * np.exp(np.linspace(-0.8, 0.8, 41))
    iv = implied_vol(true, K, F, T)
    noise = 0.002 * np.sin(np.arange(K.size) * 2.3)  # deterministic "noise", ±20 bp of vol
    fit = calibrate(K, iv + noise, F, T)
    assert fit.rmse_iv < 0.002
    assert np.max(np.abs(implied_vol(fit.params, K, F, T) - iv)) < 0.004
    assert check_butterfly(fit.params).ok


def test_calibration_weights_ignore_zero_weight_outlier():
    true = KNOWN[0].values[0]
    F, T = 100.0, 0.5
    K = F * np.exp(np.linspace(-0.8, 0.8, 21))
    iv = implied_vol(true, K, F, T).copy()
    iv[10] += 0.5
    w = np.ones_like(iv)
    w[10] = 0.0
    fit = calibrate(K, iv, F, T, weights=w)
    assert fit.params.b == pytest.approx(true.b, abs=1e-6)


def test_calibration_is_deterministic():
    true = KNOWN[1].values[0]
    K = 100.0 * np.exp(np.linspace(-1, 1, 15))
    iv = implied_vol(true, K, 100.0, 1.0) * (1 + 0.01 * np.cos(np.arange(15)))
    assert calibrate(K, iv, 100.0, 1.0) == calibrate(K, iv, 100.0, 1.0)


def test_calibration_respects_lee_wing_bound_on_steep_data():
    F, T = 100.0, 1.0
    k = np.linspace(-1.0, 1.0, 21)
    iv = np.sqrt(np.maximum(0.04 + 3.0 * np.abs(k), 0.0) / T)  # wings of slope 3 > 2
    fit = calibrate(F * np.exp(k), iv, F, T)
    assert max(fit.params.wing_slopes) <= 2.0 + 1e-12


@pytest.mark.parametrize("kwargs, match", [
    (dict(strikes=[90, 100, 110, 120], ivs=[0.5] * 4), "at least 5"),
    (dict(strikes=[80, 90, 100, 110, 120], ivs=[0.5, 0.5, -0.1, 0.5, 0.5]), "finite and > 0"),
    (dict(strikes=[80, 90, 100, 110, 120], ivs=[0.5] * 4), "vols"),
    (dict(strikes=[80, 90, 100, 110, 120], ivs=[0.5] * 5, T=0.0), "T must be"),
    (dict(strikes=[80, 90, 100, 110, 120], ivs=[0.5] * 5, weights=[0.0] * 5), "weights"),
    (dict(strikes=[0, 90, 100, 110, 120], ivs=[0.5] * 5), "> 0"),
])
def test_calibration_bad_data_raises(kwargs, match):
    args = dict(forward=100.0, T=0.5) | kwargs
    with pytest.raises(SviError, match=match):
        calibrate(**args)


def test_butterfly_check_passes_good_smiles():
    for case in KNOWN:
        report = check_butterfly(case.values[0])
        assert report.ok and report.reasons == () and report.min_g >= 0.0


def test_butterfly_check_catches_vogt_smile():
    report = check_butterfly(VOGT)
    assert not report.ok
    assert report.min_g < 0.0 and 0.5 < report.k_at_min_g < 1.5
    assert "negative density" in report.reasons[0]


def test_vogt_negative_density_shows_as_negative_butterfly_price():
    """The check is right: a butterfly priced off this smile costs less than nothing."""
    F, T, h = 1.0, 1.0, 0.01
    k0 = check_butterfly(VOGT).k_at_min_g
    K = F * np.exp(np.array([k0 - h, k0, k0 + h]))
    iv = implied_vol(VOGT, K, F, T)
    c = black76_price(F, K, T, iv, 0.0, True)
    # Unequal spacing in K: weight the wings so the payoff is a proper butterfly.
    w_lo = (K[2] - K[1]) / (K[2] - K[0])
    w_hi = (K[1] - K[0]) / (K[2] - K[0])
    assert w_lo * c[0] - c[1] + w_hi * c[2] < 0.0
    assert np.all(np.asarray(density_factor(VOGT, np.array([k0]))) < 0.0)


def test_butterfly_check_flags_wings_steeper_than_lee_bound():
    report = check_butterfly(SviParams(0.04, 1.5, 0.5, 0.0, 0.3))
    assert not report.ok
    assert any("Lee" in r for r in report.reasons)

"""Black-76 prices and Greeks against QuantLib, the reference (never the hot path).

QuantLib's normal CDF is accurate to ~1e-9 *relative* deep in the tails (ours, Cody's
erfc, to ~1e-15; ``test_black76.py`` checks that against ``math.erfc``), so the
tolerance here is ``1e-12`` of the natural scale plus ``5e-9`` relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from aggregator.core.pricing import black76_greeks, black76_price, implied_vol

ql = pytest.importorskip("QuantLib")

RTOL = 5e-9


def _ql_reference(grid: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {n: [] for n in ("price", "delta", "gamma", "vega", "theta", "rho")}
    for F, K, T, s, r, c in zip(*(grid[n] for n in ("F", "K", "T", "sigma", "r", "is_call"))):
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if c else ql.Option.Put, float(K))
        bc = ql.BlackCalculator(payoff, float(F), float(s * math.sqrt(T)), math.exp(-r * T))
        out["price"].append(bc.value())
        out["delta"].append(bc.deltaForward())
        out["gamma"].append(bc.gammaForward())
        out["vega"].append(bc.vega(float(T)))
        out["theta"].append(bc.theta(float(F), float(T)))  # spot == forward: F held fixed
        out["rho"].append(bc.rho(float(T)) + bc.dividendRho(float(T)))  # F held fixed
    return {n: np.array(v) for n, v in out.items()}


@pytest.fixture(scope="module")
def reference(grid):
    return _ql_reference(grid)


@pytest.mark.parametrize(
    "name, scale",
    [("price", "F"), ("delta", "1"), ("gamma", "1/F"), ("vega", "F"), ("theta", "F"), ("rho", "F")],
)
def test_greek_on_grid_matches_quantlib(grid, reference, name, scale):
    g = black76_greeks(grid["F"], grid["K"], grid["T"], grid["sigma"], grid["r"], grid["is_call"])
    F = grid["F"]
    atol = {"F": F, "1": np.ones_like(F), "1/F": 1.0 / F}[scale] * 1e-12
    ours = getattr(g, name)
    ref = reference[name]
    err = np.abs(ours - ref)
    assert np.all(err <= atol + RTOL * np.abs(ref)), (
        f"{name}: worst abs err {err.max():.3e} at index {int(np.argmax(err - RTOL * np.abs(ref)))}"
    )


def test_price_function_equals_greeks_price_exactly(grid):
    p = black76_price(grid["F"], grid["K"], grid["T"], grid["sigma"], grid["r"], grid["is_call"])
    g = black76_greeks(grid["F"], grid["K"], grid["T"], grid["sigma"], grid["r"], grid["is_call"])
    np.testing.assert_array_equal(p, g.price)


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("days, strike, vol, rate", [
    (30, 2800.0, 0.65, 0.0), (91, 3300.0, 0.55, 0.04), (365, 1500.0, 0.9, 0.05), (2, 3050.0, 1.2, 0.01),
])
def test_engine_with_dates_matches_quantlib_analytic_european(days, strike, vol, rate, is_call):
    """The full QuantLib stack (dates, ACT/365F curves, Black process, analytic engine)."""
    today = ql.Date(15, ql.June, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    F = 3000.0
    T = days / 365.0
    fwd = ql.QuoteHandle(ql.SimpleQuote(F))
    rts = ql.YieldTermStructureHandle(ql.FlatForward(today, rate, dc, ql.Continuous))
    vts = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, dc))
    process = ql.BlackProcess(fwd, rts, vts)
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike),
        ql.EuropeanExercise(today + days),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    g = black76_greeks(F, strike, T, vol, rate, is_call)
    assert g.price == pytest.approx(option.NPV(), rel=1e-10, abs=1e-10)
    assert g.delta == pytest.approx(option.delta(), rel=1e-10, abs=1e-12)
    assert g.gamma == pytest.approx(option.gamma(), rel=1e-9, abs=1e-15)
    assert g.vega == pytest.approx(option.vega(), rel=1e-10, abs=1e-10)
    assert g.theta == pytest.approx(option.theta(), rel=1e-9, abs=1e-9)
    assert g.rho == pytest.approx(option.rho() + option.dividendRho(), rel=1e-9, abs=1e-9)


def test_implied_vol_on_grid_matches_quantlib(grid):
    sel = slice(None, None, 3)
    F, K, T, s, r, c = (grid[n][sel] for n in ("F", "K", "T", "sigma", "r", "is_call"))
    price = black76_price(F, K, T, s, r, c)
    ours = implied_vol(price, F, K, T, r, c)
    checked = 0
    for i in range(price.size):
        D = math.exp(-r[i] * T[i])
        typ = ql.Option.Call if c[i] else ql.Option.Put
        # Only where the vol is identifiable to QuantLib's own accuracy.
        vega = float(black76_greeks(F[i], K[i], T[i], s[i], r[i], c[i]).vega)
        if vega * s[i] < 1e-6 * price[i] or price[i] < 1e-9 * F[i]:
            continue
        try:
            ref = ql.blackFormulaImpliedStdDev(typ, float(K[i]), float(F[i]), float(price[i]), D, 0.0,
                                               0.3 * math.sqrt(T[i]), 1e-14, 1000) / math.sqrt(T[i])
        except RuntimeError:
            continue
        assert ours[i] == pytest.approx(ref, rel=1e-7), (F[i], K[i], T[i], s[i], c[i])
        checked += 1
    assert checked > 200

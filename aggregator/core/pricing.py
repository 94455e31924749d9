"""Black-76 on the forward: prices, analytic Greeks, implied volatility, parity.

European options on a forward ``F`` (the expiry's forward, e.g. from the perp or from
put-call parity), struck at ``K``, expiring in ``T`` years, with lognormal volatility
``sigma`` and a continuously compounded discount rate ``r`` (discount factor
``D = exp(-r*T)``). Every function is vectorised: arguments broadcast against each
other like numpy arrays, and a call with only scalars returns numpy scalars (floats).

Conventions (the ones QuantLib's ``BlackCalculator`` uses, which the tests check):

- ``delta``  = dV/dF, the *forward* delta, discounted: ``D*N(d1)`` for a call.
- ``gamma``  = d2V/dF2.
- ``vega``   = dV/dsigma per 1.00 of vol (divide by 100 for "per vol point").
- ``theta``  = -dV/dT per *year* with the forward held fixed (divide by 365 -- see
  ``DAYS_PER_YEAR`` and ``Greeks.theta_per_day`` -- for per calendar day).
- ``rho``    = dV/dr per 1.00 of rate with the forward held fixed, i.e. ``-T*V``.

Invariants and limits:

- Pure and deterministic: no I/O, no clock, no randomness; numpy only (the normal CDF
  is W. J. Cody's rational erfc, accurate to ~1e-16 relative, so no scipy is needed).
- Bad inputs are refused, never priced: ``F, K > 0``, ``T >= 0``, ``sigma >= 0``, all
  finite, else ``PricingError``.
- Prices lie within the no-arbitrage bounds exactly: an undiscounted call is clipped to
  ``[max(F-K, 0), F]`` and a put to ``[max(K-F, 0), K]`` against rounding.
- ``T == 0`` is the payoff: price = intrinsic (``D == 1``), delta the step (one half at
  the money), gamma = vega = theta = rho = 0.
- ``sigma*sqrt(T) == 0`` with ``T > 0``: price = discounted intrinsic, delta the
  discounted step, gamma reported as 0 (it is a Dirac mass at ``K``: risk code shocks
  the price instead), vega its limit (non-zero only at the money), theta = ``r*V``.
- ``implied_vol`` never extrapolates: a price outside the bounds returns NaN (or raises
  with ``errors="raise"``); see its docstring for the exact rule.

This module is a float model. Nothing here may write to the ledger: convert with
``aggregator.core.units.to_units`` with an explicit rounding direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

DAYS_PER_YEAR = 365.0
"""Calendar days in a year for ``Greeks.theta_per_day`` (ACT/365F year fractions)."""

MAX_TOTAL_STDDEV = 50.0
"""Largest ``sigma*sqrt(T)`` the implied-vol solver searches; above it is NaN."""

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_EPS = np.finfo(np.float64).eps


class PricingError(ValueError):
    """An input was refused (non-finite, non-positive forward/strike, negative T or vol)
    or, with ``errors="raise"``, a price had no implied volatility."""


# --------------------------------------------------------------------------------------
# Normal distribution (Cody 1969 rational approximations of erfc, vectorised)
# --------------------------------------------------------------------------------------

_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)


def _erfc_pos(y: FloatArray) -> FloatArray:
    """Return erfc(y) for y >= 0 (inf allowed), to ~1e-16 relative accuracy."""
    out = np.empty_like(y)
    small = y <= 0.46875
    mid = (~small) & (y <= 4.0)
    big = y > 4.0

    if small.any():
        ys = y[small]
        z = ys * ys
        num = _A[4] * z
        den = z.copy()
        for i in range(3):
            num = (num + _A[i]) * z
            den = (den + _B[i]) * z
        out[small] = 1.0 - ys * (num + _A[3]) / (den + _B[3])

    def scale(yv: FloatArray) -> FloatArray:
        # exp(-y^2) computed as exp(-t^2)*exp(-(y-t)(y+t)) with t = y rounded to 1/16,
        # which keeps the relative accuracy of the tail (Cody's trick).
        t = np.trunc(yv * 16.0) / 16.0
        return np.exp(-t * t) * np.exp(-(yv - t) * (yv + t))

    if mid.any():
        ym = y[mid]
        num = _C[8] * ym
        den = ym.copy()
        for i in range(7):
            num = (num + _C[i]) * ym
            den = (den + _D[i]) * ym
        out[mid] = scale(ym) * (num + _C[7]) / (den + _D[7])

    if big.any():
        yb = y[big]
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            z = 1.0 / (yb * yb)
            num = _P[5] * z
            den = z.copy()
            for i in range(4):
                num = (num + _P[i]) * z
                den = (den + _Q[i]) * z
            r = z * (num + _P[4]) / (den + _Q[4])
            r = (_INV_SQRT_PI - r) / yb
            val = scale(yb) * r
        # Past ~27.3 the result underflows to 0; erfc(inf) is exactly 0.
        out[big] = np.where(np.isfinite(val), val, 0.0)
    return out


def norm_cdf(x: ArrayLike) -> FloatArray:
    """Return the standard normal CDF, accurate in relative terms deep in both tails."""
    xa = np.asarray(x, dtype=np.float64)
    z = -xa / _SQRT2
    pos = z >= 0.0
    e = _erfc_pos(np.abs(np.atleast_1d(z))).reshape(z.shape)
    out = np.where(pos, 0.5 * e, 1.0 - 0.5 * e)
    return out[()] if out.ndim == 0 else out


def norm_pdf(x: ArrayLike) -> FloatArray:
    """Return the standard normal density."""
    xa = np.asarray(x, dtype=np.float64)
    with np.errstate(under="ignore", over="ignore"):
        return _INV_SQRT_2PI * np.exp(-0.5 * xa * xa)


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


def _as_float(name: str, v: ArrayLike) -> FloatArray:
    a = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise PricingError(f"{name} must be finite")
    return a


def _inputs(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike, is_call: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.bool_]]:
    f = _as_float("F", F)
    k = _as_float("K", K)
    t = _as_float("T", T)
    s = _as_float("sigma", sigma)
    rr = _as_float("r", r)
    c = np.asarray(is_call)
    if c.dtype != np.bool_:
        raise PricingError(f"is_call must be bool, got dtype {c.dtype}")
    if np.any(f <= 0.0):
        raise PricingError("F must be > 0")
    if np.any(k <= 0.0):
        raise PricingError("K must be > 0")
    if np.any(t < 0.0):
        raise PricingError("T must be >= 0")
    if np.any(s < 0.0):
        raise PricingError("sigma must be >= 0")
    f, k, t, s, rr, c = np.broadcast_arrays(f, k, t, s, rr, c)
    return f, k, t, s, rr, c


def _ret(a: FloatArray) -> FloatArray:
    return a[()] if a.ndim == 0 else a


def _d1(x: FloatArray, stddev: FloatArray) -> FloatArray:
    """d1 = x/s + s/2 with its limits at s == 0: +inf, -inf, or 0 at the money."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d1 = x / stddev + 0.5 * stddev
        zero = stddev <= 0.0
        if np.any(zero):
            d1 = np.where(zero, np.where(x > 0.0, np.inf, np.where(x < 0.0, -np.inf, 0.0)), d1)
    return d1


@dataclass(frozen=True, slots=True)
class _Core:
    """Shared intermediate values of one pricing pass."""

    F: FloatArray
    K: FloatArray
    T: FloatArray
    sigma: FloatArray
    r: FloatArray
    sign: FloatArray
    sqrtT: FloatArray
    stddev: FloatArray
    disc: FloatArray
    d1: FloatArray
    undiscounted: FloatArray


def _core(F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike, r: ArrayLike,
          is_call: ArrayLike) -> _Core:
    f, k, t, s, rr, c = _inputs(F, K, T, sigma, r, is_call)
    sign = np.where(c, 1.0, -1.0)
    sqrt_t = np.sqrt(t)
    stddev = s * sqrt_t
    disc = np.exp(-rr * t)
    x = np.log(f / k)
    d1 = _d1(x, stddev)
    d2 = d1 - stddev
    # One call of the CDF for both terms halves the work.
    n = norm_cdf(np.stack([sign * d1, sign * d2]))
    und = sign * (f * n[0] - k * n[1])
    lower = np.maximum(sign * (f - k), 0.0)
    upper = np.where(c, f, k)
    und = np.clip(und, lower, upper)
    return _Core(f, k, t, s, rr, sign, sqrt_t, stddev, disc, d1, und)


# --------------------------------------------------------------------------------------
# Prices and Greeks
# --------------------------------------------------------------------------------------


def black76_price(F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike,
                  r: ArrayLike = 0.0, is_call: ArrayLike = True) -> FloatArray:
    """Return the Black-76 price ``D*(F*N(d1) - K*N(d2))`` (call) or its put."""
    c = _core(F, K, T, sigma, r, is_call)
    return _ret(c.disc * c.undiscounted)


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and first-order Greeks; conventions in the module docstring."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray

    @property
    def theta_per_day(self) -> FloatArray:
        """Return theta per calendar day (``theta / DAYS_PER_YEAR``)."""
        return self.theta / DAYS_PER_YEAR

    @property
    def vega_per_point(self) -> FloatArray:
        """Return vega per 1 vol point (0.01)."""
        return self.vega / 100.0


def black76_greeks(F: ArrayLike, K: ArrayLike, T: ArrayLike, sigma: ArrayLike,
                   r: ArrayLike = 0.0, is_call: ArrayLike = True) -> Greeks:
    """Return the price and analytic delta, gamma, vega, theta (per year) and rho."""
    c = _core(F, K, T, sigma, r, is_call)
    price = c.disc * c.undiscounted
    pdf = norm_pdf(c.d1)
    delta = c.disc * c.sign * norm_cdf(c.sign * c.d1)
    live = c.T > 0.0
    pos = c.stddev > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(pos, c.disc * pdf / (c.F * c.stddev), 0.0)
        decay = np.where(live, c.disc * c.F * pdf * c.sigma / (2.0 * c.sqrtT), 0.0)
    vega = c.disc * c.F * pdf * c.sqrtT
    theta = np.where(live, c.r * price - decay, 0.0)
    rho = -c.T * price
    return Greeks(_ret(price), _ret(delta), _ret(gamma), _ret(vega), _ret(theta), _ret(rho))


def intrinsic(F: ArrayLike, K: ArrayLike, is_call: ArrayLike = True) -> FloatArray:
    """Return the undiscounted intrinsic value on the forward, ``max(±(F-K), 0)``."""
    f = np.asarray(F, dtype=np.float64)
    k = np.asarray(K, dtype=np.float64)
    sign = np.where(np.asarray(is_call, dtype=bool), 1.0, -1.0)
    return _ret(np.maximum(sign * (f - k), 0.0))


def price_bounds(F: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike = 0.0,
                 is_call: ArrayLike = True) -> tuple[FloatArray, FloatArray]:
    """Return the no-arbitrage ``(lower, upper)`` price bounds: ``D*intrinsic`` and
    ``D*F`` for a call or ``D*K`` for a put."""
    f, k, t, _, rr, c = _inputs(F, K, T, 0.0, r, is_call)
    disc = np.exp(-rr * t)
    sign = np.where(c, 1.0, -1.0)
    lower = disc * np.maximum(sign * (f - k), 0.0)
    upper = disc * np.where(c, f, k)
    return _ret(lower), _ret(upper)


# --------------------------------------------------------------------------------------
# Put-call parity
# --------------------------------------------------------------------------------------


def _disc(T: ArrayLike, r: ArrayLike) -> FloatArray:
    return np.exp(-np.asarray(r, dtype=np.float64) * np.asarray(T, dtype=np.float64))


def put_from_call(call: ArrayLike, F: ArrayLike, K: ArrayLike, T: ArrayLike,
                  r: ArrayLike = 0.0) -> FloatArray:
    """Return the put price with the same strike: ``P = C - D*(F-K)``."""
    c = np.asarray(call, dtype=np.float64)
    return _ret(np.asarray(c - _disc(T, r) * (np.asarray(F, float) - np.asarray(K, float))))


def call_from_put(put: ArrayLike, F: ArrayLike, K: ArrayLike, T: ArrayLike,
                  r: ArrayLike = 0.0) -> FloatArray:
    """Return the call price with the same strike: ``C = P + D*(F-K)``."""
    p = np.asarray(put, dtype=np.float64)
    return _ret(np.asarray(p + _disc(T, r) * (np.asarray(F, float) - np.asarray(K, float))))


def parity_residual(call: ArrayLike, put: ArrayLike, F: ArrayLike, K: ArrayLike,
                    T: ArrayLike, r: ArrayLike = 0.0) -> FloatArray:
    """Return ``C - P - D*(F-K)``: zero for a parity-consistent pair of quotes."""
    c = np.asarray(call, dtype=np.float64)
    p = np.asarray(put, dtype=np.float64)
    f = np.asarray(F, dtype=np.float64)
    k = np.asarray(K, dtype=np.float64)
    return _ret(np.asarray(c - p - _disc(T, r) * (f - k)))


def implied_forward(call: ArrayLike, put: ArrayLike, K: ArrayLike, T: ArrayLike,
                    r: ArrayLike = 0.0) -> FloatArray:
    """Return the forward implied by a call and a put of one strike: ``K + (C-P)/D``."""
    c = np.asarray(call, dtype=np.float64)
    p = np.asarray(put, dtype=np.float64)
    return _ret(np.asarray(np.asarray(K, float) + (c - p) / _disc(T, r)))


# --------------------------------------------------------------------------------------
# Implied volatility
# --------------------------------------------------------------------------------------


def _otm_price(f: FloatArray, k: FloatArray, s: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return the undiscounted out-of-the-money price (call if K >= F, else put) at total
    stddev ``s`` and its derivative in ``s`` (``F*n(d1)``)."""
    x = np.log(f / k)
    d1 = _d1(x, s)
    d2 = d1 - s
    sign = np.where(k >= f, 1.0, -1.0)
    n = norm_cdf(np.stack([sign * d1, sign * d2]))
    b = sign * (f * n[0] - k * n[1])
    return np.maximum(b, 0.0), f * norm_pdf(d1)


def implied_vol(price: ArrayLike, F: ArrayLike, K: ArrayLike, T: ArrayLike,
                r: ArrayLike = 0.0, is_call: ArrayLike = True, *, tol: float = 1e-14,
                max_iter: int = 100,
                errors: Literal["nan", "raise"] = "nan") -> FloatArray:
    """Return the Black-76 implied volatility of ``price``.

    Rule for prices without a volatility (NaN, or ``PricingError`` if ``errors="raise"``):
    ``T == 0``; a price that is NaN or infinite; a price below the discounted intrinsic
    value by more than rounding (``4*eps*max(F, K)`` undiscounted); a price at or above
    the upper bound (``D*F`` for a call, ``D*K`` for a put), or one needing
    ``sigma*sqrt(T) > MAX_TOTAL_STDDEV``. A price equal to the intrinsic value (within
    that rounding slack) has volatility 0.

    Method: put-call parity turns every quote into its out-of-the-money time value, then
    a Newton iteration on ``log(price)`` in the total stddev ``s = sigma*sqrt(T)`` runs
    inside a bracket ``[lo, hi]`` that each step tightens; a step that leaves the bracket
    (or has no finite derivative) is replaced by bisection. It stops when the log-price
    error is below ``tol``, a Newton step is below ``1e-12*s`` (quadratic convergence
    puts the next iterate at rounding level) or the bracket has closed. Vectorised:
    each iteration works on the elements not yet converged.
    """
    p = np.asarray(price, dtype=np.float64)
    f = _as_float("F", F)
    k = _as_float("K", K)
    t = _as_float("T", T)
    rr = _as_float("r", r)
    c = np.asarray(is_call)
    if c.dtype != np.bool_:
        raise PricingError(f"is_call must be bool, got dtype {c.dtype}")
    if np.any(f <= 0.0) or np.any(k <= 0.0):
        raise PricingError("F and K must be > 0")
    if np.any(t < 0.0):
        raise PricingError("T must be >= 0")
    p, f, k, t, rr, c = (np.array(a, copy=True) for a in np.broadcast_arrays(p, f, k, t, rr, c))
    shape = p.shape
    p, f, k, t, rr, c = (a.reshape(-1) for a in (p, f, k, t, rr, c))

    out = np.full(p.shape, np.nan)
    reason = np.full(p.shape, "", dtype=object)
    with np.errstate(invalid="ignore"):
        und = p / np.exp(-rr * t)
        sign = np.where(c, 1.0, -1.0)
        tv = und - np.maximum(sign * (f - k), 0.0)  # time value == OTM option's price
    cap = np.minimum(f, k)
    slack = 4.0 * _EPS * np.maximum(f, k)

    bad_price = ~np.isfinite(p)
    expired = (t == 0.0) & ~bad_price
    below = (tv < -slack) & ~bad_price & ~expired
    above = (tv >= cap) & ~bad_price & ~expired
    at_intrinsic = (tv <= 0.0) & ~below & ~bad_price & ~expired
    out[at_intrinsic] = 0.0
    reason[bad_price] = "price not finite"
    reason[expired] = "T == 0"
    reason[below] = "price below intrinsic"
    reason[above] = "price at or above upper bound"

    todo = np.flatnonzero(~(bad_price | expired | below | above | at_intrinsic))
    if todo.size:
        s, ok = _solve_total_stddev(f[todo], k[todo], tv[todo], tol, max_iter)
        out[todo] = np.where(ok, s / np.sqrt(t[todo]), np.nan)
        reason[todo[~ok]] = "volatility beyond MAX_TOTAL_STDDEV or solver failed"

    if errors == "raise":
        failed = np.flatnonzero(np.isnan(out))
        if failed.size:
            i = int(failed[0])
            raise PricingError(
                f"{failed.size} price(s) have no implied vol; first at flat index {i}: "
                f"{reason[i]} (price={p[i]!r}, F={f[i]!r}, K={k[i]!r}, T={t[i]!r})"
            )
    elif errors != "nan":
        raise ValueError(f"errors must be 'nan' or 'raise', got {errors!r}")
    return _ret(out.reshape(shape))


def _solve_total_stddev(f: FloatArray, k: FloatArray, target: FloatArray, tol: float,
                        max_iter: int) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Solve ``otm_price(s) == target`` for ``0 < target < min(F, K)``; return (s, ok)."""
    n = target.size
    lo = np.zeros(n)
    hi = np.full(n, MAX_TOTAL_STDDEV)
    log_target = np.log(target)

    # Start at the inflection point sqrt(2|x|) (Manaster-Koehler), or from the ATM
    # approximation b ~ s*sqrt(F*K)/sqrt(2*pi) when that is larger. For small prices use
    # the small-s asymptote ln(b/sqrt(FK)) ~ -x^2/(2 s^2) + ln(s^3/(sqrt(2 pi) x^2))
    # (three fixed-point steps) when it lands left of the inflection point, floored by
    # the ATM bound (the asymptote is wrong near the money).
    x = np.log(f / k)
    ax = np.abs(x)
    s_c = np.sqrt(2.0 * ax)
    # s_atm is a lower bound of the root: at fixed s the normalised OTM price is largest
    # at the money, where it is 2N(s/2) - 1 <= s/sqrt(2 pi).
    s_atm = _SQRT_2PI * target / np.sqrt(f * k)
    s = np.maximum(s_c, s_atm)
    # ln(sqrt(FK)/target) as a difference of logs: target may be subnormal.
    ln_ratio = 0.5 * (np.log(f) + np.log(k)) - log_target
    s_a = s_c.copy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(3):
            denom = 2.0 * (ln_ratio + np.log(s_a**3 / (_SQRT_2PI * ax * ax)))
            s_a = np.where(denom > 0.0, ax / np.sqrt(denom), s_a)
    use_a = np.isfinite(s_a) & (s_a > 0.0) & (s_a < s_c)
    s = np.where(use_a, np.maximum(s_a, s_atm), s)
    s = np.clip(s, 1e-8, MAX_TOTAL_STDDEV / 2)
    ok = np.ones(n, dtype=bool)

    active = np.flatnonzero(ok)
    done = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        if active.size == 0:
            break
        fa, ka, sa = f[active], k[active], s[active]
        b, vega = _otm_price(fa, ka, sa)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            g = np.log(b) - log_target[active]
            high = g > 0.0
            hi[active] = np.where(high, sa, hi[active])
            lo[active] = np.where(high, lo[active], sa)
            step = g * b / vega
            s_new = sa - step
        la, ha = lo[active], hi[active]
        outside = ~np.isfinite(s_new) | (s_new <= la) | (s_new >= ha)
        s_new = np.where(outside, 0.5 * (la + ha), s_new)
        # A Newton step below 1e-12*s leaves an error ~step^2: s_new is then exact to
        # rounding (bisection steps never count as converged on this rule).
        newton_done = ~outside & (np.abs(s_new - sa) <= 1e-12 * sa)
        conv = (np.abs(g) <= tol) | newton_done | (ha - la <= 4.0 * _EPS * ha)
        s[active] = np.where(np.abs(g) <= tol, sa, s_new)
        done[active[conv]] = True
        active = active[~conv]
    # A root pinned at the top of the bracket means the price needs more than
    # MAX_TOTAL_STDDEV (or is within rounding of the upper bound).
    ok &= done & (s < MAX_TOTAL_STDDEV * (1.0 - 1e-9))
    return s, ok

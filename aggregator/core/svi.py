"""Raw SVI smile per expiry: evaluation, calibration, validity and butterfly checks.

Raw SVI (Gatheral 2004) gives the total implied variance ``w = sigma_iv**2 * T`` at
log-moneyness ``k = ln(K/F)``::

    w(k) = a + b * (rho*(k - m) + sqrt((k - m)**2 + sigma**2))

Invariants:

- An ``SviParams`` exists only if valid: all finite, ``b >= 0``, ``|rho| < 1``,
  ``sigma > 0`` and ``a + b*sigma*sqrt(1 - rho**2) >= 0`` (the minimum of ``w`` is not
  negative). ``param_violations`` lists what is wrong without raising.
- Calibration is deterministic (fixed grid, fixed Nelder-Mead; no randomness) and
  returns parameters that are valid and whose wings satisfy Roger Lee's moment bound
  ``b*(1 + |rho|) <= 2`` (the slope of ``w`` in ``|k|``); the butterfly condition in the
  middle of the smile is *not* imposed by the fit: run ``check_butterfly`` on the result.
- ``check_butterfly`` evaluates the Gatheral-Jacquier density factor
  ``g(k) = (1 - k*w'/(2w))**2 - w'**2/4 * (1/w + 1/4) + w''/2`` on a grid; ``g < 0``
  anywhere means a negative risk-neutral density, i.e. a butterfly arbitrage. It is a
  grid check (documented grid) plus the exact wing test, not a proof between points.

Calibration method (Zeliade "quasi-explicit", De Marco & Martini 2009): for fixed
``(m, sigma)`` the model is linear in ``(a, d, c) = (a, rho*b*sigma, b*sigma)`` with
``y = (k - m)/sigma``: ``w = a + d*y + c*sqrt(y**2 + 1)``. That inner weighted least
squares problem, with the linear constraints ``0 <= c``, ``|d| <= RHO_MAX*c``,
``c + |d| <= 2*sigma`` (Lee), ``a <= max(w)``, is solved exactly by enumerating active
sets of its KKT system (3 unknowns, so at most 64 tiny systems, solved in one batch). If
the result has a negative minimum variance, it is solved again with ``a >= 0``. The
outer two-dimensional problem in ``(m, log sigma)`` is started from a grid and refined by
Nelder-Mead.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

RHO_MAX = 0.999
"""Largest ``|rho|`` the calibration returns (``|rho| < 1`` is required)."""

LEE_MAX_SLOPE = 2.0
"""Roger Lee's bound on the wing slopes of total variance, ``b*(1 ± rho)``."""


class SviError(ValueError):
    """Invalid SVI parameters, or calibration data that cannot be fitted."""


def param_violations(a: float, b: float, rho: float, m: float, sigma: float) -> tuple[str, ...]:
    """Return the reasons raw SVI parameters are invalid (empty when valid)."""
    vals = {"a": a, "b": b, "rho": rho, "m": m, "sigma": sigma}
    bad = [f"{n} is not finite" for n, v in vals.items() if not math.isfinite(v)]
    if bad:
        return tuple(bad)
    out: list[str] = []
    if b < 0.0:
        out.append(f"b must be >= 0, got {b!r}")
    if not abs(rho) < 1.0:
        out.append(f"|rho| must be < 1, got {rho!r}")
    if not sigma > 0.0:
        out.append(f"sigma must be > 0, got {sigma!r}")
    if not out:
        w_min = a + b * sigma * math.sqrt(1.0 - rho * rho)
        if w_min < 0.0:
            out.append(f"minimum total variance a + b*sigma*sqrt(1-rho^2) = {w_min!r} < 0")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SviParams:
    """Raw SVI parameters of one expiry's total-variance smile; refuses invalid values."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "rho", "m", "sigma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise SviError(f"{name} must be a real number, got {type(v).__name__}")
            object.__setattr__(self, name, float(v))
        problems = param_violations(self.a, self.b, self.rho, self.m, self.sigma)
        if problems:
            raise SviError("invalid SVI parameters: " + "; ".join(problems))

    @property
    def min_total_variance(self) -> float:
        """Return ``min_k w(k) = a + b*sigma*sqrt(1 - rho**2)``."""
        return self.a + self.b * self.sigma * math.sqrt(1.0 - self.rho * self.rho)

    @property
    def wing_slopes(self) -> tuple[float, float]:
        """Return the asymptotic slopes of ``w`` in ``|k|``: left ``b(1-rho)``, right ``b(1+rho)``."""
        return self.b * (1.0 - self.rho), self.b * (1.0 + self.rho)


def _ret(a: FloatArray) -> FloatArray:
    return a[()] if a.ndim == 0 else a


def log_moneyness(strikes: ArrayLike, forward: float) -> FloatArray:
    """Return ``k = ln(K/F)``."""
    K = np.asarray(strikes, dtype=np.float64)
    if forward <= 0.0 or not math.isfinite(forward) or np.any(~(K > 0.0)) or not np.all(np.isfinite(K)):
        raise SviError("strikes and forward must be finite and > 0")
    return _ret(np.log(K / forward))


def total_variance(params: SviParams, k: ArrayLike) -> FloatArray:
    """Return the total implied variance ``w(k)`` at log-moneyness ``k``."""
    x = np.asarray(k, dtype=np.float64) - params.m
    p = params
    return _ret(p.a + p.b * (p.rho * x + np.sqrt(x * x + p.sigma * p.sigma)))


def total_variance_derivatives(params: SviParams, k: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return ``(w, dw/dk, d2w/dk2)`` at ``k``."""
    p = params
    x = np.asarray(k, dtype=np.float64) - p.m
    root = np.sqrt(x * x + p.sigma * p.sigma)
    w = p.a + p.b * (p.rho * x + root)
    w1 = p.b * (p.rho + x / root)
    w2 = p.b * p.sigma * p.sigma / (root * root * root)
    return _ret(w), _ret(w1), _ret(w2)


def implied_vol(params: SviParams, strikes: ArrayLike, forward: float, T: float) -> FloatArray:
    """Return the Black implied vol ``sqrt(w(ln(K/F))/T)`` at ``strikes``."""
    if not T > 0.0 or not math.isfinite(T):
        raise SviError(f"T must be finite and > 0, got {T!r}")
    w = np.asarray(total_variance(params, log_moneyness(strikes, forward)))
    return _ret(np.sqrt(np.maximum(w, 0.0) / T))


# --------------------------------------------------------------------------------------
# Butterfly arbitrage
# --------------------------------------------------------------------------------------


def density_factor(params: SviParams, k: ArrayLike) -> FloatArray:
    """Return Gatheral-Jacquier ``g(k)``; the risk-neutral density is ``>= 0`` iff ``g >= 0``."""
    w, w1, w2 = (np.asarray(v) for v in total_variance_derivatives(params, k))
    kk = np.asarray(k, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - kk * w1 / (2.0 * w)) ** 2 - (w1 * w1 / 4.0) * (1.0 / w + 0.25) + w2 / 2.0
    return _ret(np.where(w > 0.0, g, -np.inf))


@dataclass(frozen=True, slots=True)
class ButterflyReport:
    """Result of ``check_butterfly``: ``ok`` is False with the reasons if arbitrage was found."""

    ok: bool
    min_g: float
    k_at_min_g: float
    reasons: tuple[str, ...]


def default_k_grid(params: SviParams) -> FloatArray:
    """Return the grid ``check_butterfly`` uses: 4001 points over ``[-6, 6]`` widened to
    ``m ± 20*sigma``."""
    lo = min(-6.0, params.m - 20.0 * params.sigma)
    hi = max(6.0, params.m + 20.0 * params.sigma)
    return np.linspace(lo, hi, 4001)


def check_butterfly(params: SviParams, k: ArrayLike | None = None, *,
                    tol: float = 1e-12) -> ButterflyReport:
    """Check a smile for butterfly arbitrage: ``g(k) >= -tol`` on the grid (default
    ``default_k_grid``), ``w > 0`` there, and Lee's wing bound ``b*(1 + |rho|) <= 2``."""
    grid = default_k_grid(params) if k is None else np.asarray(k, dtype=np.float64).ravel()
    g = np.asarray(density_factor(params, grid))
    w = np.asarray(total_variance(params, grid))
    i = int(np.argmin(g))
    reasons: list[str] = []
    if g[i] < -tol:
        reasons.append(f"negative density: g({grid[i]:.6g}) = {g[i]:.6g} < 0")
    if np.any(w <= 0.0):
        j = int(np.argmin(w))
        reasons.append(f"non-positive total variance w({grid[j]:.6g}) = {w[j]:.6g}")
    slope = max(params.wing_slopes)
    if slope > LEE_MAX_SLOPE:
        reasons.append(f"wing slope b*(1+|rho|) = {slope:.6g} > {LEE_MAX_SLOPE} (Lee)")
    return ButterflyReport(not reasons, float(g[i]), float(grid[i]), tuple(reasons))


# --------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SviFit:
    """A calibrated smile and how well it fits, in implied-vol terms."""

    params: SviParams
    T: float
    forward: float
    rmse_iv: float
    max_abs_err_iv: float
    n_points: int


# Constraint rows on x = (a, d, c): G x <= h, with h depending on (sigma, max w).
_G = np.array([
    [0.0, 0.0, -1.0],        # c >= 0
    [0.0, 1.0, -RHO_MAX],    # d <= RHO_MAX*c
    [0.0, -1.0, -RHO_MAX],   # -d <= RHO_MAX*c
    [0.0, 1.0, 1.0],         # c + d <= 2 sigma
    [0.0, -1.0, 1.0],        # c - d <= 2 sigma
    [1.0, 0.0, 0.0],         # a <= max w
    [-1.0, 0.0, 0.0],        # a >= 0 (second pass only)
])


def _independent_sets(rows: range) -> list[tuple[int, ...]]:
    sets: list[tuple[int, ...]] = []
    for size in range(0, 4):
        for s in itertools.combinations(rows, size):
            if size == 0 or np.linalg.matrix_rank(_G[list(s)]) == size:
                sets.append(s)
    return sets


_SETS_FREE_A = _independent_sets(range(6))
_SETS_POS_A = _independent_sets(range(7))


def _kkt_template(sets: list[tuple[int, ...]], n_con: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Return KKT matrices with only the inactive-multiplier rows filled, and the masks."""
    mats = np.zeros((len(sets), 3 + n_con, 3 + n_con))
    active = np.zeros((len(sets), n_con), dtype=bool)
    for i, s in enumerate(sets):
        for j in range(n_con):
            if j in s:
                active[i, j] = True
            else:
                mats[i, 3 + j, 3 + j] = 1.0  # multiplier of an inactive constraint is 0
    return mats, active


_KKT_FREE_A = _kkt_template(_SETS_FREE_A, 6)
_KKT_POS_A = _kkt_template(_SETS_POS_A, 7)


def _inner_qp(ata: FloatArray, aty: FloatArray, sigma: float, w_max: float,
              positive_a: bool) -> FloatArray:
    """Minimise ``|A x - y|^2`` over ``x = (a, d, c)`` subject to the linear constraints
    (normal equations ``ata``, ``aty``); return ``x``.

    Solved in column-scaled variables (the columns of ``A`` are nearly collinear when
    ``sigma`` is small), over every active set at once; ``x = 0`` is always feasible,
    so there is always an answer.
    """
    n_con = 7 if positive_a else 6
    h = np.array([0.0, 0.0, 0.0, LEE_MAX_SLOPE * sigma, LEE_MAX_SLOPE * sigma, w_max, 0.0])[:n_con]
    scale = np.sqrt(np.diag(ata))
    scale = np.where(scale > 0.0, scale, 1.0)
    P = ata / np.outer(scale, scale)
    q = aty / scale
    G = _G[:n_con] / scale  # constraints on the scaled unknowns
    h_tol = 1e-10 * (1.0 + np.abs(h))

    def objective(x: FloatArray) -> FloatArray:
        return np.einsum("...i,ij,...j->...", x, P, x) - 2.0 * x @ q

    # Fast path: the unconstrained optimum is often feasible.
    try:
        x0 = np.linalg.solve(P, q)
        if np.all(np.isfinite(x0)) and np.all(G @ x0 <= h_tol + h):
            return x0 / scale
    except np.linalg.LinAlgError:
        pass

    template, active = _KKT_POS_A if positive_a else _KKT_FREE_A
    mats = template.copy()
    mats[:, :3, :3] = P
    gact = active[:, :, None] * G[None, :, :]
    mats[:, 3:, :3] = gact
    mats[:, :3, 3:] = np.swapaxes(gact, 1, 2)
    rhs = np.zeros((len(mats), 3 + n_con))
    rhs[:, :3] = q
    rhs[:, 3:] = np.where(active, h, 0.0)
    with np.errstate(all="ignore"):
        try:
            x = np.linalg.solve(mats, rhs[..., None])[..., 0][:, :3]
        except np.linalg.LinAlgError:
            x = np.stack([np.linalg.lstsq(M, v, rcond=None)[0][:3] for M, v in zip(mats, rhs)])
        x = np.vstack([x, np.zeros(3)])
        feasible = np.all(np.isfinite(x), axis=1)
        feasible &= np.all(np.where(feasible[:, None], x, 0.0) @ G.T <= h + h_tol, axis=1)
        obj = np.where(feasible, objective(np.where(feasible[:, None], x, 0.0)), np.inf)
    return x[int(np.argmin(obj))] / scale


def _solve_for(k: FloatArray, w: FloatArray, wt: FloatArray, m: float, sigma: float,
               w_max: float) -> tuple[FloatArray, float]:
    """Return the best ``(a, d, c)`` and its weighted squared error for fixed ``(m, sigma)``."""
    y = (k - m) / sigma
    A = np.stack([np.ones_like(y), y, np.sqrt(y * y + 1.0)], axis=1)
    Aw = A * wt[:, None]
    ata = A.T @ Aw
    aty = Aw.T @ w
    x = _inner_qp(ata, aty, sigma, w_max, positive_a=False)
    a, d, c = x
    if a + math.sqrt(max(c * c - d * d, 0.0)) < 0.0:
        x = _inner_qp(ata, aty, sigma, w_max, positive_a=True)
    # The residual itself, not the expanded quadratic form: that one cancels to ~eps*|w|^2
    # and would stop the outer search ~1e-7 short of the optimum.
    resid = A @ x - w
    return x, float(resid @ (wt * resid))


def _nelder_mead(f, x0: FloatArray, step: FloatArray, *, max_iter: int = 600,
                 xtol: float = 1e-12, ftol: float = 1e-20) -> tuple[FloatArray, float]:
    """Minimise ``f`` from ``x0``: the standard deterministic Nelder-Mead simplex."""
    n = x0.size
    pts = np.vstack([x0] + [x0 + np.eye(n)[i] * step[i] for i in range(n)])
    vals = np.array([f(p) for p in pts])
    for _ in range(max_iter):
        order = np.argsort(vals, kind="stable")
        pts, vals = pts[order], vals[order]
        if np.max(np.abs(pts[1:] - pts[0])) <= xtol and vals[-1] - vals[0] <= ftol:
            break
        centroid = pts[:-1].mean(axis=0)
        xr = centroid + (centroid - pts[-1])
        fr = f(xr)
        if fr < vals[0]:
            xe = centroid + 2.0 * (centroid - pts[-1])
            fe = f(xe)
            pts[-1], vals[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < vals[-2]:
            pts[-1], vals[-1] = xr, fr
        else:
            if fr < vals[-1]:
                xc = centroid + 0.5 * (xr - centroid)
            else:
                xc = centroid + 0.5 * (pts[-1] - centroid)
            fc = f(xc)
            if fc < min(fr, vals[-1]):
                pts[-1], vals[-1] = xc, fc
            else:
                pts[1:] = pts[0] + 0.5 * (pts[1:] - pts[0])
                vals[1:] = np.array([f(p) for p in pts[1:]])
    i = int(np.argmin(vals))
    return pts[i], float(vals[i])


def calibrate(strikes: ArrayLike, ivs: ArrayLike, forward: float, T: float,
              weights: ArrayLike | None = None) -> SviFit:
    """Fit raw SVI to ``(strike, implied vol)`` points of one expiry.

    Minimises the weighted squared error in total variance (``weights`` default to 1;
    pass e.g. vegas or inverse bid-ask widths). Needs at least 5 distinct strikes.
    Raises ``SviError`` on bad data or if no valid parameters come out.
    """
    k = np.asarray(log_moneyness(strikes, forward), dtype=np.float64).ravel()
    iv = np.asarray(ivs, dtype=np.float64).ravel()
    if not T > 0.0 or not math.isfinite(T):
        raise SviError(f"T must be finite and > 0, got {T!r}")
    if iv.shape != k.shape:
        raise SviError(f"{k.size} strikes but {iv.size} vols")
    if not np.all(np.isfinite(iv)) or np.any(iv <= 0.0):
        raise SviError("implied vols must be finite and > 0")
    if np.unique(k).size < 5:
        raise SviError("need at least 5 distinct strikes to fit 5 parameters")
    wt = np.ones_like(k) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if wt.shape != k.shape or not np.all(np.isfinite(wt)) or np.any(wt < 0.0) or not np.any(wt > 0.0):
        raise SviError("weights must be finite, >= 0, not all 0, one per strike")
    w = iv * iv * T
    w_max = float(w.max())
    span = float(k.max() - k.min())
    m_lo, m_hi = float(k.min()) - span, float(k.max()) + span
    s_lo, s_hi = max(1e-4, 1e-3 * span), max(2.0 * span, 1.0)

    def outer(z: FloatArray) -> float:
        m, ls = float(z[0]), float(z[1])
        sigma = math.exp(ls)
        if not (m_lo <= m <= m_hi and s_lo <= sigma <= s_hi):
            return math.inf
        return _solve_for(k, w, wt, m, sigma, w_max)[1]

    ms = np.linspace(m_lo, m_hi, 17)
    lss = np.linspace(math.log(s_lo), math.log(s_hi), 13)
    grid = sorted(((outer(np.array([m, ls])), i, m, ls)
                   for i, (m, ls) in enumerate(itertools.product(ms, lss))))
    best_z, best_f = None, math.inf
    step = np.array([(m_hi - m_lo) / 16.0, (lss[1] - lss[0])])
    for f0, _, m, ls in grid[:3]:
        z, fz = _nelder_mead(outer, np.array([m, ls]), step)
        z, fz = _nelder_mead(outer, z, step / 10.0)  # restart: guards against collapse
        if fz < best_f:
            best_z, best_f = z, fz
    if best_z is None or not math.isfinite(best_f):
        raise SviError("SVI calibration found no feasible parameters")

    m, sigma = float(best_z[0]), math.exp(float(best_z[1]))
    (a, d, c), _ = _solve_for(k, w, wt, m, sigma, w_max)
    b = c / sigma
    rho = d / c if c > 0.0 else 0.0
    rho = min(max(rho, -RHO_MAX), RHO_MAX)
    params = SviParams(float(a), float(b), float(rho), m, sigma)
    fitted = np.asarray(implied_vol(params, np.asarray(strikes, dtype=np.float64).ravel(), forward, T))
    err = fitted - iv
    return SviFit(params, float(T), float(forward), float(np.sqrt(np.mean(err * err))),
                  float(np.max(np.abs(err))), int(k.size))

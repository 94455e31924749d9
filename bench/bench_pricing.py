"""Benchmark the pricing core: Black-76 price+Greeks and implied-vol solves per second.

Run from the repository root:  python bench/bench_pricing.py [--n 10000] [--repeat 20]

Prints throughput for one vector of ``n`` options (a realistic mixed book: strikes from
0.5x to 2x the forward, expiries from one day to two years, calls and puts), best of
``repeat`` runs, and the same for an SVI calibration of one 25-strike smile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aggregator.core.pricing import black76_greeks, black76_price, implied_vol  # noqa: E402
from aggregator.core.svi import SviParams, calibrate  # noqa: E402
from aggregator.core.svi import implied_vol as svi_iv  # noqa: E402


def book(n: int, seed: int = 7) -> tuple[np.ndarray, ...]:
    """Return a deterministic mixed book of ``n`` options."""
    rng = np.random.default_rng(seed)
    F = rng.uniform(1500.0, 4000.0, n)
    K = F * np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    T = rng.uniform(1.0 / 365.0, 2.0, n)
    sigma = rng.uniform(0.2, 1.5, n)
    r = np.full(n, 0.03)
    is_call = rng.random(n) < 0.5
    return F, K, T, sigma, r, is_call


def best_of(repeat: int, fn) -> float:
    """Return the fastest wall time of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    F, K, T, sigma, r, c = book(args.n)

    t_price = best_of(args.repeat, lambda: black76_price(F, K, T, sigma, r, c))
    t_greeks = best_of(args.repeat, lambda: black76_greeks(F, K, T, sigma, r, c))
    prices = black76_price(F, K, T, sigma, r, c)
    t_iv = best_of(max(3, args.repeat // 4), lambda: implied_vol(prices, F, K, T, r, c))
    iv = implied_vol(prices, F, K, T, r, c)
    # Deep ITM short-dated options have a time value below float rounding: their vol is
    # not identifiable (the solver returns 0 by rule); measure the error on the others.
    vega = black76_greeks(F, K, T, sigma, r, c).vega
    ident = vega * sigma * 1e-8 > 1e-12 * F
    max_rel = float(np.max(np.abs(iv[ident] - sigma[ident]) / sigma[ident]))

    true = SviParams(0.04, 0.4, -0.4, 0.05, 0.2)
    strikes = 3000.0 * np.exp(np.linspace(-1.0, 1.0, 25))
    vols = svi_iv(true, strikes, 3000.0, 0.5)
    t_svi = best_of(5, lambda: calibrate(strikes, vols, 3000.0, 0.5))

    print(f"numpy {np.__version__}, n = {args.n:,} options, best of {args.repeat}")
    print(f"black76_price          {t_price * 1e3:8.2f} ms   {args.n / t_price:14,.0f} options/s")
    print(f"black76_greeks (+price){t_greeks * 1e3:8.2f} ms   {args.n / t_greeks:14,.0f} options/s")
    print(f"implied_vol            {t_iv * 1e3:8.2f} ms   {args.n / t_iv:14,.0f} solves/s"
          f"   (max rel vol error {max_rel:.1e} on {int(ident.sum()):,} identifiable;"
          f" NaN: {int(np.isnan(iv).sum())})")
    print(f"svi calibrate (25 pts) {t_svi * 1e3:8.2f} ms   {1 / t_svi:14,.1f} smiles/s")


if __name__ == "__main__":
    main()

"""What traders read besides books and fills: 24-hour statistics, option Greeks, ADL ranks.

Nothing here moves a balance; the sequencer keeps the statistics as it settles fills and
computes the rest when read.

24-hour statistics (``DayStats``)
    One bucket per UTC minute with a trade: volume (size units), quote volume (internal
    units, ``sum(price * size // scale)``, the same floor as the fill's notional), high,
    low, first and last price, trade count. A read sums the buckets of the 1,440 minutes
    up to and including the current one, so a figure is exact to the minute; buckets older
    than that are dropped when the next trade opens a bucket, so memory stays at most
    1,441 buckets per market.

Candles (``DayStats.candles``) are those minute buckets grouped into 1, 5, 15 or 60 minute
    intervals: open, high, low, close and volume of the trades in each.

Option Greeks (``option_greeks``)
    Black-76 on the oracle index as the forward (r = 0), the underlying's ``option_vol``
    and the time to expiry from the mark's time: the same inputs as the option's mark
    (``risk.option_mark``). Per whole underlying, in USDC: ``delta`` (dimensionless),
    ``gamma`` (per 1 USDC move of the underlying), ``vega`` (per vol point), ``theta``
    (per calendar day). Implied vols of the best bid and ask solve Black-76 for those
    prices (None when no vol reproduces one, e.g. below intrinsic). Floats: display and
    risk reading only.

ADL rank (``adl_score``, ``adl_quintile``)
    The queue ``Sequencer._unwind`` deleverages: profit ratio (unrealised PnL at the mark
    over entry value) times leverage (notional at the mark over equity), divided by it
    for a loss; highest first. A position's rank is its quintile on its side of the
    market: 5 = the first fifth of the queue (deleveraged first), 1 = the last.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction

__all__ = ["DayStats", "adl_score", "adl_quintile", "option_greeks", "implied_vols"]

MINUTE_MS = 60_000
DAY_MINUTES = 1_440


class DayStats:
    """Rolling 24-hour trade statistics of one market, by the minute (see the module doc)."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        # [minute, volume, quote volume, high, low, open, close, count], oldest first
        self.buckets: deque[list[int]] = deque()

    def add(self, now_ms: int, price: int, size: int, notional: int) -> None:
        """Count one fill of ``size`` at ``price`` (``notional`` = price * size // scale)."""
        minute = now_ms // MINUTE_MS
        bs = self.buckets
        if bs and bs[-1][0] == minute:
            b = bs[-1]
            b[1] += size
            b[2] += notional
            if price > b[3]:
                b[3] = price
            elif price < b[4]:
                b[4] = price
            b[6] = price
            b[7] += 1
            return
        bs.append([minute, size, notional, price, price, price, price, 1])
        while bs[0][0] <= minute - DAY_MINUTES:
            bs.popleft()

    def _live(self, now_ms: int) -> list[list[int]]:
        """The buckets of the 1,440 minutes up to and including ``now_ms``'s, oldest first."""
        first = now_ms // MINUTE_MS - DAY_MINUTES + 1
        return [b for b in self.buckets if b[0] >= first]

    def window(self, now_ms: int) -> dict:
        """Return the statistics of the 24 hours up to ``now_ms`` (None prices: no trade)."""
        live = self._live(now_ms)
        if not live:
            return {"volume": 0, "quote_volume": 0, "high": None, "low": None, "open": None, "close": None,
                    "trades": 0}
        return {"volume": sum(b[1] for b in live), "quote_volume": sum(b[2] for b in live),
                "high": max(b[3] for b in live), "low": min(b[4] for b in live), "open": live[0][5],
                "close": live[-1][6], "trades": sum(b[7] for b in live)}

    def candles(self, now_ms: int, minutes: int, limit: int) -> list[list[int]]:
        """Return up to ``limit`` newest ``[open time ms, open, high, low, close, volume]`` candles of
        ``minutes`` minutes (aligned to multiples of it since the epoch) over the last 24 hours, oldest
        first; intervals without a trade have no candle."""
        out: list[list[int]] = []
        for b in self._live(now_ms):
            start = b[0] // minutes * minutes * MINUTE_MS
            if out and out[-1][0] == start:
                c = out[-1]
                if b[3] > c[2]:
                    c[2] = b[3]
                if b[4] < c[3]:
                    c[3] = b[4]
                c[4] = b[6]
                c[5] += b[1]
            else:
                out.append([start, b[5], b[3], b[4], b[6], b[1]])
        return out[-limit:] if limit > 0 else []


def option_greeks(index: list[int], strike: list[int], years: list[float], vol: list[float],
                  is_call: list[bool]) -> dict:
    """Return Black-76 ``delta``, ``gamma``, ``vega`` (per vol point), ``theta`` (per day) arrays per whole
    underlying, one element per option (vectorised). ``index`` and ``strike`` in quote units
    (1e-6 USDC); results in USDC.
    """
    import numpy as np

    from aggregator.core.pricing import black76_greeks

    g = black76_greeks(np.asarray(index, dtype=np.float64) / 1e6, np.asarray(strike, dtype=np.float64) / 1e6,
                       np.asarray(years, dtype=np.float64), np.asarray(vol, dtype=np.float64), 0.0,
                       np.asarray(is_call, dtype=bool))
    return {"delta": np.atleast_1d(g.delta), "gamma": np.atleast_1d(g.gamma),
            "vega": np.atleast_1d(g.vega_per_point), "theta": np.atleast_1d(g.theta_per_day)}


def implied_vols(prices: list[int | None], index: list[int], strike: list[int], years: list[float],
                 is_call: list[bool]) -> list[float | None]:
    """Return the Black-76 implied vol of each price (quote units; None: no price, or no vol reproduces
    it, e.g. below intrinsic or at expiry), in one vectorised solve."""
    import numpy as np

    from aggregator.core.pricing import implied_vol

    p = np.array([np.nan if x is None else x / 1e6 for x in prices], dtype=np.float64)
    v = implied_vol(p, np.asarray(index, dtype=np.float64) / 1e6, np.asarray(strike, dtype=np.float64) / 1e6,
                    np.asarray(years, dtype=np.float64), 0.0, np.asarray(is_call, dtype=bool))
    return [None if math.isnan(x) else float(x) for x in np.atleast_1d(v)]


def adl_score(size: int, cost: int, mark: int, scale: int, equity: int) -> Fraction:
    """Return a position's place in the deleveraging queue (higher: deleveraged first).

    ``size`` signed (size units), ``cost`` its entry value (unscaled: quote units x size
    units), ``mark`` in quote units, ``equity`` the account's (internal units).
    """
    a = abs(size)
    upnl = a * mark - cost if size > 0 else cost - a * mark
    ratio = Fraction(upnl, cost or 1)
    lev = Fraction(a * mark, scale * max(equity, 1))
    return ratio * lev if ratio > 0 else ratio / lev


def adl_quintile(place: int, count: int) -> int:
    """Return 5..1 for the ``place``-th (0 = first) of ``count`` positions in the queue."""
    return 5 - place * 5 // count

"""Settlement prices: a time-weighted average over a window before expiry.

Pure and integer-only. Input is the feed's history of aggregates as ``PricePoint``s
(when each aggregate became current, and its price, or ``None`` when the feed was not
``ok`` from then on). A price holds until the next point, and at most ``max_hold_ms``
(the feed's heartbeat) after its own point.

Invariants:
- the result depends only on the points and the window, so the live service and a
  rebuild from the database give the same number (and the same signed report bytes);
- uncovered time (feed not ok, or a gap past the heartbeat) is left out of the average;
  if less than ``min_coverage_bps`` of the window is covered there is no settlement
  price (``TwapError``) rather than a wrong one;
- the average is floored: ``sum(price_i * dt_i) // covered``; confidence likewise.
- settlement reports are published under their own feed id ``<feed>/TWAP<seconds>`` so
  they never collide with the live feed's monotonic timestamps on-chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oracles.types import BPS, MarketStatus, OracleError
from oracles.report import PriceReport, feed_id

DEFAULT_WINDOW_S = 1800


class TwapError(OracleError):
    """No settlement price can be computed honestly for this window."""


@dataclass(frozen=True, slots=True)
class PricePoint:
    ts_ms: int
    price: int | None
    confidence: int = 0


@dataclass(frozen=True, slots=True)
class Twap:
    feed: str
    start_ms: int
    end_ms: int
    price: int
    confidence: int
    covered_ms: int
    points: int


def twap(
    feed: str,
    points: Iterable[PricePoint],
    end_ms: int,
    window_ms: int = DEFAULT_WINDOW_S * 1000,
    max_hold_ms: int = 60_000,
    min_coverage_bps: int = 9_000,
) -> Twap:
    """Return the time-weighted average price over ``[end_ms - window_ms, end_ms)``."""
    if window_ms <= 0:
        raise TwapError("window must be positive")
    start = end_ms - window_ms
    pts = sorted(points, key=lambda p: p.ts_ms)
    weighted = conf_weighted = covered = used = 0
    for i, p in enumerate(pts):
        if p.ts_ms >= end_ms:
            break
        nxt = pts[i + 1].ts_ms if i + 1 < len(pts) else end_ms
        seg_start = max(p.ts_ms, start)
        seg_end = min(nxt, end_ms, p.ts_ms + max_hold_ms)
        if p.price is None or seg_end <= seg_start:
            continue
        dt = seg_end - seg_start
        weighted += p.price * dt
        conf_weighted += p.confidence * dt
        covered += dt
        used += 1
    if covered == 0 or covered * BPS < min_coverage_bps * window_ms:
        raise TwapError(
            f"{feed}: only {covered} ms of the {window_ms} ms window before {end_ms} has a valid price "
            f"(need {min_coverage_bps / 100:.2f}%)"
        )
    return Twap(feed, start, end_ms, weighted // covered, conf_weighted // covered, covered, used)


def settlement_feed_name(feed: str, window_s: int) -> str:
    """Return the feed name settlement reports of ``feed`` are published under."""
    return f"{feed}/TWAP{window_s}"


def settlement_report(result: Twap) -> PriceReport:
    """Return the ``PriceReport`` carrying a settlement TWAP (timestamp = expiry, seconds)."""
    window_s = (result.end_ms - result.start_ms) // 1000
    return PriceReport(
        feed_id=feed_id(settlement_feed_name(result.feed, window_s)),
        price=result.price,
        confidence=result.confidence,
        timestamp=result.end_ms // 1000,
        market_status=int(MarketStatus.OPEN),
    )

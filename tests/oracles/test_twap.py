"""Settlement TWAP: pure computation over price points."""

from __future__ import annotations

import pytest

from oracles.twap import PricePoint, TwapError, settlement_feed_name, settlement_report, twap
from oracles.report import feed_name

END = 1_750_000_000_000
W = 1_800_000


def test_constant_price_twap_equals_price() -> None:
    pts = [PricePoint(END - W - 5_000 + i * 10_000, 300_000, 10) for i in range(200)]
    r = twap("ETH-USD", pts, END, W, max_hold_ms=30_000)
    assert (r.price, r.confidence, r.covered_ms) == (300_000, 10, W)


def test_step_prices_time_weighted_floor() -> None:
    # first half at 100, second half at 201 -> 150.5 floored to 150
    pts = [PricePoint(END - W, 100), PricePoint(END - W // 2, 201)]
    r = twap("X", pts, END, W, max_hold_ms=W)
    assert r.price == 150


def test_price_before_window_carried_into_window() -> None:
    pts = [PricePoint(END - W - 1000, 100), PricePoint(END - W + 1000, 200)]
    r = twap("X", pts, END, W, max_hold_ms=W)
    assert r.covered_ms == W and r.price == (100 * 1000 + 200 * (W - 1000)) // W


def test_points_after_expiry_ignored() -> None:
    pts = [PricePoint(END - W, 100), PricePoint(END, 10_000)]
    assert twap("X", pts, END, W, max_hold_ms=W).price == 100


def test_stale_gap_excluded_and_insufficient_coverage_raises() -> None:
    pts = [PricePoint(END - W, 100), PricePoint(END - W // 2, None)]
    with pytest.raises(TwapError):
        twap("X", pts, END, W, max_hold_ms=W)
    r = twap("X", pts, END, W, max_hold_ms=W, min_coverage_bps=5000)
    assert r.price == 100 and r.covered_ms == W // 2


def test_price_not_held_past_heartbeat() -> None:
    pts = [PricePoint(END - W, 100)]
    with pytest.raises(TwapError):
        twap("X", pts, END, W, max_hold_ms=60_000)


def test_no_points_raises() -> None:
    with pytest.raises(TwapError):
        twap("X", [], END, W)


def test_settlement_report_has_own_feed_id_and_expiry_timestamp() -> None:
    r = twap("ETH-USD", [PricePoint(END - W, 300_000)], END, W, max_hold_ms=W)
    rep = settlement_report(r)
    assert feed_name(rep.feed_id) == settlement_feed_name("ETH-USD", 1800) == "ETH-USD/TWAP1800"
    assert rep.timestamp == END // 1000 and rep.price == 300_000

"""Good-til-time: a resting order ends at its signed expiry (the first Tick after it)."""

from __future__ import annotations

from aggregator.core.events import TradeSettled
from aggregator.core.matching import ExpireReason, OrderExpired
from tests.sequencer.helpers import ALICE, BOB, USDC, Harness, funded

PERP = "ETH-PERP"
BUY, SELL = 1, 2
IOC = 2


def market() -> Harness:
    return funded(ALICE, BOB)


def test_resting_order_expires_on_first_tick_after_its_signed_expiry_reserve_released():
    h = market()
    im0 = h.seq.account(ALICE)["initial_margin"]
    exp = h.now // 1000 + 60
    oid = h.place(ALICE, PERP, BUY, 2_990 * USDC, 1000, coid=5, expiry=exp).result["order_id"]
    assert h.seq.account(ALICE)["initial_margin"] > im0
    assert h.seq.next_order_expiry_ms() == exp * 1000
    h.advance(exp * 1000 - h.now)  # at the expiry instant the order is still valid
    out = h.tick()
    assert out.result["orders_expired"] == 0 and [o["order_id"] for o in h.seq.open_orders(ALICE)] == [oid]
    h.advance(1)
    out = h.tick()
    assert out.result["orders_expired"] == 1
    assert OrderExpired(PERP, oid, 5, ALICE, 1000, ExpireReason.GOOD_TIL_TIME) in out.events
    assert h.seq.open_orders(ALICE) == [] and h.seq.book(PERP)["bids"] == []
    assert h.seq.account(ALICE)["initial_margin"] == im0
    assert h.seq.next_order_expiry_ms() is None
    # what expired cannot be taken any more
    take = h.place(BOB, PERP, SELL, 2_990 * USDC, 1000, tif=IOC)
    assert take.result["filled"] == 0 and not any(type(e) is TradeSettled for e in take.events)


def test_filled_or_cancelled_orders_leave_no_expiry_behind():
    h = market()
    exp = h.now // 1000 + 60
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 1000, expiry=exp)
    assert h.place(BOB, PERP, SELL, 3_000 * USDC, 1000, tif=IOC).result["filled"] == 1000
    cancelled = h.place(ALICE, PERP, BUY, 2_900 * USDC, 1000, expiry=exp + 1).result["order_id"]
    assert h.cancel(ALICE, PERP, order_id=cancelled).accepted
    later = h.place(BOB, PERP, SELL, 3_100 * USDC, 1000, expiry=exp + 120).result["order_id"]
    h.advance(61_000 + 1_000)
    out = h.tick()  # the two stale heap entries are skipped, the live order is not due
    assert out.result["orders_expired"] == 0
    assert [o["order_id"] for o in h.seq.open_orders(BOB)] == [later]
    assert h.seq.next_order_expiry_ms() == (exp + 120) * 1000


def test_amended_order_keeps_the_expiry_it_was_placed_with():
    h = market()
    exp = h.now // 1000 + 60
    oid = h.place(ALICE, PERP, BUY, 2_990 * USDC, 1000, expiry=exp).result["order_id"]
    assert h.amend(ALICE, PERP, order_id=oid, price=2_995 * USDC).accepted
    h.advance(60_001)
    out = h.tick()
    assert [e.order_id for e in out.events if type(e) is OrderExpired] == [oid]

"""Unit tests of the matching core: every rejection reason, TIF, STP, amend, cancel paths."""

from __future__ import annotations

import pytest

from aggregator.core.matching import (
    AmendRejected,
    CancelReason,
    CancelRejected,
    ExpireReason,
    MatchingEngine,
    OrderAccepted,
    OrderAmended,
    OrderBook,
    OrderFilled,
    OrderRejected,
    OrderType,
    RejectReason,
    SelfTradePrevention as STP,
    Side,
    TimeInForce as TIF,
)

BUY, SELL = Side.BUY, Side.SELL


def book(**kw) -> OrderBook:
    kw.setdefault("tick_size", 10)
    kw.setdefault("lot_size", 5)
    return OrderBook("ETH-PERP", **kw)


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events]


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


# ------------------------------------------------------------------ rejections


def _reject_cases():
    """(name, setup(book, ids), request(book, ids) -> events, expected event type, reason)."""

    def rest(b, ids, account="mm", side=SELL, price=1000, size=10, **kw):
        evs = b.submit(ids(), account, side, price, size, **kw)
        assert isinstance(evs[0], OrderAccepted)
        return evs[0].order_id

    cases = [
        ("order_id_not_increasing", lambda b, i: rest(b, i), lambda b, i: b.submit(1, "a", BUY, 900, 10),
         OrderRejected, RejectReason.ORDER_ID_NOT_INCREASING),
        ("instrument_closed", lambda b, i: b.close(), lambda b, i: b.submit(i(), "a", BUY, 900, 10),
         OrderRejected, RejectReason.INSTRUMENT_CLOSED),
        ("invalid_side", None, lambda b, i: b.submit(i(), "a", 3, 900, 10), OrderRejected, RejectReason.INVALID_SIDE),
        ("invalid_tif", None, lambda b, i: b.submit(i(), "a", BUY, 900, 10, 9), OrderRejected,
         RejectReason.INVALID_TIME_IN_FORCE),
        ("market_gtc", lambda b, i: rest(b, i), lambda b, i: b.submit_market(i(), "a", BUY, 10, 100, None, TIF.GTC),
         OrderRejected, RejectReason.INVALID_TIME_IN_FORCE),
        ("invalid_stp", None, lambda b, i: b.submit(i(), "a", BUY, 900, 10, stp=7), OrderRejected,
         RejectReason.INVALID_STP),
        ("invalid_price", None, lambda b, i: b.submit(i(), "a", BUY, 0, 10), OrderRejected, RejectReason.INVALID_PRICE),
        ("invalid_tick", None, lambda b, i: b.submit(i(), "a", BUY, 905, 10), OrderRejected, RejectReason.INVALID_TICK),
        ("invalid_size", None, lambda b, i: b.submit(i(), "a", BUY, 900, 0), OrderRejected, RejectReason.INVALID_SIZE),
        ("invalid_lot", None, lambda b, i: b.submit(i(), "a", BUY, 900, 7), OrderRejected, RejectReason.INVALID_LOT),
        ("size_below_min", None, lambda b, i: OrderBook("X", 10, 5, min_size=20).submit(i(), "a", BUY, 900, 15),
         OrderRejected, RejectReason.SIZE_BELOW_MIN),
        ("size_above_max", None, lambda b, i: OrderBook("X", 10, 5, max_size=50).submit(i(), "a", BUY, 900, 55),
         OrderRejected, RejectReason.SIZE_ABOVE_MAX),
        ("invalid_band", lambda b, i: rest(b, i), lambda b, i: b.submit_market(i(), "a", BUY, 10, 0),
         OrderRejected, RejectReason.INVALID_BAND),
        ("no_reference_price", None, lambda b, i: b.submit_market(i(), "a", BUY, 10, 100), OrderRejected,
         RejectReason.NO_REFERENCE_PRICE),
        ("duplicate_client_order_id", lambda b, i: rest(b, i, client_order_id=42),
         lambda b, i: b.submit(i(), "mm", SELL, 1010, 10, client_order_id=42), OrderRejected,
         RejectReason.DUPLICATE_CLIENT_ORDER_ID),
        ("post_only_would_take", lambda b, i: rest(b, i),
         lambda b, i: b.submit(i(), "a", BUY, 1000, 10, TIF.POST_ONLY), OrderRejected,
         RejectReason.POST_ONLY_WOULD_TAKE),
        ("amend_post_only_would_take", lambda b, i: (rest(b, i), rest(b, i, "a", BUY, 900, 10, time_in_force=TIF.POST_ONLY)),
         lambda b, i: b.amend(2, "a", price=1000), AmendRejected, RejectReason.POST_ONLY_WOULD_TAKE),
        ("cancel_unknown_order", None, lambda b, i: b.cancel(99), CancelRejected, RejectReason.UNKNOWN_ORDER),
        ("cancel_by_client_unknown", None, lambda b, i: b.cancel_by_client_id("a", 5), CancelRejected,
         RejectReason.UNKNOWN_ORDER),
        ("amend_unknown_order", None, lambda b, i: b.amend(99, "a", price=900), AmendRejected,
         RejectReason.UNKNOWN_ORDER),
        ("cancel_not_owner", lambda b, i: rest(b, i), lambda b, i: b.cancel(1, "thief"), CancelRejected,
         RejectReason.NOT_ORDER_OWNER),
        ("amend_not_owner", lambda b, i: rest(b, i), lambda b, i: b.amend(1, "thief", size=5), AmendRejected,
         RejectReason.NOT_ORDER_OWNER),
        ("amend_no_change", lambda b, i: rest(b, i), lambda b, i: b.amend(1, "mm", price=1000, size=10),
         AmendRejected, RejectReason.AMEND_NO_CHANGE),
        ("amend_size_below_filled", lambda b, i: (rest(b, i, size=20), b.submit(i(), "t", BUY, 1000, 10)),
         lambda b, i: b.amend(1, "mm", size=10), AmendRejected, RejectReason.AMEND_SIZE_BELOW_FILLED),
        ("amend_invalid_tick", lambda b, i: rest(b, i), lambda b, i: b.amend(1, "mm", price=1001), AmendRejected,
         RejectReason.INVALID_TICK),
        ("amend_invalid_lot", lambda b, i: rest(b, i), lambda b, i: b.amend(1, "mm", size=3), AmendRejected,
         RejectReason.INVALID_LOT),
        ("amend_invalid_price", lambda b, i: rest(b, i), lambda b, i: b.amend(1, "mm", price=-10), AmendRejected,
         RejectReason.INVALID_PRICE),
        ("amend_invalid_size", lambda b, i: rest(b, i), lambda b, i: b.amend(1, "mm", size=0), AmendRejected,
         RejectReason.INVALID_SIZE),
        ("engine_unknown_instrument", None,
         lambda b, i: MatchingEngine().submit("NOPE-PERP", i(), "a", BUY, 900, 10), OrderRejected,
         RejectReason.UNKNOWN_INSTRUMENT),
    ]
    return cases


_CASES = _reject_cases()


@pytest.mark.parametrize(("setup", "request_", "etype", "reason"), [c[1:] for c in _CASES], ids=[c[0] for c in _CASES])
def test_invalid_request_rejected_with_reason(setup, request_, etype, reason):
    b, ids = book(), Ids()
    if setup:
        setup(b, ids)
    before = (b.depth(100), [o for o in b.open_orders()])
    events = request_(b, ids)
    assert len(events) == 1
    assert isinstance(events[0], etype)
    assert events[0].reason is reason
    assert events[0].reason == reason.value  # stable string code
    assert (b.depth(100), b.open_orders()) == before  # a rejection changes nothing
    b.check_invariants()


def test_every_reject_reason_has_a_unit_test_covered():
    assert {c[4] for c in _CASES} == set(RejectReason)


def test_rejected_order_id_consumed_next_lower_id_rejected():
    b = book()
    assert isinstance(b.submit(5, "a", BUY, 905, 10)[0], OrderRejected)  # bad tick, id 5 consumed
    assert b.submit(5, "a", BUY, 900, 10)[0].reason is RejectReason.ORDER_ID_NOT_INCREASING
    assert isinstance(b.submit(6, "a", BUY, 900, 10)[0], OrderAccepted)


def test_book_constructor_bad_sizes_raise():
    with pytest.raises(ValueError):
        OrderBook("X", tick_size=0)
    with pytest.raises(ValueError):
        OrderBook("X", lot_size=5, min_size=7)
    with pytest.raises(ValueError):
        OrderBook("X", lot_size=5, min_size=10, max_size=5)
    with pytest.raises(ValueError):
        OrderBook("")


# ------------------------------------------------------------- matching basics


def test_limit_crossing_fills_at_maker_price_in_price_time_order():
    b = book()
    b.submit(1, "m1", SELL, 1010, 10)
    b.submit(2, "m2", SELL, 1000, 10)
    b.submit(3, "m3", SELL, 1000, 10)
    evs = b.submit(4, "t", BUY, 1010, 25)
    fills = [e for e in evs if isinstance(e, OrderFilled)]
    assert [(f.maker_order_id, f.price, f.size) for f in fills] == [(2, 1000, 10), (3, 1000, 10), (1, 1010, 5)]
    assert fills[-1].maker_remaining == 5 and fills[-1].taker_remaining == 0
    assert fills[0].taker_side == BUY and fills[0].maker_account == "m2" and fills[0].taker_account == "t"
    assert b.best_ask() == 1010 and b.best_bid() is None
    b.check_invariants()


def test_gtc_remainder_rests_at_limit():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    evs = b.submit(2, "t", BUY, 1000, 25)
    assert kinds(evs) == ["OrderAccepted", "OrderFilled"]
    assert b.order(2).remaining == 15 and b.best_bid() == 1000 and b.best_ask() is None


def test_ioc_remainder_expires_not_rests():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    evs = b.submit(2, "t", BUY, 1000, 25, TIF.IOC)
    assert kinds(evs) == ["OrderAccepted", "OrderFilled", "OrderExpired"]
    assert evs[-1].remaining == 15 and evs[-1].reason is ExpireReason.IOC_REMAINDER
    assert b.order(2) is None


def test_fok_not_fillable_expires_without_side_effects():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    b.submit(2, "m", SELL, 1020, 10)
    evs = b.submit(3, "t", BUY, 1010, 15, TIF.FOK)
    assert kinds(evs) == ["OrderAccepted", "OrderExpired"]
    assert evs[1].reason is ExpireReason.FOK_NOT_FILLABLE and evs[1].remaining == 15
    assert b.depth() == ([], [(1000, 10), (1020, 10)])


def test_fok_fillable_fills_completely():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    b.submit(2, "m", SELL, 1020, 10)
    evs = b.submit(3, "t", BUY, 1020, 15, TIF.FOK)
    assert kinds(evs) == ["OrderAccepted", "OrderFilled", "OrderFilled"]
    assert sum(e.size for e in evs[1:]) == 15


def test_fok_blocked_by_own_order_with_cancel_taking_expires():
    b = book()
    b.submit(1, "t", SELL, 1000, 10)
    b.submit(2, "m", SELL, 1000, 10)
    evs = b.submit(3, "t", BUY, 1000, 10, TIF.FOK, stp=STP.CANCEL_TAKING)
    assert kinds(evs) == ["OrderAccepted", "OrderExpired"]
    evs = b.submit(4, "t", BUY, 1000, 10, TIF.FOK, stp=STP.CANCEL_RESTING)
    assert kinds(evs) == ["OrderAccepted", "OrderCancelled", "OrderFilled"]


def test_fok_not_crossing_expires():
    b = book()
    evs = b.submit(1, "t", BUY, 1000, 10, TIF.FOK)
    assert kinds(evs) == ["OrderAccepted", "OrderExpired"]


def test_post_only_not_crossing_rests():
    b = book()
    b.submit(1, "m", SELL, 1010, 10)
    evs = b.submit(2, "t", BUY, 1000, 10, TIF.POST_ONLY)
    assert kinds(evs) == ["OrderAccepted"] and b.best_bid() == 1000


# -------------------------------------------------------------------- STP


def test_stp_cancel_resting_cancels_maker_and_continues():
    b = book()
    b.submit(1, "a", SELL, 1000, 10)
    b.submit(2, "m", SELL, 1000, 10)
    evs = b.submit(3, "a", BUY, 1000, 10)  # default: cancel resting
    assert kinds(evs) == ["OrderAccepted", "OrderCancelled", "OrderFilled"]
    assert evs[1].order_id == 1 and evs[1].reason is CancelReason.SELF_TRADE_PREVENTION
    assert evs[2].maker_order_id == 2
    b.check_invariants()


def test_stp_cancel_taking_cancels_taker_keeps_maker():
    b = book()
    b.submit(1, "m", SELL, 1000, 5)
    b.submit(2, "a", SELL, 1000, 10)
    evs = b.submit(3, "a", BUY, 1000, 20, stp=STP.CANCEL_TAKING)
    assert kinds(evs) == ["OrderAccepted", "OrderFilled", "OrderCancelled"]
    assert evs[2].order_id == 3 and evs[2].remaining == 15
    assert b.order(2).remaining == 10 and b.order(3) is None


def test_stp_cancel_both_cancels_both():
    b = book()
    b.submit(1, "a", SELL, 1000, 10)
    evs = b.submit(2, "a", BUY, 1000, 10, stp=STP.CANCEL_BOTH)
    assert kinds(evs) == ["OrderAccepted", "OrderCancelled", "OrderCancelled"]
    assert {e.order_id for e in evs[1:]} == {1, 2}
    assert len(b) == 0
    b.check_invariants()


def test_default_stp_configurable_per_book():
    b = book(default_stp=STP.CANCEL_TAKING)
    b.submit(1, "a", SELL, 1000, 10)
    evs = b.submit(2, "a", BUY, 1000, 10)
    assert evs[0].stp == STP.CANCEL_TAKING and evs[1].order_id == 2


# ----------------------------------------------------------------- market


def test_market_buy_limited_by_band_expires_rest():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    b.submit(2, "m", SELL, 1050, 10)
    b.submit(3, "m", SELL, 1200, 10)
    evs = b.submit_market(4, "t", BUY, 30, band_bps=500)  # limit 1050
    assert evs[0].price == 1050 and evs[0].order_type == OrderType.MARKET
    assert kinds(evs) == ["OrderAccepted", "OrderFilled", "OrderFilled", "OrderExpired"]
    assert evs[-1].remaining == 10


def test_market_sell_band_rounds_toward_protection():
    b = book()
    b.submit(1, "m", BUY, 1000, 10)
    evs = b.submit_market(2, "t", SELL, 5, band_bps=15, reference_price=1005)
    # 1005 * 0.9985 = 1003.49... -> ceil to tick 1010; does not reach the 1000 bid
    assert evs[0].price == 1010
    assert kinds(evs) == ["OrderAccepted", "OrderExpired"]


def test_market_fok_all_or_nothing():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    evs = b.submit_market(2, "t", BUY, 15, 100, None, TIF.FOK)
    assert kinds(evs) == ["OrderAccepted", "OrderExpired"]


# ------------------------------------------------------------- cancels


def test_cancel_by_id_removes_order():
    b = book()
    b.submit(1, "a", BUY, 1000, 10, client_order_id=7)
    evs = b.cancel(1, "a")
    assert kinds(evs) == ["OrderCancelled"] and evs[0].remaining == 10 and evs[0].client_order_id == 7
    assert len(b) == 0 and b.best_bid() is None
    assert b.cancel(1)[0].reason is RejectReason.UNKNOWN_ORDER
    b.check_invariants()


def test_cancel_by_client_id_cancels_and_frees_id():
    b = book()
    b.submit(1, "a", BUY, 1000, 10, client_order_id=7)
    b.submit(2, "b", BUY, 1000, 10, client_order_id=7)  # same client id, other account
    evs = b.cancel_by_client_id("a", 7)
    assert evs[0].order_id == 1 and b.order(2) is not None
    assert isinstance(b.submit(3, "a", BUY, 990, 10, client_order_id=7)[0], OrderAccepted)


def test_cancel_all_account_only_its_orders():
    b = book()
    b.submit(1, "a", BUY, 1000, 10)
    b.submit(2, "b", BUY, 1000, 10)
    b.submit(3, "a", SELL, 1100, 10)
    evs = b.cancel_all("a")
    assert [e.order_id for e in evs] == [1, 3]
    assert all(e.reason is CancelReason.CANCEL_ALL for e in evs)
    assert [o.order_id for o in b.open_orders()] == [2]
    assert b.cancel_all("nobody") == []


def test_engine_cancel_all_per_instrument_or_all():
    eng = MatchingEngine()
    eng.add_book(OrderBook("ETH-PERP", 10, 5))
    eng.add_book(OrderBook("BTC-PERP", 10, 5))
    eng.submit("ETH-PERP", 1, "a", BUY, 1000, 10)
    eng.submit("BTC-PERP", 2, "a", BUY, 1000, 10)
    eng.submit("BTC-PERP", 3, "a", BUY, 1000, 10)
    assert [e.order_id for e in eng.cancel_all("a", "ETH-PERP")] == [1]
    assert [e.order_id for e in eng.cancel_all("a")] == [2, 3]
    assert eng.submit("ETH-PERP", 3, "a", BUY, 1000, 10)[0].reason is RejectReason.ORDER_ID_NOT_INCREASING
    with pytest.raises(ValueError):
        eng.add_book(OrderBook("ETH-PERP"))


def test_cancelled_head_of_level_skipped_by_matcher():
    b = book()
    for i in range(1, 101):
        b.submit(i, f"m{i}", SELL, 1000, 5)
    for i in range(1, 100):
        b.cancel(i)
    b.check_invariants()  # level compacted along the way
    evs = b.submit(101, "t", BUY, 1000, 5)
    assert evs[1].maker_order_id == 100


def test_close_expires_all_and_refuses_new():
    b = book()
    b.submit(1, "a", BUY, 1000, 10)
    b.submit(2, "b", SELL, 1100, 10)
    evs = b.close()
    assert kinds(evs) == ["OrderExpired", "OrderExpired"]
    assert evs[0].reason is ExpireReason.INSTRUMENT_CLOSED
    assert len(b) == 0


# ------------------------------------------------------------------ amend


def test_amend_size_decrease_keeps_priority():
    b = book()
    b.submit(1, "m1", SELL, 1000, 20)
    b.submit(2, "m2", SELL, 1000, 20)
    evs = b.amend(1, "m1", size=10)
    assert evs == [OrderAmended("ETH-PERP", 1, 0, "m1", 1000, 10, 10, True)]
    assert b.submit(3, "t", BUY, 1000, 5)[1].maker_order_id == 1
    b.check_invariants()


def test_amend_size_increase_loses_priority():
    b = book()
    b.submit(1, "m1", SELL, 1000, 10)
    b.submit(2, "m2", SELL, 1000, 10)
    assert b.amend(1, "m1", size=20)[0].priority_kept is False
    assert b.submit(3, "t", BUY, 1000, 5)[1].maker_order_id == 2


def test_amend_price_change_loses_priority():
    b = book()
    b.submit(1, "m1", SELL, 1010, 10)
    b.submit(2, "m2", SELL, 1000, 10)
    b.amend(1, "m1", price=1000)
    b.amend(1, "m1", price=1000, size=5)  # still behind m2
    assert b.submit(3, "t", BUY, 1000, 5)[1].maker_order_id == 2


def test_amend_total_size_semantics_after_partial_fill():
    b = book()
    b.submit(1, "m", SELL, 1000, 30)
    b.submit(2, "t", BUY, 1000, 10)
    evs = b.amend(1, "m", size=20)
    assert evs[0].size == 20 and evs[0].remaining == 10 and evs[0].priority_kept


def test_amend_price_crossing_executes_as_taker():
    b = book()
    b.submit(1, "m", SELL, 1000, 10)
    b.submit(2, "t", BUY, 990, 15)
    evs = b.amend(2, "t", price=1000)
    assert kinds(evs) == ["OrderAmended", "OrderFilled"]
    assert evs[1].taker_order_id == 2 and evs[1].size == 10
    assert b.order(2).remaining == 5 and b.best_bid() == 1000
    b.check_invariants()


def test_reduce_only_flag_carried_on_events_and_views():
    b = book()
    evs = b.submit(1, "a", BUY, 1000, 10, reduce_only=True)
    assert evs[0].reduce_only is True and b.order(1).reduce_only is True


def test_events_are_immutable():
    b = book()
    ev = b.submit(1, "a", BUY, 1000, 10)[0]
    with pytest.raises(AttributeError):
        ev.price = 5  # type: ignore[misc]


def test_depth_aggregates_levels_best_first():
    b = book()
    b.submit(1, "a", BUY, 1000, 10)
    b.submit(2, "b", BUY, 1000, 5)
    b.submit(3, "a", BUY, 990, 10)
    b.submit(4, "a", SELL, 1020, 10)
    b.submit(5, "a", SELL, 1010, 10)
    assert b.depth() == ([(1000, 15), (990, 10)], [(1010, 10), (1020, 10)])
    assert b.depth(1) == ([(1000, 15)], [(1010, 10)])

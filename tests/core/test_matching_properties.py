"""Property tests of the matching core (hypothesis): random request streams on one book.

Checked after every request: the book is never crossed at rest and its indexes agree
(``check_invariants``); makers are consumed in strict price-time priority; fills are at
the maker's price and within the taker's limit; FOK is all-or-nothing; post-only never
takes; IOC and market orders never rest; no account ever trades with itself. Checked at
the end: quantity is conserved per order, and the same requests give the same events.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.core.matching import (
    OrderAccepted,
    OrderAmended,
    OrderBook,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    ExpireReason,
)

TICK, LOT = 10, 2
ACCOUNTS = ["a", "b", "c"]

price = st.integers(95, 105).map(lambda p: p * TICK)
size = st.integers(1, 6).map(lambda s: s * LOT)
account = st.sampled_from(ACCOUNTS)
side = st.sampled_from([1, 2])
stp = st.sampled_from([None, 1, 2, 3])

op = st.one_of(
    st.tuples(st.just("limit"), account, side, price, size, st.sampled_from([1, 1, 2, 3, 4]), stp,
              st.integers(0, 3)),
    st.tuples(st.just("market"), account, side, size, st.sampled_from([10, 200, 500]), st.sampled_from([2, 3]), stp),
    st.tuples(st.just("cancel"), st.integers(1, 60), st.one_of(st.none(), account)),
    st.tuples(st.just("cancel_coid"), account, st.integers(1, 3)),
    st.tuples(st.just("cancel_all"), account),
    st.tuples(st.just("amend"), st.integers(1, 60), st.one_of(st.none(), price), st.one_of(st.none(), size)),
)
ops = st.lists(op, min_size=1, max_size=80)


def apply(b: OrderBook, o: tuple, oid: int) -> list:
    k = o[0]
    if k == "limit":
        _, acct, s, p, q, tif, mode, coid = o
        return b.submit(oid, acct, s, p, q, tif, coid, mode)
    if k == "market":
        _, acct, s, q, band, tif, mode = o
        return b.submit_market(oid, acct, s, q, band, 1000, tif, 0, mode)
    if k == "cancel":
        return b.cancel(o[1], o[2])
    if k == "cancel_coid":
        return b.cancel_by_client_id(o[1], o[2])
    if k == "cancel_all":
        return b.cancel_all(o[1])
    return b.amend(o[1], None, o[2], o[3])


def run(stream: list[tuple]) -> tuple[OrderBook, list[list]]:
    b = OrderBook("T", tick_size=TICK, lot_size=LOT)
    out = []
    for i, o in enumerate(stream, start=1):
        out.append(apply(b, o, i))
    return b, out


def taker_of(o: tuple, oid: int, b_before_orders: dict) -> tuple[int, int, int] | None:
    """Return (taker id, side, limit) if the request can take liquidity."""
    if o[0] in ("limit", "market"):
        return oid, o[2], -1  # limit read from the OrderAccepted event
    if o[0] == "amend" and o[1] in b_before_orders:
        v = b_before_orders[o[1]]
        return v.order_id, v.side, o[2] if o[2] is not None else v.price
    return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_random_streams_keep_every_invariant(stream):
    b = OrderBook("T", tick_size=TICK, lot_size=LOT)
    total_size: dict[int, int] = {}
    filled: dict[int, int] = defaultdict(int)
    dead: dict[int, int] = defaultdict(int)
    for oid, o in enumerate(stream, start=1):
        resting = {v.order_id: v for v in b.open_orders()}
        opposite = {1: list(b.iter_side(2)), 2: list(b.iter_side(1))}
        events = apply(b, o, oid)
        b.check_invariants()  # never crossed at rest, indexes consistent

        t = taker_of(o, oid, resting)
        limit = None
        if t is not None:
            acc = [e for e in events if isinstance(e, OrderAccepted)]
            limit = acc[0].price if acc else t[2]
        # price-time priority: makers touched (filled or STP-cancelled) are a prefix of the
        # opposite side in priority order, each touched once
        touched: list[int] = []
        for e in events:
            if isinstance(e, OrderFilled):
                assert e.maker_account != e.taker_account  # STP: never trade with yourself
                assert t is not None and e.taker_order_id == t[0]
                maker = resting[e.maker_order_id]
                assert e.price == maker.price  # maker's price
                assert (e.price <= limit) if e.taker_side == 1 else (e.price >= limit)
                if not touched or touched[-1] != e.maker_order_id:
                    touched.append(e.maker_order_id)
            elif isinstance(e, OrderCancelled) and t is not None and e.order_id != t[0] and o[0] != "cancel_all" \
                    and e.order_id in resting and o[0] != "cancel" and o[0] != "cancel_coid":
                touched.append(e.order_id)
        if t is not None and touched:
            prio = [v.order_id for v in opposite[t[1]]]
            assert touched == prio[: len(touched)]

        # TIF properties
        if o[0] in ("limit", "market"):
            tif = o[5]
            if events and isinstance(events[0], OrderAccepted):
                fills = [e for e in events if isinstance(e, OrderFilled)]
                if tif == 3:  # FOK: all or nothing, and nothing else happens when killed
                    expired = [e for e in events if isinstance(e, OrderExpired)]
                    if expired:
                        assert expired[0].reason is ExpireReason.FOK_NOT_FILLABLE
                        assert len(events) == 2 and not fills
                    elif not any(isinstance(e, OrderCancelled) and e.order_id == oid for e in events):
                        assert sum(f.size for f in fills) == events[0].size
                if tif == 4:
                    assert not fills  # post-only never takes
                if tif in (2, 3) or o[0] == "market":
                    assert b.order(oid) is None  # IOC / FOK / market never rest

        # bookkeeping for conservation
        for e in events:
            if isinstance(e, OrderAccepted):
                total_size[e.order_id] = e.size
            elif isinstance(e, OrderAmended):
                total_size[e.order_id] = e.size
            elif isinstance(e, OrderFilled):
                filled[e.maker_order_id] += e.size
                filled[e.taker_order_id] += e.size
            elif isinstance(e, (OrderCancelled, OrderExpired)):
                dead[e.order_id] += e.remaining

    open_ = {v.order_id: v.remaining for v in b.open_orders()}
    for oid, sz in total_size.items():
        assert sz == filled[oid] + dead[oid] + open_.get(oid, 0), f"quantity not conserved for order {oid}"


@settings(max_examples=100, deadline=None)
@given(ops)
def test_same_requests_same_events(stream):
    b1, out1 = run(stream)
    b2, out2 = run(stream)
    assert out1 == out2
    assert b1.depth(100) == b2.depth(100) and b1.open_orders() == b2.open_orders()


@settings(max_examples=200, deadline=None)
@given(ops)
def test_fills_balance_between_sides(stream):
    _, out = run(stream)
    for events in out:
        for e in events:
            if isinstance(e, OrderFilled):
                assert e.size > 0 and e.size % LOT == 0 and e.price % TICK == 0
                assert e.maker_remaining >= 0 and e.taker_remaining >= 0

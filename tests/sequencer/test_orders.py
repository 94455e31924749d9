"""Order lifecycle in the sequencer: amend priority, cancel by id / client id / all, TIFs, market orders."""

from __future__ import annotations

from tests.sequencer.helpers import ALICE, BOB, CAROL, DAVE, USDC, Harness

PERP = "ETH-PERP"
BTC = "BTC-PERP"
BUY, SELL = 1, 2
GTC, IOC, FOK, POST = 1, 2, 3, 4
MARKET = 2
P = 3_010 * USDC


def market() -> Harness:
    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    h.price("BTC-USD", 90000)
    for a in (ALICE, BOB, CAROL, DAVE):
        h.deposit(a, 100_000 * USDC)
    return h


def two_asks(h: Harness) -> tuple[int, int]:
    """Bob then Carol rest 100 each at P: Bob has time priority."""
    b = h.place(BOB, PERP, SELL, P, 100).result["order_id"]
    c = h.place(CAROL, PERP, SELL, P, 100).result["order_id"]
    return b, c


def taker_hits(h: Harness, size: int = 10) -> int:
    out = h.place(ALICE, PERP, BUY, P, size, tif=IOC)
    return out.result["fills"][0]["maker_order_id"]


def test_amend_size_down_keeps_priority():
    h = market()
    b, _ = two_asks(h)
    out = h.amend(BOB, PERP, b, size=60)
    assert out.result["status"] == "open" and out.result["remaining"] == 60
    assert taker_hits(h) == b


def test_amend_size_up_loses_priority():
    h = market()
    b, c = two_asks(h)
    h.amend(BOB, PERP, b, size=150)
    assert taker_hits(h) == c


def test_amend_price_loses_priority_at_new_level():
    h = market()
    b, c = two_asks(h)
    h.amend(BOB, PERP, b, price=P + 10_000)
    h.amend(BOB, PERP, b, price=P)  # back at P, behind Carol now
    assert taker_hits(h) == c


def test_amend_total_size_counts_filled_quantity():
    h = market()
    b, _ = two_asks(h)
    h.place(ALICE, PERP, BUY, P, 30, tif=IOC)  # Bob's 100 is now 30 filled, 70 open
    out = h.amend(BOB, PERP, b, size=50)
    assert (out.result["size"], out.result["filled"], out.result["remaining"]) == (50, 30, 20)
    assert [o["remaining"] for o in h.seq.open_orders(BOB)] == [20]


def test_amend_across_the_book_executes_as_taker():
    h = market()
    h.place(BOB, PERP, SELL, P, 100)
    oid = h.place(ALICE, PERP, BUY, P - 50_000, 40).result["order_id"]
    out = h.amend(ALICE, PERP, oid, price=P)
    assert out.result["status"] == "filled" and out.result["fills"][0]["size"] == 40
    assert h.pos(ALICE, PERP) == 40 and h.seq.open_orders(ALICE) == []


def test_amend_releases_and_re_reserves_margin():
    h = market()
    oid = h.place(ALICE, PERP, BUY, 2_900 * USDC, 1000).result["order_id"]
    im = h.seq.account(ALICE)["initial_margin"]
    assert im == 1000 * 3_000 * USDC * 1000 // (1000 * 10_000)  # on the mark: 300 USDC
    h.amend(ALICE, PERP, oid, size=500)
    assert h.seq.account(ALICE)["initial_margin"] == im // 2


def test_cancel_by_order_id_releases_reserve():
    h = market()
    oid = h.place(ALICE, PERP, BUY, 2_900 * USDC, 100).result["order_id"]
    out = h.cancel(ALICE, PERP, order_id=oid)
    assert out.result == {**out.result, "order_id": oid, "status": "cancelled", "cancelled_size": 100}
    assert h.seq.open_orders(ALICE) == [] and h.seq.account(ALICE)["initial_margin"] == 0
    assert h.seq.book(PERP)["bids"] == []
    assert h.cancel(ALICE, PERP, order_id=oid).code == "order_not_found"


def test_cancel_by_client_order_id():
    h = market()
    keep = h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, coid=1).result["order_id"]
    gone = h.place(ALICE, PERP, BUY, 2_901 * USDC, 100, coid=2).result["order_id"]
    h.place(BOB, PERP, BUY, 2_902 * USDC, 100, coid=2)  # client ids are per account
    out = h.cancel(ALICE, PERP, coid=2)
    assert out.result["order_id"] == gone
    assert [o["order_id"] for o in h.seq.open_orders(ALICE)] == [keep]
    assert len(h.seq.open_orders(BOB)) == 1


def test_cancel_all_one_instrument_then_all():
    h = market()
    e1 = h.place(ALICE, PERP, BUY, 2_900 * USDC, 100).result["order_id"]
    e2 = h.place(ALICE, PERP, SELL, 3_100 * USDC, 100).result["order_id"]
    b1 = h.place(ALICE, BTC, BUY, 80_000 * USDC, 10).result["order_id"]
    h.place(BOB, PERP, BUY, 2_800 * USDC, 100)
    out = h.cancel_all(ALICE, PERP)
    assert sorted(out.result["cancelled"]) == [e1, e2] and out.result["count"] == 2
    assert [o["order_id"] for o in h.seq.open_orders(ALICE)] == [b1]
    out = h.cancel_all(ALICE)
    assert out.result["cancelled"] == [b1]
    assert h.seq.open_orders(ALICE) == [] and h.seq.account(ALICE)["initial_margin"] == 0
    assert len(h.seq.open_orders(BOB)) == 1
    assert h.cancel_all(ALICE).result["count"] == 0  # nothing left: accepted, empty


def test_gtc_rests_remainder_ioc_expires_it():
    h = market()
    h.place(BOB, PERP, SELL, P, 100)
    out = h.place(ALICE, PERP, BUY, P, 150)
    assert (out.result["status"], out.result["filled"], out.result["remaining"]) == ("partially_filled", 100, 50)
    h.place(BOB, PERP, SELL, P + 10_000, 100)
    out = h.place(CAROL, PERP, BUY, P + 10_000, 150, tif=IOC)
    assert (out.result["status"], out.result["filled"], out.result["remaining"]) == ("expired", 100, 0)
    assert h.seq.open_orders(CAROL) == []


def test_fok_fills_entirely_across_levels():
    h = market()
    h.place(BOB, PERP, SELL, P, 100)
    h.place(CAROL, PERP, SELL, P + 10_000, 100)
    out = h.place(ALICE, PERP, BUY, P + 10_000, 200, tif=FOK)
    assert out.result["status"] == "filled" and [f["size"] for f in out.result["fills"]] == [100, 100]


def test_post_only_rests_when_not_crossing():
    h = market()
    h.place(BOB, PERP, SELL, P, 100)
    out = h.place(ALICE, PERP, BUY, P - 10_000, 100, tif=POST)
    assert out.result["status"] == "open" and h.seq.book(PERP)["bids"] == [[P - 10_000, 100]]


def test_market_buy_is_bounded_by_band_around_mark():
    h = market()  # mark 3000, band 5%: a market buy pays at most 3150
    h.place(BOB, PERP, SELL, 3_100 * USDC, 100)
    h.place(CAROL, PERP, SELL, 3_160 * USDC, 100)
    out = h.place(ALICE, PERP, BUY, 0, 200, order_type=MARKET, tif=IOC)
    assert out.result["price"] == 3_150 * USDC
    assert out.result["filled"] == 100 and out.result["status"] == "expired"
    assert h.seq.book(PERP)["asks"] == [[3_160 * USDC, 100]]


def test_self_trade_cancels_resting_order_and_never_fills_own():
    h = market()
    own = h.place(ALICE, PERP, SELL, P, 100).result["order_id"]
    h.place(BOB, PERP, SELL, P + 10_000, 100)
    out = h.place(ALICE, PERP, BUY, P + 10_000, 100)
    assert out.result["fills"][0]["maker_order_id"] != own and out.result["filled"] == 100
    assert own not in [o["order_id"] for o in h.seq.open_orders(ALICE)]
    assert h.pos(ALICE, PERP) == 100 and h.seq.account(ALICE)["initial_margin"] > 0
    fills = h.seq.fills(ALICE)
    assert len(fills) == 1 and fills[0]["liquidity"] == "taker" and fills[0]["side"] == "buy"


def test_fills_and_trades_record_both_sides():
    h = market()
    mk = h.place(BOB, PERP, SELL, P, 100).result["order_id"]
    tk = h.place(ALICE, PERP, BUY, P, 100).result["order_id"]
    t = h.seq.trades(PERP)[0]
    assert (t["maker_order_id"], t["taker_order_id"], t["taker_side"], t["size"]) == (mk, tk, "buy", 100)
    bf = h.seq.fills(BOB)[0]
    assert (bf["liquidity"], bf["side"], bf["order_id"]) == ("maker", "sell", mk)

"""Order status after an order ended: ``Sequencer.order`` / ``closed_orders`` keep the last
``orders_kept`` ended orders per account (filled, cancelled, expired), from every way an order ends."""

from __future__ import annotations

from aggregator.core import commands as C
from aggregator.core.sequencer import Sequencer

from .helpers import ALICE, BOB, USDC, Harness, config, funded, state_bytes

PERP = "ETH-PERP"
BUY, SELL = 1, 2
GTC, IOC, FOK = 1, 2, 3


def test_every_way_an_order_ends_is_recorded_with_its_fill():
    h = funded(ALICE, BOB)
    ask = h.place(BOB, PERP, SELL, 3_010 * USDC, 500, coid=77).result["order_id"]
    part = h.place(BOB, PERP, SELL, 3_020 * USDC, 400).result["order_id"]
    gtd = h.place(BOB, PERP, SELL, 3_100 * USDC, 100, expiry=h.now // 1000 + 5).result["order_id"]
    taker = h.place(ALICE, PERP, BUY, 3_020 * USDC, 600, tif=IOC).result["order_id"]  # all of ask, 100 of part
    ioc = h.place(ALICE, PERP, BUY, 3_000 * USDC, 50, tif=IOC).result["order_id"]  # nothing to take: expired
    assert h.cancel(BOB, PERP, order_id=part).accepted
    h.advance(6_000)
    h.tick()  # gtd expires
    s = h.seq
    a = s.order(BOB, ask)
    assert (a["status"], a["filled"], a["size"], a["price"], a["side"]) == ("filled", 500, 500, 3_010 * USDC, "sell")
    assert s.order(BOB, client_order_id=77)["order_id"] == ask
    p = s.order(BOB, part)
    assert (p["status"], p["filled"], p["size"], p["remaining"]) == ("cancelled", 100, 400, 0)
    assert s.order(BOB, gtd)["status"] == "expired" and s.order(BOB, gtd)["done_ms"] == h.now
    assert (s.order(ALICE, taker)["status"], s.order(ALICE, taker)["filled"]) == ("filled", 600)
    assert (s.order(ALICE, ioc)["status"], s.order(ALICE, ioc)["filled"]) == ("expired", 0)
    assert [o["order_id"] for o in s.closed_orders(BOB)] == [gtd, part, ask]  # newest first
    assert [o["order_id"] for o in s.closed_orders(ALICE, PERP, limit=1)] == [ioc]
    assert s.order(ALICE, ask) is None and s.order(BOB, 10**9) is None  # not hers; unknown


def test_an_open_order_reads_as_open_and_a_rejected_one_is_never_recorded():
    h = funded(ALICE, BOB)
    oid = h.place(BOB, PERP, SELL, 3_010 * USDC, 500).result["order_id"]
    assert h.seq.order(BOB, oid)["status"] == "open"
    before = state_bytes(h.seq)
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, 600, tif=FOK).code == "fok_not_fillable"
    assert state_bytes(h.seq) == before and h.seq.closed_orders(ALICE) == []


def test_history_is_bounded_per_account_and_survives_replay():
    h = Harness(config(orders_kept=5))
    h.price("ETH-USD", 3_000)
    h.deposit(ALICE, 100_000 * USDC)
    ids = [h.place(ALICE, PERP, BUY, (2_900 + i) * USDC, 10).result["order_id"] for i in range(8)]
    for oid in ids:
        assert h.cancel(ALICE, PERP, order_id=oid).accepted
    assert [o["order_id"] for o in h.seq.closed_orders(ALICE)] == ids[::-1][:5]
    assert h.seq.order(ALICE, ids[0]) is None  # forgotten: older than the last five
    fresh = Sequencer(h.cfg)
    for cmd in h.log:
        fresh.apply(C.decode(C.encode(cmd)))
    assert fresh.closed_orders(ALICE) == h.seq.closed_orders(ALICE)
    assert Sequencer.restore(h.cfg, h.seq.snapshot()).closed_orders(ALICE) == h.seq.closed_orders(ALICE)


def test_market_orders_keep_their_type_and_average_fill_price():
    h = funded(ALICE, BOB)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 300)
    h.place(BOB, PERP, SELL, 3_010 * USDC, 300)
    oid = h.place(ALICE, PERP, BUY, 0, 400, order_type=2).result["order_id"]  # market: band price recorded
    o = h.seq.order(ALICE, oid)
    assert (o["order_type"], o["status"], o["filled"]) == ("market", "filled", 400)
    assert o["filled_value"] == 3_000 * USDC * 300 + 3_010 * USDC * 100
    assert o["average_price"] == (3_000 * USDC * 300 + 3_010 * USDC * 100) // 400
    maker = h.seq.order(BOB, oid - 1)  # the 3010 ask: 100 of 300 filled, still open
    assert (maker["status"], maker["filled_value"]) == ("partially_filled", 3_010 * USDC * 100)


def test_trigger_orders_are_recorded_when_cancelled_expired_fired_or_refused():
    h = funded(ALICE, BOB)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 100)
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, 100, tif=IOC).result["filled"] == 100
    h.place(BOB, PERP, BUY, 2_890 * USDC, 1000)
    cancel = h.trigger(ALICE, PERP, SELL, 2_800 * USDC, 100, reduce_only=True).result["order_id"]
    short = h.trigger(ALICE, PERP, SELL, 2_700 * USDC, 100, expiry=h.now // 1000 + 10).result["order_id"]
    fire = h.trigger(ALICE, PERP, SELL, 2_950 * USDC, 100, reduce_only=True).result["order_id"]
    refuse = h.trigger(ALICE, PERP, SELL, 2_960 * USDC, 10_000_000).result["order_id"]  # too big for her margin
    assert h.cancel(ALICE, PERP, order_id=cancel).accepted
    out = h.price("ETH-USD", 2_940)
    placed = next(e.order_id for e in out.events if type(e).__name__ == "TriggerFired")
    h.advance(11_000)
    h.tick()
    s = h.seq
    assert s.order(ALICE, cancel)["status"] == "cancelled" and s.order(ALICE, short)["status"] == "expired"
    f = s.order(ALICE, fire)
    assert (f["status"], f["order_type"], f["triggered_order_id"]) == ("triggered", "trigger", placed)
    assert s.order(ALICE, placed)["status"] == "filled"  # the order it placed sold into Bob's bid
    assert s.order(ALICE, refuse)["status"] == "rejected"

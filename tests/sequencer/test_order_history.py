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

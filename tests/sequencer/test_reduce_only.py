"""Reduce-only orders stay within the position they reduce, after entry as well."""

from __future__ import annotations

from aggregator.core.matching import CancelReason, OrderAmended, OrderCancelled
from tests.sequencer.helpers import ALICE, BOB, CAROL, USDC, Harness

PERP = "ETH-PERP"
BUY, SELL = 1, 2
IOC = 2


def long_alice(size: int = 1000) -> Harness:
    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    for a in (ALICE, BOB, CAROL):
        h.deposit(a, 100_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, size)
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, size).result["filled"] == size
    return h


def open_ids(h: Harness, account: str) -> dict[int, int]:
    return {o["order_id"]: o["remaining"] for o in h.seq.open_orders(account)}


def test_position_closed_elsewhere_cancels_resting_reduce_only_order():
    h = long_alice()
    ro = h.place(ALICE, PERP, SELL, 3_100 * USDC, 600, reduce_only=True).result["order_id"]
    h.place(CAROL, PERP, BUY, 2_990 * USDC, 1000)
    out = h.place(ALICE, PERP, SELL, 2_990 * USDC, 1000, tif=IOC)  # closes the long with a normal order
    assert out.result["filled"] == 1000 and h.pos(ALICE, PERP) == 0
    assert OrderCancelled(PERP, ro, 0, ALICE, 600, CancelReason.REDUCE_ONLY) in out.events
    assert open_ids(h, ALICE) == {} and h.seq.account(ALICE)["initial_margin"] == 0
    # a buyer that would have hit it now finds nothing of Alice's: she never goes short
    h.place(CAROL, PERP, BUY, 3_100 * USDC, 600, tif=IOC)
    assert h.pos(ALICE, PERP) == 0


def test_position_reduced_elsewhere_shrinks_reduce_only_orders_in_time_priority():
    h = long_alice()
    first = h.place(ALICE, PERP, SELL, 3_100 * USDC, 500, reduce_only=True).result["order_id"]
    second = h.place(ALICE, PERP, SELL, 3_050 * USDC, 400, reduce_only=True).result["order_id"]
    h.place(CAROL, PERP, BUY, 2_990 * USDC, 300)
    out = h.place(ALICE, PERP, SELL, 2_990 * USDC, 300, tif=IOC)  # long 1000 -> 700
    assert h.pos(ALICE, PERP) == 700
    # the older order keeps its 500, the newer one is cut to the 200 left
    assert open_ids(h, ALICE) == {first: 500, second: 200}
    assert any(type(e) is OrderAmended and e.order_id == second and e.remaining == 200 for e in out.events)
    out = h.place(CAROL, PERP, BUY, 3_100 * USDC, 2000, tif=IOC)  # takes both: Alice ends flat, not short
    assert out.result["filled"] == 700 and h.pos(ALICE, PERP) == 0


def test_reduce_only_order_filled_in_part_keeps_the_others_within_the_position():
    h = long_alice()
    a = h.place(ALICE, PERP, SELL, 3_010 * USDC, 600, reduce_only=True).result["order_id"]
    b = h.place(ALICE, PERP, SELL, 3_020 * USDC, 400, reduce_only=True).result["order_id"]
    h.place(CAROL, PERP, BUY, 3_010 * USDC, 200, tif=IOC)  # fills 200 of a: long 800, a 400 + b 400
    assert h.pos(ALICE, PERP) == 800 and open_ids(h, ALICE) == {a: 400, b: 400}

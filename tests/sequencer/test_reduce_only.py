"""Reduce-only orders stay within the position they reduce, after entry as well."""

from __future__ import annotations

import random

import pytest

from aggregator.core.matching import CancelReason, OrderAccepted, OrderAmended, OrderCancelled, OrderFilled
from tests.sequencer.helpers import ALICE, BOB, CAROL, DAVE, USDC, Harness, config
from tests.sequencer.session import session

PERP = "ETH-PERP"
BUY, SELL = 1, 2
IOC = 2
FOK = 3


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


def test_taker_sweeping_normal_then_reduce_only_orders_never_flips_the_maker():
    h = long_alice()
    normal = h.place(ALICE, PERP, SELL, 3_010 * USDC, 600).result["order_id"]
    ro = h.place(ALICE, PERP, SELL, 3_020 * USDC, 1000, reduce_only=True).result["order_id"]
    out = h.place(CAROL, PERP, BUY, 3_020 * USDC, 2000, tif=IOC)
    # the normal order sells 600 (long 400 left), so the reduce-only one may only sell 400
    assert [(f["maker_order_id"], f["size"]) for f in out.result["fills"]] == [(normal, 600), (ro, 400)]
    assert OrderCancelled(PERP, ro, 0, ALICE, 600, CancelReason.REDUCE_ONLY) in out.events
    assert h.pos(ALICE, PERP) == 0 and h.pos(CAROL, PERP) == 1000
    assert open_ids(h, ALICE) == {} and h.seq.account(ALICE)["initial_margin"] == 0


def test_reduce_only_order_with_no_room_left_is_cancelled_without_a_fill():
    h = long_alice(600)
    h.place(ALICE, PERP, SELL, 3_010 * USDC, 600)
    ro = h.place(ALICE, PERP, SELL, 3_020 * USDC, 600, reduce_only=True).result["order_id"]
    out = h.place(CAROL, PERP, BUY, 3_020 * USDC, 1200, tif=IOC)
    assert out.result["filled"] == 600 and all(f["maker_order_id"] != ro for f in out.result["fills"])
    assert OrderCancelled(PERP, ro, 0, ALICE, 600, CancelReason.REDUCE_ONLY) in out.events
    assert h.pos(ALICE, PERP) == 0 and open_ids(h, ALICE) == {}


def test_short_maker_reduce_only_bid_is_capped_the_same_way():
    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    for a in (ALICE, BOB, CAROL):
        h.deposit(a, 100_000 * USDC)
    h.place(BOB, PERP, BUY, 3_000 * USDC, 800)
    h.place(ALICE, PERP, SELL, 3_000 * USDC, 800)  # Alice short 800
    normal = h.place(ALICE, PERP, BUY, 2_990 * USDC, 500).result["order_id"]
    ro = h.place(ALICE, PERP, BUY, 2_980 * USDC, 800, reduce_only=True).result["order_id"]
    out = h.place(CAROL, PERP, SELL, 2_980 * USDC, 1300, tif=IOC)
    assert [(f["maker_order_id"], f["size"]) for f in out.result["fills"]] == [(normal, 500), (ro, 300)]
    assert h.pos(ALICE, PERP) == 0 and open_ids(h, ALICE) == {}


def test_fok_counts_only_what_capped_reduce_only_orders_can_fill():
    h = long_alice()
    normal = h.place(ALICE, PERP, SELL, 3_010 * USDC, 600).result["order_id"]
    ro = h.place(ALICE, PERP, SELL, 3_020 * USDC, 1000, reduce_only=True).result["order_id"]
    root = h.seq.state_root()
    # 1,600 rests on the asks, but only 600 + 400 of it can trade without flipping Alice
    out = h.place(CAROL, PERP, BUY, 3_020 * USDC, 1600, tif=FOK)
    assert not out.accepted and out.code == "fok_not_fillable"
    assert open_ids(h, ALICE) == {normal: 600, ro: 1000} and h.seq.state_root() == root
    out = h.place(CAROL, PERP, BUY, 3_020 * USDC, 1000, tif=FOK)
    assert out.result["filled"] == 1000 and h.pos(ALICE, PERP) == 0


def _check_ro_fills(out, running: dict, ro_ids: set) -> int:  # noqa: ANN001
    """Follow the command's fills in order; assert each reduce-only fill moves its owner towards 0, not past."""
    n = 0
    for e in out.events:
        if type(e) is OrderAccepted and e.reduce_only:
            ro_ids.add(e.order_id)
        elif type(e) is OrderFilled:
            key = (e.maker_account, e.instrument)
            was = running.get(key, 0)
            now = running[key] = was + (e.size if e.taker_side == SELL else -e.size)
            if e.maker_order_id in ro_ids:
                n += 1
                assert (0 <= now < was) if was > 0 else (was < now <= 0), (out.seq, e, was, now)
    return n


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_reduce_only_fills_never_increase_or_flip_a_position_in_random_flow(seed: int) -> None:
    """Four traders quote and take ETH-PERP around one price; two in five orders are reduce-only on
    the reducing side. Following every command's fills in order, a fill of a resting reduce-only order
    moves its owner's position towards zero and never past it (normal orders of the same owner swept
    before it in the same command included); the random session mix (tests.sequencer.session) too."""
    rng = random.Random(seed)
    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    traders = [ALICE, BOB, CAROL, DAVE]
    for a in traders:
        h.deposit(a, 1_000_000 * USDC)
    ro_ids: set[int] = set()
    ro_fills = capped = 0
    for _ in range(1500):
        a = rng.choice(traders)
        side = rng.choice((BUY, SELL))
        ro = rng.random() < 0.4
        pos = h.pos(a, PERP)
        if ro and pos:
            side = SELL if pos > 0 else BUY
        price = (3_000 + rng.randint(-3, 3) * 5) * USDC
        size = rng.choice((1, 2, 3, 5, 8)) * 100
        tif = rng.choice((1, 1, 1, IOC, FOK))
        running = {(x, PERP): h.pos(x, PERP) for x in traders}
        out = h.place(a, PERP, side, price, size, tif=tif, reduce_only=ro)
        ro_fills += _check_ro_fills(out, running, ro_ids)
        capped += sum(type(e) is OrderCancelled and e.reason == CancelReason.REDUCE_ONLY for e in out.events)
        if rng.random() < 0.05:
            h.cancel_all(a)
    assert ro_fills > 50 and capped > 3  # the flow fills and caps reduce-only orders


def test_reduce_only_fills_never_flip_in_random_sessions() -> None:
    h = Harness(config())
    seq = h.seq
    ro_ids: set[int] = set()
    ro_fills = 0
    for cls, args, ts in session(8, 2500, lambda: h.seq):
        h.now = ts
        running = {(a.address, name): ex.size for a in seq._accounts.values() for name, ex in a.exposures.items()}
        ro_fills += _check_ro_fills(h.apply(lambda s, t: cls(s, t, *args)), running, ro_ids)
    assert ro_fills > 5

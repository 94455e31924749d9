"""The insurance fund never carries a perp: it unwinds in the book within a band, then deleverages.

Rules (``Sequencer._unwind``): a perp position the fund takes over in a liquidation goes,
in the same command, to the book as IOC orders limited to ``liquidation_band_bps`` from the
mark; the rest is closed at the mark against the opposite side's positions, ranked by
profit ratio times leverage (highest first, ties by address). Expected amounts and orders
are computed here from those rules.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from aggregator import eip712
from aggregator.core import commands as C
from aggregator.core.events import AutoDeleveraged, Liquidated, TradeSettled
from aggregator.core.sequencer import Sequencer

from .helpers import ALICE, BOB, CAROL, DAVE, FEE, INS, USDC, Harness, config

PERP = "ETH-PERP"
BUY, SELL = 1, 2
IOC = 2
SCALE = 1000  # ETH-PERP size units per ETH
ERIN = eip712.to_checksum_address("0x" + "e" * 40)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def priced(*funded: str, band: int = 100) -> Harness:
    """ETH at 3000 and ``liquidation_band_bps`` ``band``; each of ``funded`` deposits 100,000 USDC."""
    h = Harness(config(liquidation_band_bps=band))
    h.price("ETH-USD", 3_000)
    for a in funded:
        h.deposit(a, 100_000 * USDC)
    return h


def carol_long(h: Harness, collateral: int, counterparties: list[tuple[str, int, int]]) -> None:
    """Carol buys 1 ETH-PERP from ``(account, price, size)`` sellers (all filled), with ``collateral``."""
    h.deposit(CAROL, collateral)
    total = sum(s for _, _, s in counterparties)
    for a, p, s in counterparties:
        assert h.place(a, PERP, SELL, p, s).accepted
    out = h.place(CAROL, PERP, BUY, max(p for _, p, _ in counterparties), total, tif=IOC)
    assert out.result["filled"] == total


def test_fund_unwinds_into_bids_within_the_band_then_deleverages_the_rest():
    h = priced(ALICE, BOB, DAVE)
    carol_long(h, 400 * USDC, [(BOB, 3_000 * USDC, 1000)])
    mark = 2_700 * USDC
    # bids: Alice 300 at 2690 and Dave 200 at 2680 (inside 1% of 2700), Alice 500 at 2600 (outside)
    assert h.place(ALICE, PERP, BUY, 2_690 * USDC, 300).accepted
    assert h.place(DAVE, PERP, BUY, 2_680 * USDC, 200).accepted
    outside = h.place(ALICE, PERP, BUY, 2_600 * USDC, 500).result["order_id"]
    ins0, fee0 = h.bal(INS), h.bal(FEE)
    out = h.price("ETH-USD", 2_700)
    penalty = ceil_div(1000 * mark * 100, SCALE * 10_000)
    assert Liquidated(CAROL, PERP, 1000, mark, penalty) in out.events
    trades = [e for e in out.events if type(e) is TradeSettled]
    assert [(t.maker, t.taker, t.price, t.size) for t in trades] == [
        (ALICE, INS, 2_690 * USDC, 300), (DAVE, INS, 2_680 * USDC, 200)]
    # the fund sold 500 below the mark: it pays the difference plus its taker fee
    slippage = (10 * USDC * 300 + 20 * USDC * 200) // SCALE
    taker_fee = sum(ceil_div(t.price * t.size // SCALE * 5, 10_000) for t in trades)
    maker_fee = sum(ceil_div(t.price * t.size // SCALE * 2, 10_000) for t in trades)
    assert h.bal(INS) == ins0 + penalty - slippage - taker_fee
    assert h.bal(FEE) == fee0 + taker_fee + maker_fee
    # the rest, 500, is deleveraged at the mark against Bob, the only short
    assert [e for e in out.events if type(e) is AutoDeleveraged] == [AutoDeleveraged(BOB, PERP, 500, mark, 1)]
    assert out.result["auto_deleveraged"] == 1
    assert h.pos(INS, PERP) == 0 and h.pos(BOB, PERP) == -500
    assert h.pos(ALICE, PERP) == 300 and h.pos(DAVE, PERP) == 200
    assert [o["order_id"] for o in h.seq.open_orders(ALICE)] == [outside]  # outside the band: untouched
    assert h.seq.total_balance() == h.seq.deposited


def test_band_zero_skips_the_book_below_the_mark():
    h = priced(ALICE, BOB, band=0)
    carol_long(h, 400 * USDC, [(BOB, 3_000 * USDC, 1000)])
    assert h.place(ALICE, PERP, BUY, 2_690 * USDC, 300).accepted
    out = h.price("ETH-USD", 2_700)
    assert not [e for e in out.events if type(e) is TradeSettled]
    assert [e for e in out.events if type(e) is AutoDeleveraged] == [
        AutoDeleveraged(BOB, PERP, 1000, 2_700 * USDC, 1)]
    assert len(h.seq.open_orders(ALICE)) == 1


def test_deleveraging_queue_ranks_by_profit_ratio_times_leverage():
    """Three shorts: Bob and Dave sold 400 at 3000 (the best profit ratio), Dave on 2k of collateral
    (most leverage), Erin 600 at 2950 on 100k (less profit, but more notional than Bob): Dave
    first, then Erin, partly; Bob, first by profit and by address, is not touched."""
    h = priced(ALICE, BOB)
    h.deposit(DAVE, 2_000 * USDC)
    h.deposit(ERIN, 100_000 * USDC)
    # Erin sells 600 at 2950 to Alice first, then Bob and Dave 400 each at 3000 to Carol
    assert h.place(ERIN, PERP, SELL, 2_950 * USDC, 600).accepted
    assert h.place(ALICE, PERP, BUY, 2_950 * USDC, 600, tif=IOC).result["filled"] == 600
    carol_long(h, 300 * USDC, [(BOB, 3_000 * USDC, 400), (DAVE, 3_000 * USDC, 400)])
    mark = 2_700 * USDC
    seq = h.seq
    scores = {}
    for a in (BOB, DAVE, ERIN):
        ex = seq._accounts[a].exposures[PERP]
        upnl = ex.cost - abs(ex.size) * mark
        scores[a] = Fraction(upnl, ex.cost) * Fraction(abs(ex.size) * mark, SCALE * seq._accounts[a].total)
    out = h.price("ETH-USD", 2_700)  # Carol (long 800, 300 USDC) is liquidated; no bids
    assert [e.account for e in out.events if type(e) is Liquidated] == [CAROL]
    adl = [e for e in out.events if type(e) is AutoDeleveraged]
    expect = sorted(scores, key=lambda a: (-scores[a], a))
    assert expect == [DAVE, ERIN, BOB]
    assert [(e.account, e.size, e.rank) for e in adl] == [(DAVE, 400, 1), (ERIN, 400, 2)]
    assert h.pos(DAVE, PERP) == 0 and h.pos(ERIN, PERP) == -200 and h.pos(BOB, PERP) == -400
    assert h.pos(INS, PERP) == 0


def test_a_partial_deleverage_leaves_the_rest_and_recaps_reduce_only_orders():
    h = priced(ALICE, BOB)
    carol_long(h, 300 * USDC, [(BOB, 3_000 * USDC, 500)])  # Carol long 500, Bob short 500
    assert h.place(BOB, PERP, SELL, 3_000 * USDC, 700).accepted
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, 700, tif=IOC).result["filled"] == 700  # Bob short 1200
    # Bob rests a reduce-only bid for 1000 of his 1200 short; deleveraging 500 leaves room for 700
    ro = h.place(BOB, PERP, BUY, 2_000 * USDC, 1000, reduce_only=True)
    assert ro.accepted
    out = h.price("ETH-USD", 2_400)  # Carol bankrupt; Bob's RO bid at 2000 is outside the band
    assert [(e.account, e.size) for e in out.events if type(e) is AutoDeleveraged] == [(BOB, 500)]
    assert h.pos(BOB, PERP) == -700
    [o] = h.seq.open_orders(BOB)
    assert o["order_id"] == ro.result["order_id"] and o["remaining"] == 700
    assert h.seq.total_balance() == h.seq.deposited


@pytest.mark.parametrize("seed", [6, 11, 23, 31])
def test_fund_ends_every_command_flat_in_perps_and_open_interest_balances(seed: int) -> None:
    h = Harness(config())
    seq = h.seq
    liquidated = adl = 0
    for _, out in h.drive(seed, 700, step_ms=20_000):
        liquidated += sum(type(e) is Liquidated and e.instrument.endswith("PERP") for e in out.events)
        adl += sum(type(e) is AutoDeleveraged for e in out.events)
        ins = seq._accounts[INS]
        assert not any(ex.size and ex.market.is_perp for ex in ins.exposures.values()), (seed, out.seq)
        for m in seq._perp.values():
            assert sum(ex.size for ex in m.holders.values()) == 0, (seed, out.seq, m.name)
            assert all(ex.size for ex in m.holders.values())
    if seed == 6:
        assert liquidated and adl  # seed 6 is known to liquidate (see test_sweep_bound)


def test_replay_of_a_session_with_deleveraging_reaches_the_same_root():
    h = Harness(config())
    adl = 0
    for _, out in h.drive(6, 700, step_ms=20_000):
        adl += sum(type(e) is AutoDeleveraged for e in out.events)
    assert adl
    fresh = Sequencer(config())
    for c in h.log:
        fresh.apply(C.decode(C.encode(c)))
    assert fresh.state_root() == h.seq.state_root()


def test_a_funding_liquidation_on_tick_is_unwound_in_the_same_tick():
    """Carol (long 1 ETH) is just above maintenance; the hourly funding (mid far above the index,
    clamped at 0.5%) pushes her below: the Tick liquidates her and the fund sells into Alice's bid."""
    h = Harness(config())
    h.tick()  # the first funding boundary is the next hour
    h.price("ETH-USD", 3_000)
    for a in (ALICE, BOB):
        h.deposit(a, 100_000 * USDC)
    carol_long(h, 400 * USDC, [(BOB, 3_000 * USDC, 1000)])
    h.price("ETH-USD", 2_745)  # equity 400 - 1.5 - 255 = 143.5, maintenance 137.25
    assert h.seq.account(CAROL)["liquidations"] == 0
    assert h.place(ALICE, PERP, BUY, 2_800 * USDC, 1000).accepted
    assert h.place(ALICE, PERP, SELL, 2_900 * USDC, 1000).accepted  # mid 2850: funding clamped
    h.advance(3_600_000)
    out = h.tick()
    assert out.result["funding"] and out.result["liquidations"] == 1
    assert [(t.maker, t.taker, t.price, t.size) for t in out.events if type(t) is TradeSettled] == [
        (ALICE, INS, 2_800 * USDC, 1000)]
    assert out.result["auto_deleveraged"] == 0
    assert h.pos(INS, PERP) == 0 and h.pos(ALICE, PERP) == 1000 and h.pos(BOB, PERP) == -1000


def test_the_fund_keeps_a_record_of_what_it_paid_and_received():
    h = priced(ALICE, BOB, DAVE)
    carol_long(h, 400 * USDC, [(BOB, 3_000 * USDC, 1000)])
    assert h.place(ALICE, PERP, BUY, 2_690 * USDC, 300).accepted
    out = h.price("ETH-USD", 2_700)  # liquidated with a penalty; 300 unwound in the book, 700 deleveraged
    (liq,) = [e for e in out.events if type(e) is Liquidated]
    rec = h.seq.insurance()
    assert (rec["liquidations"], rec["penalties"], rec["unwound_in_book"], rec["auto_deleveraged"]) == (
        1, liq.penalty, 300, 1)
    assert rec["balance"] == h.bal(INS) and rec["positions"] == [] and rec["bankruptcies_covered"] == 0
    h2 = priced(BOB)
    carol_long(h2, 400 * USDC, [(BOB, 3_000 * USDC, 1000)])
    out = h2.price("ETH-USD", 2_500)  # bankrupt: the fund covers the hole
    (cov,) = [e for e in out.events if type(e).__name__ == "BankruptcyCovered"]
    rec = h2.seq.insurance()
    assert (rec["bankruptcies_covered"], rec["bankruptcy_total"], rec["penalties"]) == (1, cov.amount, 0)

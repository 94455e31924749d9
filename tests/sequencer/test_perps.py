"""Perpetuals: variation margin to the mark, fees, funding on schedule, liquidation.

Expected amounts are computed here from the documented rules (module doc of
``aggregator.core.sequencer`` and ``aggregator.core.risk``), not read back from the core.
"""

from __future__ import annotations

from aggregator.core.events import AutoDeleveraged, BankruptcyCovered, FundingPaid, Liquidated
from tests.sequencer.helpers import ALICE, BOB, CAROL, DAVE, FEE, INS, USDC, Harness

PERP = "ETH-PERP"
BUY, SELL = 1, 2
GTC, IOC, FOK, POST = 1, 2, 3, 4
SCALE = 1000  # ETH size decimals 3
HOUR = 3_600_000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fee(price: int, size: int, bps: int) -> int:
    return ceil_div(price * size // SCALE * bps, 10_000)


def market(**cfg) -> Harness:
    from tests.sequencer.helpers import config

    h = Harness(config(**cfg)) if cfg else Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    return h


def test_fill_away_from_mark_settles_variation_and_fees_to_fee_account():
    h = market()
    h.deposit(ALICE, 10_000 * USDC)
    h.deposit(BOB, 10_000 * USDC)
    p = 3_010 * USDC  # above the 3000 mark: the buyer pays (p - mark) * size at once
    h.place(BOB, PERP, SELL, p, 1500)
    out = h.place(ALICE, PERP, BUY, p, 1500)
    variation = (3_000 * USDC - p) * 1500 // SCALE
    assert variation == -15 * USDC
    mfee, tfee = fee(p, 1500, 2), fee(p, 1500, 5)
    assert out.result["fee"] == tfee and out.result["fills"][0]["maker_order_id"] == 1
    assert h.bal(ALICE) == 10_000 * USDC + variation - tfee
    assert h.bal(BOB) == 10_000 * USDC - variation - mfee
    assert h.bal(FEE) == mfee + tfee
    assert (h.pos(ALICE, PERP), h.pos(BOB, PERP)) == (1500, -1500)


def test_mark_move_credits_longs_and_debits_shorts_exactly():
    h = market()
    h.deposit(ALICE, 10_000 * USDC)
    h.deposit(BOB, 10_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1234)
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 1234)
    a0, b0 = h.bal(ALICE), h.bal(BOB)
    h.price("ETH-USD", 3_012.345678)  # index floors to 1e-6, mark rounds to the 0.01 tick
    m = next(x for x in h.seq.markets() if x["instrument"] == PERP)
    assert m["index"] == 3_012_345_678 and m["mark"] == 3_012_350_000
    d = 1234 * (3_012_350_000 - 3_000_000_000) // SCALE
    assert (h.bal(ALICE) - a0, h.bal(BOB) - b0) == (d, -d)
    h.price("ETH-USD", 2_990)
    d2 = 1234 * (2_990_000_000 - 3_012_350_000) // SCALE
    assert (h.bal(ALICE) - a0, h.bal(BOB) - b0) == (d + d2, -d - d2)
    pos = h.seq.account(ALICE)["positions"][0]
    assert pos["avg_entry"] == 3_000 * USDC and pos["unrealised_pnl"] == (2_990 - 3_000) * USDC * 1234 // SCALE


def test_halted_or_stale_report_does_not_move_mark_but_market_closed_does():
    h = market()
    h.deposit(ALICE, 10_000 * USDC)
    h.deposit(BOB, 10_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1000)
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 1000)
    a0 = h.bal(ALICE)
    for status in ("halted", "stale"):
        h.price("ETH-USD", 2_000, status=status)
        assert h.bal(ALICE) == a0
    h.price("ETH-USD", 2_999, status="market-closed")
    assert h.bal(ALICE) == a0 - 1 * USDC


def test_closed_market_accepts_reduce_only_and_reopens_on_ok_price():
    h = market()
    h.deposit(ALICE, 10_000 * USDC)
    h.deposit(BOB, 10_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1000)
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 1000)
    h.price("ETH-USD", 3_000, status="market-closed")
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 10).code == "market_closed"
    assert h.place(ALICE, PERP, SELL, 3_100 * USDC, 400, reduce_only=True).accepted
    assert h.place(BOB, PERP, BUY, 2_900 * USDC, 400, reduce_only=True).accepted
    assert h.place(CAROL, PERP, SELL, 3_100 * USDC, 10).code == "market_closed"
    h.price("ETH-USD", 3_000, status="ok")
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 10).accepted


# ---------------------------------------------------------------- funding


def funding_setup() -> Harness:
    """Alice long 1001, Bob short 500, Carol short 501 at the 3000 mark; book mid 3010."""
    h = market()
    for a in (ALICE, BOB, CAROL, DAVE):
        h.deposit(a, 100_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 500)
    h.place(CAROL, PERP, SELL, 3_000 * USDC, 501)
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 1001)
    day = h.now // 1000 + 86_400  # Dave's quotes rest all day (good-til-time), making the mid
    h.place(DAVE, PERP, BUY, 3_009 * USDC, 10, expiry=day)
    h.place(DAVE, PERP, SELL, 3_011 * USDC, 10, expiry=day)
    return h


def test_funding_paid_at_interval_boundary_payers_round_up_remainder_to_insurance():
    h = funding_setup()  # T0 is 00:00 UTC: the first Tick set the next boundary at 01:00
    before = {a: h.bal(a) for a in (ALICE, BOB, CAROL, DAVE, INS)}
    h.now += HOUR - 1
    assert h.tick().result["funding"] == []
    h.now += 1
    out = h.tick()
    # rate = (mid - index) / index in 1e-8, truncated; clamp 50 bps = 500_000
    rate = (3_010 - 3_000) * 10**8 // 3_000
    assert rate == 333_333
    mark = 3_000 * USDC
    pay_alice = ceil_div(1001 * mark * rate, SCALE * 10**8)
    get_bob = 500 * mark * rate // (SCALE * 10**8)
    get_carol = 501 * mark * rate // (SCALE * 10**8)
    remainder = pay_alice - get_bob - get_carol
    assert remainder > 0  # the rounding is not exact here: the fund keeps it
    assert out.result["funding"] == [{"instrument": PERP, "rate_e8": rate, "mark": mark, "paid": pay_alice,
                                      "received": get_bob + get_carol}]
    assert FundingPaid(PERP, rate, mark, pay_alice, get_bob + get_carol, remainder) in out.events
    after = {a: h.bal(a) for a in before}
    assert after[ALICE] - before[ALICE] == -pay_alice
    assert after[BOB] - before[BOB] == get_bob
    assert after[CAROL] - before[CAROL] == get_carol
    assert after[DAVE] == before[DAVE]  # orders only, no position: no funding
    assert after[INS] - before[INS] == remainder
    assert h.seq.account(ALICE)["positions"][0]["funding_paid"] == pay_alice


def test_funding_paid_once_per_tick_even_after_missed_intervals():
    h = funding_setup()
    h.now += 3 * HOUR + HOUR // 2  # 03:30: three boundaries passed, one payment
    first = h.tick().result["funding"]
    assert len(first) == 1
    a = h.bal(ALICE)
    h.now += HOUR // 4  # 03:45: no boundary
    assert h.tick().result["funding"] == [] and h.bal(ALICE) == a
    h.now += HOUR // 4  # 04:00
    assert len(h.tick().result["funding"]) == 1 and h.bal(ALICE) < a


def test_funding_negative_premium_shorts_pay_longs_and_rate_is_clamped():
    h = market()
    for a in (ALICE, BOB, DAVE):
        h.deposit(a, 100_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1000)
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 1000)
    h.place(DAVE, PERP, BUY, 2_700 * USDC, 10)  # mid 2850: -5% premium, clamped to -50 bps
    h.place(DAVE, PERP, SELL, 3_000 * USDC, 10)
    a0, b0 = h.bal(ALICE), h.bal(BOB)
    h.now += HOUR
    out = h.tick().result["funding"]
    assert out[0]["rate_e8"] == -500_000
    amount = 1000 * 3_000 * USDC * 500_000 // (SCALE * 10**8)  # exact: 15 USDC
    assert amount == 15 * USDC
    assert (h.bal(ALICE) - a0, h.bal(BOB) - b0) == (amount, -amount)


def test_no_funding_without_reference_price():
    h = market()
    h.deposit(ALICE, 100_000 * USDC)
    h.now += HOUR
    assert h.tick().result["funding"] == []  # no holders, no trade, no mid


# ---------------------------------------------------------------- liquidation


def liq_setup(collateral: int) -> Harness:
    """Carol long 1 ETH at 3000 with ``collateral``; Bob the counterparty; Carol rests a bid."""
    h = market()
    h.deposit(BOB, 100_000 * USDC)
    h.deposit(CAROL, collateral)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1000)
    assert h.place(CAROL, PERP, BUY, 3_000 * USDC, 1000).result["filled"] == 1000
    return h


def test_account_above_maintenance_is_not_liquidated():
    h = liq_setup(400 * USDC)
    bal = 400 * USDC - fee(3_000 * USDC, 1000, 5)
    h.price("ETH-USD", 2_750)  # balance 400 - 1.5 - 250 = 148.5 > maintenance 137.5
    assert h.bal(CAROL) == bal - 250 * USDC
    assert h.seq.account(CAROL)["maintenance_margin"] == 137_500_000
    assert h.pos(CAROL, PERP) == 1000 and h.seq.account(CAROL)["liquidations"] == 0


def test_liquidation_below_maintenance_cancels_orders_moves_position_to_insurance_with_penalty():
    h = liq_setup(400 * USDC)
    assert h.place(CAROL, PERP, BUY, 2_500 * USDC, 100).accepted
    ins0 = h.bal(INS)
    out = h.price("ETH-USD", 2_700)  # 400 - 1.5 - 300 = 98.5 < maintenance 135
    assert out.result["liquidations"] == 1
    mark = 2_700 * USDC
    penalty = ceil_div(1000 * mark * 100, SCALE * 10_000)  # 1% of notional: 27 USDC, below the equity left
    assert penalty == 27 * USDC
    assert Liquidated(CAROL, PERP, 1000, mark, penalty) in out.events
    assert any(type(e).__name__ == "OrderCancelled" for e in out.events)
    assert h.seq.open_orders(CAROL) == []
    assert h.pos(CAROL, PERP) == 0
    assert h.bal(CAROL) == 400 * USDC - fee(3_000 * USDC, 1000, 5) - 300 * USDC - penalty
    acct = h.seq.account(CAROL)
    assert acct["liquidations"] == 1 and acct["initial_margin"] == 0
    # no bid left within the band (Carol's was cancelled): the fund's long is deleveraged at the
    # mark against Bob, the only short; no cash moves, so the fund keeps exactly the penalty
    assert AutoDeleveraged(BOB, PERP, 1000, mark, 1) in out.events and out.result["auto_deleveraged"] == 1
    assert h.pos(INS, PERP) == 0 and h.pos(BOB, PERP) == 0 and h.seq.account(INS)["positions"] == []
    assert h.bal(INS) == ins0 + penalty
    h.price("ETH-USD", 2_710)  # and carries no variation afterwards
    assert h.bal(INS) == ins0 + penalty


def test_bankrupt_liquidation_is_covered_by_insurance_fund():
    h = liq_setup(400 * USDC)
    out = h.price("ETH-USD", 2_500)  # 400 - 1.5 - 500 = -101.5: no penalty, fund covers the hole
    hole = 500 * USDC + fee(3_000 * USDC, 1000, 5) - 400 * USDC
    assert Liquidated(CAROL, PERP, 1000, 2_500 * USDC, 0) in out.events
    assert BankruptcyCovered(CAROL, hole) in out.events
    assert h.bal(CAROL) == 0 and h.bal(INS) == -hole
    assert h.seq.total_balance() == h.seq.deposited


def test_liquidation_of_short_on_price_rise():
    h = market()
    h.deposit(ALICE, 100_000 * USDC)
    h.deposit(DAVE, 300 * USDC)
    h.place(ALICE, PERP, BUY, 3_000 * USDC, 500)
    h.place(DAVE, PERP, SELL, 3_000 * USDC, 500)  # short 0.5 ETH, IM 150
    out = h.price("ETH-USD", 3_500)  # 300 - 0.75 - 250 = 49.25 < maintenance 87.5
    assert out.result["liquidations"] == 1
    assert h.pos(DAVE, PERP) == 0 and h.pos(INS, PERP) == 0 and h.pos(ALICE, PERP) == 0  # ADL'd against Alice
    assert AutoDeleveraged(ALICE, PERP, -500, 3_500 * USDC, 1) in out.events
    penalty = ceil_div(500 * 3_500 * USDC * 100, SCALE * 10_000)
    assert h.bal(DAVE) == 300 * USDC - fee(3_000 * USDC, 500, 5) - 250 * USDC - penalty


def test_order_reserving_margin_is_refused_while_risk_reducing_order_is_allowed():
    h = liq_setup(400 * USDC)
    h.price("ETH-USD", 2_800)  # balance 198.5, IM of the position 280: under-margined, above maintenance 140
    assert h.place(CAROL, PERP, BUY, 2_700 * USDC, 10).code == "insufficient_margin"
    assert h.place(CAROL, PERP, SELL, 2_900 * USDC, 500).accepted  # reduces the requirement

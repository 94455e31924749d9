"""A bankrupt account ends flat and at zero or above: its options go to the fund too.

Before: a liquidation closed only perps, so an account left below zero that still held an
option was not covered, and ``CloseBatch`` refused every batch (``negative_equity``) until
that one trader was flat: everyone's withdrawals waited on an option's expiry. Now
(module doc of ``aggregator.core.sequencer``, Liquidation): if the balance is still
negative after the perps are taken over, each listed option goes to the insurance fund at
its mark (the long side is paid ``floor(size * mark / scale)``, the short side pays the
ceiling), with the liquidation penalty on the premium capped at what is left; then the
fund covers what is still negative. Expected amounts are computed here from those rules.
"""

from __future__ import annotations

from aggregator.core import commands as C
from aggregator.core.events import AutoDeleveraged, BankruptcyCovered, Liquidated, OptionSettled
from tests.sequencer.helpers import BOB, CAROL, INS, T0, USDC, funded

PERP = "ETH-PERP"
CALL = "ETH-2JAN26-3000-C"
PUT = "ETH-2JAN26-3000-P"
CALL_TODAY = "ETH-1JAN26-3000-C"  # expires 08:00 UTC on T0's day
EXPIRY = T0 + 8 * 3_600_000
BUY, SELL = 1, 2
IOC = 2
SCALE = 1000
PEN_BPS = 100  # helpers.config


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def option_event(out, name: str) -> Liquidated:  # noqa: ANN001
    evs = [e for e in out.events if type(e) is Liquidated and e.instrument == name]
    assert len(evs) == 1, out.events
    return evs[0]


def setup(option: str, option_side: int, size: int, premium: int, carol_usdc: int):  # noqa: ANN201
    """Carol (``carol_usdc``) trades ``size`` of ``option`` with Bob, then goes long 1 ETH-PERP at 3000."""
    h = funded(BOB)
    h.deposit(CAROL, carol_usdc * USDC)
    h.place(BOB, option, SELL if option_side == BUY else BUY, premium * USDC, size)
    assert h.place(CAROL, option, option_side, premium * USDC, size, tif=IOC).result["filled"] == size
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1000)
    assert h.place(CAROL, PERP, BUY, 3_000 * USDC, 1000, tif=IOC).result["filled"] == 1000
    return h


def test_bankrupt_with_a_long_call_is_flattened_covered_and_batches_go_on():
    h = setup(CALL, BUY, 10, 100, 400)
    ins0 = h.bal(INS)
    out = h.price("ETH-USD", 2_500)  # perp loss 500 > Carol's ~397: bankrupt
    assert Liquidated(CAROL, PERP, 1000, 2_500 * USDC, 0) in out.events
    ev = option_event(out, CALL)
    assert ev.size == 10 and ev.penalty == 0  # nothing positive left to pay a penalty from
    assert ev.price == h.seq._mark_of(h.seq._markets[CALL]) > 0
    value = 10 * ev.price // SCALE  # the fund pays Carol the call's value
    before_cover = h.bal(CAROL)  # now 0: what the fund covered is the rest of the hole
    cover = next(e.amount for e in out.events if type(e) is BankruptcyCovered)
    assert before_cover == 0 and cover > 0
    assert h.pos(CAROL, CALL) == h.pos(CAROL, PERP) == 0 and h.seq.account(CAROL)["positions"] == []
    # the fund keeps the call (it expires); the perp it took over is deleveraged against Bob, the only short
    assert h.pos(INS, CALL) == 10 and h.pos(INS, PERP) == 0 and h.pos(BOB, PERP) == 0
    assert AutoDeleveraged(BOB, PERP, 1000, 2_500 * USDC, 1) in out.events
    assert h.bal(INS) == ins0 - value - cover  # the fund paid for the call, then covered the rest
    assert h.apply(lambda s, t: C.CloseBatch(s, t, bytes(32))).accepted  # was negative_equity


def test_a_long_put_worth_more_than_the_hole_leaves_the_trader_the_rest_minus_penalty():
    h = setup(PUT, BUY, 1000, 50, 400)  # a 1 ETH put hedges the perp
    bal0 = h.bal(CAROL)
    out = h.price("ETH-USD", 2_500)  # perp -500: the cash goes below zero, the put is worth ~500
    ev = option_event(out, PUT)
    assert ev.size == 1000 and ev.price == h.seq._mark_of(h.seq._markets[PUT])
    value = 1000 * ev.price // SCALE
    after_perp = bal0 - 500 * USDC
    assert after_perp < 0 < after_perp + value
    penalty = min(ceil_div(1000 * ev.price * PEN_BPS, SCALE * 10_000), after_perp + value)
    assert ev.penalty == penalty > 0
    assert h.bal(CAROL) == after_perp + value - penalty > 0
    assert not any(type(e) is BankruptcyCovered for e in out.events)
    assert h.pos(INS, PUT) == 1000 and h.seq.account(CAROL)["positions"] == []


def test_a_bankrupt_short_put_is_bought_back_by_the_fund_at_the_ceiling():
    h = setup(PUT, SELL, 10, 50, 400)  # short 0.01 ETH put: collateral 30 USDC
    bal0, ins0 = h.bal(CAROL), h.bal(INS)
    out = h.price("ETH-USD", 2_500)
    ev = option_event(out, PUT)
    assert ev.size == -10 and ev.penalty == 0
    assert h.pos(INS, PUT) == -10 and h.pos(CAROL, PUT) == 0
    buyback = ceil_div(10 * ev.price, SCALE)  # Carol pays the fund the ceiling for taking the short over
    cover = next(e.amount for e in out.events if type(e) is BankruptcyCovered)
    assert cover == -(bal0 - 500 * USDC - buyback) > 0
    assert h.bal(CAROL) == 0 and h.bal(INS) == ins0 + buyback - cover


def test_settlement_that_leaves_a_holder_negative_liquidates_its_other_options():
    h = funded(BOB)
    h.deposit(CAROL, 35 * USDC)
    h.place(BOB, CALL_TODAY, BUY, 10 * USDC, 10)
    assert h.place(CAROL, CALL_TODAY, SELL, 10 * USDC, 10, tif=IOC).result["filled"] == 10  # collateral 30
    h.place(BOB, CALL, SELL, 1 * USDC, 10)
    assert h.place(CAROL, CALL, BUY, 1 * USDC, 10, tif=IOC).result["filled"] == 10
    h.now = EXPIRY - 60_000
    h.price("ETH-USD", 7_000)  # beyond the 100% shock the short call was collateralised for
    bal = h.bal(CAROL)
    h.now = EXPIRY + 60_000
    out = h.tick()
    owed = 4_000 * USDC * 10 // SCALE  # 40 USDC intrinsic on 0.01 ETH
    assert any(type(e) is OptionSettled and e.instrument == CALL_TODAY for e in out.events)
    assert bal - owed < 0  # the settlement alone leaves Carol below zero, holding the 2JAN call
    ev = option_event(out, CALL)
    value = 10 * ev.price // SCALE
    penalty = min(ceil_div(10 * ev.price * PEN_BPS, SCALE * 10_000), max(bal - owed + value, 0))
    assert ev.penalty == penalty
    assert h.bal(CAROL) == max(bal - owed + value - penalty, 0)
    assert h.seq.account(CAROL)["positions"] == [] and h.pos(INS, CALL) == 10
    assert h.apply(lambda s, t: C.CloseBatch(s, t, bytes(32))).accepted

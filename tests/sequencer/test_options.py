"""Options: premium at trade, shorts fully collateralised, cash settlement at intrinsic on expiry."""

from __future__ import annotations

from aggregator.core.events import InstrumentExpired, OptionSettled
from tests.sequencer.helpers import ALICE, BOB, CAROL, FEE, INS, T0, USDC, Harness, funded

OPT = "ETH-2JAN26-3000-C"
OTM_CALL = "ETH-2JAN26-5000-C"
PUT = "ETH-2JAN26-2000-P"
CALL_TODAY = "ETH-1JAN26-3000-C"  # T0 is 2026-01-01 00:00 UTC: these expire at 08:00 today
PUT_TODAY = "ETH-1JAN26-3500-P"
OTM_PUT_TODAY = "ETH-1JAN26-2000-P"
EXPIRY = T0 + 8 * 3_600_000
BUY, SELL = 1, 2
SCALE = 1000


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def market() -> Harness:
    return funded(ALICE, BOB)


def test_buyer_pays_premium_to_seller_at_fill_with_fees():
    h = market()
    h.place(BOB, OPT, SELL, 100 * USDC, 100)  # 0.1 ETH at 100 USDC per ETH
    out = h.place(ALICE, OPT, BUY, 100 * USDC, 100)
    premium = 100 * USDC * 100 // SCALE
    assert premium == 10 * USDC
    mfee, tfee = ceil_div(premium * 2, 10_000), ceil_div(premium * 5, 10_000)
    assert out.result["fee"] == tfee
    assert h.bal(ALICE) == 100_000 * USDC - premium - tfee
    assert h.bal(BOB) == 100_000 * USDC + premium - mfee
    assert h.bal(FEE) == mfee + tfee
    assert (h.pos(ALICE, OPT), h.pos(BOB, OPT)) == (100, -100)
    assert h.seq.account(ALICE)["initial_margin"] == 0  # a long needs nothing beyond its premium


def test_mark_move_does_not_touch_option_balances():
    h = market()
    h.place(BOB, OPT, SELL, 100 * USDC, 100)
    h.place(ALICE, OPT, BUY, 100 * USDC, 100)
    a, b = h.bal(ALICE), h.bal(BOB)
    h.price("ETH-USD", 3500)
    assert (h.bal(ALICE), h.bal(BOB)) == (a, b)


def test_short_call_and_put_fully_collateralised():
    h = market()
    h.place(BOB, OPT, SELL, 100 * USDC, 100)
    h.place(ALICE, OPT, BUY, 100 * USDC, 100)
    # call: max(mark * 2 - strike, mark * 10%) per ETH = 3000 USDC -> 300 for 0.1 ETH
    assert h.seq.account(BOB)["initial_margin"] == 300 * USDC
    assert h.seq.account(BOB)["maintenance_margin"] == 300 * USDC
    h.place(BOB, PUT, SELL, 10 * USDC, 100)  # a resting short put reserves its strike: 200 for 0.1 ETH
    assert h.seq.account(BOB)["initial_margin"] == 500 * USDC
    h.place(BOB, OTM_CALL, SELL, 1 * USDC, 100)  # OTM call: 6000 - 5000 = 1000 per ETH -> 100
    assert h.seq.account(BOB)["initial_margin"] == 600 * USDC
    h.price("ETH-USD", 3500)  # the call requirement follows the mark: 7000 - 3000, 7000 - 5000
    assert h.seq.account(BOB)["initial_margin"] == (400 + 200 + 200) * USDC


def test_short_needs_full_collateral_at_entry():
    h = market()
    h.deposit(CAROL, 30 * USDC)
    h.place(ALICE, OPT, BUY, 100 * USDC, 10)
    # selling 0.01 ETH of the 3000 call needs 30 USDC plus the taker fee (the premium comes after)
    assert h.place(CAROL, OPT, SELL, 100 * USDC, 10).code == "insufficient_margin"
    h.deposit(CAROL, 1 * USDC)
    assert h.place(CAROL, OPT, SELL, 100 * USDC, 10).result["filled"] == 10


def test_open_bid_reserves_premium_and_cancel_releases_it():
    h = market()
    oid = h.place(ALICE, OPT, BUY, 123 * USDC + 400_000, 30).result["order_id"]
    assert h.seq.account(ALICE)["initial_margin"] == ceil_div((123 * USDC + 400_000) * 30, SCALE)
    h.cancel(ALICE, OPT, order_id=oid)
    assert h.seq.account(ALICE)["initial_margin"] == 0


def test_long_can_sell_what_it_holds_without_collateral():
    h = market()
    h.deposit(CAROL, 20 * USDC)
    h.place(BOB, OPT, SELL, 100 * USDC, 100)
    h.place(CAROL, OPT, BUY, 100 * USDC, 100)  # 10 USDC premium
    assert h.place(CAROL, OPT, SELL, 90 * USDC, 100).accepted  # closing sell: no short, no requirement
    assert h.place(CAROL, OPT, SELL, 90 * USDC, 10).code == "insufficient_margin"


# ---------------------------------------------------------------- expiry


def expiry_book() -> Harness:
    h = market()
    for inst, prem in ((CALL_TODAY, 50), (PUT_TODAY, 400), (OTM_PUT_TODAY, 1)):
        h.place(BOB, inst, SELL, prem * USDC, 100)
        assert h.place(ALICE, inst, BUY, prem * USDC, 100).result["filled"] == 100
    assert h.place(BOB, CALL_TODAY, SELL, 60 * USDC, 50).accepted  # rests until expiry
    return h


def test_expiry_cash_settles_at_intrinsic_of_last_price_at_or_before_expiry():
    h = expiry_book()
    h.now = EXPIRY - 60_000
    h.price("ETH-USD", 3212.34)  # index 3212.34 -> settlement 3212.3 on the 0.1 option tick
    h.now = EXPIRY + 30_000
    h.price("ETH-USD", 4000)  # published after expiry: not the settlement price
    a, b, ins = h.bal(ALICE), h.bal(BOB), h.bal(INS)
    h.now = EXPIRY + 60_000
    out = h.tick()
    assert set(out.result["expired"]) >= {CALL_TODAY, PUT_TODAY, OTM_PUT_TODAY}
    assert set(out.result["settled"]) >= {CALL_TODAY, PUT_TODAY, OTM_PUT_TODAY}
    s_px = 3_212_300_000
    call = (s_px - 3_000 * USDC) * 100 // SCALE  # 21.23 USDC
    put = (3_500 * USDC - s_px) * 100 // SCALE  # 28.77 USDC
    assert (call, put) == (21_230_000, 28_770_000)
    assert OptionSettled(CALL_TODAY, s_px, s_px - 3_000 * USDC, 2, call, 0, False) in out.events
    assert OptionSettled(OTM_PUT_TODAY, s_px, 0, 2, 0, 0, False) in out.events
    assert InstrumentExpired(CALL_TODAY, EXPIRY + 60_000) in out.events
    assert h.bal(ALICE) - a == call + put and h.bal(BOB) - b == -(call + put)
    assert h.bal(INS) == ins
    for who in (ALICE, BOB):
        assert h.pos(who, CALL_TODAY) == h.pos(who, PUT_TODAY) == h.pos(who, OTM_PUT_TODAY) == 0
    assert h.seq.open_orders(BOB) == []  # the resting ask expired with its instrument
    assert h.seq.account(BOB)["initial_margin"] == 0
    assert CALL_TODAY not in {m["instrument"] for m in h.seq.markets()}
    assert h.place(ALICE, CALL_TODAY, BUY, 1 * USDC, 10).code == "unknown_instrument"
    assert h.tick().result["settled"] == []  # settled once


def test_expired_option_waits_for_first_price_then_settles_with_fallback():
    h = Harness()
    h.tick()  # BTC options listed, BTC never priced
    h.now = EXPIRY + 1
    out = h.tick()
    btc = [n for n in out.result["expired"] if n.startswith("BTC-1JAN26-")]
    assert btc and not any(n.startswith("BTC-") for n in out.result["settled"])
    h.advance(60_000)
    h.price("BTC-USD", 95_000)
    out = h.tick()
    assert set(btc) <= set(out.result["settled"])
    settled = [e for e in out.events if isinstance(e, OptionSettled) and e.instrument in btc]
    assert settled and all(e.fallback and e.settlement_price == 95_000 * USDC for e in settled)


def test_cached_short_call_unit_equals_the_risk_formula_at_every_mark():
    from aggregator.core.risk import short_option_unit

    h = market()
    m = h.seq._markets[OPT]
    for usd in (1500, 2999.99, 3000, 3000.01, 6000.5, 12000):
        h.price("ETH-USD", usd)
        mark = h.seq._mark["ETH"]
        assert h.seq._short_unit(m) == short_option_unit(True, m.strike, mark, m.risk)
        assert h.seq._short_unit(h.seq._markets[PUT]) == h.seq._markets[PUT].strike

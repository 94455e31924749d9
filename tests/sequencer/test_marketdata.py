"""Tickers (24-hour statistics, best sizes, funding), option Greeks and implied vols, account Greeks
and ADL ranks (``aggregator.core.marketdata`` and the sequencer's reads). Expected figures are
computed here from the rules in that module's docstring and from ``aggregator.core.pricing``."""

from __future__ import annotations

import math

import pytest

from aggregator.core.marketdata import DayStats, adl_quintile
from aggregator.core.pricing import black76_greeks, black76_price
from aggregator.core.risk import YEAR_MS
from aggregator.core.sequencer import UnknownInstrument

from .helpers import ALICE, BOB, CAROL, DAVE, USDC, Harness, config, funded

PERP = "ETH-PERP"
CALL = "ETH-2JAN26-3000-C"
PUT = "ETH-2JAN26-3000-P"
BUY, SELL = 1, 2
IOC = 2
SCALE = 1000
MIN = 60_000


def test_day_stats_sum_the_last_1440_minutes_and_drop_older_buckets():
    d = DayStats()
    t = 1_000 * MIN  # a minute boundary
    d.add(t, 100, 5, 500)
    d.add(t + 59_999, 90, 1, 90)  # same minute: a new low
    d.add(t + MIN, 120, 2, 240)  # next minute
    assert d.window(t + MIN) == {"volume": 8, "quote_volume": 830, "high": 120, "low": 90, "open": 100,
                                 "close": 120, "trades": 3}
    # 1,440 minutes on, the first minute is out of the window, the second still in
    assert d.window(t + 1440 * MIN)["volume"] == 2
    assert d.window(t + 1441 * MIN)["trades"] == 0 and d.window(t + 1441 * MIN)["high"] is None
    d.add(t + 1441 * MIN, 110, 3, 330)  # a trade drops the buckets that left the window
    assert [b[0] for b in d.buckets] == [1_000 + 1441]
    assert d.window(t + 1441 * MIN) == {"volume": 3, "quote_volume": 330, "high": 110, "low": 110, "open": 110,
                                        "close": 110, "trades": 1}


def test_adl_quintiles_split_the_queue_in_fifths():
    assert [adl_quintile(i, 10) for i in range(10)] == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert adl_quintile(0, 1) == 5 and [adl_quintile(i, 3) for i in range(3)] == [5, 4, 2]


def test_perp_ticker_has_best_sizes_day_statistics_and_funding():
    h = funded(ALICE, BOB)
    h.place(BOB, PERP, SELL, 3_010 * USDC, 400)
    h.place(BOB, PERP, SELL, 3_020 * USDC, 300)
    assert h.place(ALICE, PERP, BUY, 3_020 * USDC, 500, tif=IOC).result["filled"] == 500  # 400@3010, 100@3020
    h.place(ALICE, PERP, BUY, 2_990 * USDC, 700)
    t = h.seq.ticker(PERP)
    assert (t["best_bid"], t["best_bid_size"], t["best_ask"], t["best_ask_size"]) == (
        2_990 * USDC, 700, 3_020 * USDC, 200)
    assert t["day"] == {"volume": 500, "quote_volume": 3_010 * USDC * 400 // SCALE + 3_020 * USDC * 100 // SCALE,
                        "high": 3_020 * USDC, "low": 3_010 * USDC, "open": 3_010 * USDC, "close": 3_020 * USDC,
                        "trades": 2}
    assert t["last_price"] == 3_020 * USDC and t["mark"] == 3_000 * USDC and t["open_interest"] == 500
    assert t["funding_interval_ms"] == 3_600_000 and "funding_rate_e8" in t and t["ts_ms"] == h.now
    h.advance(1441 * MIN)
    h.tick()
    assert h.seq.ticker(PERP)["day"]["volume"] == 0  # out of the window a day later
    with pytest.raises(UnknownInstrument):
        h.seq.ticker("ETH-PERPX")
    assert [x["instrument"] for x in h.seq.tickers()] == [m["instrument"] for m in h.seq.markets()]


def test_option_ticker_greeks_and_implied_vols_match_black76_on_the_mark_inputs():
    h = funded(ALICE, BOB)
    h.place(BOB, CALL, SELL, 60 * USDC, 100)
    h.place(ALICE, CALL, BUY, 30 * USDC, 100)
    t = h.seq.ticker(CALL)
    m = h.seq._markets[CALL]
    vol = h.seq._params["ETH"].option_vol
    years = (m.expiry_ms - h.seq._mark_ts["ETH"]) / YEAR_MS
    g = black76_greeks(3000.0, 3000.0, years, vol, 0.0, True)
    assert t["greeks"] == {"delta": float(g.delta), "gamma": float(g.gamma), "vega": float(g.vega_per_point),
                           "theta": float(g.theta_per_day)}
    assert 0.5 < t["greeks"]["delta"] < 0.52 and t["greeks"]["theta"] < 0 < t["greeks"]["vega"]
    assert t["mark_iv"] == vol
    # each side's implied vol reprices that side
    for side, px in (("bid_iv", 30), ("ask_iv", 60)):
        assert math.isclose(float(black76_price(3000.0, 3000.0, years, t[side], 0.0, True)), px, rel_tol=1e-9)
    assert 30 * USDC < t["mark"] < 60 * USDC and t["bid_iv"] < vol < t["ask_iv"]  # the quotes straddle the mark
    put = h.seq.ticker(PUT)
    assert -0.5 < put["greeks"]["delta"] < -0.48 and put["bid_iv"] is None and put["best_bid"] is None


def test_account_greeks_sum_positions_per_underlying():
    h = funded(ALICE, BOB)
    h.place(BOB, CALL, SELL, 150 * USDC, 300)
    assert h.place(ALICE, CALL, BUY, 150 * USDC, 300, tif=IOC).result["filled"] == 300
    h.place(BOB, PERP, BUY, 3_000 * USDC, 200)
    assert h.place(ALICE, PERP, SELL, 3_000 * USDC, 200, tif=IOC).result["filled"] == 200
    m = h.seq._markets[CALL]
    years = (m.expiry_ms - h.seq._mark_ts["ETH"]) / YEAR_MS
    g = black76_greeks(3000.0, 3000.0, years, h.seq._params["ETH"].option_vol, 0.0, True)
    alice = h.seq.account(ALICE)["greeks"]["ETH"]
    assert math.isclose(alice["delta"], 0.3 * float(g.delta) - 0.2, rel_tol=1e-12)
    assert math.isclose(alice["gamma"], 0.3 * float(g.gamma), rel_tol=1e-12)
    assert math.isclose(alice["vega"], 0.3 * float(g.vega_per_point), rel_tol=1e-12)
    bob = h.seq.account(BOB)["greeks"]["ETH"]
    assert math.isclose(bob["delta"], -0.3 * float(g.delta) + 0.2, rel_tol=1e-12)
    assert h.seq.account(CAROL) is None or h.seq.account(CAROL)["greeks"] == {}


def test_adl_rank_is_the_order_the_fund_deleverages_in():
    """Four shorts ranked by profit x leverage; Carol's bankruptcy deleverages them in rank order."""
    h = Harness(config())
    h.price("ETH-USD", 3_000)
    h.deposit(ALICE, 1_000_000 * USDC)
    for a, amt in ((BOB, 100_000), (DAVE, 3_000)):
        h.deposit(a, amt * USDC)
    h.deposit(CAROL, 300 * USDC)
    # shorts: Bob 400 at 3000 (100k), Dave 400 at 3000 (3k: leveraged); Alice's short of 100 at 2900 (1M)
    h.place(ALICE, PERP, SELL, 2_900 * USDC, 100)
    assert h.place(BOB, PERP, BUY, 2_900 * USDC, 100, tif=IOC).result["filled"] == 100
    h.place(BOB, PERP, SELL, 3_000 * USDC, 400)
    h.place(DAVE, PERP, SELL, 3_000 * USDC, 400)
    assert h.place(CAROL, PERP, BUY, 3_000 * USDC, 800, tif=IOC).result["filled"] == 800
    h.price("ETH-USD", 2_800)  # everyone short gains; Carol is still above maintenance? checked below
    ranks = {a: {p["instrument"]: p["adl_rank"] for p in h.seq.account(a)["positions"]}[PERP]
             for a in (ALICE, BOB, DAVE)}
    assert h.pos(BOB, PERP) == -300 and h.pos(ALICE, PERP) == -100 and h.pos(DAVE, PERP) == -400
    assert ranks == {DAVE: 5, BOB: 4, ALICE: 2}  # three shorts: fifths 5, 4, 2
    assert h.seq.account(CAROL)["positions"][0]["adl_rank"] == 5  # the only long
    out = h.price("ETH-USD", 2_700)  # Carol bankrupt, no bids: deleveraged against the shorts in rank order
    adl = [e.account for e in out.events if type(e).__name__ == "AutoDeleveraged"]
    assert adl == [DAVE, BOB, ALICE]  # rank 5, 4, 2: the whole short side covers Carol's 800


# ------------------------------------------------------------------ liquidation price estimate


@pytest.mark.parametrize("side", [BUY, SELL])
@pytest.mark.parametrize("at", [False, True])
def test_liquidation_price_is_the_first_tick_where_the_sweep_liquidates(side: int, at: bool):
    """One perp position: the estimate is exact. At the reported mark the sweep liquidates; one tick
    before it (toward the current mark) it does not."""
    tick = 10_000
    h = funded(BOB)
    h.deposit(CAROL, 400 * USDC)
    h.place(BOB, PERP, SELL if side == BUY else BUY, 3_000 * USDC, 1000)
    assert h.place(CAROL, PERP, side, 3_000 * USDC, 1000, tif=IOC).result["filled"] == 1000
    (pos,) = h.seq.account(CAROL)["positions"]
    liq = pos["liquidation_price"]
    assert liq % tick == 0
    eq = 400 * USDC - 1_500_000  # after the taker fee; maintenance 5% of the notional at the mark
    exact = (3_000 * USDC - eq) / 0.95 if side == BUY else (3_000 * USDC + eq) / 1.05
    assert 0 < (exact - liq if side == BUY else liq - exact) <= tick
    px = liq if at else liq + tick if side == BUY else liq - tick
    out = h.price("ETH-USD", px / USDC)
    assert out.result["liquidations"] == (1 if at else 0), (px, liq)


def test_no_liquidation_price_without_a_perp_or_when_fully_covered():
    h = funded(ALICE, BOB)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 100)
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, 100, tif=IOC).result["filled"] == 100
    (pos,) = h.seq.account(ALICE)["positions"]
    assert pos["liquidation_price"] is None  # 100k against 0.1 ETH long: no positive mark reaches maintenance
    (short,) = h.seq.account(BOB)["positions"]
    assert short["liquidation_price"] > 100 * 3_000 * USDC  # a short is liquidated far above


# ------------------------------------------------------------------ candles and funding history


def test_candles_group_minute_buckets_by_interval():
    d = DayStats()
    t = 9_960 * MIN  # a multiple of 5 and of 60 minutes
    for minute, px, q in ((0, 100, 1), (0, 105, 2), (1, 95, 3), (4, 99, 1), (5, 120, 4), (61, 80, 1)):
        d.add(t + minute * MIN + 5, px, q, px * q)
    now = t + 61 * MIN
    assert d.candles(now, 1, 10) == [[t, 100, 105, 100, 105, 3], [t + MIN, 95, 95, 95, 95, 3],
                                     [t + 4 * MIN, 99, 99, 99, 99, 1], [t + 5 * MIN, 120, 120, 120, 120, 4],
                                     [t + 61 * MIN, 80, 80, 80, 80, 1]]
    assert d.candles(now, 5, 10) == [[t, 100, 105, 95, 99, 7], [t + 5 * MIN, 120, 120, 120, 120, 4],
                                     [t + 60 * MIN, 80, 80, 80, 80, 1]]
    assert d.candles(now, 60, 10) == [[t, 100, 120, 95, 120, 11], [t + 60 * MIN, 80, 80, 80, 80, 1]]
    assert d.candles(now, 60, 1) == [[t + 60 * MIN, 80, 80, 80, 80, 1]]
    assert d.candles(t + 1500 * MIN, 60, 10) == [[t + 60 * MIN, 80, 80, 80, 80, 1]]  # 24 h on: only minute 61 left


def test_funding_history_records_each_interval_with_its_rate_and_mark():
    h = Harness(config())
    h.tick()
    h.price("ETH-USD", 3_000)
    for a in (ALICE, BOB):
        h.deposit(a, 100_000 * USDC)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 100)
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, 100, tif=IOC).result["filled"] == 100
    h.place(BOB, PERP, SELL, 3_060 * USDC, 100)
    h.place(ALICE, PERP, BUY, 3_040 * USDC, 100)  # mid 3050: clamped at +0.5%
    h.advance(3_600_000)
    out = h.tick()
    rate = out.result["funding"][0]["rate_e8"]
    assert rate == 50 * 10_000
    assert h.seq.funding_history(PERP) == [{"ts_ms": h.now, "rate_e8": rate, "mark": 3_000 * USDC}]
    assert h.seq._funding_hist["ETH"].maxlen == 720  # bounded by funding_kept
    with pytest.raises(UnknownInstrument):
        h.seq.funding_history(CALL)


def test_all_tickers_in_one_pass_agree_with_each_ticker_alone():
    h = funded(ALICE, BOB)
    h.price("BTC-USD", 90_000)
    names = [m["instrument"] for m in h.seq.markets()]
    for n in names[:20]:
        h.place(BOB, n, SELL, 500 * USDC, 10)
        h.place(BOB, n, BUY, 1 * USDC, 10)
    every = {t["instrument"]: t for t in h.seq.tickers()}
    assert list(every) == names and len(names) > 300
    for n in names[:20] + names[-5:]:
        one = h.seq.ticker(n)
        for k, v in one.items():
            if k == "greeks" and v is not None:
                assert all(math.isclose(v[g], every[n]["greeks"][g], rel_tol=1e-12, abs_tol=1e-15) for g in v)
            elif isinstance(v, float):
                assert math.isclose(v, every[n][k], rel_tol=1e-9), (n, k)
            else:
                assert v == every[n][k], (n, k)
    assert h.seq.tickers(["NOPE", names[0]])[0]["instrument"] == names[0]  # unknown ones skipped

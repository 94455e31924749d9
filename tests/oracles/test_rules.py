"""Feed rules: each rule of oracles.rules has a scenario here."""

from __future__ import annotations

from decimal import Decimal

from oracles.rules import FeedState, evaluate, median, operator_halt, operator_resume
from oracles.types import FeedStatus, MarketStatus
from tests.oracles.helpers import feed, ny, obs

T0 = ny(2025, 3, 4, 11)  # a Tuesday, NYSE regular session
ETH = feed("ETH-USD")


def run(cfg, observations, now=T0, state=None):
    return evaluate(cfg, state or FeedState(), observations, now)


def three(price_a="3000", price_b="3001", price_c="3002", ts=T0 - 1000, name="ETH-USD"):
    return [obs(name, "sim-a", price_a, ts), obs(name, "sim-b", price_b, ts), obs(name, "sim-c", price_c, ts)]


def test_median_of_three_sources_ok() -> None:
    ev = run(ETH, three())
    assert ev.aggregate.status is FeedStatus.OK and ev.aggregate.usable
    assert ev.aggregate.price == 3001_00000000
    assert ev.aggregate.market_status is MarketStatus.OPEN
    assert ev.aggregate.timestamp_ms == T0 - 1000
    assert ev.aggregate.sources == ("sim-a", "sim-b", "sim-c")


def test_median_even_count_floors_mean() -> None:
    assert median([1, 4]) == 2 and median([5, 1, 3]) == 3


def test_stale_by_heartbeat_goes_stale() -> None:
    old = T0 - (ETH.heartbeat_s + 1) * 1000
    ev = run(ETH, three(ts=old))
    assert ev.aggregate.status is FeedStatus.STALE and not ev.aggregate.usable
    assert "quorum not met: 0 of 2" in ev.aggregate.reason
    assert all("stale" in r.reason for r in ev.rejections)


def test_stale_feed_keeps_last_price_but_not_usable() -> None:
    first = run(ETH, three())
    later = evaluate(ETH, first.state, three(), T0 + (ETH.heartbeat_s + 5) * 1000)
    assert later.aggregate.status is FeedStatus.STALE
    assert later.aggregate.price == first.aggregate.price and not later.aggregate.usable


def test_quorum_not_met_goes_stale() -> None:
    ev = run(ETH, [obs("ETH-USD", "sim-a", "3000", T0 - 1000)])
    assert ev.aggregate.status is FeedStatus.STALE
    assert "quorum not met: 1 of 2" in ev.aggregate.reason


def test_deviation_single_outlier_dropped_ok() -> None:
    ev = run(ETH, three(price_c="3300"))
    assert ev.aggregate.status is FeedStatus.OK
    assert ev.aggregate.price == 3000_50000000
    assert ev.aggregate.sources == ("sim-a", "sim-b")
    assert "outliers dropped: sim-c +" in ev.aggregate.reason


def test_deviation_sources_disagree_goes_deviating() -> None:
    ev = run(ETH, [obs("ETH-USD", "sim-a", "3000", T0 - 1000), obs("ETH-USD", "sim-b", "3300", T0 - 1000)])
    assert ev.aggregate.status is FeedStatus.DEVIATING and not ev.aggregate.usable
    assert "sources disagree" in ev.aggregate.reason


def test_bounds_out_of_range_rejected() -> None:
    ev = run(ETH, three(price_a="0.5", price_b="2000000"))
    reasons = {r.source: r.reason for r in ev.rejections}
    assert "outside bounds" in reasons["sim-a"] and "outside bounds" in reasons["sim-b"]
    assert ev.aggregate.status is FeedStatus.STALE


def test_zero_negative_nan_inf_rejected_with_reason() -> None:
    ts = T0 - 1000
    ev = run(ETH, [obs("ETH-USD", "a", "0", ts), obs("ETH-USD", "b", "-3000", ts),
                   obs("ETH-USD", "c", "NaN", ts), obs("ETH-USD", "d", "Infinity", ts)])
    reasons = {r.source: r.reason for r in ev.rejections}
    assert reasons == {
        "a": "price is zero", "b": "price is negative (-3000)",
        "c": "price is not a finite number (NaN)", "d": "price is not a finite number (Infinity)",
    }
    assert ev.aggregate.status is FeedStatus.STALE and ev.aggregate.price is None


def test_future_dated_observation_rejected() -> None:
    ev = run(ETH, three(ts=T0 + 60_000))
    assert all(r.reason.startswith("future-dated by 60.000s") for r in ev.rejections)
    assert ev.aggregate.status is FeedStatus.STALE


def test_small_clock_skew_within_max_future_accepted() -> None:
    assert run(ETH, three(ts=T0 + 1000)).aggregate.status is FeedStatus.OK


def test_confidence_too_wide_rejected() -> None:
    ts = T0 - 1000
    ev = run(ETH, [obs("ETH-USD", "sim-a", "3000", ts, conf="100"), obs("ETH-USD", "sim-b", "3000", ts, conf="1"),
                   obs("ETH-USD", "sim-c", "3000", ts, conf="1")])
    assert [r.source for r in ev.rejections] == ["sim-a"] and "confidence" in ev.rejections[0].reason
    assert ev.aggregate.status is FeedStatus.OK and ev.aggregate.confidence == 1_00000000


def test_circuit_breaker_jump_halts_then_confirms_new_level() -> None:
    first = run(ETH, three())
    t1 = T0 + 1000
    jumped = evaluate(ETH, first.state, three("4000", "4001", "4002", ts=t1 - 100), t1)
    assert jumped.aggregate.status is FeedStatus.HALTED and "circuit breaker" in jumped.aggregate.reason
    assert jumped.aggregate.price == 3001_00000000 and not jumped.aggregate.usable
    t2 = t1 + (ETH.breaker_confirm_s - 1) * 1000
    still = evaluate(ETH, jumped.state, three("4000", "4001", "4002", ts=t2 - 100), t2)
    assert still.aggregate.status is FeedStatus.HALTED
    t3 = t1 + ETH.breaker_confirm_s * 1000
    held = evaluate(ETH, still.state, three("4000", "4001", "4002", ts=t3 - 100), t3)
    assert held.aggregate.status is FeedStatus.OK and held.aggregate.price == 4001_00000000
    assert "circuit breaker cleared" in held.aggregate.reason


def test_circuit_breaker_blip_back_clears_at_once() -> None:
    first = run(ETH, three())
    jumped = evaluate(ETH, first.state, three("4000", "4001", "4002", ts=T0), T0 + 1000)
    back = evaluate(ETH, jumped.state, three("3010", "3011", "3012", ts=T0 + 1500), T0 + 2000)
    assert back.aggregate.status is FeedStatus.OK and back.state.breaker is None


def test_market_closed_on_nyse_holiday() -> None:
    spy = feed("SPY-USD")
    now = ny(2025, 4, 18, 11)  # Good Friday
    ev = run(spy, three("560", "560.1", "560.2", ts=now - 1000, name="SPY-USD"), now=now)
    assert ev.aggregate.status is FeedStatus.MARKET_CLOSED
    assert ev.aggregate.reason == "NYSE holiday: Good Friday"
    assert ev.aggregate.market_status is MarketStatus.CLOSED


def test_market_closed_at_weekend() -> None:
    spy = feed("SPY-USD")
    now = ny(2025, 3, 8, 11)
    ev = run(spy, three("560", "560.1", "560.2", ts=now - 1000, name="SPY-USD"), now=now)
    assert (ev.aggregate.status, ev.aggregate.reason) == (FeedStatus.MARKET_CLOSED, "weekend")


def test_pre_market_marked_as_such_closed() -> None:
    spy = feed("SPY-USD")
    now = ny(2025, 3, 4, 8)
    ev = run(spy, three("560", "560.1", "560.2", ts=now - 1000, name="SPY-USD"), now=now)
    assert ev.aggregate.status is FeedStatus.MARKET_CLOSED
    assert ev.aggregate.market_status is MarketStatus.PRE_MARKET and ev.aggregate.reason == "pre-market session"


def test_gold_daily_break_market_closed_then_fresh_price_reopens() -> None:
    xau = feed("XAU-USD")
    before = ny(2025, 3, 4, 16, 59)
    ok = run(xau, three("2900", "2900.5", "2901", ts=before - 1000, name="XAU-USD"), now=before)
    assert ok.aggregate.status is FeedStatus.OK
    brk = ny(2025, 3, 4, 17, 30)
    closed = evaluate(xau, ok.state, three("2900", "2900.5", "2901", ts=brk - 1000, name="XAU-USD"), brk)
    assert closed.aggregate.status is FeedStatus.MARKET_CLOSED and "daily break" in closed.aggregate.reason
    reopen = ny(2025, 3, 4, 18, 0, 20)
    # observations published during the break are not fresh after the reopen
    waiting = evaluate(xau, closed.state, three("2905", "2905.5", "2906", ts=ny(2025, 3, 4, 17, 59, 50),
                                                name="XAU-USD"), reopen)
    assert waiting.aggregate.status is FeedStatus.STALE
    assert all("before the feed reopened" in r.reason for r in waiting.rejections)
    fresh = evaluate(xau, waiting.state, three("2905", "2905.5", "2906", ts=ny(2025, 3, 4, 18, 0, 5),
                                              name="XAU-USD"), reopen)
    assert fresh.aggregate.status is FeedStatus.OK and fresh.aggregate.price == 2905_50000000


def test_reopen_monday_only_on_price_published_after_open() -> None:
    spy = feed("SPY-USD")
    friday_close = ny(2025, 3, 7, 15, 59, 58)
    monday = ny(2025, 3, 10, 9, 30, 30)
    old = evaluate(spy, FeedState(), three("560", "560.1", "560.2", ts=friday_close, name="SPY-USD"), monday)
    assert old.aggregate.status is FeedStatus.STALE
    pre = ny(2025, 3, 10, 9, 29, 59)
    still = evaluate(spy, FeedState(), three("560", "560.1", "560.2", ts=pre, name="SPY-USD"), monday)
    assert still.aggregate.status is FeedStatus.STALE
    fresh = evaluate(spy, FeedState(), three("561", "561.1", "561.2", ts=ny(2025, 3, 10, 9, 30), name="SPY-USD"),
                     monday)
    assert fresh.aggregate.status is FeedStatus.OK


def test_nav_halt_flag_halts_then_needs_fresh_nav() -> None:
    nav = feed("TBILL-NAV")
    t = ny(2025, 3, 4, 12)
    ok = evaluate(nav, FeedState(), [obs("TBILL-NAV", "sim-a", "1.0412", t - 3600_000)], t)
    assert ok.aggregate.status is FeedStatus.OK
    halted = evaluate(nav, ok.state, [obs("TBILL-NAV", "sim-a", "1.0412", t, halted=True)], t + 1000)
    assert halted.aggregate.status is FeedStatus.HALTED
    assert halted.aggregate.reason == "halt flag set by sim-a"
    assert halted.aggregate.market_status is MarketStatus.HALTED and not halted.aggregate.usable
    # the flag is lifted, but the NAV shown was published during the halt: not fresh
    lifted_same = evaluate(nav, halted.state, [obs("TBILL-NAV", "sim-a", "1.0412", t)], t + 2000)
    assert lifted_same.aggregate.status is FeedStatus.STALE
    fresh = evaluate(nav, lifted_same.state, [obs("TBILL-NAV", "sim-a", "1.0413", t + 86400_000)], t + 86401_000)
    assert fresh.aggregate.status is FeedStatus.OK and fresh.aggregate.price == 1_04130000


def test_operator_halt_and_resume_requires_fresh_price() -> None:
    ok = run(ETH, three())
    st = operator_halt(ok.state, "incident 42")
    ev = evaluate(ETH, st, three(ts=T0 + 500), T0 + 1000)
    assert ev.aggregate.status is FeedStatus.HALTED and "incident 42" in ev.aggregate.reason
    st = operator_resume(ev.state, T0 + 1000)
    assert evaluate(ETH, st, three(ts=T0 + 500), T0 + 2000).aggregate.status is FeedStatus.STALE
    assert evaluate(ETH, st, three(ts=T0 + 1500), T0 + 2000).aggregate.status is FeedStatus.OK


def test_latest_observation_per_source_wins() -> None:
    ts = T0 - 5000
    ev = run(ETH, [*three(ts=ts), obs("ETH-USD", "sim-a", "3001.5", ts + 1000)])
    assert ev.aggregate.price == 3001_50000000


def test_prices_rounded_half_even_to_8_decimals() -> None:
    ev = run(ETH, three("3000.000000005", "3000.000000015", "3000.000000025"))
    assert ev.aggregate.price == 3000_00000002
    assert isinstance(ev.aggregate.price, int) and not isinstance(Decimal(1), int)

"""OracleService driven by the devnet simulator on a fake clock, with a SQLite store."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from aggregator.db import init_db, make_engine
from oracles.config import load_feeds
from oracles.report import Eip712Domain, ReportSigner, verify_report
from oracles.service import OracleService
from oracles.settlement import rebuild_settlement_report, rebuild_twap
from oracles.sources.simulator import MarketSimulator, SimulatedVenue
from oracles.store import OracleAggregateRow, OracleObservationRow, OracleReportRow, OracleStore
from oracles.types import FeedStatus, MarketStatus
from oracles.vectors import SIGNER_KEYS
from tests.oracles.helpers import ny

FEEDS = load_feeds()
DOMAIN = Eip712Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def make_service(start_ms: int, tmp_path=None, feeds=None, seed: int = 11):
    clock = Clock(start_ms)
    sim = MarketSimulator(seed=seed, start_ms=start_ms - 60_000)
    cfgs = feeds or FEEDS
    venues = [SimulatedVenue(sim, v, {f: c.sources[v] for f, c in cfgs.items() if v in c.sources}, clock=clock)
              for v in ("sim-a", "sim-b", "sim-c")]
    store = None
    if tmp_path is not None:
        engine = make_engine(f"sqlite:///{tmp_path / 'oracle.db'}")
        init_db(engine)
        store = OracleStore(engine)
    svc = OracleService(cfgs, venues, ReportSigner(SIGNER_KEYS[:3]), DOMAIN, store=store, clock=clock)
    return svc, clock, sim, venues


async def run_for(svc: OracleService, clock: Clock, seconds: int, step_ms: int = 1000) -> list:
    out = []
    for _ in range(seconds * 1000 // step_ms):
        clock.ms += step_ms
        out += await svc.poll_once()
    return out


TUESDAY = ny(2025, 3, 4, 11)


async def test_simulated_feeds_ok_on_a_weekday_and_reports_verify() -> None:
    svc, clock, _, _ = make_service(TUESDAY)
    got = []
    svc.subscribe(got.append)
    await run_for(svc, clock, 5)
    snap = {s["feed"]: s for s in svc.snapshot()}
    assert {k: v["status"] for k, v in snap.items()} == {f: "ok" for f in FEEDS}
    assert got and all(verify_report(r, svc.signer.addresses, 3) for r in got)
    eth = [r for r in got if r.feed == "ETH-USD"]
    assert [r.report.timestamp for r in eth] == sorted(r.report.timestamp for r in eth)
    assert all(r.report.market_status == MarketStatus.OPEN for r in eth)


async def test_snapshot_lists_name_price_status_reason() -> None:
    svc, clock, _, _ = make_service(TUESDAY)
    await run_for(svc, clock, 2)
    line = next(s for s in svc.snapshot() if s["feed"] == "BTC-USD")
    assert set(line) >= {"feed", "price", "status", "reason"} and line["price"].count(".") == 1


async def test_weekend_spy_and_fx_closed_crypto_ok() -> None:
    svc, clock, _, _ = make_service(ny(2025, 3, 8, 12))
    got = []
    svc.subscribe(got.append)
    await run_for(svc, clock, 3)
    snap = {s["feed"]: s for s in svc.snapshot()}
    assert snap["SPY-USD"]["status"] == "market-closed" and snap["SPY-USD"]["reason"] == "weekend"
    assert snap["EUR-USD"]["status"] == "market-closed" and snap["XAU-USD"]["status"] == "market-closed"
    assert snap["ETH-USD"]["status"] == "ok"
    assert not [r for r in got if r.feed == "SPY-USD"]


async def test_market_close_emits_status_report_then_reopens_on_fresh_price() -> None:
    svc, clock, _, _ = make_service(ny(2025, 3, 4, 15, 59, 50))
    got = []
    svc.subscribe(got.append)
    await run_for(svc, clock, 5)
    assert svc.latest("SPY-USD")[0].status is FeedStatus.OK
    await run_for(svc, clock, 10)  # crosses 16:00
    agg, rep = svc.latest("SPY-USD")
    assert agg.status is FeedStatus.MARKET_CLOSED and agg.market_status is MarketStatus.POST_MARKET
    assert rep.report.market_status == MarketStatus.POST_MARKET
    status_reports = [r for r in got if r.feed == "SPY-USD" and r.report.market_status != MarketStatus.OPEN]
    assert len(status_reports) == 1


async def test_venue_outage_quorum_lost_goes_stale_after_heartbeat(caplog) -> None:
    svc, clock, _, venues = make_service(TUESDAY)
    await run_for(svc, clock, 2)
    venues[0].down = True
    venues[1].down = True
    with caplog.at_level(logging.WARNING):
        await run_for(svc, clock, FEEDS["ETH-USD"].heartbeat_s + 2)
    agg, _ = svc.latest("ETH-USD")
    assert agg.status is FeedStatus.STALE and "quorum not met" in agg.reason
    assert any("simulated outage" in r.message for r in caplog.records)
    assert any("rejected sim-a" in r.message and "stale" in r.message for r in caplog.records)


async def test_biased_venue_dropped_as_outlier() -> None:
    svc, clock, _, venues = make_service(TUESDAY)
    venues[2].bias_bps["ETH-USD"] = 500
    await run_for(svc, clock, 2)
    agg, _ = svc.latest("ETH-USD")
    assert agg.status is FeedStatus.OK and agg.sources == ("sim-a", "sim-b") and "outliers" in agg.reason


async def test_shock_trips_circuit_breaker_and_halted_report() -> None:
    svc, clock, sim, _ = make_service(TUESDAY)
    got = []
    svc.subscribe(got.append)
    await run_for(svc, clock, 3)
    sim.shock("ETH", clock.ms + 1000, 1.5)
    await run_for(svc, clock, 3)
    agg, rep = svc.latest("ETH-USD")
    assert agg.status is FeedStatus.HALTED and "circuit breaker" in agg.reason
    assert rep.report.market_status == MarketStatus.HALTED


async def test_operator_halt_nav_ripcord_and_resume() -> None:
    svc, clock, sim, _ = make_service(TUESDAY)
    await run_for(svc, clock, 2)
    sim.set_halt("TBILL", True, clock.ms + 500)
    await run_for(svc, clock, 2)
    agg, rep = svc.latest("TBILL-NAV")
    assert agg.status is FeedStatus.HALTED and "halt flag" in agg.reason
    assert rep.report.market_status == MarketStatus.HALTED
    sim.set_halt("TBILL", False, clock.ms + 500)
    await run_for(svc, clock, 2)
    assert svc.latest("TBILL-NAV")[0].status is FeedStatus.OK
    svc.halt("ETH-USD", "incident drill")
    await run_for(svc, clock, 1)
    assert svc.latest("ETH-USD")[0].status is FeedStatus.HALTED
    svc.resume("ETH-USD")
    await run_for(svc, clock, 2)
    assert svc.latest("ETH-USD")[0].status is FeedStatus.OK


async def test_failing_subscriber_logged_not_fatal(caplog) -> None:
    svc, clock, _, _ = make_service(TUESDAY)
    got = []

    def bad(_r):
        raise RuntimeError("boom")

    svc.subscribe(bad)
    svc.subscribe(got.append)
    with caplog.at_level(logging.ERROR):
        await run_for(svc, clock, 1)
    assert got and any("subscriber" in r.message for r in caplog.records)


@pytest.mark.slow
async def test_settlement_twap_live_equals_rebuilt_from_db(tmp_path) -> None:
    feeds = {"ETH-USD": replace(FEEDS["ETH-USD"], twap_window_s=600)}
    svc, clock, _, _ = make_service(TUESDAY, tmp_path, feeds=feeds)
    await run_for(svc, clock, 700, step_ms=1000)
    expiry = clock.ms - 30_000
    live = await svc.settlement_report("ETH-USD", expiry)
    rebuilt = rebuild_settlement_report(svc.store, feeds["ETH-USD"], svc.signer, DOMAIN, expiry)
    assert svc.settlement_twap("ETH-USD", expiry) == rebuild_twap(svc.store, feeds["ETH-USD"], expiry)
    assert rebuilt == live and rebuilt.signatures == live.signatures
    assert live.feed == "ETH-USD/TWAP600" and live.report.timestamp == expiry // 1000
    assert svc.store.count(OracleObservationRow) > 0 and svc.store.count(OracleAggregateRow) > 0
    kinds = {r.kind for r in svc.store.engine.connect().execute(OracleReportRow.__table__.select())}
    assert kinds == {"live", "settlement"}

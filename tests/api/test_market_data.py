"""Market data (tickers, funding, Greeks, candles), order status and the account channel through REST,
WebSocket and the ccxt-style client (real in-process API; the ``env`` fixture is in conftest)."""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import pytest

from aggregator.client import BadSymbol
from aggregator.core.pricing import black76_greeks
from aggregator.core.risk import YEAR_MS

PERP = "ETH/USDC:USDC"
D = Decimal


async def test_ticker_rest_and_ccxt_shapes(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "1", "3010")
    await a.create_order(PERP, "limit", "sell", "0.5", "3020")
    await b.create_order(PERP, "limit", "buy", "1.2", "3020")  # 1 @ 3010, 0.2 @ 3020
    await b.create_order(PERP, "limit", "buy", "0.7", "2990")
    r = await api.client.get("/v1/markets/ETH-PERP/ticker")
    assert r.status == 200
    js = await r.json()
    assert js["best_bid_size"] == 700 and js["best_ask_size"] == 300 and js["day"]["trades"] == 2
    t = await b.fetch_ticker(PERP)
    assert (t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == (D("2990"), D("0.7"), D("3020"), D("0.3"))
    assert (t["open"], t["close"], t["last"], t["high"], t["low"]) == (D("3010"), D("3020"), D("3020"),
                                                                       D("3020"), D("3010"))
    assert t["baseVolume"] == D("1.2") and t["quoteVolume"] == D("3010") + D("604")
    assert t["vwap"] == D("3614") / D("1.2") and t["change"] == D("10")
    assert t["markPrice"] == D("3000") and t["indexPrice"] == D("3000") and t["timestamp"] == api.clock.now_ms
    all_ = await a.fetch_tickers()
    assert all_[PERP]["bid"] == D("2990") and len(all_) == len(api.service.sequencer.markets())
    assert list(await a.fetch_tickers([PERP])) == [PERP]
    (short,) = await a.fetch_positions()
    assert short["side"] == "short" and short["liquidationPrice"] == D(short["info"]["liquidation_price"]) / 10**6
    assert short["liquidationPrice"] > D("3000") * 100  # 1.2 ETH short on 1M USDC
    r = await api.client.get("/v1/markets/NOPE-PERP/ticker")
    assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_instrument"


async def test_funding_rate_is_the_clamped_premium_of_the_mid(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "1", "3060")
    await b.create_order(PERP, "limit", "buy", "1", "3040")  # mid 3050: +1.67% over 3000, clamped to 0.5%
    f = await a.fetch_funding_rate(PERP)
    clamp = api.service.sequencer._cfg.funding_clamp_bps
    assert f["fundingRate"] == D(clamp) / 10_000 and f["previousFundingRate"] == 0
    assert f["interval"] == "1h" and f["fundingTimestamp"] == api.service.sequencer._next_funding_ms
    assert f["markPrice"] == D("3000")
    assert list(await a.fetch_funding_rates()) == [s for s, m in a.markets.items() if m["swap"]]
    opt = next(s for s, m in a.markets.items() if m["option"])
    with pytest.raises(BadSymbol):
        await a.fetch_funding_rate(opt)


async def test_greeks_of_an_option_and_of_the_account(env):
    api, a, b = env
    markets = await a.load_markets()
    sym, m = next((s, m) for s, m in sorted(markets.items())
                  if m["option"] and m["base"] == "ETH" and m["optionType"] == "call" and m["strike"] == D("3000"))
    await a.create_order(sym, "limit", "sell", "2", "90")
    await b.create_order(sym, "limit", "buy", "2", "90")
    g = await b.fetch_greeks(sym)
    seq = api.service.sequencer
    years = (m["expiry"] - seq._mark_ts["ETH"]) / YEAR_MS
    ref = black76_greeks(3000.0, 3000.0, years, seq._params["ETH"].option_vol, 0.0, True)
    assert math.isclose(g["delta"], float(ref.delta), rel_tol=1e-12) and g["vega"] > 0 > g["theta"]
    assert g["markImpliedVolatility"] == seq._params["ETH"].option_vol and g["underlyingPrice"] == D("3000")
    assert g["lastPrice"] == D("90") and g["bidImpliedVolatility"] is None  # no bid left
    assert sym in await b.fetch_all_greeks() and PERP not in await b.fetch_all_greeks()
    with pytest.raises(BadSymbol):
        await b.fetch_greeks(PERP)
    js = await (await api.client.get(f"/v1/accounts/{api.b.address}/margin")).json()
    assert math.isclose(js["greeks"]["ETH"]["delta"], 2 * float(ref.delta), rel_tol=1e-12)
    (pos,) = await b.fetch_positions()
    assert pos["info"]["adl_rank"] is None  # options are never deleveraged


async def test_watch_ticker_gets_the_current_ticker_then_one_after_each_change(env):
    api, a, b = env
    t0 = await a.watch_ticker(PERP)
    assert t0["bid"] is None and t0["symbol"] == PERP
    await b.create_order(PERP, "limit", "buy", "0.5", "2995")
    t1 = await asyncio.wait_for(a.watch_ticker(PERP), 5)
    assert t1["bid"] == D("2995") and t1["bidVolume"] == D("0.5")
    await a.create_order(PERP, "limit", "sell", "0.2", "2995")  # trades against b's bid
    t2 = await asyncio.wait_for(a.watch_ticker(PERP), 5)
    assert (t2["last"], t2["bidVolume"], t2["baseVolume"]) == (D("2995"), D("0.3"), D("0.2"))
    now_s = api.clock.now_ms // 1000
    await api.service.submit_price("ETH-USD", 3_100 * 10**8, 10**6, now_s, "ok")  # a mark move alone
    t3 = await asyncio.wait_for(a.watch_ticker(PERP), 5)
    assert t3["markPrice"] == D("3100") and t3["last"] == D("2995")


async def test_ws_ticker_subscription_to_an_unknown_instrument_is_a_404(env):
    api, _, _ = env
    async with api.client.ws_connect("/v1/ws") as ws:
        await ws.send_json({"op": "subscribe", "channel": "ticker", "instrument": "NOPE-PERP", "id": 1})
        m = await ws.receive_json(timeout=5)
        assert m["type"] == "error" and m["status"] == 404 and m["error"]["code"] == "unknown_instrument"
        await ws.send_json({"op": "subscribe", "channel": "ticker", "instrument": "ETH-PERP", "id": 2})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        m = await ws.receive_json(timeout=5)
        assert m["type"] == "ticker" and m["ticker"]["instrument"] == "ETH-PERP" and isinstance(m["seq"], int)


# ------------------------------------------------------------------ order status after the end


async def test_fetch_order_follows_an_order_from_open_to_filled_and_history_lists_ended_ones(env):
    api, a, b = env
    ask = await a.create_order(PERP, "limit", "sell", "1", "3010", {"clientOrderId": 5})
    assert (await a.fetch_order(ask["id"]))["status"] == "open"
    await b.create_order(PERP, "limit", "buy", "0.4", "3010")
    o = await a.fetch_order(ask["id"])
    assert (o["status"], o["filled"], o["remaining"]) == ("open", D("0.4"), D("0.6"))
    await b.create_order(PERP, "limit", "buy", "0.6", "3010")
    o = await a.fetch_order(None, PERP, {"clientOrderId": 5})
    assert (o["id"], o["status"], o["filled"], o["remaining"], o["price"]) == (ask["id"], "closed", D("1"), 0,
                                                                               D("3010"))
    assert (o["cost"], o["average"], o["type"]) == (D("3010"), D("3010"), "limit")
    gone = await a.create_order(PERP, "limit", "buy", "0.1", "2900")
    await a.cancel_order(gone["id"], PERP)
    assert (await a.fetch_order(gone["id"]))["status"] == "canceled"
    assert [x["id"] for x in await a.fetch_closed_orders(PERP)] == [ask["id"]]
    assert [x["id"] for x in await a.fetch_canceled_orders()] == [gone["id"]]
    open_ = await a.create_order(PERP, "limit", "buy", "0.1", "2800")
    assert [x["id"] for x in await a.fetch_orders(PERP)] == [ask["id"], gone["id"], open_["id"]]
    from aggregator.client import OrderNotFound

    with pytest.raises(OrderNotFound):
        await b.fetch_order(ask["id"])  # not b's
    r = await api.client.get("/v1/orders/status", params={"account": api.a.address})
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"


# ------------------------------------------------------------------ account channel events


async def test_account_channel_carries_the_liquidation_and_the_deleveraging(env):
    """Poor (10 USDC) goes long against A, the mark falls through her equity: she is liquidated, and
    with no bid the fund deleverages A's short; A's account message carries ``AutoDeleveraged``."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    from tests.api.helpers import body

    api, a, _ = env
    async with api.client.ws_connect("/v1/ws") as ws:
        await ws.send_json({"op": "challenge", "id": 1})
        ch = await ws.receive_json(timeout=5)
        sig = Account.sign_message(encode_defunct(text=ch["challenge"]), api.a.key).signature
        await ws.send_json({"op": "auth", "id": 2, "account": api.a.address, "signature": "0x" + bytes(sig).hex(),
                            "scheme": "personal_sign"})
        assert (await ws.receive_json(timeout=5))["type"] == "authenticated"
        await ws.send_json({"op": "subscribe", "channel": "account", "id": 3})
        assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
        await ws.receive_json(timeout=5)  # the current view
        await a.create_order(PERP, "limit", "sell", "0.01", "3000")
        bid = api.poor.order_msg(api.clock, size=10, price=3_000_000_000, tif=2)
        r = await api.client.post("/v1/orders", json=body("order", bid, api.poor.key))
        assert (await r.json())["result"]["filled"] == 10
        now_s = api.clock.now_ms // 1000
        await api.service.submit_price("ETH-USD", 1_500 * 10**8, 10**6, now_s, "ok")
        seen = []
        while not any(e["type"] == "AutoDeleveraged" for e in seen):
            m = await ws.receive_json(timeout=5)
            if m["type"] == "account":
                seen += m["events"]
        (adl,) = [e for e in seen if e["type"] == "AutoDeleveraged"]
        assert (adl["account"], adl["instrument"], int(adl["size"]), adl["rank"]) == (api.a.address, "ETH-PERP", 10, 1)
    assert (await a.fetch_positions()) == []
    fund = await (await api.client.get("/v1/insurance")).json()
    assert (fund["liquidations"], fund["auto_deleveraged"], fund["positions"]) == (1, 1, [])
    assert fund["bankruptcies_covered"] == 1 and int(fund["bankruptcy_total"]) > 0  # 10 USDC could not cover it


async def test_fetch_ohlcv_and_funding_rate_history(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "1", "3010")
    await b.create_order(PERP, "limit", "buy", "0.3", "3010")
    api.clock.advance(60_000)
    await a.create_order(PERP, "limit", "sell", "1", "3000")
    await b.create_order(PERP, "limit", "buy", "0.5", "3010")  # fills 0.5 @ 3000 (best ask)
    (c1, c2) = await a.fetch_ohlcv(PERP, "1m")
    assert c1[1:] == [D("3010"), D("3010"), D("3010"), D("3010"), D("0.3")] and c2[0] - c1[0] == 60_000
    (h1,) = await a.fetch_ohlcv(PERP, "1h")
    assert h1[1:] == [D("3010"), D("3010"), D("3000"), D("3000"), D("0.8")]
    assert await a.fetch_ohlcv(PERP, "1m", since=c2[0]) == [c2]
    r = await api.client.get("/v1/markets/ETH-PERP/candles", params={"interval": "2m"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"
    day = {"expiry": api.clock.now_ms // 1000 + 86_000}  # still resting at the funding time
    await a.create_order(PERP, "limit", "sell", "0.1", "3000", day)
    await b.create_order(PERP, "limit", "buy", "0.5", "2990", day)  # mid 2995, below the index 3000
    api.clock.advance(api.service.sequencer._next_funding_ms - api.clock.now_ms)
    await api.service.tick()
    (f,) = await a.fetch_funding_rate_history(PERP)
    assert f["fundingRate"] == D(-166_666) / 10**8  # (2995 - 3000) / 3000 in 1e-8, truncated toward zero
    assert f["timestamp"] == api.clock.now_ms and f["symbol"] == PERP
    opt = next(s for s, m in a.markets.items() if m["option"])
    r = await api.client.get(f"/v1/markets/{a.markets[opt]['id']}/funding-history")
    assert r.status == 400


async def test_public_reads_take_their_cost_from_the_per_ip_bucket(tmp_path):
    from aggregator.api.trading import READ_COST, TradingOptions
    from tests.api.conftest import start_api

    client, api = await start_api(tmp_path, TradingOptions(rate=None, ip_rate=1.0, ip_burst=60.0))
    try:
        assert READ_COST["tickers"] == 50.0
        assert (await client.get("/v1/tickers")).status == 200  # 50 of the 60 burst
        r = await client.get("/v1/tickers")
        js = await r.json()
        assert r.status == 429 and js["error"]["code"] == "rate_limited"
        assert (await client.get("/v1/markets/ETH-PERP/ticker")).status == 200  # a cheap read still fits
    finally:
        await client.close()

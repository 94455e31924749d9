"""Market maker protection through the API and the client: a sweep trips it, quotes go, new ones get 422."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregator.client import BadRequest, InvalidOrder
from tests.api.helpers import body


async def test_client_sets_mmp_and_a_sweep_freezes_the_makers_option_quotes(env):
    api, mm, taker = env
    markets = await mm.load_markets()
    calls = sorted((m for m in markets.values() if m["option"] and m["base"] == "ETH"
                    and m["optionType"] == "call"), key=lambda m: m["strike"])[:2]
    cfg = await mm.set_mmp_config("ETH", 10_000, 30_000, "0.05")  # 0.05 ETH of maker fills per 10 s
    assert (cfg["enabled"], cfg["qty_limit"], cfg["frozen_ms"]) == (True, 50, 30_000)  # ETH: 3 size decimals
    for m in calls:
        await mm.create_order(m["symbol"], "limit", "sell", "0.03", "100")
    await mm.create_order("ETH/USDC:USDC", "limit", "sell", "0.1", "3100")
    await taker.create_order(calls[0]["symbol"], "limit", "buy", "0.03", "100", {"timeInForce": "IOC"})
    hit = await taker.create_order(calls[1]["symbol"], "limit", "buy", "0.03", "100", {"timeInForce": "IOC"})
    assert hit["filled"] == Decimal("0.03")  # 0.06 > 0.05: this sweep trips it, and trades in full
    assert [o["symbol"] for o in await mm.fetch_open_orders()] == ["ETH/USDC:USDC"]  # perps stay
    with pytest.raises(InvalidOrder) as e:
        await mm.create_order(calls[0]["symbol"], "limit", "sell", "0.01", "100")
    assert e.value.code == "mmp_frozen"
    api.clock.advance(30_000)
    assert (await mm.create_order(calls[0]["symbol"], "limit", "sell", "0.01", "100"))["status"] == "open"
    with pytest.raises(BadRequest, match="frozenMs"):
        await mm.set_mmp_config("ETH", 1_000, 86_400_001, "1")
    assert (await mm.set_mmp_config("ETH", 0, 0, 0))["enabled"] is False


async def test_mmp_frozen_is_a_422_with_a_json_error(env):
    api, mm, _ = env
    await mm.set_mmp_config("ETH", 10_000, 0, "0.001")
    opt = next(m for m in (await mm.load_markets()).values() if m["option"] and m["base"] == "ETH")
    await mm.create_order(opt["symbol"], "limit", "sell", "0.01", "100")
    taker = api.b.order_msg(api.clock, instrument=opt["id"], side=1, price=100_000_000, size=10, tif=2)
    r = await api.client.post("/v1/orders", json=body("order", taker, api.b.key))
    assert (await r.json())["result"]["filled"] == 10
    state = api.state(api.a)
    quote = api.a.order_msg(api.clock, instrument=opt["id"], side=2, price=100_000_000, size=10)
    r = await api.client.post("/v1/orders", json=body("order", quote, api.a.key))
    js = await r.json()
    assert r.status == 422 and js["error"]["code"] == "mmp_frozen" and "reduce-only" in js["error"]["message"]
    assert api.state(api.a) == state


async def test_client_delta_limit_trips_on_net_delta_and_a_limitless_config_is_refused(env):
    _, mm, taker = env
    markets = await mm.load_markets()
    call = next(m for m in sorted(markets.values(), key=lambda m: m["symbol"])
                if m["option"] and m["base"] == "ETH" and m["optionType"] == "call" and m["strike"] == 3000)
    # 0.02 ETH of delta either way per 10 s, no quantity limit
    cfg = await mm.set_mmp_config("ETH", 10_000, 0, None, delta_limit="0.02")
    assert (cfg["qty_limit"], cfg["delta_limit"]) == (0, 20)
    await mm.create_order(call["symbol"], "limit", "sell", "0.03", "100")
    await mm.create_order(call["symbol"], "limit", "buy", "0.03", "60")
    await taker.create_order(call["symbol"], "limit", "buy", "0.03", "100", {"timeInForce": "IOC"})
    await taker.create_order(call["symbol"], "limit", "sell", "0.03", "60", {"timeInForce": "IOC"})
    acct = (await mm.fetch_balance())["info"]["mmp"]["ETH"]
    assert acct["qty_in_interval"] == 60 and acct["delta_in_interval"] == 0  # sold and bought back: flat
    await mm.create_order(call["symbol"], "limit", "sell", "0.05", "100")
    await taker.create_order(call["symbol"], "limit", "buy", "0.05", "100", {"timeInForce": "IOC"})
    with pytest.raises(InvalidOrder) as e:  # about -0.026 ETH of delta: tripped, frozen until reset
        await mm.create_order(call["symbol"], "limit", "sell", "0.01", "100")
    assert e.value.code == "mmp_frozen"
    with pytest.raises(BadRequest, match="qtyLimit or deltaLimit"):
        await mm.set_mmp_config("ETH", 10_000, 0, None)

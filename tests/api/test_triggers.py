"""Trigger orders through the API and the client: a stop-loss set with ccxt's ``stopLossPrice`` fires on a
price update sequenced by the service and closes the position; a bad trigger is a 4xx JSON error."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aggregator import eip712
from aggregator.client import InvalidOrder
from tests.api.helpers import body, next_nonce

PERP = "ETH/USDC:USDC"


async def test_client_stop_loss_fires_on_a_price_update_and_closes_the_position(env):
    api, a, b = env
    svc = api.service
    await b.create_order(PERP, "limit", "sell", "1", "3000")
    assert (await a.create_order(PERP, "limit", "buy", "1", "3000", {"timeInForce": "IOC"}))["filled"] == 1
    await b.create_order(PERP, "limit", "buy", "1", "2890")
    stop = await a.create_order(PERP, "market", "sell", "1", None, {"stopLossPrice": "2900", "reduceOnly": True})
    assert (stop["status"], stop["triggerPrice"], stop["type"], stop["side"]) == ("open", Decimal("2900"),
                                                                                "market", "sell")
    assert stop["info"]["result"]["trigger_above"] is False  # a sell stop-loss fires at or below
    tp = await a.create_order(PERP, "limit", "sell", "1", "3300", {"takeProfitPrice": "3200",
                                                                  "reduceOnly": True})
    assert tp["info"]["result"]["trigger_above"] is True
    opens = await a.fetch_open_orders(PERP)
    assert [(o["id"], o["triggerPrice"], o["status"]) for o in opens] == [
        (stop["id"], Decimal("2900"), "open"), (tp["id"], Decimal("3200"), "open")]
    assert (await a.cancel_order(tp["id"], PERP))["status"] == "canceled"
    now_s = api.clock.now_ms // 1000
    pub = await svc.submit_price("ETH-USD", 2_950 * 10**8, 10**6, now_s, "ok")
    assert pub.result["triggers_fired"] == 0
    assert [o["id"] for o in await a.fetch_open_orders()] == [stop["id"]]
    api.clock.advance(1_000)
    pub = await svc.submit_price("ETH-USD", 2_900 * 10**8, 10**6, now_s + 1, "ok")
    assert pub.result["triggers_fired"] == 1 and pub.result["triggers_rejected"] == 0
    assert await a.fetch_open_orders() == []
    assert svc.sequencer.account(api.a.address)["positions"] == []
    mine = await a.fetch_my_trades(PERP)
    assert mine[-1]["side"] == "sell" and mine[-1]["price"] == Decimal("2890")
    _, bids, asks = svc.book.snapshot("ETH-PERP", 100)  # the mirror followed the fired order's events
    core = svc.sequencer.book("ETH-PERP", 100)
    assert ([list(x) for x in bids], [list(x) for x in asks]) == (core["bids"], core["asks"])
    assert core["bids"] == []  # Bob's bid was taken by the stop
    with pytest.raises(InvalidOrder, match="triggerDirection"):
        await a.create_order(PERP, "market", "sell", "1", None, {"triggerPrice": "2800"})
    below = await a.create_order(PERP, "limit", "buy", "0.1", "2500",
                                 {"triggerPrice": "2600", "triggerDirection": "below"})
    assert below["info"]["result"]["trigger_above"] is False and below["triggerPrice"] == Decimal("2600")


async def test_trigger_on_an_option_is_a_400_json_error_and_changes_nothing(api):
    opt = next(m["instrument"] for m in api.service.sequencer.markets() if m["kind"] == "option")
    state = api.state(api.a)
    msg = eip712.TriggerOrder(api.a.address, opt, 2, 2, 2, False, 100_000_000, False, 0, 10, 0, next_nonce(),
                              api.clock.now_ms // 1000 + 600)
    r = await api.client.post("/v1/orders/trigger", json=body("trigger", msg, api.a.key))
    js = await r.json()
    assert r.status == 400 and js["error"]["code"] == "invalid_trigger" and "perpetual" in js["error"]["message"]
    assert api.state(api.a) == state
    bad = body("trigger", msg, api.a.key)
    bad["trigger"] = dict(bad["trigger"], instrument="ETH-PERP", triggerPrice=0)
    r = await api.client.post("/v1/orders/trigger", json=bad)
    js = await r.json()
    assert r.status == 400 and js["error"]["code"] == "invalid_request" and "triggerPrice" in js["error"]["message"]
    assert api.state(api.a) == state


async def test_websocket_trigger_op_places_it_and_the_orders_channel_shows_it(api):
    a = api.a
    msg = eip712.TriggerOrder(a.address, "ETH-PERP", 1, 2, 2, False, 3_100_000_000, True, 0, 100, 0, next_nonce(),
                              api.clock.now_ms // 1000 + 600)
    ws = await api.client.ws_connect("/v1/ws")
    await ws.send_json({"op": "trigger", "id": 5, **body("trigger", msg, a.key)})
    ack = await ws.receive_json(timeout=10)
    assert (ack["type"], ack["id"], ack["status"]) == ("ack", 5, 200), ack
    assert ack["result"]["status"] == "untriggered" and int(ack["result"]["trigger_price"]) == 3_100_000_000
    assert ack["events"][0]["type"] == "TriggerPlaced"
    opens = api.service.sequencer.open_orders(a.address)
    assert [(o["order_id"], o["type"]) for o in opens] == [(ack["result"]["order_id"], "trigger")]
    await ws.close()
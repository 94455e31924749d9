"""Cancel all after through the service, REST, WebSocket and the client: quotes go at the deadline."""

from __future__ import annotations

import pytest

from aggregator import eip712
from aggregator.client import BadRequest
from aggregator.core import commands as C
from tests.api.helpers import body, next_nonce

PERP = "ETH/USDC:USDC"


async def test_client_arms_the_switch_and_nothing_of_its_quotes_trades_after_the_deadline(env):
    api, a, _ = env
    svc = api.service
    await a.create_order(PERP, "limit", "sell", "0.5", "3000")
    await a.create_order(PERP, "limit", "buy", "0.5", "2990")
    armed = await a.cancel_all_orders_after(2_000)
    assert armed["deadline"] == api.clock.now_ms + 2_000 == svc.sequencer.next_order_expiry_ms()
    api.clock.advance(1_500)
    again = await a.cancel_all_orders_after(2_000)  # re-armed: the deadline moves
    assert again["deadline"] == api.clock.now_ms + 2_000
    api.clock.advance(1_000)  # past the first deadline, not the second
    taker = api.b.order_msg(api.clock, side=1, price=3_000_000_000, size=100, tif=2)
    r = await api.client.post("/v1/orders", json=body("order", taker, api.b.key))
    assert (await r.json())["result"]["filled"] == 100  # Alice's ask still trades
    api.clock.advance(1_001)  # past the re-armed deadline; no timer tick has run
    before = svc.journal.last_seq
    taker = api.b.order_msg(api.clock, side=1, price=3_000_000_000, size=100, tif=2)
    r = await api.client.post("/v1/orders", json=body("order", taker, api.b.key))
    ack = await r.json()
    assert r.status == 200 and ack["result"]["filled"] == 0, ack  # Alice's quotes are gone
    cmds = list(svc.journal.replay())[before:]
    assert [type(c) for c in cmds] == [C.Tick, C.PlaceOrder]  # the Tick came first, journalled
    assert await a.fetch_open_orders() == []
    assert svc.sequencer.account(api.a.address)["cancel_all_after_ms"] is None
    disarmed = await a.cancel_all_orders_after(0)
    assert disarmed["deadline"] is None and disarmed["info"]["events"][0]["type"] == "CancelAllAfterSet"
    with pytest.raises(BadRequest, match="timeoutMs"):
        await a.cancel_all_orders_after(500)


async def test_out_of_range_timeout_is_a_400_and_changes_nothing(api):
    state = api.state(api.a)
    msg = {"account": api.a.address, "timeoutMs": 86_400_001, "nonce": next_nonce(),
           "expiry": api.clock.now_ms // 1000 + 60}
    r = await api.client.post("/v1/orders/cancel-all-after",
                          json={"cancelAllAfter": msg, "signature": "0x" + "11" * 65})
    js = await r.json()
    assert r.status == 400 and js["error"]["code"] == "invalid_request" and "timeoutMs" in js["error"]["message"]
    assert api.state(api.a) == state and api.service.sequencer.next_order_expiry_ms() is None


async def test_websocket_op_arms_the_switch(api):
    msg = eip712.CancelAllAfter(api.a.address, 5_000, next_nonce(), api.clock.now_ms // 1000 + 60)
    ws = await api.client.ws_connect("/v1/ws")
    await ws.send_json({"op": "cancel_all_after", "id": 9, **body("cancelAllAfter", msg, api.a.key)})
    ack = await ws.receive_json(timeout=10)
    assert (ack["type"], ack["id"], ack["status"]) == ("ack", 9, 200), ack
    assert ack["result"]["deadline_ms"] == api.clock.now_ms + 5_000
    assert api.service.sequencer.account(api.a.address)["cancel_all_after_ms"] == api.clock.now_ms + 5_000
    await ws.close()
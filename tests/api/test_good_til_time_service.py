"""Good-til-time through the service: an order past its signed expiry never trades."""

from __future__ import annotations

from aggregator.core import commands as C
from tests.api.conftest import start_api
from tests.api.helpers import body


async def test_order_past_its_expiry_is_expired_by_a_tick_sequenced_before_the_taker(tmp_path):
    client, api = await start_api(tmp_path)
    try:
        svc, a, b = api.service, api.a, api.b
        exp = api.clock.now_ms // 1000 + 30
        maker = a.order_msg(api.clock, side=2, price=3_000_000_000, size=1_000, expiry=exp)
        r = await client.post("/v1/orders", json=body("order", maker, a.key))
        assert (await r.json())["result"]["status"] == "open"
        assert svc.sequencer.next_order_expiry_ms() == exp * 1000
        api.clock.advance(31_000)  # past the maker's expiry; no timer tick has run (tick_interval_s=None)
        taker = b.order_msg(api.clock, side=1, price=3_000_000_000, size=1_000, tif=2)
        before = svc.journal.last_seq
        r = await client.post("/v1/orders", json=body("order", taker, b.key))
        ack = await r.json()
        assert r.status == 200 and ack["result"]["filled"] == 0, ack  # nothing of the expired maker is left
        cmds = list(svc.journal.replay())[before:]
        assert [type(c) for c in cmds] == [C.Tick, C.PlaceOrder]  # the Tick came first, journalled
        assert svc.sequencer.open_orders(a.address) == [] and svc.sequencer.next_order_expiry_ms() is None
        assert ack["seq"] == cmds[1].seq
    finally:
        await client.close()

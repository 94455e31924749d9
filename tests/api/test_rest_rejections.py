"""Every rejection through the HTTP API: stable code, documented status, state unchanged."""

from __future__ import annotations

import pytest

from aggregator.api.trading import STATUS_BY_CODE
from tests.api.helpers import body, next_nonce


async def post(api, path, payload):
    r = await api.client.post(path, json=payload)
    return r.status, await r.json()


async def rest_ask(api, price=3_001_000_000, size=1_000):
    st, js = await post(api, "/v1/orders", body("order", api.a.order_msg(api.clock, side=2, price=price, size=size),
                                                api.a.key))
    assert st == 200 and js["accepted"], js
    return js


async def expect_reject(api, payload, status, code, path="/v1/orders", traders=None):
    traders = traders or (api.a, api.b, api.poor)
    before = api.state(*traders)
    seq_before = api.service.last_seq
    st, js = await post(api, path, payload)
    assert (st, js["error"]["code"]) == (status, code), js
    assert set(js) == {"error"} and {"code", "message"} <= set(js["error"])
    assert api.state(*traders) == before
    return js, seq_before


async def test_accepted_order_acks_after_durability(api):
    js = await rest_ask(api)
    assert js["seq"] <= api.service.journal.durable_seq
    assert js["result"]["status"] == "open" and js["events"][0]["type"] == "OrderAccepted"


@pytest.mark.parametrize("sig", ["0x1234", "0x" + "00" * 65, "nothex", "0x" + "11" * 64 + "1d"])
async def test_malformed_signature_is_400_bad_signature_and_not_journalled(api, sig):
    payload = body("order", api.a.order_msg(api.clock), api.a.key)
    payload["signature"] = sig
    js, seq = await expect_reject(api, payload, 400, "bad_signature")
    assert api.service.last_seq == seq and "seq" not in js["error"]


async def test_high_s_signature_is_400_bad_signature(api):
    from aggregator.eip712 import SECP256K1_N

    payload = body("order", api.a.order_msg(api.clock), api.a.key)
    raw = bytes.fromhex(payload["signature"][2:])
    s = SECP256K1_N - int.from_bytes(raw[32:64], "big")
    flipped = raw[:32] + s.to_bytes(32, "big") + bytes((raw[64] ^ 1,))
    payload["signature"] = "0x" + flipped.hex()
    await expect_reject(api, payload, 400, "bad_signature")


@pytest.mark.parametrize("mutate", [
    lambda d: d.pop("order"),
    lambda d: d["order"].pop("price"),
    lambda d: d["order"].update(side=3),
    lambda d: d["order"].update(price=-5),
    lambda d: d["order"].update(price=2**64),
    lambda d: d["order"].update(price="01"),
    lambda d: d["order"].update(reduceOnly="no"),
    lambda d: d["order"].update(account="0x1234"),
    lambda d: d["order"].update(instrument="eth perp"),
    lambda d: d.update(extra=1),
])
async def test_malformed_request_is_400_invalid_request(api, mutate):
    payload = body("order", api.a.order_msg(api.clock), api.a.key)
    mutate(payload)
    _, seq = await expect_reject(api, payload, 400, "invalid_request")
    assert api.service.last_seq == seq


async def test_not_json_is_400_invalid_request(api):
    r = await api.client.post("/v1/orders", data=b"{not json")
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"


async def test_signer_neither_account_nor_session_key_is_403(api):
    msg = api.a.order_msg(api.clock)
    js, seq = await expect_reject(api, body("order", msg, api.b.key), 403, "unauthorized_signer")
    assert js["error"]["seq"] == seq + 1  # sequenced and journalled, rejected by the core


async def test_reused_nonce_is_409(api):
    payload = body("order", api.a.order_msg(api.clock, side=2, price=3_002_000_000), api.a.key)
    st, _ = await post(api, "/v1/orders", payload)
    assert st == 200
    await expect_reject(api, payload, 409, "nonce_reused")


async def test_expired_is_400(api):
    msg = api.a.order_msg(api.clock, expiry=api.clock.now_ms // 1000 - 1)
    await expect_reject(api, body("order", msg, api.a.key), 400, "expired")


async def test_expiry_beyond_window_is_400_nonce_window(api):
    msg = api.a.order_msg(api.clock, expiry=api.clock.now_ms // 1000 + 3 * 86_400)
    await expect_reject(api, body("order", msg, api.a.key), 400, "nonce_window")


async def test_unknown_instrument_is_404(api):
    msg = api.a.order_msg(api.clock, instrument="DOGE-PERP")
    await expect_reject(api, body("order", msg, api.a.key), 404, "unknown_instrument")


async def test_off_tick_is_400_invalid_tick(api):
    msg = api.a.order_msg(api.clock, price=3_000_000_001)
    await expect_reject(api, body("order", msg, api.a.key), 400, "invalid_tick")


async def test_off_lot_is_400_invalid_lot(api):
    option = next(m for m in api.service.sequencer.markets()
                  if m["underlying"] == "ETH" and m["kind"] == "option")
    msg = api.a.order_msg(api.clock, instrument=option["instrument"], price=option["tick_size"] * 100,
                          size=option["lot_size"] + 1)
    await expect_reject(api, body("order", msg, api.a.key), 400, "invalid_lot")


async def test_insufficient_margin_is_422(api):
    msg = api.poor.order_msg(api.clock, size=1_000)  # 1 ETH at 3000 needs 300 USDC initial margin
    await expect_reject(api, body("order", msg, api.poor.key), 422, "insufficient_margin")


async def test_no_deposit_is_422_insufficient_margin(api):
    msg = api.nobody.order_msg(api.clock)
    await expect_reject(api, body("order", msg, api.nobody.key), 422, "insufficient_margin")


async def test_reduce_only_that_would_increase_is_422(api):
    msg = api.a.order_msg(api.clock, reduce_only=True)
    await expect_reject(api, body("order", msg, api.a.key), 422, "reduce_only_would_increase")


async def test_fok_not_fillable_is_422(api):
    await rest_ask(api, size=100)
    msg = api.b.order_msg(api.clock, side=1, price=3_001_000_000, size=500, tif=3)
    await expect_reject(api, body("order", msg, api.b.key), 422, "fok_not_fillable")


async def test_post_only_crossing_is_422(api):
    await rest_ask(api)
    msg = api.b.order_msg(api.clock, side=1, price=3_001_000_000, size=100, tif=4)
    await expect_reject(api, body("order", msg, api.b.key), 422, "post_only_would_cross")


async def test_market_closed_is_422(api):
    await api.service.submit_price("ETH-USD", 3_000 * 10**8, 10**6, api.clock.now_ms // 1000, "market-closed")
    msg = api.a.order_msg(api.clock)
    await expect_reject(api, body("order", msg, api.a.key), 422, "market_closed")


async def test_cancel_unknown_order_is_404_order_not_found(api):
    from aggregator.eip712 import Cancel

    msg = Cancel(api.a.address, "ETH-PERP", 999_999, 0, next_nonce(), api.a.expiry(api.clock))
    await expect_reject(api, body("cancel", msg, api.a.key), 404, "order_not_found", "/v1/orders/cancel")


async def test_every_core_reject_code_has_a_documented_status():
    from aggregator.core.sequencer import RejectCode

    for c in RejectCode:
        assert c.value in STATUS_BY_CODE, c
        assert 400 <= STATUS_BY_CODE[c.value] < 500


async def test_unknown_route_and_method_are_json_errors(api):
    r = await api.client.get("/v1/nope")
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    r = await api.client.put("/v1/orders")
    assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"

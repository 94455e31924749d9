"""Withdrawals through REST: accepted ones are reserved and visible; bad ones get a stable code
and reserve nothing (no balance, nonce or withdrawal changes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from aggregator import eip712
from aggregator.api.trading import TradingOptions, make_trading_app
from aggregator.api.withdrawals import add_withdrawal_routes
from tests.api.conftest import Api
from tests.api.helpers import Clock, Trader, body, make_service, next_nonce, seed

HUB = 31337
TOKEN = "0x" + "00" * 19 + "0c"
USDC = 10**6


@pytest.fixture
async def wapi(tmp_path) -> AsyncIterator[Api]:
    clock = Clock()
    svc = make_service(tmp_path / "journal", clock)
    app = make_trading_app(svc, TradingOptions(rate=None, ip_rate=None))
    add_withdrawal_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    a, b, poor, nobody = (Trader.make(i) for i in (1, 2, 3, 4))
    await seed(svc, [a, b])
    await svc.submit_deposit(HUB, 777, poor.address, 10 * USDC)
    yield Api(client, svc, clock, a, b, poor, nobody)
    await client.close()


def withdrawal(api: Api, t: Trader, amount: int, chain_id: int = HUB, nonce: int | None = None) -> eip712.Withdrawal:
    return eip712.Withdrawal(t.address, TOKEN, amount, chain_id, t.address, next_nonce() if nonce is None else nonce,
                             t.expiry(api.clock))


def unchanged(api: Api, t: Trader) -> tuple:
    seq = api.service.sequencer
    return api.state(t), seq.withdrawals(t.address), seq.withdrawn


async def test_accepted_withdrawal_is_reserved_and_listed(wapi):
    msg = withdrawal(wapi, wapi.a, 100 * USDC)
    r = await wapi.client.post("/v1/withdrawals", json=body("withdrawal", msg, wapi.a.key))
    ack = await r.json()
    assert r.status == 200 and ack["accepted"], ack
    wid = ack["result"]["withdrawal_id"]
    assert wid == "0x" + eip712.struct_hash(msg).hex()
    r = await wapi.client.get(f"/v1/withdrawals/{wid}")
    view = await r.json()
    assert r.status == 200 and view["status"] == "reserved" and view["amount"] == str(100 * USDC)
    r = await wapi.client.get(f"/v1/withdrawals?account={wapi.a.address}")
    assert [w["withdrawal_id"] for w in (await r.json())["withdrawals"]] == [wid]
    assert wapi.service.sequencer.account(wapi.a.address)["total_collateral"] == 1_000_000 * USDC - 100 * USDC


@pytest.mark.parametrize("case, status, code", [
    ("beyond_free_collateral", 422, "insufficient_free_collateral"),
    ("unknown_chain", 404, "unknown_chain"),
    ("signed_by_someone_else", 403, "unauthorized_signer"),
    ("bad_signature", 400, "bad_signature"),
    ("zero_amount", 400, "invalid_request"),
])
async def test_bad_withdrawal_gets_its_code_and_reserves_nothing(wapi, case, status, code):
    t = wapi.poor
    before = unchanged(wapi, t)
    if case == "beyond_free_collateral":
        req = body("withdrawal", withdrawal(wapi, t, 10 * USDC + 1), t.key)
    elif case == "unknown_chain":
        req = body("withdrawal", withdrawal(wapi, t, USDC, chain_id=424242), t.key)
    elif case == "signed_by_someone_else":
        req = body("withdrawal", withdrawal(wapi, t, USDC), wapi.b.key)
    elif case == "bad_signature":
        req = body("withdrawal", withdrawal(wapi, t, USDC), t.key)
        req["signature"] = req["signature"][:-4] + "ffff"
    else:
        req = body("withdrawal", withdrawal(wapi, t, USDC), t.key)
        req["withdrawal"]["amount"] = "0"
    r = await wapi.client.post("/v1/withdrawals", json=req)
    err = await r.json()
    assert r.status == status and err["error"]["code"] == code, err
    assert unchanged(wapi, t) == before


async def test_reused_withdrawal_nonce_is_refused_and_reserves_once(wapi):
    t = wapi.a
    req = body("withdrawal", withdrawal(wapi, t, 5 * USDC), t.key)
    r = await wapi.client.post("/v1/withdrawals", json=req)
    assert r.status == 200
    before = unchanged(wapi, t)
    r = await wapi.client.post("/v1/withdrawals", json=req)
    err = await r.json()
    assert r.status == 409 and err["error"]["code"] == "nonce_reused", err
    assert unchanged(wapi, t) == before and len(before[1]) == 1


async def test_session_key_cannot_withdraw(wapi):
    t, key = wapi.a, Trader.make(9)
    grant = eip712.SessionKey(t.address, key.address, wapi.clock.now_ms // 1000 + 3600, next_nonce(),
                              t.expiry(wapi.clock))
    r = await wapi.client.post("/v1/session-keys", json=body("sessionKey", grant, t.key))
    assert r.status == 200
    before = unchanged(wapi, t)
    r = await wapi.client.post("/v1/withdrawals", json=body("withdrawal", withdrawal(wapi, t, USDC), key.key))
    assert r.status == 403 and (await r.json())["error"]["code"] == "unauthorized_signer"
    assert unchanged(wapi, t) == before


async def test_unknown_withdrawal_is_404(wapi):
    r = await wapi.client.get("/v1/withdrawals/0x" + "ab" * 32)
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"

"""The ledger store and its read API, without chains (SQLite, or PostgreSQL in CI)."""

from __future__ import annotations

import threading

import pytest
from aiohttp.test_utils import TestClient, TestServer

from aggregator.api.app import make_app
from aggregator.ledger import Ledger, LedgerError
from bridges.events import DepositEvent
from bridges.watcher import Cursor
from tests.conftest import chain_settings

A = "0x00000000000000000000000000000000000000A1"
B = "0x00000000000000000000000000000000000000b2"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SETTINGS = chain_settings(("eth", 31337, 8545, 6), ("bnb", 31339, 8547, 18))


def ev(chain_id: int, nonce: int, account: str = A, amount: int = 10**6) -> DepositEvent:
    return DepositEvent(chain_id, account, TOKEN, amount, nonce, 100 + nonce, "0x" + f"{nonce:064x}",
                        "0x" + f"{nonce + 7:064x}", 0)


def test_deposit_credited_once_however_often_applied(engine):
    ledger = Ledger(engine, SETTINGS)
    batch = [ev(31337, 1), ev(31337, 2, amount=5)]
    assert len(ledger.apply_deposits(31337, batch, "w", Cursor(10, "0x" + "aa" * 32))) == 2
    assert ledger.apply_deposits(31337, batch, "w", Cursor(11, "0x" + "bb" * 32)) == []
    assert ledger.account(A).balances[0].native == 10**6 + 5
    assert ledger.deposit_count() == 2
    assert ledger.cursor(31337, "w") == Cursor(11, "0x" + "bb" * 32)


def test_same_nonce_on_two_chains_are_two_deposits(engine):
    ledger = Ledger(engine, SETTINGS)
    ledger.apply_deposits(31337, [ev(31337, 1)], "w", Cursor(1, "0x01"))
    ledger.apply_deposits(31339, [ev(31339, 1, amount=3 * 10**18 + 999)], "w", Cursor(1, "0x01"))
    view = ledger.account(A)
    assert [(b.chain, b.native, b.internal) for b in view.balances] == [
        ("eth", 10**6, 10**6), ("bnb", 3 * 10**18 + 999, 3 * 10**6)]
    assert view.total_internal == 4 * 10**6


def test_amounts_beyond_64_bits_survive_the_database(engine):
    ledger = Ledger(engine, SETTINGS)
    big = 2**200 + 12345
    ledger.apply_deposits(31339, [ev(31339, 9, amount=big)], "w", Cursor(1, "0x01"))
    assert ledger.account(A).balances[0].native == big
    assert ledger.custody()[1].native == big


def test_concurrent_writers_credit_each_deposit_once(engine):
    ledger = Ledger(engine, SETTINGS)
    batch = [ev(31337, n, account=B if n % 2 else A, amount=n) for n in range(1, 41)]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            Ledger(engine, SETTINGS).apply_deposits(31337, batch, "w", Cursor(50, "0x50"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ledger.deposit_count() == 40
    assert ledger.account(A).balances[0].native == sum(n for n in range(1, 41) if n % 2 == 0)
    assert ledger.account(B).balances[0].native == sum(n for n in range(1, 41) if n % 2)


def test_failed_batch_changes_nothing(engine):
    ledger = Ledger(engine, SETTINGS)
    with pytest.raises(LedgerError):
        ledger.apply_deposits(31337, [ev(31337, 1), ev(31337, 2, amount=0)], "w", Cursor(5, "0x05"))
    assert ledger.deposit_count() == 0 and ledger.cursor(31337, "w") is None and ledger.account(A) is None
    with pytest.raises(LedgerError):
        ledger.apply_deposits(999, [], "w", Cursor(5, "0x05"))


@pytest.fixture
async def client(engine):
    ledger = Ledger(engine, SETTINGS)
    ledger.apply_deposits(31339, [ev(31339, 1, amount=2 * 10**18 + 5)], "w", Cursor(7, "0x07"))
    async with TestClient(TestServer(make_app(ledger))) as c:
        yield c


async def test_account_route_returns_balance_per_chain_and_total(client):
    r = await client.get(f"/v1/accounts/{A.lower()}")
    assert r.status == 200
    body = await r.json()
    assert body["address"] == A
    assert body["total"] == "2000000"
    assert body["balances"] == [{"chain": "bnb", "chain_id": 31339, "token": TOKEN, "token_decimals": 18,
                                 "native": str(2 * 10**18 + 5), "internal": "2000000"}]


@pytest.mark.parametrize("path, status, code", [
    ("/v1/accounts/0x123", 400, "invalid_address"),
    ("/v1/accounts/not-an-address", 400, "invalid_address"),
    ("/v1/accounts/0xZZ000000000000000000000000000000000000A1", 400, "invalid_address"),
    (f"/v1/accounts/{B}", 404, "account_not_found"),
    ("/v1/nothing-here", 404, "not_found"),
])
async def test_bad_account_requests_get_json_errors_and_change_nothing(client, path, status, code):
    before = await (await client.get("/v1/chains")).json()
    r = await client.get(path)
    assert r.status == status
    assert (await r.json())["error"]["code"] == code
    assert await (await client.get("/v1/chains")).json() == before


async def test_wrong_method_is_a_json_405(client):
    r = await client.post("/v1/chains", data=b"{}")
    assert r.status == 405
    assert (await r.json())["error"]["code"] == "method_not_allowed"


async def test_chains_route_reports_custody_per_chain(client):
    body = await (await client.get("/v1/chains")).json()
    rows = {c["name"]: c for c in body["chains"]}
    assert rows["bnb"]["settled_native"] == str(2 * 10**18 + 5)
    assert rows["bnb"]["deposits"] == 1 and rows["bnb"]["indexed_block"] == 7
    assert rows["eth"]["settled_native"] == "0" and rows["eth"]["indexed_block"] is None

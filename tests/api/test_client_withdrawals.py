"""OmniclearClient withdrawals (ccxt ``withdraw``/``fetch_withdrawal(s)``/``fetch_currencies``)
against the real in-process API, with two settlement chains of different token decimals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from aiohttp.test_utils import TestClient, TestServer

from aggregator import eip712
from aggregator.api.trading import TradingOptions, make_trading_app
from aggregator.api.withdrawals import add_withdrawal_routes
from aggregator.client import BadRequest, InsufficientFunds, InvalidOrder, OmniclearClient
from aggregator.client.errors import OperationRejected
from aggregator.core.batch import SettlementChain
from aggregator.sequencer_service import SequencerService, default_sequencer_config, default_sequencer_factory
from tests.api.helpers import DOMAIN, Clock, Trader

HUB, BNB = 31337, 31339
HUB_TOKEN = eip712.to_checksum_address("0x" + "00" * 19 + "0c")
BNB_TOKEN = eip712.to_checksum_address("0x" + "00" * 19 + "0d")
USDC = 10**6


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[tuple[SequencerService, OmniclearClient, Trader, Clock]]:
    clock = Clock()
    chains = (SettlementChain(HUB, HUB_TOKEN, 6), SettlementChain(BNB, BNB_TOKEN, 18))
    cfg = default_sequencer_config(DOMAIN.chain_id, settlement_chains=chains)
    svc = SequencerService(default_sequencer_factory(cfg), DOMAIN, str(tmp_path / "journal"), clock_ms=clock,
                           tick_interval_s=None)
    app = make_trading_app(svc, TradingOptions(rate=None, ip_rate=None))
    add_withdrawal_routes(app)
    server = TestClient(TestServer(app))
    await server.start_server()
    t = Trader.make(7)
    await svc.submit_deposit(HUB, 1, t.address, 500 * USDC)
    client = OmniclearClient(str(server.server.make_url("")).rstrip("/"), "0x" + t.key.hex(), clock_ms=clock)
    yield svc, client, t, clock
    await client.close()
    await server.close()


async def test_fetch_currencies_lists_every_settlement_chain_with_its_token(env):
    _, client, _, _ = env
    usdc = (await client.fetch_currencies())["USDC"]
    assert set(usdc["networks"]) == {str(HUB), str(BNB)}
    bnb = usdc["networks"][str(BNB)]
    assert bnb["withdraw"] is True and bnb["info"]["token"] == BNB_TOKEN and bnb["info"]["token_decimals"] == 18


async def test_withdraw_to_an_18_decimal_chain_signs_native_units_and_reserves(env):
    svc, client, t, _ = env
    tx = await client.withdraw("USDC", "123.456789", t.address, params={"network": BNB})
    assert tx["status"] == "pending" and tx["network"] == str(BNB) and tx["amount"] == Decimal("123.456789")
    w = svc.sequencer.withdrawal(tx["id"])
    assert w["native_amount"] == 123_456_789 * 10**12 and w["token"] == BNB_TOKEN and w["status"] == "reserved"
    assert svc.sequencer.account(t.address)["total_collateral"] == 500 * USDC - 123_456_789
    again = await client.fetch_withdrawal(tx["id"])
    assert (again["id"], again["status"], again["txid"]) == (tx["id"], "pending", None)
    assert [x["id"] for x in await client.fetch_withdrawals()] == [tx["id"]]


async def test_withdrawal_failed_on_halted_chain_reads_failed_with_reason(env):
    svc, client, t, _ = env
    from aggregator.core import commands as C

    tx = await client.withdraw("USDC", 10, t.address, params={"network": str(BNB)})
    await svc.execute(C.SetWithdrawalHalt, BNB, True, "vault below ledger")
    await svc.execute(C.CloseBatch, bytes(32))
    failed = await client.fetch_withdrawal(tx["id"])
    assert failed["status"] == "failed" and "vault below ledger" in failed["comment"]
    assert (await client.fetch_currencies())["USDC"]["networks"][str(BNB)]["withdraw"] is False
    assert svc.sequencer.account(t.address)["total_collateral"] == 500 * USDC  # credited back


@pytest.mark.parametrize("amount, network, error", [
    ("0.0000001", BNB, InvalidOrder),  # finer than 1e-6 USDC: refused, never rounded
    ("600", HUB, InsufficientFunds),
    ("1", 99, BadRequest),  # a chain the venue does not settle on
])
async def test_bad_withdrawal_raises_and_reserves_nothing(env, amount, network, error):
    svc, client, t, _ = env
    with pytest.raises(error):
        await client.withdraw("USDC", amount, t.address, params={"network": network})
    assert svc.sequencer.withdrawals(t.address) == []
    assert svc.sequencer.account(t.address)["total_collateral"] == 500 * USDC


async def test_withdraw_on_halted_chain_is_operation_rejected(env):
    svc, client, t, _ = env
    from aggregator.core import commands as C

    await svc.execute(C.SetWithdrawalHalt, HUB, True, "reconciliation")
    with pytest.raises(OperationRejected):
        await client.withdraw("USDC", 1, t.address, params={"network": HUB})

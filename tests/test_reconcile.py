"""Reconciliation of vault custody against the ledger, on a real anvil chain."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from eth_account import Account
from sqlmodel import Session, select

from aggregator.api.app import make_app
from aggregator.deposits import CURSOR_NAME, DepositSink
from aggregator.devnet import web3_for
from aggregator.ledger import Ledger
from aggregator.metrics import Metrics
from aggregator.models import Balance
from aggregator.reconcile import Reconciler
from aggregator.traders import deposit, fund_gas, sign_and_send
from bridges.chain import ChainClient
from bridges.contracts import contract
from bridges.events import DEPOSIT_TOPIC
from bridges.watcher import EventWatcher

pytestmark = pytest.mark.chain


async def setup(one_chain, engine, n_traders=3):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    ledger = Ledger(engine, settings)
    client = ChainClient(c.name, c.rpc_url, c.chain_id)
    keys = []
    for i in range(n_traders):
        a = Account.create()
        await asyncio.to_thread(fund_gas, w3, a.address)
        await asyncio.to_thread(deposit, w3, c, a.key.to_0x_hex(), (i + 1) * 10**18 + 5)
        keys.append(a)
    w3.provider.make_request("anvil_mine", ["0x5"])
    w = EventWatcher(client, DepositSink(ledger), name=CURSOR_NAME, address=c.vault, topic0=DEPOSIT_TOPIC,
                     confirmations=3, start_block=c.deploy_block)
    while await w.poll_once():
        pass
    return c, w3, ledger, client, keys, Reconciler(ledger, dep, {c.chain_id: client})


async def test_vault_and_ledger_agree_at_the_indexed_block(one_chain, engine):
    c, w3, ledger, client, keys, rec = await setup(one_chain, engine)
    # A deposit after the cursor is in flight, not a mismatch.
    late = Account.create()
    await asyncio.to_thread(fund_gas, w3, late.address)
    await asyncio.to_thread(deposit, w3, c, late.key.to_0x_hex(), 10**18)
    [r] = await rec.check_all()
    assert r.ok and r.status == "ok"
    assert r.vault_holdings == r.vault_settled == r.ledger_settled == sum((i + 1) * 10**18 + 5 for i in range(3))
    assert r.accounts_checked == 3 and rec.withdrawals_allowed(c.chain_id)
    await client.close()


async def test_ledger_tampering_is_a_mismatch_that_halts_withdrawals(one_chain, engine):
    c, w3, ledger, client, keys, rec = await setup(one_chain, engine)
    with Session(engine) as s:
        row = s.exec(select(Balance).where(Balance.account == keys[0].address)).one()
        row.native += 1
        s.add(row)
        s.commit()
    [r] = await rec.check_all()
    assert r.status == "mismatch"
    assert r.account_mismatches == [(keys[0].address, 10**18 + 5, 10**18 + 6)]
    assert not rec.withdrawals_allowed(c.chain_id)
    assert [a.kind for a in ledger.alerts(c.chain_id)] == ["reconcile-mismatch"]
    metrics = Metrics()
    metrics.register(lambda: [("omniclear_reconcile_ok", "gauge", "ok",
                               [({"chain": r.chain}, int(r.ok)) for r in rec.latest.values()])])
    async with TestClient(TestServer(make_app(ledger, metrics, rec))) as http:
        chains = (await (await http.get("/v1/chains")).json())["chains"]
        assert chains[0]["reconciliation"]["status"] == "mismatch" and chains[0]["withdrawals_halted"] is True
        text = await (await http.get("/metrics")).text()
        assert 'omniclear_reconcile_ok{chain="solo"} 0' in text
    await rec.clear_halt(c.chain_id)
    assert rec.withdrawals_allowed(c.chain_id)
    await client.close()


async def test_tokens_sent_to_the_vault_outside_deposit_are_a_surplus_not_a_halt(one_chain, engine):
    c, w3, ledger, client, keys, rec = await setup(one_chain, engine)
    token = contract(w3, "CollateralToken", c.token)
    k = keys[1]
    await asyncio.to_thread(sign_and_send, w3, k.key.to_0x_hex(), token.functions.faucet(k.address, 10**18)
                            .build_transaction({"from": k.address, "gas": 100_000}),
                            w3.eth.get_transaction_count(k.address), 100_000)
    await asyncio.to_thread(sign_and_send, w3, k.key.to_0x_hex(), token.functions.transfer(c.vault, 10**18)
                            .build_transaction({"from": k.address, "gas": 100_000}),
                            w3.eth.get_transaction_count(k.address), 100_000)
    w3.provider.make_request("anvil_mine", ["0x5"])
    w = EventWatcher(client, DepositSink(ledger), name=CURSOR_NAME, address=c.vault, topic0=DEPOSIT_TOPIC,
                     confirmations=3, start_block=c.deploy_block)
    while await w.poll_once():
        pass
    [r] = await rec.check_all()
    assert r.status == "ok" and r.surplus == 10**18
    assert r.vault_holdings == r.vault_settled + 10**18 and r.vault_settled == r.ledger_settled
    assert rec.withdrawals_allowed(c.chain_id) and ledger.alerts(c.chain_id) == []
    await client.close()

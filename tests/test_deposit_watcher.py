"""Deposits seen on a real anvil chain: confirmations, reorgs, restarts, any client."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from eth_account import Account
from web3 import Web3

from aggregator.deposits import CURSOR_NAME, DepositSink
from aggregator.devnet import GUARDIAN_KEY, web3_for
from aggregator.ledger import Ledger
from aggregator.traders import deposit, fund_gas
from bridges.anvil import tool_path
from bridges.chain import ChainClient
from bridges.contracts import contract, send_tx
from bridges.events import DEPOSIT_TOPIC
from bridges.watcher import EventWatcher

pytestmark = pytest.mark.chain

CONF = 3


def mine(w3: Web3, n: int) -> None:
    w3.provider.make_request("anvil_mine", [hex(n)])


async def make_watcher(settings, dep, engine, **kw) -> tuple[EventWatcher, Ledger]:
    c = dep.chains[0]
    ledger = Ledger(engine, settings)
    client = ChainClient(c.name, c.rpc_url, c.chain_id)
    w = EventWatcher(client, DepositSink(ledger), name=CURSOR_NAME, address=c.vault, topic0=DEPOSIT_TOPIC,
                     confirmations=CONF, start_block=c.deploy_block, poll_interval=0.01, **kw)
    return w, ledger


async def drain(w: EventWatcher) -> None:
    while await w.poll_once():
        pass


def new_trader(w3: Web3) -> str:
    acct = Account.create()
    fund_gas(w3, acct.address)
    return acct.key.to_0x_hex()


async def test_deposit_via_cast_is_credited_once_after_confirmations(one_chain, engine):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    key = await asyncio.to_thread(new_trader, w3)
    addr = Account.from_key(key).address
    amount = 7 * 10**18 + 1
    cast = tool_path("cast")
    for args in (
        [c.token, "faucet(address,uint256)", addr, str(amount)],
        [c.token, "approve(address,uint256)", c.vault, str(amount)],
        [c.vault, "deposit(address,uint256)", c.token, str(amount)],
    ):
        subprocess.run([cast, "send", "--private-key", key, "--rpc-url", c.rpc_url, *args],
                       check=True, capture_output=True, timeout=60)
    deposit_block = w3.eth.block_number
    w, ledger = await make_watcher(settings, dep, engine)
    try:
        await drain(w)
        assert ledger.account(addr) is None  # 0 confirmations on top yet
        await asyncio.to_thread(mine, w3, CONF - 1)
        await drain(w)
        assert ledger.account(addr) is None  # still one block short
        await asyncio.to_thread(mine, w3, 1)
        await drain(w)
        view = ledger.account(addr)
        assert view is not None and [b.native for b in view.balances] == [amount]
        assert view.total_internal == 7_000_000  # 18-decimal dust is not margin
        # More blocks, more polls, a restarted watcher: still exactly one credit.
        await asyncio.to_thread(mine, w3, 5)
        await drain(w)
        w2, _ = await make_watcher(settings, dep, engine, overlap=50)
        await drain(w2)
        await w2.client.close()
        assert ledger.deposit_count(c.chain_id) == 1
        assert ledger.account(addr).balances[0].native == amount
        assert ledger.cursor(c.chain_id, CURSOR_NAME).block_number >= deposit_block
    finally:
        await w.client.close()


async def test_deposit_removed_by_reorg_before_confirmations_is_never_credited(one_chain, engine):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    key = await asyncio.to_thread(new_trader, w3)
    addr = Account.from_key(key).address
    w, ledger = await make_watcher(settings, dep, engine)
    try:
        await asyncio.to_thread(mine, w3, CONF + 1)
        await drain(w)
        r = await asyncio.to_thread(deposit, w3, c, key, 10**18)
        assert r.block_number == w3.eth.block_number
        await asyncio.to_thread(mine, w3, CONF - 2)  # the deposit has CONF-1 blocks on top
        await drain(w)
        assert ledger.account(addr) is None
        # Replace the deposit's block and everything after it with empty blocks.
        depth = w3.eth.block_number - r.block_number + 1
        await asyncio.to_thread(w3.provider.make_request, "anvil_reorg", [depth, []])
        assert _receipt_gone(w3, r.tx_hash)
        await asyncio.to_thread(mine, w3, CONF + 5)
        await drain(w)
        assert ledger.account(addr) is None
        assert ledger.deposit_count(c.chain_id) == 0
        assert ledger.cursor(c.chain_id, CURSOR_NAME).block_number == w3.eth.block_number - CONF
        assert ledger.alerts(c.chain_id) == []  # a shallow reorg is no incident
    finally:
        await w.client.close()


def _receipt_gone(w3: Web3, tx_hash: str) -> bool:
    try:
        return w3.eth.get_transaction_receipt(tx_hash) is None
    except Exception:
        return True


async def test_reorg_deeper_than_confirmations_rewinds_cursor_and_alerts(one_chain, engine):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    w, ledger = await make_watcher(settings, dep, engine)
    try:
        await asyncio.to_thread(mine, w3, 20)
        await drain(w)
        before = ledger.cursor(c.chain_id, CURSOR_NAME)
        await asyncio.to_thread(w3.provider.make_request, "anvil_reorg", [CONF + 4, []])
        await drain(w)
        after = ledger.cursor(c.chain_id, CURSOR_NAME)
        assert w.stats.reorgs == 1
        assert [a.kind for a in ledger.alerts(c.chain_id)] == ["deep-reorg"]
        # The cursor now points at a canonical block again.
        assert w3.eth.get_block(after.block_number)["hash"].to_0x_hex() == after.block_hash
        assert after.block_hash != before.block_hash or after.block_number != before.block_number
    finally:
        await w.client.close()


async def test_watcher_restarts_mid_stream_lose_and_double_nothing(one_chain, engine):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    keys = [await asyncio.to_thread(new_trader, w3) for _ in range(4)]
    n_per_key = 10
    amounts = {Account.from_key(k).address: 0 for k in keys}

    def stream() -> None:
        for i in range(n_per_key):
            for k in keys:
                amt = (i + 1) * 10**18 + 17
                deposit(w3, c, k, amt)
                amounts[Account.from_key(k).address] += amt
                mine(w3, 1)

    sender = asyncio.create_task(asyncio.to_thread(stream))
    restarts = 0
    while not sender.done():
        w, ledger = await make_watcher(settings, dep, engine, overlap=8)
        stop = asyncio.Event()
        task = asyncio.create_task(w.run(stop))
        await asyncio.sleep(0.3)
        if restarts % 2:
            task.cancel()  # an abrupt stop in the middle of whatever it was doing
        else:
            stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await w.client.close()
        restarts += 1
    await sender
    await asyncio.to_thread(mine, w3, CONF)
    w, ledger = await make_watcher(settings, dep, engine)
    await drain(w)
    await w.client.close()
    vault = contract(w3, "CollateralVault", c.vault)
    assert restarts >= 3
    assert ledger.deposit_count(c.chain_id) == len(keys) * n_per_key == vault.functions.lastDepositNonce().call()
    for addr, total in amounts.items():
        assert ledger.account(addr).balances[0].native == total == vault.functions.balanceOf(addr, c.token).call()


async def test_vault_rejects_bad_deposits_with_custom_errors_and_credits_nothing(one_chain, engine):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    key = await asyncio.to_thread(new_trader, w3)
    addr = Account.from_key(key).address
    vault = contract(w3, "CollateralVault", c.vault)

    def revert_selector(fn, sender: str) -> str:
        try:
            fn.call({"from": sender})
        except Exception as e:  # web3 surfaces custom errors as ContractCustomError
            data = getattr(e, "data", None) or (e.args[1] if len(e.args) > 1 else "")
            return str(data)[:10]
        raise AssertionError("call did not revert")

    sel = lambda sig: Web3.keccak(text=sig)[:4].to_0x_hex()  # noqa: E731
    assert revert_selector(vault.functions.deposit(addr, 1), addr) == sel("TokenNotAllowed(address)")
    assert revert_selector(vault.functions.deposit(c.token, 0), addr) == sel("ZeroAmount()")
    send_tx(w3, GUARDIAN_KEY, vault.functions.pause().build_transaction(
        {"from": Account.from_key(GUARDIAN_KEY).address}))
    assert revert_selector(vault.functions.deposit(c.token, 10**18), addr) == sel("EnforcedPause()")
    assert revert_selector(vault.functions.pause(), addr).startswith(
        sel("AccessControlUnauthorizedAccount(address,bytes32)"))
    w, ledger = await make_watcher(settings, dep, engine)
    await asyncio.to_thread(mine, w3, CONF + 1)
    await drain(w)
    await w.client.close()
    assert ledger.deposit_count() == 0
    assert vault.functions.lastDepositNonce().call() == 0

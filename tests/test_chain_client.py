"""The async chain client: typed errors, retries only where idempotent, nonce resync."""

from __future__ import annotations

import asyncio
import time

import pytest
from eth_account import Account

from aggregator.devnet import web3_for
from bridges.anvil import DEV_KEYS, free_port
from bridges.chain import ChainClient, NonceManager, RetryPolicy
from bridges.contracts import contract, send_tx
from bridges.errors import RejectedChainError, TransientChainError

pytestmark = pytest.mark.chain
FAST = RetryPolicy(attempts=3, max_delay=2.0, wait_min=0.01, wait_max=0.05)


async def test_unreachable_node_is_transient_after_bounded_retries():
    client = ChainClient("gone", f"http://127.0.0.1:{free_port()}", 1, retry=FAST, timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(TransientChainError):
        await client.block_number()
    assert time.monotonic() - t0 < 3.0
    await client.close()


async def test_revert_is_rejected_and_not_retried(one_chain):
    _, dep = one_chain
    c = dep.chains[0]
    client = ChainClient(c.name, c.rpc_url, c.chain_id, retry=FAST)
    calls = 0
    real = client.once

    async def counting(fn):
        nonlocal calls
        calls += 1
        return await real(fn)

    client.once = counting  # type: ignore[method-assign]
    vault = contract(web3_for(c.rpc_url), "CollateralVault", c.vault)
    data = vault.encode_abi("deposit", args=[c.token, 0])
    with pytest.raises(RejectedChainError):
        await client.idempotent(lambda: client.w3.eth.call({"to": c.vault, "data": data}))
    assert calls == 1
    await client.close()


async def test_nonce_manager_resyncs_after_another_sender_used_the_nonce(one_chain):
    _, dep = one_chain
    c = dep.chains[0]
    key = DEV_KEYS[3]
    me = Account.from_key(key).address
    client = ChainClient(c.name, c.rpc_url, c.chain_id)
    nonces = NonceManager()
    tx = {"to": me, "value": 1}
    r1 = await client.send_transaction(key, tx, nonces)
    # Someone else sends with the same key, behind the manager's back.
    await asyncio.to_thread(send_tx, web3_for(c.rpc_url), key, {"to": me, "value": 2})
    r2 = await client.send_transaction(key, tx, nonces)
    assert r1["status"] == r2["status"] == 1
    w3 = web3_for(c.rpc_url)
    n1 = w3.eth.get_transaction(r1["transactionHash"])["nonce"]
    n2 = w3.eth.get_transaction(r2["transactionHash"])["nonce"]
    assert n2 == n1 + 2
    await client.close()


async def test_concurrent_sends_never_share_a_nonce(one_chain):
    _, dep = one_chain
    c = dep.chains[0]
    key = DEV_KEYS[4]
    client = ChainClient(c.name, c.rpc_url, c.chain_id)
    nonces = NonceManager()
    me = Account.from_key(key).address
    receipts = await asyncio.gather(*(client.send_transaction(key, {"to": me, "value": i}, nonces) for i in range(8)))
    w3 = web3_for(c.rpc_url)
    used = sorted(w3.eth.get_transaction(r["transactionHash"])["nonce"] for r in receipts)
    assert used == list(range(used[0], used[0] + 8))
    await client.close()

"""The relayer on three real anvils: a settled batch (with a bridge leg) delivered exactly once."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from aggregator.db import make_engine
from bridges.anvil import free_port
from bridges.relay_store import DELIVERED, RelayStore
from bridges.relayer import RelayerConfig, build_relayer, close_relayer, make_app
from tests.relayer.conftest import ARB, BNB, HUB, USD, bridging_batch, small_batch, submit, wait_until

pytestmark = pytest.mark.chain
t = asyncio.to_thread  # blocking web3 off the loop: web3 shares one threading lock between sync and async providers


def fresh_store(db_url: str) -> RelayStore:
    store = RelayStore(make_engine(db_url))
    store.create_tables()
    return store


async def test_batch_with_bridge_leg_is_delivered_once_and_moves_vault_balances(system, db_url):
    s = system
    store = fresh_store(db_url)
    relayer = build_relayer(s.dep, store, config=RelayerConfig(lease_s=10))
    stop = asyncio.Event()
    task = asyncio.create_task(relayer.run(stop))
    from aiohttp import web

    runner = web.AppRunner(make_app(relayer))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        bnb_before = await t(s.holdings, BNB)
        sub = await submit(s, bridging_batch(s, 1))
        assert sorted(sub.message_ids) == [HUB, ARB, BNB]
        # 3 settlement messages + the bnb -> hub bridge mint
        await wait_until(lambda: store.counts()[DELIVERED] == 4, 60, what="4 deliveries")
        counts = await t(s.process_counts)
        assert set(counts) == await t(s.dispatched_ids) and len(counts) == 4
        assert all(n == 1 for n in counts.values())
        assert await t(s.vault_balance, BNB, "t1") == 700 * 10**18
        assert await t(s.vault_balance, HUB, "t3") == 300 * USD
        assert await t(s.vault_balance, ARB, "t2") == 400 * USD and await t(s.vault_balance, ARB, "t4") == 100 * USD
        assert await t(s.holdings, BNB) == (bnb_before[0] - 300 * 10**18,) * 2  # burned, and solvent
        assert await t(s.holdings, HUB) == (300 * USD, 300 * USD)  # minted into the vault
        # A second batch rides the same paths at nonce 1.
        await submit(s, small_batch(s, 2, 5 * USD))
        await wait_until(lambda: store.counts()[DELIVERED] == 7, 60, what="7 deliveries")
        assert await t(s.vault_balance, ARB, "t4") == 105 * USD
        assert all(n == 1 for n in (await t(s.process_counts)).values())
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as r:
                health = await r.json()
                assert r.status == 200 and health["ok"] and health["queue"]["delivered"] == 7
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
        assert 'omniclear_relay_messages{status="delivered"} 7' in text
        assert f'omniclear_relay_last_delivered_nonce{{origin="{HUB}",destination="{ARB}"' in text
        assert "omniclear_relay_delivery_latency_seconds_count 7" in text
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await runner.cleanup()
        await close_relayer(relayer)
        store.engine.dispose()


async def test_slow_bridge_leg_is_an_uncounted_fast_wait_not_a_dead_letter(system, db_url):
    """The hub settlement of a bridging batch reverts BridgeInPending until the bnb -> hub mint
    lands: it must wait without counting retries, and follow the mint within a fraction of a second."""
    s = system
    store = fresh_store(db_url)
    relayer = build_relayer(s.dep, store, config=RelayerConfig(lease_s=10))
    stop = asyncio.Event()
    task = asyncio.create_task(relayer.run(stop))
    try:
        s.miner.enabled[BNB] = False  # the mint dispatched on bnb gets no confirmations: the bridge leg stalls
        await submit(s, bridging_batch(s, 1))

        def hub_settlement():
            return next((r for r in store.list() if r.origin == HUB and r.destination == HUB), None)

        await wait_until(lambda: (r := hub_settlement()) is not None and "BridgeInPending" in (r.reason or ""), 30,
                         what="the hub settlement waiting for its bridge-in")
        await asyncio.sleep(3.0)  # many attempts while the leg is slow
        waiting = await t(hub_settlement)
        assert waiting is not None and waiting.status != DELIVERED and waiting.retries == 0, waiting
        assert relayer.stats.retries.get("recipient_waiting", 0) >= 8  # retried every 0.1-0.3 s
        assert "recipient_revert" not in relayer.stats.retries
        s.miner.enabled[BNB] = True
        await wait_until(lambda: store.counts()[DELIVERED] == 4, 60, what="4 deliveries")
        rows = await t(store.list)
        mint = next(r for r in rows if r.origin == BNB and r.destination == HUB)
        done = next(r for r in rows if r.origin == HUB and r.destination == HUB)
        assert done.retries == 0 and mint.delivered_at is not None and done.delivered_at is not None
        assert done.delivered_at - mint.delivered_at < 1.5, "the settlement follows its mint quickly"
        assert all(n == 1 for n in (await t(s.process_counts)).values())
        assert await t(s.vault_balance, HUB, "t3") == 300 * USD
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_relayer(relayer)
        store.engine.dispose()

"""Relayer faults on real anvils: kill -9, a faulty RPC, a reorg, several relayers — each message once."""

from __future__ import annotations

import asyncio
import os
import random
import signal

import aiohttp
import pytest
from aiohttp import web

from aggregator.db import make_engine
from bridges.anvil import free_port
from bridges.chain import ChainClient
from bridges.contracts import contract
from bridges.relay_store import DELIVERED, DISPATCH_TOPIC, SUBMITTED, RelayStore, decode_dispatch
from bridges.relayer import RelayerConfig, build_relayer, close_relayer
from bridges.validator import DestinationMailbox, OriginChain, SignRequest, ValidatorRefused, ValidatorSigner
from tests.relayer.conftest import (
    ARB,
    HUB,
    USD,
    System,
    bridging_batch,
    small_batch,
    start_relayer_process,
    stop_process,
    submit,
    wait_until,
)

pytestmark = pytest.mark.chain
t = asyncio.to_thread  # blocking web3 off the loop (web3 shares a threading lock with its async provider)


def store_for(db_url: str) -> RelayStore:
    store = RelayStore(make_engine(db_url))
    store.create_tables()
    return store


async def submit_batches(s: System, n: int) -> None:
    await submit(s, bridging_batch(s, 1))
    for i in range(2, n + 1):
        await submit(s, small_batch(s, i, i * USD))


def expected_messages(n_batches: int) -> int:
    return 3 * n_batches + 1  # one settlement per chain per batch, plus batch 1's bridge mint


async def assert_all_delivered_once(s: System, store: RelayStore, n: int) -> None:
    dispatched = await t(s.dispatched_ids)
    assert len(dispatched) == n
    counts = await t(s.process_counts)
    assert set(counts) == dispatched, "every dispatched message is delivered"
    assert all(c == 1 for c in counts.values()), f"delivered more than once: {counts}"
    rows = await t(store.list)
    assert {r.id for r in rows} == dispatched and all(r.status == DELIVERED for r in rows)


async def test_kill_9_mid_delivery_then_restart_delivers_each_message_once(system, db_url):
    s = system
    store = store_for(db_url)
    n_batches = 4
    await submit_batches(s, n_batches)
    n = expected_messages(n_batches)
    p = start_relayer_process(s, db_url, log_name="relayer-a")
    try:
        def mid_delivery() -> bool:
            c = store.counts()
            return c[SUBMITTED] > 0 or c[DELIVERED] >= 2

        await wait_until(mid_delivery, 60, interval=0.01, what="a delivery in flight")
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        before = store.counts()[DELIVERED]
        assert before < n, "the kill happened mid-run"
        p = start_relayer_process(s, db_url, log_name="relayer-b")
        await wait_until(lambda: store.counts()[DELIVERED] == n, 120, what=f"{n} deliveries after restart")
    finally:
        stop_process(p)
    await assert_all_delivered_once(s, store, n)
    assert await t(s.vault_balance, ARB, "t4") == (100 + sum(range(2, n_batches + 1))) * USD


class FaultyProxy:
    """JSON-RPC proxy that fails a share of calls: 503 before forwarding, a stall past the
    client's timeout, or forwarding and then losing the answer (the dangerous one)."""

    def __init__(self, upstream: str, seed: int, p_fail: float = 0.12, p_stall: float = 0.05,
                 p_lose: float = 0.10, stall_s: float = 1.5) -> None:
        self.upstream = upstream
        self.rng = random.Random(seed)
        self.p_fail, self.p_stall, self.p_lose, self.stall_s = p_fail, p_stall, p_lose, stall_s
        self.faults = {"fail": 0, "stall": 0, "lose": 0, "ok": 0}
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, req: web.Request) -> web.Response:
        body = await req.read()
        r = self.rng.random()
        if r < self.p_fail:
            self.faults["fail"] += 1
            return web.Response(status=503, text="injected failure")
        if r < self.p_fail + self.p_stall:
            self.faults["stall"] += 1
            await asyncio.sleep(self.stall_s)
        assert self.session is not None
        async with self.session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}) as up:
            answer = await up.read()
        if self.p_fail + self.p_stall <= r < self.p_fail + self.p_stall + self.p_lose:
            self.faults["lose"] += 1
            return web.Response(status=502, text="answer lost")
        self.faults["ok"] += 1
        return web.Response(body=answer, content_type="application/json")

    async def start(self) -> tuple[web.AppRunner, str]:
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, f"http://127.0.0.1:{port}"

    async def stop(self, runner: web.AppRunner) -> None:
        await runner.cleanup()
        if self.session is not None:
            await self.session.close()


async def test_faulty_rpc_proxy_in_front_of_every_chain_still_delivers_each_once(system, db_url):
    s = system
    store = store_for(db_url)
    proxies = {name: FaultyProxy(s.dep.chain(name).rpc_url, seed=i) for i, name in enumerate(("hub", "arb", "bnb"))}
    started = {name: await px.start() for name, px in proxies.items()}
    relayer = build_relayer(s.dep, store, rpc_urls={name: url for name, (_, url) in started.items()},
                            config=RelayerConfig(rpc_timeout_s=1.0, lease_s=10, stuck_after_s=3.0))
    for c in relayer.chains.values():  # fewer in-call retries, so the message-level retries get exercised too
        c.client.retry = type(c.client.retry)(attempts=3, max_delay=3.0)
    stop = asyncio.Event()
    task = asyncio.create_task(relayer.run(stop))
    n_batches = 3
    try:
        await submit_batches(s, n_batches)
        n = expected_messages(n_batches)
        await wait_until(lambda: store.counts()[DELIVERED] == n, 150, what=f"{n} deliveries through the proxy")
    finally:
        stop.set()
        await asyncio.wait_for(task, 40)
        await close_relayer(relayer)
        for name, px in proxies.items():
            await px.stop(started[name][0])
    await assert_all_delivered_once(s, store, n)
    assert sum(px.faults["fail"] + px.faults["lose"] + px.faults["stall"] for px in proxies.values()) > 10
    assert await t(s.vault_balance, ARB, "t4") == (100 + 2 + 3) * USD


def _hub_dispatches(s: System, block: int) -> list:
    hub = s.chain(HUB)
    return s.w3(HUB).eth.get_logs({"address": hub.mailbox, "topics": [DISPATCH_TOPIC], "fromBlock": block,
                                   "toBlock": block})


async def _orphan(s: System, settlements, blocks_on_top: int = 0):
    """Commit ``settlements`` as the next batch, mine ``blocks_on_top`` blocks on it (short of the
    2 confirmations), then reorg that block and the ones on top away (empty blocks instead)."""
    w3 = s.w3(HUB)
    sub = await submit(s, settlements)
    logs = await t(_hub_dispatches, s, sub.block_number)
    assert len(logs) == 3
    if blocks_on_top:
        await t(w3.provider.make_request, "anvil_mine", [hex(blocks_on_top)])
    depth = await t(lambda: w3.eth.block_number) - sub.block_number + 1
    await t(w3.provider.make_request, "anvil_reorg", [depth, []])
    hub_c = contract(w3, "SettlementHub", s.chain(HUB).settlement_hub)
    assert await t(hub_c.functions.lastBatchNumber().call) == len(s.headers) - 1
    s.headers.pop()
    return sub, logs


async def test_reorg_on_hub_before_confirmations_delivers_nothing_orphaned_and_reinclusion_once(system, db_url):
    """Batch 1 is mined and reorged away before its 2 confirmations, and a different batch 1 takes
    its place: the orphaned message it does not repeat (arb's) is never queued nor processed. That
    second batch is reorged away too and then included again (same bytes, same ids): each of its
    messages, including the two the orphan shared, is processed exactly once."""
    s = system
    store = store_for(db_url)
    s.miner.enabled[HUB] = False  # the test makes the hub's blocks itself
    hub = s.chain(HUB)
    w3 = s.w3(HUB)
    relayer = build_relayer(s.dep, store, config=RelayerConfig(lease_s=10))
    stop = asyncio.Event()
    task = asyncio.create_task(relayer.run(stop))
    try:
        await t(w3.provider.make_request, "anvil_mine", ["0x5"])
        orphan, orphan_logs = await _orphan(s, small_batch(s, 1, 7 * USD), blocks_on_top=1)
        await t(w3.provider.make_request, "anvil_mine", ["0x6"])
        await asyncio.sleep(1.5)
        assert await t(store.list) == [] and await t(s.process_counts) == {}
        # A validator refuses to sign the orphaned message, whatever the relayer claims.
        ev = decode_dispatch(orphan_logs[0])
        client = ChainClient("hub", hub.rpc_url, hub.chain_id)
        try:
            v = ValidatorSigner(s.dep.settlement.validator_keys[0],
                                {HUB: OriginChain(client, hub.mailbox, hub.confirmations)},
                                {c.chain_id: DestinationMailbox(c.chain_id, c.mailbox) for c in s.dep.chains})
            with pytest.raises(ValidatorRefused) as refused:
                await v.attest(SignRequest(ev.message, orphan.block_number))
            assert refused.value.reason == "not-found"
        finally:
            await client.close()
        # A different batch 1 at the same heights (arb's settlement has another amount, so another
        # id; the empty hub and bnb settlements are byte-identical), itself reorged once.
        replacement = small_batch(s, 1, 8 * USD)
        first, _ = await _orphan(s, replacement)
        assert first.message_ids[ARB] != orphan.message_ids[ARB]
        await t(w3.provider.make_request, "anvil_mine", ["0x3"])
        again = await submit(s, replacement)  # re-included: same bytes, same ids
        assert again.message_ids == first.message_ids
        s.miner.enabled[HUB] = True
        await wait_until(lambda: store.counts()[DELIVERED] == 3, 60, what="the re-included batch")
        await asyncio.sleep(1.0)  # any stray delivery of an orphaned id would show now
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await close_relayer(relayer)
    await assert_all_delivered_once(s, store, 3)
    counts = await t(s.process_counts)
    orphaned = {"0x" + m.hex() for m in orphan.message_ids.values()}
    orphaned -= {"0x" + m.hex() for m in again.message_ids.values()}
    assert orphaned == {"0x" + orphan.message_ids[ARB].hex()}
    assert not orphaned & set(counts), "an orphaned message was processed"
    assert not orphaned & {r.id for r in await t(store.list)}, "an orphaned message was queued"
    assert all(counts["0x" + m.hex()] == 1 for m in again.message_ids.values())
    assert await t(s.vault_balance, ARB, "t4") == 8 * USD


async def test_two_relayer_processes_on_one_database_deliver_each_message_once(system, db_url):
    s = system
    store = store_for(db_url)
    procs = [start_relayer_process(s, db_url, key_index=i, log_name=f"relayer-{i}") for i in (0, 1)]
    try:
        n_batches = 4
        await submit_batches(s, n_batches)
        n = expected_messages(n_batches)
        await wait_until(lambda: store.counts()[DELIVERED] == n, 120, what=f"{n} deliveries")
    finally:
        for p in procs:
            stop_process(p)
    assert all(p.returncode == 0 for p in procs), "SIGTERM is a clean shutdown"
    await assert_all_delivered_once(s, store, n)
    # admin: list by status, and a retry of a delivered message is refused in one line
    import json
    import subprocess
    import sys

    from tests.relayer.conftest import ROOT

    ls = await t(subprocess.run, [sys.executable, "-m", "aggregator.cli", "relayer", "list", "--status", "delivered",
                                  "--json", "--db", db_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0, ls.stderr
    listed = json.loads(ls.stdout)
    assert len(listed) == n and all(r["tx_hash"] for r in listed)
    rt = await t(subprocess.run, [sys.executable, "-m", "aggregator.cli", "relayer", "retry", listed[0]["id"],
                                  "--db", db_url], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rt.returncode == 1 and rt.stderr.strip().startswith("aggregator: error:") and "already delivered" in rt.stderr


async def test_two_relayers_with_separate_databases_rely_on_mailbox_idempotence(system, tmp_path):
    s = system
    stores = [store_for(f"sqlite:///{tmp_path / f'r{i}.db'}") for i in (0, 1)]
    relayers = [build_relayer(s.dep, st, key_index=i, config=RelayerConfig(lease_s=10))
                for i, st in enumerate(stores)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relayers]
    n_batches = 3
    n = expected_messages(n_batches)
    try:
        await submit_batches(s, n_batches)
        for st in stores:
            try:
                await wait_until(lambda st=st: st.counts()[DELIVERED] == n, 90, what=f"{n} deliveries in each store")
            except AssertionError:
                for i, x in enumerate(stores):
                    for r in x.list():
                        print(i, r.origin, r.destination, r.nonce, r.status, r.retries, r.reason, r.lease_owner)
                raise
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        for r in relayers:
            await close_relayer(r)
    for st in stores:
        await assert_all_delivered_once(s, st, n)
    assert sum(r.stats.delivered for r in relayers) == n  # the rest found them delivered

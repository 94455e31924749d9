"""The batcher closes a batch for a withdrawal without waiting out the interval, but only
once every chain applied the previous batch (real anvils, the service and the relayer)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from aggregator import devnet, eip712
from aggregator.config import load_settings
from aggregator.db import make_engine
from aggregator.service import Service
from aggregator.traders import deposit, fund_gas
from bridges.anvil import free_port
from tests.settlement.live import service_with_relayer

pytestmark = [pytest.mark.chain, pytest.mark.slow, pytest.mark.timeout(300)]

INTERVAL = 30.0  # far longer than the test waits: a batch closed sooner was closed for a withdrawal


async def _until(pred, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_withdrawal_closes_a_batch_early_only_after_the_previous_one_is_applied_everywhere():
    settings = load_settings()
    settings = settings.with_ports({c.name: free_port() for c in settings.chains})
    work = Path(tempfile.mkdtemp(prefix="omniclear-wclose-"))
    dep, procs = await asyncio.to_thread(devnet.up, settings, work, detach=False)
    engine = make_engine(f"sqlite:///{work / 'test.db'}")
    svc = Service(settings, dep, engine, port=free_port(), oracle=False, journal_dir=work / "journal",
                  tick_interval=0, batch_interval=INTERVAL, poll_interval=0.05, batch_withdrawal_spacing=0.25)
    try:
        async with service_with_relayer(svc, dep, engine):
            hub = dep.hub
            dest = next(c for c in dep.chains if not c.hub)
            traders = [Account.create() for _ in range(2)]
            w3 = devnet.web3_for(hub.rpc_url)
            for a in traders:
                await asyncio.to_thread(fund_gas, w3, a.address)
                await asyncio.to_thread(deposit, w3, hub, a.key.to_0x_hex(), 1_000 * 10**hub.token_decimals)
            seq = svc.sequencer.sequencer
            await _until(lambda: all((seq.account(a.address) or {}).get("total_collateral", 0) >= 1_000 * 10**6
                                     for a in traders), 60, "deposits credited")
            assert seq.last_batch() is None  # the interval has not passed: nothing closed yet

            async def withdraw(http: aiohttp.ClientSession, acct) -> str:
                msg = eip712.Withdrawal(acct.address, dest.token, 100 * 10**dest.token_decimals, dest.chain_id,
                                        acct.address, int(time.time() * 1000), int(time.time()) + 600)
                body = {"withdrawal": eip712.message_to_dict(msg),
                        "signature": "0x" + eip712.sign(bytes(acct.key), svc.sequencer.domain, msg).hex()}
                async with http.post(f"{svc.url}/v1/withdrawals", json=body) as r:
                    out = await r.json()
                    assert r.status == 200, out
                return out["result"]["withdrawal_id"]

            def status(wid: str) -> str:
                return seq.withdrawal(wid)["status"]

            async with aiohttp.ClientSession() as http:
                first = await withdraw(http, traders[0])
                took = await _until(lambda: status(first) != "reserved", 5, "first withdrawal batched")
                assert took < 2.0 and seq.last_batch().number == 1
                # Batch 1 is on its way (not applied everywhere yet): the next withdrawal waits for it.
                second = await withdraw(http, traders[1])
                domains = seq.batch(1).domains
                start = time.monotonic()
                while any(seq.last_settled_batch(c) < 1 for c in domains):
                    assert status(second) == "reserved", "closed while batch 1 was still on its way"
                    assert time.monotonic() - start < 60, "batch 1 applied on every chain"
                    await asyncio.sleep(0.02)
                assert time.monotonic() - start > 0.5  # it did wait (hub confirmations at the least)
                # ... and goes out right after it, long before the interval.
                await _until(lambda: status(second) != "reserved", 5, "second withdrawal batched")
                assert seq.last_batch().number == 2
                await _until(lambda: status(first) == "paid" and status(second) == "paid", 60, "both paid")
    finally:
        for p in procs:
            p.stop()

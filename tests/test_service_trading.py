"""The sequencer inside the main service: deposits in exactly once, only quorum-signed prices."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from eth_account import Account

from aggregator.deposits import CURSOR_NAME, DepositSink
from aggregator.devnet import web3_for
from aggregator.ledger import Ledger
from aggregator.service import Service
from aggregator.trading_node import OracleFeed
from aggregator.traders import deposit, fund_gas
from bridges.anvil import DEV_KEYS, free_port
from bridges.chain import ChainClient
from bridges.events import DEPOSIT_TOPIC
from bridges.watcher import EventWatcher
from oracles.report import Eip712Domain, PriceReport, ReportSigner, feed_id
from oracles.types import MarketStatus
from tests.api.helpers import Clock, make_service


async def _collateral(url: str, address: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/v1/accounts/{address}/margin") as r:
        body = await r.json()
        return int(body.get("total_collateral") or 0)


async def _wait_for(pred, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


@pytest.mark.chain
async def test_deposits_reach_the_sequencer_once_across_restarts_and_a_lost_forward(one_chain, engine, tmp_path):
    settings, dep = one_chain
    c = dep.chains[0]
    w3 = web3_for(c.rpc_url)
    journal = tmp_path / "journal"
    traders = [Account.create() for _ in range(3)]
    for t in traders:
        await asyncio.to_thread(fund_gas, w3, t.address)
    amounts = {t.address: (i + 2) * 10**18 + 7 for i, t in enumerate(traders)}  # 18 decimals: dust rounds down
    internal = {a: v // 10**12 for a, v in amounts.items()}

    def make() -> Service:
        return Service(settings, dep, engine, port=free_port(), oracle=False, journal_dir=journal, tick_interval=0)

    svc = make()
    await svc.start()
    try:
        for t in traders[:2]:
            await asyncio.to_thread(deposit, w3, c, t.key.to_0x_hex(), amounts[t.address])
        w3.provider.make_request("anvil_mine", ["0x4"])
        for t in traders[:2]:
            await _wait_for(lambda a=t.address: _equals(svc.url, a, internal[a]))
    finally:
        await svc.stop()

    # While the service is down, the third deposit is recorded in the ledger but never
    # forwarded: the crash window between the ledger commit and the journal append.
    await asyncio.to_thread(deposit, w3, c, traders[2].key.to_0x_hex(), amounts[traders[2].address])
    w3.provider.make_request("anvil_mine", ["0x4"])
    client = ChainClient(c.name, c.rpc_url, c.chain_id)
    w = EventWatcher(client, DepositSink(Ledger(engine, settings)), name=CURSOR_NAME, address=c.vault,
                     topic0=DEPOSIT_TOPIC, confirmations=3, start_block=c.deploy_block)
    while await w.poll_once():
        pass
    await client.close()

    for _ in range(2):  # the first restart forwards the missing deposit, the second adds nothing
        svc = make()
        await svc.start()
        try:
            for a, v in internal.items():
                await _wait_for(lambda a=a, v=v: _equals(svc.url, a, v))
            seq = svc.sequencer.sequencer
            assert seq.deposited == sum(internal.values())
            assert sorted(svc.sequencer.deposit_keys()) == [(c.chain_id, n) for n in (1, 2, 3)]
        finally:
            await svc.stop()


async def _equals(url: str, address: str, value: int) -> bool:
    got = await _collateral(url, address)
    assert got <= value, f"{address} credited {got} > {value}: a deposit was credited twice"
    return got == value


def _report(price: int, ts: int, status: MarketStatus = MarketStatus.OPEN) -> PriceReport:
    return PriceReport(feed_id("ETH-USD"), price, 10**6, ts, int(status))


async def test_oracle_feed_sequences_only_quorum_signed_reports(tmp_path):
    clock = Clock()
    svc = make_service(tmp_path / "j", clock)
    await svc.start()
    try:
        await svc.tick()
        oracle = ReportSigner(list(DEV_KEYS[1:4]))
        feed = OracleFeed(svc, list(oracle.addresses), threshold=2, feeds={"ETH-USD"})
        domain = Eip712Domain(31337)
        now = clock() // 1000

        def eth_index() -> int | None:  # quote units (1e-6 USDC); reports carry 8 decimals
            return next(m["index"] for m in svc.sequencer.markets() if m["instrument"] == "ETH-PERP")

        await feed.on_report(oracle.sign(_report(3000 * 10**8, now), domain))
        assert eth_index() == 3000 * 10**6 and feed.accepted == 1
        root = svc.state_root()
        last = svc.last_seq

        outsiders = ReportSigner([DEV_KEYS[5], DEV_KEYS[6]])
        await feed.on_report(outsiders.sign(_report(1 * 10**8, now), domain))  # unknown signers
        await feed.on_report(oracle.sign(_report(2 * 10**8, now), domain, count=1))  # below threshold
        await feed.on_report(oracle.sign(_report(4 * 10**8, now + 3600), domain))  # from the future
        assert feed.refused == 3
        assert svc.last_seq == last and svc.state_root() == root and eth_index() == 3000 * 10**6

        # A closed market arrives as a signed report and closes the underlying to new risk.
        await feed.on_report(oracle.sign(_report(3001 * 10**8, now + 1, MarketStatus.CLOSED), domain))
        status = next(m["status"] for m in svc.sequencer.markets() if m["instrument"] == "ETH-PERP")
        assert status == "market-closed"
    finally:
        await svc.stop()

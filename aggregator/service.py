"""The Omniclear service process: vault watchers, the sequencer, the oracle, the HTTP API.

Lifecycle: ``start()`` creates the tables, opens the sequencer's journal and replays it
(``aggregator.sequencer_service``), starts one ``ChainClient`` and one deposit watcher per
chain of the deployment, the deposit forwarder (ledger -> sequencer, exactly once), the
oracle (its verified reports -> sequencer prices) and the API listener (ledger, price
and trading routes, WebSocket); ``stop()`` stops the watchers and the forwarder, the
oracle, the listener, the sequencer (flushing its journal) and the clients, in that
order. ``run_forever`` adds SIGINT/SIGTERM handling.

The EIP-712 domain of every signed trading message is the hub chain's id and the
SettlementHub's address (the hub vault's before the settlement contracts are deployed),
so a signature made for one deployment is worthless on another.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pathlib import Path

from aiohttp import web
from sqlalchemy.engine import Engine

from aggregator import eip712
from aggregator.api.app import make_app
from aggregator.api.trading import TradingOptions, add_trading_routes
from aggregator.api.withdrawals import add_withdrawal_routes
from aggregator.batcher import Batcher
from aggregator.checkpoint import DEFAULT_CHECKPOINT_EVERY
from aggregator.core import commands as C
from aggregator.core.batch import SettlementChain
from aggregator.config import Settings
from aggregator.db import init_db
from aggregator.deposits import CURSOR_NAME, DepositSink
from aggregator.devnet import Deployment
from aggregator.ledger import Ledger
from aggregator.metrics import Metrics
from aggregator.reconcile import Reconciler
from aggregator.sequencer_service import SequencerService, default_sequencer_config, default_sequencer_factory
from aggregator.trading_node import VaultForwarder, OracleFeed
from bridges.chain import ChainClient
from bridges.events import VAULT_TOPICS
from bridges.watcher import EventWatcher

if TYPE_CHECKING:
    from oracles.service import OracleService

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    deployment: Deployment
    engine: Engine
    host: str = "127.0.0.1"
    port: int = 8080
    poll_interval: float = 0.05
    oracle: bool = True
    reconcile_interval: float = 2.0
    journal_dir: Path | None = None  # the sequencer's journal; None: a ledger-only service (no trading)
    tick_interval: float = 1.0
    trading_options: TradingOptions = field(default_factory=TradingOptions)
    batch_interval: float = 2.0  # seconds between settlement batches (0: no batcher)
    batch_max_fills: int = 1_000  # ... or as soon as this many fills wait
    batch_withdrawal_spacing: float | None = 0.25  # ... or this long after the last close once a withdrawal waits
    verify_processes: int = 0  # signature recovery in this many worker processes (0: threads in this process)
    liquidity_account: str | None = None  # batches serve cross-chain flows from its balances before bridging
    liquidity_rebalance_bps: int = 5_000  # refill its chains below this share of their part (0: never)
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY  # sequencer checkpoint every N commands (0: none)
    ledger: Ledger = field(init=False)
    watchers: list[EventWatcher] = field(default_factory=list, init=False)
    _clients: list[ChainClient] = field(default_factory=list, init=False)
    _tasks: list[asyncio.Task] = field(default_factory=list, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    oracle_service: "OracleService | None" = field(default=None, init=False)
    reconciler: Reconciler | None = field(default=None, init=False)
    metrics: Metrics = field(default_factory=Metrics, init=False)
    sequencer: SequencerService | None = field(default=None, init=False)
    forwarder: VaultForwarder | None = field(default=None, init=False)
    oracle_feed: OracleFeed | None = field(default=None, init=False)
    batcher: Batcher | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.engine, self.settings, tokens={c.chain_id: c.token for c in self.deployment.chains})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _make_sequencer(self) -> SequencerService:
        hub = next(c for c in self.deployment.chains if c.hub)
        if self.settings.ledger.decimals != 6:
            raise ValueError("the sequencer counts in 1e-6 USDC: [ledger] decimals must be 6 to trade")
        domain = eip712.Domain(hub.chain_id, hub.settlement_hub or hub.vault)
        chains = tuple(SettlementChain(c.chain_id, c.token, c.token_decimals) for c in self.deployment.chains)
        cfg = default_sequencer_config(hub.chain_id, settlement_chains=chains, liquidity_account=self.liquidity_account,
                                       liquidity_rebalance_bps=self.liquidity_rebalance_bps)
        assert self.journal_dir is not None
        return SequencerService(default_sequencer_factory(cfg), domain, str(self.journal_dir),
                                tick_interval_s=self.tick_interval or None, verify_processes=self.verify_processes,
                                checkpoint_every=self.checkpoint_every)

    async def start(self) -> None:
        if self.oracle:
            import oracles.store  # noqa: F401 - registers the oracle tables, so init_db creates them too
        await asyncio.to_thread(init_db, self.engine)
        if self.journal_dir is not None:
            self.sequencer = self._make_sequencer()
            await self.sequencer.start()
            self.forwarder = VaultForwarder(self.ledger, self.sequencer, [c.chain_id for c in self.deployment.chains])
            self._tasks.append(asyncio.create_task(self.forwarder.run(self._stop), name="vault-forwarder"))
        sink = DepositSink(self.ledger, on_credit=self.forwarder.notify if self.forwarder else None)
        for c in self.deployment.chains:
            conf = self.settings.chain(c.chain_id)
            client = ChainClient(c.name, c.rpc_url, c.chain_id)
            self._clients.append(client)
            if c.hub and self.sequencer is not None and self.batch_interval and self.deployment.settlement:
                st = self.deployment.settlement
                self.batcher = Batcher(self.sequencer, self.ledger, client, st.settlement_hub, st.sequencer_key,
                                       [x.chain_id for x in self.deployment.chains], interval=self.batch_interval,
                                       max_fills=self.batch_max_fills,
                                       withdrawal_spacing=self.batch_withdrawal_spacing)
                self.batcher.attach()
                self._tasks.append(asyncio.create_task(self.batcher.run(self._stop), name="batcher"))
            w = EventWatcher(client, sink, name=CURSOR_NAME, address=c.vault, topic0=VAULT_TOPICS,
                             confirmations=conf.confirmations, start_block=c.deploy_block,
                             poll_interval=self.poll_interval)
            self.watchers.append(w)
            self._tasks.append(asyncio.create_task(w.run(self._stop), name=f"watch-{c.name}"))
        self.reconciler = Reconciler(self.ledger, self.deployment, {c.chain_id: c for c in self._clients},
                                     interval=self.reconcile_interval, on_halt=self._on_halt)
        self._tasks.append(asyncio.create_task(self.reconciler.run(self._stop), name="reconcile"))
        self.metrics.register(self._collect)
        app = make_app(self.ledger, self.metrics, self.reconciler)
        if self.oracle:
            from aggregator.oracle_node import devnet_oracle
            from oracles.api import add_price_routes

            self.oracle_service = devnet_oracle(self.deployment, self.engine)
            add_price_routes(app, self.oracle_service)
            if self.sequencer is not None:
                from aggregator.oracle_node import ORACLE_THRESHOLD

                self.oracle_feed = OracleFeed(self.sequencer, list(self.oracle_service.signer.addresses),
                                              ORACLE_THRESHOLD, set(self.sequencer.sequencer.config.feed_map()))
                self.oracle_feed.attach(self.oracle_service)
            await self.oracle_service.start()
        if self.sequencer is not None:
            add_trading_routes(app, self.sequencer, self.trading_options)
            add_withdrawal_routes(app, self.ledger, self.batcher)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("service listening on %s, watching %d chains", self.url, len(self.watchers))

    async def _on_halt(self, chain_id: int, halted: bool, reason: str) -> None:
        """Reconciliation stopped (or an operator resumed) withdrawals on a chain: journal it."""
        if self.sequencer is not None and self.sequencer.running:
            await self.sequencer.execute(C.SetWithdrawalHalt, chain_id, halted, reason[:200])

    def _collect(self):
        """Metric families of the watchers and the reconciliation (read at scrape time)."""
        names = {c.chain_id: c.name for c in self.deployment.chains}
        yield ("omniclear_watcher_safe_block", "gauge", "Newest block with enough confirmations",
               [({"chain": w.client.name}, w.stats.last_safe_block) for w in self.watchers])
        yield ("omniclear_watcher_events_total", "counter", "Deposit logs read by the watcher",
               [({"chain": w.client.name}, w.stats.logs) for w in self.watchers])
        yield ("omniclear_watcher_reorgs_total", "counter", "Reorgs detected below the cursor",
               [({"chain": w.client.name}, w.stats.reorgs) for w in self.watchers])
        yield ("omniclear_watcher_failing", "gauge", "1 if the last poll failed",
               [({"chain": w.client.name}, int(w.stats.last_error is not None)) for w in self.watchers])
        if self.batcher is not None:
            recs = list(self.batcher.records.values())
            yield ("omniclear_batches_submitted_total", "counter", "Settlement batches committed on the hub",
                   [({}, sum(1 for r in recs if r.tx_hash))])
            yield ("omniclear_batch_failures_total", "counter", "Batch submissions that failed (then caught up)",
                   [({}, self.batcher.failures)])
            net = self.sequencer.sequencer.netting()
            yield ("omniclear_netting_gross", "counter", "Gross cross-chain obligations settled (1e-6 USDC)",
                   [({}, net["gross"])])
            yield ("omniclear_netting_bridged", "counter", "Volume moved through the token bridge (1e-6 USDC)",
                   [({}, net["bridged"])])
        latest = self.reconciler.latest if self.reconciler else {}
        yield ("omniclear_reconcile_ok", "gauge", "1 if vault and ledger agree at the indexed block",
               [({"chain": names[cid]}, int(r.ok)) for cid, r in latest.items()])
        yield ("omniclear_vault_holdings", "gauge", "Vault token holdings (native units) at the indexed block",
               [({"chain": names[cid]}, r.vault_holdings) for cid, r in latest.items()])
        yield ("omniclear_ledger_settled", "gauge", "Ledger settled total (native units)",
               [({"chain": names[cid]}, r.ledger_settled) for cid, r in latest.items()])
        yield ("omniclear_withdrawals_halted", "gauge", "1 if withdrawals are stopped on the chain",
               [({"chain": names[cid]}, int(cid in (self.reconciler.halted if self.reconciler else ())))
                for cid in names])

    async def stop(self) -> None:
        self._stop.set()
        if self.batcher is not None:
            self.batcher.detach()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for t in self._tasks:
            t.cancel()
        if self.oracle_feed is not None:
            self.oracle_feed.detach()
        if self.oracle_service is not None:
            await self.oracle_service.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.sequencer is not None:
            await self.sequencer.stop()
        for c in self._clients:
            await c.close()

    async def run_forever(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        await self._stop.wait()
        await self.stop()

"""The Omniclear service process: vault watchers for every chain, the oracle, the HTTP API.

Lifecycle: ``start()`` creates the tables, one ``ChainClient`` and one deposit watcher
per chain of the deployment, and the API listener; ``stop()`` stops the watchers, the
listener and the clients, in that order. ``run_forever`` adds SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.engine import Engine

from aggregator.api.app import make_app
from aggregator.config import Settings
from aggregator.db import init_db
from aggregator.deposits import CURSOR_NAME, DepositSink
from aggregator.devnet import Deployment
from aggregator.ledger import Ledger
from bridges.chain import ChainClient
from bridges.events import DEPOSIT_TOPIC
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
    ledger: Ledger = field(init=False)
    watchers: list[EventWatcher] = field(default_factory=list, init=False)
    _clients: list[ChainClient] = field(default_factory=list, init=False)
    _tasks: list[asyncio.Task] = field(default_factory=list, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _runner: web.AppRunner | None = field(default=None, init=False)
    oracle_service: "OracleService | None" = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.engine, self.settings)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        await asyncio.to_thread(init_db, self.engine)
        sink = DepositSink(self.ledger)
        for c in self.deployment.chains:
            conf = self.settings.chain(c.chain_id)
            client = ChainClient(c.name, c.rpc_url, c.chain_id)
            self._clients.append(client)
            w = EventWatcher(client, sink, name=CURSOR_NAME, address=c.vault, topic0=DEPOSIT_TOPIC,
                             confirmations=conf.confirmations, start_block=c.deploy_block,
                             poll_interval=self.poll_interval)
            self.watchers.append(w)
            self._tasks.append(asyncio.create_task(w.run(self._stop), name=f"watch-{c.name}"))
        app = make_app(self.ledger)
        if self.oracle:
            from aggregator.oracle_node import devnet_oracle
            from oracles.api import add_price_routes

            self.oracle_service = devnet_oracle(self.deployment, self.engine)
            add_price_routes(app, self.oracle_service)
            await self.oracle_service.start()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        log.info("service listening on %s, watching %d chains", self.url, len(self.watchers))

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        for t in self._tasks:
            t.cancel()
        if self.oracle_service is not None:
            await self.oracle_service.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        for c in self._clients:
            await c.close()

    async def run_forever(self) -> None:
        await self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        await self._stop.wait()
        await self.stop()

"""Fixtures: a sequencer service on a test clock behind a real aiohttp test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer

from aggregator.api.trading import TradingOptions, make_trading_app
from aggregator.sequencer_service import SequencerService
from aggregator.client import OmniclearClient
from tests.api.helpers import Clock, Trader, make_service, seed


@dataclass
class Api:
    client: TestClient
    service: SequencerService
    clock: Clock
    a: Trader
    b: Trader
    poor: Trader  # deposited very little
    nobody: Trader  # never deposited

    def state(self, *traders: Trader) -> tuple:
        """Everything a rejection must leave unchanged."""
        s = self.service
        per = tuple((s.sequencer.account(t.address), s.sequencer.open_orders(t.address)) for t in traders)
        return (s.state_root(), per, s.book.snapshot("ETH-PERP", 100), s.sequencer.book("ETH-PERP", 100)["bids"],
                s.sequencer.book("ETH-PERP", 100)["asks"])


async def start_api(tmp_path, options: TradingOptions | None = None, **kw) -> tuple[TestClient, Api]:
    clock = Clock()
    svc = make_service(tmp_path / "journal", clock, **kw)
    app = make_trading_app(svc, options or TradingOptions(rate=None, ip_rate=None))
    client = TestClient(TestServer(app))
    await client.start_server()
    a, b, poor, nobody = (Trader.make(i) for i in (1, 2, 3, 4))
    await seed(svc, [a, b])
    await svc.submit_deposit(31337, 777, poor.address, 10 * 10**6)  # 10 USDC
    return client, Api(client, svc, clock, a, b, poor, nobody)


@pytest.fixture
async def api(tmp_path) -> AsyncIterator[Api]:
    client, api = await start_api(tmp_path)
    yield api
    await client.close()


def url(api: Api) -> str:
    return str(api.client.server.make_url("")).rstrip("/")


def make(api: Api, t: Trader, **kw) -> OmniclearClient:
    """A client signing as ``t`` on the test clock."""
    return OmniclearClient(url(api), "0x" + t.key.hex(), clock_ms=api.clock, **kw)


@pytest.fixture
async def env(tmp_path) -> AsyncIterator[tuple[Api, OmniclearClient, OmniclearClient]]:
    """The API plus clients of traders A and B (closed afterwards)."""
    client, api = await start_api(tmp_path)
    a, b = make(api, api.a), make(api, api.b)
    yield api, a, b
    await a.close()
    await b.close()
    await client.close()

"""Simulator venues and Chainlink-style on-chain feeds through the conformance suite."""

from __future__ import annotations

from decimal import Decimal

import pytest
from web3 import Web3

from bridges.anvil import DEV_KEYS, free_port, start_anvil
from bridges.contracts import contract, ensure_built, send_tx
from oracles.deploy import deploy_oracle_contracts
from oracles.sources.chainlink import ChainlinkSource
from oracles.sources.simulator import AssetModel, MarketSimulator, SimulatedVenue
from oracles.types import MarketStatus
from tests.oracles.conformance import PriceSourceConformance, SourceHarness
from tests.oracles.helpers import ny


class SimHarness(SourceHarness):
    feeds = ("ETH-USD", "BTC-USD")

    def __init__(self) -> None:
        self.now_ms = 0
        self.prices: dict[str, float] = {"ETH": 1.0, "BTC": 1.0}
        self.source = SimulatedVenue(MarketSimulator(seed=1), "sim-a", {"ETH-USD": "ETH", "BTC-USD": "BTC"},
                                     clock=lambda: self.now_ms)

    async def set_price(self, feed: str, price: Decimal, publish_s: int) -> None:
        # zero volatility and noise: the venue shows exactly `price`, published at the last step
        self.prices[self.source.symbols[feed]] = float(price)
        self.now_ms = publish_s * 1000
        models = {s: AssetModel(s, "crypto", p, noise_bps=0, conf_bps=1) for s, p in self.prices.items()}
        self.source.simulator = MarketSimulator(seed=1, start_ms=self.now_ms - 5000, models=models)

    async def make_unavailable(self) -> None:
        self.source.down = True


class TestSimulatedVenue(PriceSourceConformance):
    @pytest.fixture
    def harness(self) -> SimHarness:
        return SimHarness()

    async def test_fetch_two_feeds_each_own_price(self, harness: SimHarness, publish_s: int) -> None:
        # the simulator publishes every symbol at each step: both feeds share the publish time
        a, b = harness.feeds
        await harness.set_price(a, Decimal("100.5"), publish_s)
        await harness.set_price(b, Decimal("2.25"), publish_s)
        got = {o.feed: o for o in await harness.source.fetch()}
        assert (got[a].price, got[b].price) == (Decimal("100.5"), Decimal("2.25"))


def test_simulator_same_seed_same_path() -> None:
    a, b = MarketSimulator(seed=42, start_ms=0), MarketSimulator(seed=42, start_ms=0)
    path_a = [a.quote("ETH", t * 1000) for t in range(0, 600, 7)]
    path_b = [b.quote("ETH", t * 1000) for t in range(0, 600, 7)]
    assert path_a == path_b
    assert path_a != [MarketSimulator(seed=43).quote("ETH", t * 1000) for t in range(0, 600, 7)]


def test_simulator_random_access_equals_sequential() -> None:
    seq = MarketSimulator(seed=5, start_ms=0)
    for t in range(0, 300):
        seq.quote("BTC", t * 1000)
    assert seq.quote("BTC", 299_000) == MarketSimulator(seed=5, start_ms=0).quote("BTC", 299_000)


def test_simulator_equity_does_not_move_on_weekend() -> None:
    start = ny(2025, 3, 7, 15, 50)  # Friday before the close
    sim = MarketSimulator(seed=3, start_ms=start, step_ms=60_000)
    fri = sim.quote("SPY", ny(2025, 3, 7, 20, 0))
    sat = sim.quote("SPY", ny(2025, 3, 8, 12, 0))
    assert fri is not None and sat is not None
    assert sat[0] == fri[0] and sat[1] == fri[1] <= ny(2025, 3, 7, 20, 0)
    mon = sim.quote("SPY", ny(2025, 3, 10, 9, 35))
    assert mon is not None and mon[1] >= ny(2025, 3, 10, 9, 30)


def test_simulator_nav_daily_step_and_halt_flag() -> None:
    day = 86_400_000
    sim = MarketSimulator(seed=1, start_ms=20_000 * day)
    p0, pub0, h0 = sim.quote("TBILL", 20_000 * day + 5000)
    p1, pub1, _ = sim.quote("TBILL", 20_001 * day + 5000)
    assert p1 > p0 and (pub0, pub1) == (20_000 * day, 20_001 * day) and not h0
    sim.set_halt("TBILL", True, 20_001 * day + 10_000)
    _, pub, halted = sim.quote("TBILL", 20_001 * day + 20_000)
    assert halted and pub == 20_001 * day + 10_000


def test_simulator_venues_differ_slightly_but_deterministically() -> None:
    sim = MarketSimulator(seed=9, start_ms=0)
    a = sim.venue_quote("sim-a", "ETH", 10_000)
    b = sim.venue_quote("sim-b", "ETH", 10_000)
    assert a is not None and b is not None and a[0] != b[0]
    assert abs(a[0] - b[0]) / a[0] < Decimal("0.001")
    assert a == MarketSimulator(seed=9, start_ms=0).venue_quote("sim-a", "ETH", 10_000)


# ------------------------------------------------------------------ Chainlink on anvil


class ChainlinkHarness(SourceHarness):
    feeds = ("ETH-USD", "BTC-USD")
    can_set_nonpositive = False  # OracleFeed refuses answers <= 0 on-chain

    def __init__(self, rpc_url: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        signers = [Web3().eth.account.from_key(k).address for k in DEV_KEYS[1:4]]
        self.addrs = deploy_oracle_contracts(self.w3, DEV_KEYS[0], signers, 2, list(self.feeds))
        self.source = ChainlinkSource(rpc_url, {f: self.addrs[f"feed:{f}"] for f in self.feeds})

    async def seed(self, publish_s: int) -> None:
        for f in self.feeds:
            await self.set_price(f, Decimal(1), publish_s)

    async def set_price(self, feed: str, price: Decimal, publish_s: int) -> None:
        c = contract(self.w3, "OracleFeed", self.addrs[f"feed:{feed}"])
        answer = int(price.scaleb(8))
        send_tx(self.w3, DEV_KEYS[0], c.functions.updateAnswer(answer, publish_s, int(MarketStatus.OPEN))
                .build_transaction({"from": self.w3.eth.account.from_key(DEV_KEYS[0]).address}))

    async def make_unavailable(self) -> None:
        await self.source.close()
        self.source = ChainlinkSource(f"http://127.0.0.1:{free_port()}", self.source.symbols)


@pytest.fixture(scope="module")
def chain_rpc():
    """One anvil for the module's Chainlink tests (each test deploys its own contracts)."""
    ensure_built()
    proc = start_anvil(free_port(), 31337)
    yield proc.rpc_url
    proc.stop()


@pytest.mark.chain
class TestChainlinkSource(PriceSourceConformance):
    PUBLISH_S = 1_700_000_000  # before anvil's wall-clock block time, so not "from the future"

    @pytest.fixture
    async def harness(self, chain_rpc: str):
        h = ChainlinkHarness(chain_rpc)  # fresh contracts per test
        await h.seed(self.PUBLISH_S - 100)
        yield h
        await h.source.close()

    @pytest.fixture
    def publish_s(self) -> int:
        return self.PUBLISH_S

    async def test_feed_without_rounds_left_out(self, chain_rpc: str) -> None:
        h = ChainlinkHarness(chain_rpc)
        await h.set_price("ETH-USD", Decimal("3000"), self.PUBLISH_S)
        got = await h.source.fetch()
        assert [o.feed for o in got] == ["ETH-USD"]
        await h.source.close()

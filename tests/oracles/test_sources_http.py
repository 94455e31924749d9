"""Pyth Hermes and Coinbase adapters against local servers in the real APIs' formats."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from oracles.sources.base import MalformedResponse
from oracles.sources.coinbase import CoinbaseTickerSource
from oracles.sources.pyth import PythHermesSource, parse_latest
from tests.oracles.conformance import PriceSourceConformance, SourceHarness
from tests.oracles.fake_http import FakeCoinbase, FakeHermes

ETH_ID = "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"
BTC_ID = "0xe62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43"


class HermesHarness(SourceHarness):
    feeds = ("ETH-USD", "BTC-USD")

    def __init__(self, server: FakeHermes) -> None:
        self.server = server
        self.ids = {"ETH-USD": ETH_ID, "BTC-USD": BTC_ID}
        self.source = PythHermesSource(server.url, self.ids)
        for f in self.feeds:
            server.set(self.ids[f], Decimal(1), 1)

    async def set_price(self, feed: str, price: Decimal, publish_s: int) -> None:
        self.server.set(self.ids[feed], price, publish_s)

    async def make_unavailable(self) -> None:
        self.server.status = 503

    def malformed_bodies(self) -> list[bytes]:
        return [
            b"<html>not json</html>",
            b'{"binary": {}}',
            b'{"parsed": [{"id": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",'
            b' "price": {"price": 3012.45, "conf": "1", "expo": -8, "publish_time": 1}}]}',
            b'{"parsed": [{"id": "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace",'
            b' "price": {"price": "301245000000", "conf": "1", "expo": -8}}]}',
            b'{"parsed": [{"price": {}}]}',
            b'{"parsed": "nope"}',
        ]

    async def serve_malformed(self, body: bytes) -> None:
        self.server.raw = body


class TestPythHermesSource(PriceSourceConformance):
    @pytest.fixture
    async def harness(self):
        server = await FakeHermes().start()
        h = HermesHarness(server)
        yield h
        await h.source.close()
        await server.stop()

    async def test_request_uses_hermes_ids_query(self, harness: HermesHarness) -> None:
        await harness.source.fetch()
        q = harness.server.requests[-1].query
        assert q.getall("ids[]") == [ETH_ID, BTC_ID] and q["parsed"] == "true"

    async def test_exponent_applied_exactly(self, harness: HermesHarness) -> None:
        harness.server.set(ETH_ID, Decimal("3012.4512345678"), 5, expo=-10)
        got = (await harness.source.fetch(["ETH-USD"]))[0]
        assert got.price == Decimal("3012.4512345678")

    async def test_unknown_id_404_is_malformed(self, harness: HermesHarness) -> None:
        src = PythHermesSource(harness.server.url, {"X": "0x" + "ab" * 32})
        with pytest.raises(MalformedResponse):
            await src.fetch()
        await src.close()


def test_parse_latest_real_hermes_body() -> None:
    body = {
        "binary": {"encoding": "hex", "data": ["504e41550100"]},
        "parsed": [{
            "id": "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43",
            "price": {"price": "6140993501000", "conf": "3287417359", "expo": -8, "publish_time": 1717632000},
            "ema_price": {"price": "6147645000000", "conf": "3170466500", "expo": -8, "publish_time": 1717632000},
            "metadata": {"slot": 85480034, "proof_available_time": 1717632001, "prev_publish_time": 1717631999},
        }],
    }
    (o,) = parse_latest(body, {"BTC-USD": BTC_ID}, "pyth")
    assert o.price == Decimal("61409.93501000") and o.confidence == Decimal("32.87417359")
    assert o.publish_ms == 1717632000_000


class CoinbaseHarness(SourceHarness):
    feeds = ("ETH-USD", "BTC-USD")

    def __init__(self, server: FakeCoinbase) -> None:
        self.server = server
        self.source = CoinbaseTickerSource(server.url, {"ETH-USD": "ETH-USD", "BTC-USD": "BTC-USD"})
        for f in self.feeds:
            server.set(f, Decimal(1), "2025-01-01T00:00:00Z")

    async def set_price(self, feed: str, price: Decimal, publish_s: int) -> None:
        t = datetime.fromtimestamp(publish_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        self.server.set(feed, price, t)

    async def make_unavailable(self) -> None:
        self.server.status = 502

    def malformed_bodies(self) -> list[bytes]:
        return [
            b"not json",
            b'{"price": 3012.45, "bid": "1", "ask": "2", "time": "2025-01-01T00:00:00Z"}',
            b'{"price": "3012.45", "bid": "1", "ask": "2"}',
            b'{"price": "3012.45", "bid": "1", "ask": "2", "time": "yesterday"}',
            b'{"price": "abc", "bid": "1", "ask": "2", "time": "2025-01-01T00:00:00Z"}',
            b'[1, 2, 3]',
        ]

    async def serve_malformed(self, body: bytes) -> None:
        self.server.raw = body


class TestCoinbaseTickerSource(PriceSourceConformance):
    @pytest.fixture
    async def harness(self):
        server = await FakeCoinbase().start()
        h = CoinbaseHarness(server)
        yield h
        await h.source.close()
        await server.stop()

    async def test_confidence_is_half_spread(self, harness: CoinbaseHarness) -> None:
        harness.server.set("ETH-USD", Decimal("3000"), "2025-06-15T14:26:40.123456Z", spread=Decimal("0.10"))
        got = (await harness.source.fetch(["ETH-USD"]))[0]
        assert got.confidence == Decimal("0.05")
        assert got.publish_ms == 1749997600123

    async def test_nan_price_passed_through_for_rules(self, harness: CoinbaseHarness) -> None:
        harness.server.raw = b'{"price": "NaN", "bid": "1", "ask": "2", "time": "2025-01-01T00:00:00Z"}'
        got = await harness.source.fetch(["ETH-USD"])
        assert got[0].price.is_nan()

"""The conformance suite every price-source adapter's test subclasses (hummingbot-style).

A subclass provides a ``harness`` fixture yielding a ``SourceHarness``: the adapter under
test plus the means to make its upstream (a local HTTP server in the real API's format,
an anvil chain, the simulator) show a given price, fail, or answer garbage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal

import pytest

from oracles.sources.base import MalformedResponse, PriceSource, SourceError, SourceUnavailable
from oracles.types import Observation


class SourceHarness(ABC):
    source: PriceSource
    feeds: tuple[str, ...]  # at least two feeds the source serves
    can_set_nonpositive: bool = True

    @abstractmethod
    async def set_price(self, feed: str, price: Decimal, publish_s: int) -> None:
        """Make the upstream show ``price`` published at ``publish_s`` for ``feed``."""

    @abstractmethod
    async def make_unavailable(self) -> None:
        """Make the upstream unreachable or failing transiently."""

    def malformed_bodies(self) -> list[bytes]:
        """Bodies in a broken format (empty if the source has no body to break)."""
        return []

    async def serve_malformed(self, body: bytes) -> None:
        raise NotImplementedError


def by_feed(obs: list[Observation]) -> dict[str, Observation]:
    return {o.feed: o for o in obs}


class PriceSourceConformance:
    """Subclass as ``TestXxxSource(PriceSourceConformance)`` and provide ``harness``."""

    PRICE = Decimal("3012.45")
    PUBLISH_S = 1_750_000_000

    @pytest.fixture
    def publish_s(self) -> int:
        return self.PUBLISH_S

    async def test_fetch_returns_exact_price_and_publish_time(self, harness: SourceHarness, publish_s: int) -> None:
        feed = harness.feeds[0]
        await harness.set_price(feed, self.PRICE, publish_s)
        got = by_feed(await harness.source.fetch())[feed]
        assert got.price == self.PRICE and isinstance(got.price, Decimal)
        assert got.publish_ms == publish_s * 1000 and isinstance(got.publish_ms, int)
        assert got.source == harness.source.name and got.confidence >= 0 and got.halted is False

    async def test_fetch_two_feeds_each_own_price(self, harness: SourceHarness, publish_s: int) -> None:
        a, b = harness.feeds[:2]
        await harness.set_price(a, Decimal("100.5"), publish_s)
        await harness.set_price(b, Decimal("2.25"), publish_s - 1)
        got = by_feed(await harness.source.fetch())
        assert (got[a].price, got[b].price) == (Decimal("100.5"), Decimal("2.25"))
        assert got[b].publish_ms == (publish_s - 1) * 1000

    async def test_fetch_subset_returns_only_requested(self, harness: SourceHarness, publish_s: int) -> None:
        for f in harness.feeds[:2]:
            await harness.set_price(f, self.PRICE, publish_s)
        got = await harness.source.fetch([harness.feeds[1]])
        assert [o.feed for o in got] == [harness.feeds[1]]

    async def test_unknown_feed_ignored(self, harness: SourceHarness) -> None:
        assert await harness.source.fetch(["NOT-A-FEED"]) == []

    async def test_nonpositive_price_passed_to_rules_not_judged(self, harness: SourceHarness, publish_s: int) -> None:
        if not harness.can_set_nonpositive:
            pytest.skip("upstream refuses non-positive prices itself")
        feed = harness.feeds[0]
        await harness.set_price(feed, Decimal(0), publish_s)
        assert by_feed(await harness.source.fetch())[feed].price == 0

    async def test_unavailable_raises_source_unavailable(self, harness: SourceHarness) -> None:
        await harness.make_unavailable()
        with pytest.raises(SourceUnavailable):
            await harness.source.fetch()

    async def test_malformed_bodies_raise_malformed_response(self, harness: SourceHarness) -> None:
        bodies = harness.malformed_bodies()
        if not bodies:
            pytest.skip("no response body to break")
        for body in bodies:
            await harness.serve_malformed(body)
            with pytest.raises(MalformedResponse):
                await harness.source.fetch()

    async def test_errors_share_one_root(self, harness: SourceHarness) -> None:
        assert issubclass(SourceUnavailable, SourceError) and issubclass(MalformedResponse, SourceError)

    async def test_close_idempotent(self, harness: SourceHarness) -> None:
        await harness.source.close()
        await harness.source.close()

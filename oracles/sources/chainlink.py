"""Chainlink-style on-chain feeds: ``latestRoundData()`` of AggregatorV3 contracts via web3.

A feed whose call fails (no round yet, reverted) is left out of that poll's result;
the poll fails as a whole only when every feed fails.

On the devnet these are ``OracleFeed`` contracts (updated by the oracle process). The
answer is scaled by the feed's own ``decimals()`` (read once per feed); ``updatedAt`` is
the publish time. A round whose ``answeredInRound < roundId`` is reported as stale by
passing its (old) ``updatedAt`` through unchanged; a reverted call or an RPC failure is
``SourceUnavailable`` for that poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal

from web3 import AsyncHTTPProvider, AsyncWeb3

from oracles.sources.base import MalformedResponse, PriceSource, SourceUnavailable
from oracles.types import Observation

log = logging.getLogger(__name__)

AGGREGATOR_V3_ABI = [
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "latestRoundData", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
                 {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
                 {"name": "answeredInRound", "type": "uint80"}]},
]


class ChainlinkSource(PriceSource):
    """Reads feed contracts; ``symbols`` maps feed name -> contract address."""

    def __init__(self, rpc_url: str, symbols: Mapping[str, str], name: str = "chainlink",
                 timeout_s: float = 2.0) -> None:
        super().__init__(name, symbols)
        self._w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        self._decimals: dict[str, int] = {}
        self._contracts = {
            feed: self._w3.eth.contract(address=AsyncWeb3.to_checksum_address(addr), abi=AGGREGATOR_V3_ABI)
            for feed, addr in self.symbols.items()
        }

    async def _one(self, feed: str) -> Observation:
        c = self._contracts[feed]
        try:
            if feed not in self._decimals:
                self._decimals[feed] = int(await c.functions.decimals().call())
            _round, answer, _started, updated, _answered = await c.functions.latestRoundData().call()
        except Exception as e:  # web3 raises many unrelated types: translate them all here
            raise SourceUnavailable(f"{feed}: latestRoundData failed: {type(e).__name__}: {e}") from e
        if not isinstance(answer, int) or not isinstance(updated, int):
            raise MalformedResponse(f"{feed}: latestRoundData returned {answer!r}, {updated!r}")
        return Observation(
            feed=feed, source=self.name, price=Decimal(answer).scaleb(-self._decimals[feed]),
            publish_ms=updated * 1000,
        )

    async def fetch(self, feeds: Sequence[str] | None = None) -> list[Observation]:
        """Read every wanted feed; feeds that fail are logged and left out, and if all of
        them fail the first error is raised."""
        wanted = list(self._wanted(feeds))
        results = await asyncio.gather(*(self._one(f) for f in wanted), return_exceptions=True)
        out = [r for r in results if isinstance(r, Observation)]
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and not out:
            raise errors[0]
        for e in errors:
            log.warning("%s: %s", self.name, e)
        return out

    async def close(self) -> None:
        provider = self._w3.provider
        disconnect = getattr(provider, "disconnect", None)
        if disconnect is not None:
            await disconnect()

"""The interface every price source implements, and its error tree.

A source maps feed names to its own symbols and returns ``Observation``s: exact
``Decimal`` prices as the source gave them, publish times in UTC milliseconds. A source
does not judge prices (zero, negative, stale and out-of-bounds values are passed on, and
the feed rules reject them with a reason); it only refuses what it cannot parse.

Errors (ccxt-style split): ``SourceUnavailable`` is transient (network, timeout, 5xx: the
next poll may work); ``MalformedResponse`` means the body is not in the source's format
(a bug or an incident on its side: retrying now will not help). Both derive from
``SourceError``; adapters translate library errors at the boundary with ``raise ... from``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

from oracles.types import Observation, OracleError

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Return the current UTC time in milliseconds (the only clock read of the adapters)."""
    return time.time_ns() // 1_000_000


class SourceError(OracleError):
    """A source could not deliver observations."""


class SourceUnavailable(SourceError):
    """Transient: the source did not answer (network, timeout, HTTP 5xx/429)."""


class MalformedResponse(SourceError):
    """The source answered with a body that is not in its documented format."""


class PriceSource(ABC):
    """A source of observations for a set of feeds.

    ``symbols`` maps each feed this source serves to the source's own identifier
    (a Pyth price id, an exchange product, a feed contract, a simulator symbol).
    """

    def __init__(self, name: str, symbols: Mapping[str, str]) -> None:
        self.name = name
        self.symbols = dict(symbols)

    @abstractmethod
    async def fetch(self, feeds: Sequence[str] | None = None) -> list[Observation]:
        """Return the latest observation of each requested feed this source has.

        Feeds the source does not serve are ignored; a feed the source serves but did
        not return is simply missing from the result. Raise ``SourceError`` on failure.
        """

    async def close(self) -> None:
        """Release connections. Idempotent."""

    def _wanted(self, feeds: Sequence[str] | None) -> dict[str, str]:
        if feeds is None:
            return dict(self.symbols)
        return {f: self.symbols[f] for f in feeds if f in self.symbols}

    async def __aenter__(self) -> PriceSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

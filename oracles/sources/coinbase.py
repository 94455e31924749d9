"""Coinbase Exchange ticker, ``GET /products/{product_id}/ticker`` (one call per product).

The body this adapter reads (Coinbase Exchange REST API)::

    {"ask": "3012.46", "bid": "3012.44", "volume": "123.4", "trade_id": 74,
     "price": "3012.45", "size": "0.01", "time": "2025-06-15T14:26:40.123456Z"}

``price`` is the last trade, ``time`` its time (ISO 8601, UTC). The confidence is half
the bid-ask spread. Prices are decimal strings parsed exactly; anything else (numbers,
missing fields, unparsable time) raises ``MalformedResponse``. Chosen over Binance's
``/api/v3/ticker/price`` because Coinbase's ticker carries a trade time, so staleness is
the exchange's, not the time we happened to ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp

from oracles.sources.base import MalformedResponse, PriceSource
from oracles.sources.http import HttpJson
from oracles.types import Observation


def _dec(body: dict[str, Any], key: str, product: str) -> Decimal:
    v = body.get(key)
    if not isinstance(v, str):
        raise MalformedResponse(f"{product}: {key!r} must be a decimal string, got {v!r}")
    try:
        return Decimal(v)
    except InvalidOperation as e:
        raise MalformedResponse(f"{product}: {key!r} is not a decimal: {v!r}") from e


def parse_ticker(body: Any, feed: str, product: str, source: str) -> Observation:
    """Turn one Coinbase ticker body into an observation."""
    if not isinstance(body, dict):
        raise MalformedResponse(f"{product}: ticker body is not an object")
    price = _dec(body, "price", product)
    bid, ask = _dec(body, "bid", product), _dec(body, "ask", product)
    t = body.get("time")
    if not isinstance(t, str):
        raise MalformedResponse(f"{product}: 'time' missing")
    try:
        when = datetime.fromisoformat(t)
    except ValueError as e:
        raise MalformedResponse(f"{product}: bad time {t!r}") from e
    if when.tzinfo is None:
        raise MalformedResponse(f"{product}: time without timezone {t!r}")
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    publish_ms = (when - epoch) // timedelta(milliseconds=1)
    conf = abs(ask - bid) / 2 if bid.is_finite() and ask.is_finite() else Decimal("NaN")
    return Observation(feed=feed, source=source, price=price, publish_ms=publish_ms, confidence=conf)


class CoinbaseTickerSource(PriceSource):
    """Last trades from Coinbase Exchange (e.g. https://api.exchange.coinbase.com)."""

    def __init__(self, base_url: str, symbols: Mapping[str, str], name: str = "coinbase",
                 timeout_s: float = 2.0, session: aiohttp.ClientSession | None = None) -> None:
        super().__init__(name, symbols)
        self._http = HttpJson(base_url, timeout_s, session, headers={"User-Agent": "omniclear-oracle"})

    async def _one(self, feed: str, product: str) -> Observation:
        body = await self._http.get(f"/products/{product}/ticker")
        return parse_ticker(body, feed, product, self.name)

    async def fetch(self, feeds: Sequence[str] | None = None) -> list[Observation]:
        wanted = self._wanted(feeds)
        return list(await asyncio.gather(*(self._one(f, p) for f, p in wanted.items())))

    async def close(self) -> None:
        await self._http.close()

"""Pyth Hermes price service, ``GET /v2/updates/price/latest?ids[]=<id>&parsed=true``.

The body this adapter reads (Hermes v2, ``parsed`` part; ``binary`` is ignored)::

    {"binary": {"encoding": "hex", "data": ["..."]},
     "parsed": [{"id": "ff61...0ace",
                 "price": {"price": "301245000000", "conf": "150000000", "expo": -8,
                           "publish_time": 1750000000},
                 "ema_price": {...},
                 "metadata": {"slot": 1, "proof_available_time": 1750000001,
                              "prev_publish_time": 1749999999}}]}

``price`` and ``conf`` are integer strings scaled by ``10^expo``; ``publish_time`` is
seconds. Ids are matched without their ``0x`` prefix, case-insensitively. A body that
does not follow this shape raises ``MalformedResponse`` as a whole: no partial trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import aiohttp

from oracles.sources.base import MalformedResponse, PriceSource
from oracles.sources.http import HttpJson
from oracles.types import Observation

PATH = "/v2/updates/price/latest"


def _norm(pid: str) -> str:
    return pid.lower().removeprefix("0x")


def _int_field(d: Any, key: str, where: str) -> int:
    if not isinstance(d, dict) or key not in d:
        raise MalformedResponse(f"{where}: missing {key!r}")
    v = d[key]
    if isinstance(v, bool):
        raise MalformedResponse(f"{where}.{key}: not an integer: {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.lstrip("-").isdigit():
        return int(v)
    raise MalformedResponse(f"{where}.{key}: not an integer: {v!r}")


def parse_latest(body: Any, wanted: Mapping[str, str], source: str) -> list[Observation]:
    """Turn a Hermes ``/v2/updates/price/latest`` body into observations of ``wanted`` feeds."""
    if not isinstance(body, dict) or not isinstance(body.get("parsed"), list):
        raise MalformedResponse("Hermes body has no 'parsed' list")
    by_id = {_norm(pid): feed for feed, pid in wanted.items()}
    out: list[Observation] = []
    for i, item in enumerate(body["parsed"]):
        where = f"parsed[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise MalformedResponse(f"{where}: missing 'id'")
        feed = by_id.get(_norm(item["id"]))
        if feed is None:
            continue
        p = item.get("price")
        price = _int_field(p, "price", where + ".price")
        conf = _int_field(p, "conf", where + ".price")
        expo = _int_field(p, "expo", where + ".price")
        publish = _int_field(p, "publish_time", where + ".price")
        if not -64 <= expo <= 64:
            raise MalformedResponse(f"{where}.price.expo out of range: {expo}")
        out.append(Observation(
            feed=feed, source=source, price=Decimal(price).scaleb(expo),
            publish_ms=publish * 1000, confidence=Decimal(conf).scaleb(expo),
        ))
    return out


class PythHermesSource(PriceSource):
    """Pyth prices from a Hermes endpoint (e.g. https://hermes.pyth.network)."""

    def __init__(self, base_url: str, symbols: Mapping[str, str], name: str = "pyth",
                 timeout_s: float = 2.0, session: aiohttp.ClientSession | None = None) -> None:
        super().__init__(name, symbols)
        self._http = HttpJson(base_url, timeout_s, session)

    async def fetch(self, feeds: Sequence[str] | None = None) -> list[Observation]:
        wanted = self._wanted(feeds)
        if not wanted:
            return []
        params = [("ids[]", pid) for pid in wanted.values()] + [("parsed", "true")]
        body = await self._http.get(PATH, params)
        return parse_latest(body, wanted, self.name)

    async def close(self) -> None:
        await self._http.close()

"""Shared HTTP plumbing for the HTTP sources: one ``aiohttp.ClientSession`` per source,
timeouts, and the translation of aiohttp errors into the ``SourceError`` tree."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp

from oracles.sources.base import MalformedResponse, SourceUnavailable


class HttpJson:
    """GET JSON from one base URL with a total timeout; errors become ``SourceError``s."""

    def __init__(self, base_url: str, timeout_s: float = 2.0, session: aiohttp.ClientSession | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session = session
        self._owns_session = session is None
        self._headers = headers or {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
            self._owns_session = True
        return self._session

    async def get(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        url = self.base_url + path
        try:
            async with self._client().get(url, params=params, timeout=self._timeout) as resp:
                body = await resp.read()
                if resp.status == 429 or resp.status >= 500:
                    raise SourceUnavailable(f"GET {path}: HTTP {resp.status}")
                if resp.status != 200:
                    raise MalformedResponse(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise SourceUnavailable(f"GET {path}: {type(e).__name__}: {e}") from e
        try:
            return json.loads(body, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as e:
            raise MalformedResponse(f"GET {path}: body is not JSON: {body[:80]!r}") from e

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()

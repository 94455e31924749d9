"""The demo's trading phase: a market maker quotes, traders from every chain take.

Everything goes through the public API with EIP-712 signatures, as any client would:
the domain comes from ``GET /v1/eip712``, marks from ``GET /v1/markets``, quotes go in
as post-only orders through ``POST /v1/orders/batch`` (each round the maker first re-arms
its dead man's switch, ``POST /v1/orders/cancel-all-after``, as a real quoting process
does: if the demo died mid-run its quotes would go ``MAKER_SWITCH_MS`` later), takers send IOC limit orders at the
maker's price (perpetuals and options, buys and sells, so shorts are opened too), and the
figures come back from ``/v1/fills`` and ``/v1/accounts/{a}/margin``.

All prices and sizes are integers on the instrument's tick and lot (quote units of 1e-6
USDC, size units of the instrument); notional is ``price * size / 10**size_decimals``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from aggregator import eip712

BUY, SELL = 1, 2
LIMIT = 1
GTC, IOC, POST_ONLY = 1, 2, 4
STP_CANCEL_TAKING = 2


class TradingError(RuntimeError):
    """The API refused something the scenario needs (the message says what)."""


@dataclass
class Market:
    name: str
    kind: str
    underlying: str
    tick: int
    lot: int
    min_size: int
    size_decimals: int
    mark: int


@dataclass
class TradingFigures:
    switch_deadline_ms: int | None = None  # the maker's dead man's switch after the last round
    orders_sent: int = 0
    orders_accepted: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    markets: list[str] = field(default_factory=list)
    size_decimals: dict[str, int] = field(default_factory=dict)
    ack_ms: list[float] = field(default_factory=list)


MAKER_SWITCH_MS = 120_000  # the maker's quotes go two minutes after its last re-arm


class Signer:
    """One key, a nonce counter that never repeats within a run, and the API's domain."""

    _nonces = itertools.count(int(time.time() * 1_000_000))

    def __init__(self, key: bytes, domain: eip712.Domain) -> None:
        self.key = key
        self.domain = domain
        from eth_account import Account

        self.address = Account.from_key(key).address

    def order(self, m: Market, side: int, price: int, size: int, tif: int) -> dict[str, Any]:
        msg = eip712.Order(self.address, m.name, side, LIMIT, tif, STP_CANCEL_TAKING, False, price, size, 0,
                           next(self._nonces), int(time.time()) + 600)
        return {"order": eip712.message_to_dict(msg), "signature": "0x" + eip712.sign(self.key, self.domain, msg).hex()}

    def cancel_after(self, timeout_ms: int) -> dict[str, Any]:
        msg = eip712.CancelAllAfter(self.address, timeout_ms, next(self._nonces), int(time.time()) + 600)
        return {"cancelAllAfter": eip712.message_to_dict(msg),
                "signature": "0x" + eip712.sign(self.key, self.domain, msg).hex()}

    def cancel_all(self) -> dict[str, Any]:
        msg = eip712.CancelAll(self.address, "", next(self._nonces), int(time.time()) + 600)
        return {"cancelAll": eip712.message_to_dict(msg),
                "signature": "0x" + eip712.sign(self.key, self.domain, msg).hex()}


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as r:
        body = await r.json()
        if r.status != 200:
            raise TradingError(f"GET {url}: {r.status} {body}")
        return body


async def _post(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(url, json=payload) as r:
        return r.status, await r.json()


def _round_to(value: float, tick: int, up: bool) -> int:
    """Round a display price to the tick (this is quoting, not the ledger)."""
    q = int(value // tick) * tick
    if up and q < value:
        q += tick
    return max(q, tick)


async def domain_of(session: aiohttp.ClientSession, url: str) -> eip712.Domain:
    d = (await _get(session, f"{url}/v1/eip712"))["domain"]
    return eip712.Domain(int(d["chainId"]), d["verifyingContract"])


async def pick_markets(session: aiohttp.ClientSession, url: str, timeout: float = 60.0) -> list[Market]:
    """Wait for marks, then return the perps with an open market and four near-the-money options."""
    deadline = time.monotonic() + timeout
    while True:
        rows = (await _get(session, f"{url}/v1/markets"))["markets"]
        marked = {r["instrument"]: r for r in rows if r.get("mark") and r.get("status", "ok") == "ok"}
        if "ETH-PERP" in marked and "BTC-PERP" in marked:
            break
        if time.monotonic() > deadline:
            raise TradingError("no ETH/BTC marks from the oracle within the timeout")
        await asyncio.sleep(0.25)

    def mk(r: dict[str, Any]) -> Market:
        return Market(r["instrument"], r["kind"], r["underlying"], int(r["tick_size"]), int(r["lot_size"]),
                      int(r["min_size"]), int(r["size_decimals"]), int(r["mark"]))

    out = [mk(r) for r in marked.values() if r["kind"] == "perpetual"]
    now_ms = time.time() * 1000
    for und in ("ETH", "BTC"):
        opts = [r for r in marked.values() if r["kind"] == "option" and r["underlying"] == und
                and int(r["expiry_ms"]) > now_ms + 86_400_000]
        if not opts:
            continue
        expiry = min(int(r["expiry_ms"]) for r in opts)
        index = int(marked[f"{und}-PERP"]["mark"])
        same = [r for r in opts if int(r["expiry_ms"]) == expiry]
        for kind in ("C", "P"):
            cands = [r for r in same if r["option_type"] == kind and int(r["mark"]) > int(r["tick_size"])]
            if cands:
                best = min(cands, key=lambda r: abs(int(r["strike"]) * 10**6 - index))
                out.append(mk(best))
    return sorted(out, key=lambda m: m.name)


def quotes(maker: Signer, m: Market, rng: random.Random, levels: int = 3) -> list[dict[str, Any]]:
    """Post-only bids and asks around the mark (wider for options)."""
    step = 0.0015 if m.kind == "perpetual" else 0.02
    base = max(m.min_size, m.lot)
    out = []
    for i in range(1, levels + 1):
        size = base * rng.randint(20, 60) // m.lot * m.lot
        bid = _round_to(m.mark * (1 - step * i), m.tick, up=False)
        ask = _round_to(m.mark * (1 + step * i), m.tick, up=True)
        if bid < ask:
            out.append(maker.order(m, BUY, bid, size, POST_ONLY))
            out.append(maker.order(m, SELL, ask, size, POST_ONLY))
    return out


async def run_trading(url: str, maker_key: bytes, trader_keys: list[bytes], rng: random.Random,
                      rounds: int = 4, orders_per_trader: int = 3) -> TradingFigures:
    """Quote, take, requote for ``rounds``; return what was sent and what was accepted."""
    figs = TradingFigures()
    async with aiohttp.ClientSession() as session:
        domain = await domain_of(session, url)
        markets = await pick_markets(session, url)
        figs.markets = [m.name for m in markets]
        figs.size_decimals = {m.name: m.size_decimals for m in markets}
        maker = Signer(maker_key, domain)
        takers = [Signer(k, domain) for k in trader_keys]

        async def send_batch(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            results: list[dict[str, Any]] = []
            for i in range(0, len(items), 50):
                t0 = time.perf_counter()
                status, body = await _post(session, f"{url}/v1/orders/batch", {"orders": items[i:i + 50]})
                figs.ack_ms.append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    raise TradingError(f"batch refused: {status} {body}")
                results.extend(body["results"])
            figs.orders_sent += len(items)
            for res in results:
                if res.get("accepted"):
                    figs.orders_accepted += 1
                else:
                    code = (res.get("error") or {}).get("code") or res.get("code") or "unknown"
                    figs.rejects[code] = figs.rejects.get(code, 0) + 1
            return results

        for _ in range(rounds):
            rows = {r["instrument"]: r for r in (await _get(session, f"{url}/v1/markets"))["markets"]}
            for m in markets:
                if rows.get(m.name, {}).get("mark"):
                    m.mark = int(rows[m.name]["mark"])
            status, armed = await _post(session, f"{url}/v1/orders/cancel-all-after", maker.cancel_after(MAKER_SWITCH_MS))
            if status != 200:
                raise TradingError(f"dead man's switch refused: {status} {armed}")
            figs.switch_deadline_ms = armed["result"]["deadline_ms"]
            await _post(session, f"{url}/v1/orders/cancel-all", maker.cancel_all())
            await send_batch([q for m in markets for q in quotes(maker, m, rng)])
            books = {m.name: await _get(session, f"{url}/v1/markets/{m.name}/book?depth=1") for m in markets}
            taking: list[dict[str, Any]] = []
            for t in takers:
                for _ in range(orders_per_trader):
                    m = rng.choice(markets)
                    side = rng.choice((BUY, SELL))
                    level = books[m.name]["asks" if side == BUY else "bids"]
                    if not level:
                        continue
                    price = int(level[0][0])
                    size = max(m.min_size, m.lot * rng.randint(1, 8) * (10 if m.kind == "perpetual" else 1))
                    taking.append(t.order(m, side, price, size // m.lot * m.lot, IOC))
            await send_batch(taking)
    return figs


async def account_rows(session: aiohttp.ClientSession, url: str, addresses: list[str]) -> list[dict[str, Any]]:
    """Per account: collateral per chain, positions, margin, trades and volume (quote units)."""
    rows = []
    for a in addresses:
        margin = await _get(session, f"{url}/v1/accounts/{a}/margin")
        fills = (await _get(session, f"{url}/v1/fills?account={a}&limit=1000"))["fills"]
        rows.append({"address": a, "margin": margin, "fills": fills})
    return rows

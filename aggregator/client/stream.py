"""The client's WebSocket: local order books kept by seq, trade and private streams.

One connection per client (``client.session().ws_connect``), opened by the first
``watch_*`` call; a reader task dispatches every frame. Requests carry an ``id`` and are
answered by id (``subscribed``, ``challenge``, ``authenticated`` or ``error``).

Books: the ``snapshot`` after ``subscribe`` sets the local book and its ``seq``. A delta
with ``seq == last + 1`` is applied; ``seq <= last`` is already in the book and dropped;
a larger ``seq`` is a gap: deltas are buffered, the REST snapshot
(``GET /v1/markets/{id}/book``, same seq counter) is loaded, buffered deltas up to its
seq dropped and the rest applied in order. If a gap remains, it fetches again (three
tries), then resubscribes for a fresh WebSocket snapshot. ``resyncs`` counts them.

``watch_*`` return what the caller has not seen yet: a book whose version is newer
than the one last returned, or the trades / order updates queued since the previous
call, waiting until there is one. If the connection drops, waiting calls raise
``ExchangeNotAvailable``; the next call reconnects and resubscribes.

Private channels (``orders``, ``fills``) log in first: ``challenge``, then ``auth`` with
the account key's EIP-191 ``personal_sign`` of the challenge text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiohttp
from eth_account.messages import encode_defunct

from aggregator.client import parse
from aggregator.client.errors import ExchangeNotAvailable, NetworkError, RequestTimeout, error_for
from aggregator.client.units import Market, iso8601

if TYPE_CHECKING:
    from aggregator.client.client import OmniclearClient

__all__ = ["Stream", "LocalBook"]

log = logging.getLogger(__name__)
RESYNC_DEPTH = 500


@dataclass
class LocalBook:
    """One instrument's book as integer levels, with the seq of the last change applied."""

    seq: int | None = None
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    version: int = 0
    buffer: list[dict[str, Any]] | None = None  # deltas held while resyncing
    resyncs: int = 0

    def load(self, seq: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        """Replace the book by a snapshot."""
        self.seq = seq
        self.bids = {int(p): int(s) for p, s in bids}
        self.asks = {int(p): int(s) for p, s in asks}

    def apply(self, d: dict[str, Any]) -> None:
        """Apply one delta (size 0 removes a level)."""
        for side, levels in ((self.bids, d.get("bids") or ()), (self.asks, d.get("asks") or ())):
            for p, s in levels:
                if int(s):
                    side[int(p)] = int(s)
                else:
                    side.pop(int(p), None)
        self.seq = int(d["seq"])

    def drain(self) -> bool:
        """Apply buffered deltas following ``seq``; return True if none is missing any more."""
        buf = sorted((d for d in self.buffer or () if int(d["seq"]) > (self.seq or 0)), key=lambda d: int(d["seq"]))
        while buf and int(buf[0]["seq"]) == (self.seq or 0) + 1:
            self.apply(buf.pop(0))
        self.buffer = buf
        return not buf

    def ccxt(self, m: Market, limit: int | None) -> dict[str, Any]:
        """Return the ccxt order book (best first)."""
        bids = sorted(self.bids.items(), key=lambda x: -x[0])
        asks = sorted(self.asks.items())
        return {"symbol": m.symbol, "bids": parse.book_side(m, bids, limit), "asks": parse.book_side(m, asks, limit),
                "timestamp": None, "datetime": None, "nonce": self.seq}


class _Queue:
    """Items not yet returned to the caller, and an event set when one arrives."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.event = asyncio.Event()

    def push(self, items: list[dict[str, Any]]) -> None:
        if items:
            self.items.extend(items)
            self.event.set()

    def take(self, symbol: str | None, limit: int | None) -> list[dict[str, Any]]:
        mine = [x for x in self.items if symbol is None or x["symbol"] == symbol]
        self.items = [x for x in self.items if not (symbol is None or x["symbol"] == symbol)]
        if not self.items:
            self.event.clear()
        return mine[-limit:] if limit else mine


class Stream:
    """The WebSocket of one ``OmniclearClient``."""

    def __init__(self, client: OmniclearClient, request_timeout_s: float = 10.0) -> None:
        self.client = client
        self.request_timeout_s = request_timeout_s
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._lost: asyncio.Event = asyncio.Event()
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self.books: dict[str, LocalBook] = {}
        self._book_events: dict[str, asyncio.Event] = {}
        self._seen: dict[str, int] = {}
        self._trade_subs: set[str] = set()
        self._trades = _Queue()
        self._tickers: dict[str, tuple[int, dict[str, Any]]] = {}  # instrument -> (version, last ticker)
        self._ticker_events: dict[str, asyncio.Event] = {}
        self._ticker_seen: dict[str, int] = {}
        self._private: set[str] = set()
        self._authed = False
        self._orders = _Queue()
        self._fills = _Queue()
        self._order_cache: dict[int, dict[str, Any]] = {}

    # --------------------------------------------------------------- connection

    async def _connect(self) -> None:
        async with self._lock:
            if self._ws is not None and not self._ws.closed:
                return
            url = self.client.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/ws"
            try:
                self._ws = await self.client.session().ws_connect(url, heartbeat=30.0)
            except TimeoutError as e:
                raise RequestTimeout(f"WebSocket connect to {url} timed out") from e
            except aiohttp.ClientError as e:
                raise ExchangeNotAvailable(f"WebSocket connect to {url}: {e}") from e
            self._lost = asyncio.Event()
            self._authed = False
            self._reader = asyncio.get_running_loop().create_task(self._read_loop(self._ws), name="omniclear-ws")
            books, trades, private = list(self.books), set(self._trade_subs), set(self._private)
            tickers = list(self._tickers)
            self.books.clear()
            self._trade_subs.clear()
            self._private.clear()
        for inst in books:  # resubscribe after a reconnect
            await self._subscribe_book(inst)
        for inst in trades:
            await self._subscribe_trades(inst)
        for inst in tickers:
            await self._subscribe_ticker(inst)
        for ch in private:
            await self._subscribe_private(ch)

    async def close(self) -> None:
        """Close the connection and stop the reader."""
        for t in list(self._tasks):
            t.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._ws = None

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        log.warning("not JSON from the WebSocket: %r", msg.data[:120])
                        continue
                    self.on_message(data)
                elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                    break
        finally:
            self._lost.set()
            err = ExchangeNotAvailable("WebSocket closed")
            for f in self._pending.values():
                if not f.done():
                    f.set_exception(err)
            self._pending.clear()

    async def _request(self, op: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its answer (matched by id); raise its error class."""
        await self._connect()
        ws = self._ws
        assert ws is not None
        rid = next(self._ids)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send_str(json.dumps({**op, "id": rid}))
            ans = await asyncio.wait_for(fut, self.request_timeout_s)
        except TimeoutError as e:
            raise RequestTimeout(f"no answer to WebSocket op {op.get('op')!r}") from e
        except (aiohttp.ClientError, ConnectionResetError) as e:
            raise ExchangeNotAvailable(f"WebSocket send failed: {e}") from e
        finally:
            self._pending.pop(rid, None)
        if ans.get("type") == "error":
            raise error_for(ans.get("error"), ans.get("status"))
        return ans

    async def _wait(self, event: asyncio.Event) -> None:
        if self._lost.is_set():
            raise ExchangeNotAvailable("WebSocket closed")
        lost = asyncio.ensure_future(self._lost.wait())
        got = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait((lost, got), return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            got.cancel()
        if not event.is_set():
            raise ExchangeNotAvailable("WebSocket closed while waiting")

    # ----------------------------------------------------------------- dispatch

    def on_message(self, m: dict[str, Any]) -> None:
        """Handle one server frame (answers by id, book snapshots and deltas, streams)."""
        rid = m.get("id")
        t = m.get("type")
        if t == "snapshot":
            self._on_snapshot(m)
        elif t == "delta":
            self._on_delta(m)
        elif t == "trades":
            self._on_trades(m)
        elif t == "ticker":
            self._on_ticker(m)
        elif t == "orders":
            self._on_orders(m)
        elif t == "fills":
            self._on_fills(m)
        if rid is not None and rid in self._pending:
            f = self._pending[rid]
            if not f.done():
                f.set_result(m)
        elif t == "error":
            log.warning("WebSocket error: %s", m.get("error"))

    def _on_ticker(self, m: dict[str, Any]) -> None:
        inst = m["instrument"]
        version = self._tickers[inst][0] + 1 if inst in self._tickers else 1
        self._tickers[inst] = (version, m["ticker"])
        self._ticker_events.setdefault(inst, asyncio.Event()).set()

    def _changed(self, inst: str) -> None:
        book = self.books[inst]
        book.version += 1
        ev = self._book_events.setdefault(inst, asyncio.Event())
        ev.set()

    def _on_snapshot(self, m: dict[str, Any]) -> None:
        book = self.books.setdefault(m["instrument"], LocalBook())
        book.load(int(m["seq"]), m["bids"], m["asks"])
        if book.buffer is not None and book.drain():
            book.buffer = None
        self._changed(m["instrument"])

    def _on_delta(self, m: dict[str, Any]) -> None:
        inst = m["instrument"]
        book = self.books.get(inst)
        if book is None:
            return
        seq = int(m["seq"])
        if book.buffer is not None:
            book.buffer.append(m)
            return
        if book.seq is None or seq <= book.seq:
            return
        if seq == book.seq + 1:
            book.apply(m)
            self._changed(inst)
            return
        log.info("book %s: seq gap %s -> %s, resyncing from REST", inst, book.seq, seq)
        book.buffer = [m]
        book.resyncs += 1
        t = asyncio.get_running_loop().create_task(self._resync(inst))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _resync(self, inst: str) -> None:
        book = self.books[inst]
        for attempt in range(3):
            try:
                js = await self.client._fetch("GET", f"/v1/markets/{inst}/book", params={"depth": RESYNC_DEPTH})
            except NetworkError as e:
                log.warning("book %s resync: %s", inst, e)
                await asyncio.sleep(0.05 * (attempt + 1))
                continue
            if book.seq is None or int(js["seq"]) >= book.seq:
                book.load(int(js["seq"]), js["bids"], js["asks"])
            if book.drain():
                book.buffer = None
                self._changed(inst)
                return
            await asyncio.sleep(0.05 * (attempt + 1))
        book.buffer = None  # the REST view never caught up: take a fresh WebSocket snapshot
        with contextlib.suppress(NetworkError):
            await self._request({"op": "unsubscribe", "channel": "book", "instrument": inst})
            await self._request({"op": "subscribe", "channel": "book", "instrument": inst})

    def _on_trades(self, m: dict[str, Any]) -> None:
        mk = self.client.markets_by_id.get(m["instrument"])
        if mk is not None:
            self._trades.push([parse.public_trade(mk, t) for t in m.get("trades") or ()])

    def _mine(self, ev: dict[str, Any]) -> list[tuple[int, int | None]]:
        """Return ``(order_id, remaining or None)`` of the account's orders an event touches."""
        me = self.client.address
        if ev["type"] == "OrderFilled":
            out = []
            if ev.get("maker_account") == me:
                out.append((int(ev["maker_order_id"]), int(ev["maker_remaining"])))
            if ev.get("taker_account") == me:
                out.append((int(ev["taker_order_id"]), int(ev["taker_remaining"])))
            return out
        return [(int(ev["order_id"]), None)] if ev.get("account") == me and "order_id" in ev else []

    def _on_orders(self, m: dict[str, Any]) -> None:
        updated: dict[int, dict[str, Any]] = {}
        for ev in m.get("events") or ():
            mk = self.client.markets_by_id.get(ev.get("instrument", ""))
            if mk is None:
                continue
            for oid, remaining in self._mine(ev):
                o = self._order_cache.get(oid)
                if o is None:
                    o = self._order_cache[oid] = {"id": str(oid), "symbol": mk.symbol, "status": "open",
                                                  "filled": mk.amount(0), "fills": [], "info": []}
                self._apply_event(mk, o, ev, remaining, m.get("ts_ms"))
                updated[oid] = o
        self._orders.push([self._order_out(o) for o in updated.values()])

    @staticmethod
    def _apply_event(mk: Market, o: dict[str, Any], ev: dict[str, Any], remaining: int | None,
                     ts: int | None) -> None:
        t = ev["type"]
        o["info"].append(ev)
        o["timestamp"] = o.get("timestamp") or ts
        o["lastUpdateTimestamp"] = ts
        if t == "OrderAccepted":
            o.update(clientOrderId=str(ev["client_order_id"]) if ev.get("client_order_id") else None,
                     side=parse.SIDE.get(ev["side"]), type={1: "limit", 2: "market"}.get(ev["order_type"]),
                     timeInForce=parse.TIF.get(ev["time_in_force"]), postOnly=ev["time_in_force"] == 4,
                     reduceOnly=ev["reduce_only"], price=mk.price(ev["price"]) if ev["price"] else None,
                     amount=mk.amount(ev["size"]), remaining=mk.amount(ev["size"]))
        elif t == "OrderFilled":
            o["fills"].append((int(ev["price"]), int(ev["size"])))
            o["filled"] = mk.amount(sum(s for _, s in o["fills"]))
            o["remaining"] = mk.amount(remaining or 0)
            o["lastTradeTimestamp"] = ts
            o["status"] = "closed" if not remaining else "open"
        elif t in ("OrderCancelled", "OrderExpired"):
            o["status"] = "canceled" if t == "OrderCancelled" else "expired"
            o["remaining"] = mk.amount(0)
        elif t == "OrderAmended":
            o.update(price=mk.price(ev["price"]), amount=mk.amount(ev["size"]), remaining=mk.amount(ev["remaining"]))
        elif t == "OrderRejected":
            o["status"] = "rejected"
        o["_market"] = mk

    @staticmethod
    def _order_out(o: dict[str, Any]) -> dict[str, Any]:
        mk: Market = o["_market"]
        fills = o["fills"]
        out = {k: v for k, v in o.items() if k not in ("_market", "fills")}
        out["info"] = list(o["info"])
        out["datetime"] = iso8601(o.get("timestamp"))
        out["cost"] = sum((mk.cost(p, s) for p, s in fills), Decimal(0))
        out["average"] = parse.average(mk, fills)
        out["trades"] = []
        return out

    def _on_fills(self, m: dict[str, Any]) -> None:
        me = self.client.address
        out = []
        for ev in m.get("fills") or ():
            if ev.get("type") != "TradeSettled":
                continue
            mk = self.client.markets_by_id.get(ev.get("instrument", ""))
            if mk is None:
                continue
            taker_side = parse.SIDE.get(ev["taker_side"])
            for role in ("maker", "taker"):
                if ev.get(role) != me:
                    continue
                side = taker_side if role == "taker" else {"buy": "sell", "sell": "buy"}.get(taker_side or "")
                f = {"seq": m.get("seq"), "ts_ms": m.get("ts_ms"), "instrument": ev["instrument"],
                     "price": ev["price"], "size": ev["size"], "maker_order_id": ev["maker_order_id"],
                     "taker_order_id": ev["taker_order_id"], "liquidity": role, "side": side,
                     "order_id": ev[f"{role}_order_id"], "fee": ev[f"{role}_fee"]}
                t = parse.trade_from_fill(mk, f)
                t["info"] = ev
                out.append(t)
        self._fills.push(out)

    # ------------------------------------------------------------ subscriptions

    async def _subscribe_book(self, inst: str) -> None:
        self.books.setdefault(inst, LocalBook())
        await self._request({"op": "subscribe", "channel": "book", "instrument": inst})

    async def _subscribe_trades(self, inst: str) -> None:
        self._trade_subs.add(inst)
        await self._request({"op": "subscribe", "channel": "trades", "instrument": inst})

    async def _subscribe_ticker(self, inst: str) -> None:
        await self._request({"op": "subscribe", "channel": "ticker", "instrument": inst})

    async def _login(self) -> None:
        if self._authed:
            return
        key = self.client._account_key()
        ch = await self._request({"op": "challenge"})
        sig = key.sign_message(encode_defunct(text=ch["challenge"])).signature
        await self._request({"op": "auth", "account": self.client.address, "signature": "0x" + bytes(sig).hex(),
                             "scheme": "personal_sign"})
        self._authed = True

    async def _subscribe_private(self, channel: str) -> None:
        await self._login()
        self._private.add(channel)
        await self._request({"op": "subscribe", "channel": channel})

    # ------------------------------------------------------------------ watches

    async def watch_order_book(self, symbol: str, limit: int | None) -> dict[str, Any]:
        """Return the book once it is newer than the version last returned for it."""
        m = await self.client.market(symbol)
        await self._connect()
        if m.id not in self.books:
            await self._subscribe_book(m.id)
        ev = self._book_events.setdefault(m.id, asyncio.Event())
        while True:
            book = self.books.get(m.id)
            if book is not None and book.seq is not None and book.buffer is None \
                    and book.version > self._seen.get(m.id, 0):
                self._seen[m.id] = book.version
                return book.ccxt(m, limit)
            ev.clear()
            await self._wait(ev)

    async def _watch_queue(self, q: _Queue, symbol: str | None, limit: int | None) -> list[dict[str, Any]]:
        want = (await self.client.market(symbol)).symbol if symbol else None
        while True:
            items = q.take(want, limit)
            if items:
                return items
            q.event.clear()
            await self._wait(q.event)

    async def watch_trades(self, symbol: str, limit: int | None) -> list[dict[str, Any]]:
        """Return the public trades of ``symbol`` queued since the previous call."""
        m = await self.client.market(symbol)
        await self._connect()
        if m.id not in self._trade_subs:
            await self._subscribe_trades(m.id)
        return await self._watch_queue(self._trades, m.symbol, limit)

    async def watch_ticker(self, symbol: str) -> dict[str, Any]:
        """Return the ticker of ``symbol`` once one newer than the last returned has arrived."""
        m = await self.client.market(symbol)
        await self._connect()
        ev = self._ticker_events.setdefault(m.id, asyncio.Event())
        if m.id not in self._tickers:
            await self._subscribe_ticker(m.id)
        while True:
            got = self._tickers.get(m.id)
            if got is not None and got[0] > self._ticker_seen.get(m.id, 0):
                self._ticker_seen[m.id] = got[0]
                return parse.ticker(m, got[1])
            ev.clear()
            await self._wait(ev)

    async def watch_orders(self, symbol: str | None, limit: int | None) -> list[dict[str, Any]]:
        """Return the account's order updates queued since the previous call."""
        await self.client.load_markets()
        await self._connect()
        if "orders" not in self._private:
            await self._subscribe_private("orders")
        return await self._watch_queue(self._orders, symbol, limit)

    async def watch_my_trades(self, symbol: str | None, limit: int | None) -> list[dict[str, Any]]:
        """Return the account's fills queued since the previous call."""
        await self.client.load_markets()
        await self._connect()
        if "fills" not in self._private:
            await self._subscribe_private("fills")
        return await self._watch_queue(self._fills, symbol, limit)

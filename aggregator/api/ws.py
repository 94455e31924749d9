"""WebSocket ``/v1/ws``: market data, private streams and order entry on one connection.

Every frame is a JSON text message. Client requests carry ``"op"`` (and an optional
``"id"`` echoed in the answer); server messages carry ``"type"``.

Public channels
    ``{"op": "subscribe", "channel": "book", "instrument": "ETH-PERP"}`` answers
    ``subscribed``, then a ``snapshot`` (every level; ``depth`` limits it) and from then
    on ``delta`` messages: ``{"type": "delta", "channel": "book", "instrument", "seq",
    "bids": [[price, size], ...], "asks": [...]}`` where a size ``"0"`` removes the level.
    ``seq`` counts per instrument, one per command that changed the book, and
    ``GET /v1/markets/{instrument}/book`` carries the same counter: a client applies a
    delta only if its ``seq`` is its last ``seq + 1``; on a gap it resubscribes (or
    fetches the REST snapshot and drops deltas up to the snapshot's ``seq``).
    ``{"op": "subscribe", "channel": "trades", "instrument": ...}`` streams ``trades``.
    ``{"op": "subscribe", "channel": "ticker", "instrument": ...}`` sends the instrument's
    ticker (as ``GET /v1/markets/{instrument}/ticker``) at once, then again after every
    published batch of commands that changed its book, traded it or moved its
    underlying's mark (coalesced: at most every 100 ms): ``{"type": "ticker", "channel":
    "ticker", "instrument", "seq", "ticker": {...}}``. A ticker is read from the sequencer
    when sent, so (like the REST ticker) it may already include commands sequenced after
    ``seq``.
    Book and trade messages are only sent for durable commands (after the journal's
    fsync), in sequence order.

Private channels (``orders``, ``fills``, ``account``) need authentication first:
    1. ``{"op": "challenge"}`` -> ``{"type": "challenge", "challenge": "<text>", "expires_ms"}``
    2. ``{"op": "auth", "account": "0x..", "signature": "0x..", "scheme": "personal_sign"}``
       where the signature is EIP-191 ``personal_sign`` of the challenge text, or with
       ``"scheme": "eip712"`` an EIP-712 signature of ``WsLogin(address account,string
       challenge)`` in the API's domain (``GET /v1/eip712``). The signer must be the
       account. A challenge is single-use and valid for 60 s. Failure: ``error`` with code
       ``unauthorized`` (the connection stays open; private subscriptions answer
       ``unauthorized`` until authenticated).
    ``account`` sends the account view (as ``GET /v1/accounts/{address}/margin``) after each
    published batch that touched it, with ``events``: what happened to the account itself
    in that batch (``Liquidated``, ``AutoDeleveraged``, ``BankruptcyCovered``,
    ``MmpTriggered``, ``CancelAllAfterTriggered``, deposits, withdrawals, session keys...).

Order entry (same checks, codes and statuses as REST; acks only after durability):
    ``{"op": "order", "id": 7, "order": {...}, "signature": "0x.."}``, likewise ``cancel``
    (field ``cancel``), ``cancel_all`` (``cancelAll``), ``cancel_all_after``
    (``cancelAllAfter``), ``mmp`` (``mmp``), ``trigger`` (``trigger``: a signed
    TriggerOrder), ``amend`` (``amend``) and
    ``batch`` (``orders``: up to 50 order requests). Answers: ``{"type": "ack", "id",
    "status": 200, ...ack}`` / ``{"type": "error", "id", "status", "error": {...}}`` /
    ``{"type": "batch", "id", "results": [...]}``. Requests are processed concurrently;
    match answers by ``id``.

Slow consumers: a connection whose outgoing queue passes ``MAX_QUEUE`` messages is
closed (code 1008); it reconnects and resyncs from a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from typing import Any, Union

import msgspec
from aiohttp import WSMsgType, web

from aggregator import eip712
from aggregator.sequencer_service import (
    KINDS,
    MAX_BATCH,
    Published,
    RequestError,
    SequencerService,
    dumps,
    from_wire_request,
    jsonable,
)

log = logging.getLogger(__name__)

__all__ = ["ws_handler", "setup", "shutdown", "WsHub", "login_text_digest", "login_eip712_digest",
           "WS_LOGIN_TYPE", "MAX_QUEUE"]

MAX_QUEUE = 10_000
TICKER_INTERVAL_S = 0.1  # tickers of changed instruments go out together at most this often
CHALLENGE_TTL_MS = 60_000
WS_LOGIN_TYPE = "WsLogin(address account,string challenge)"
_WS_LOGIN_TYPEHASH = eip712.keccak(WS_LOGIN_TYPE.encode())
_ORDER_EVENTS = frozenset(("OrderAccepted", "OrderRejected", "OrderFilled", "OrderCancelled", "OrderAmended",
                           "OrderExpired", "CancelRejected", "AmendRejected", "TriggerPlaced", "TriggerCancelled",
                           "TriggerFired", "TriggerRejected"))
_FILL_EVENTS = frozenset(("OrderFilled", "TradeSettled"))
# what happened to the account itself, sent with its ``account`` message (risk, protection, money)
_ACCOUNT_EVENTS = frozenset(("Liquidated", "AutoDeleveraged", "BankruptcyCovered", "MmpConfigured", "MmpTriggered",
                             "CancelAllAfterSet", "CancelAllAfterTriggered", "DepositCredited", "WithdrawalReserved",
                             "WithdrawalPaid", "WithdrawalFailed", "SessionKeyGranted", "SessionKeyRevoked"))


def login_text_digest(text: str) -> bytes:
    """Return the EIP-191 (``personal_sign``) digest of ``text``."""
    b = text.encode()
    return eip712.keccak(b"\x19Ethereum Signed Message:\n" + str(len(b)).encode() + b)


def login_eip712_digest(domain: eip712.Domain, account: str, challenge: str) -> bytes:
    """Return the EIP-712 digest of ``WsLogin(account, challenge)`` in ``domain``."""
    sh = eip712.keccak(_WS_LOGIN_TYPEHASH + bytes(12) + bytes.fromhex(account[2:]) + eip712.keccak(challenge.encode()))
    return eip712.keccak(b"\x19\x01" + domain.separator + sh)


# --------------------------------------------------------------------- wire structs

_Id = Union[int, str, None]


class _Subscribe(msgspec.Struct, tag_field="op", tag="subscribe", forbid_unknown_fields=True):
    channel: str
    instrument: str | None = None
    depth: int | None = None
    id: _Id = None


class _Unsubscribe(msgspec.Struct, tag_field="op", tag="unsubscribe", forbid_unknown_fields=True):
    channel: str
    instrument: str | None = None
    id: _Id = None


class _Challenge(msgspec.Struct, tag_field="op", tag="challenge", forbid_unknown_fields=True):
    id: _Id = None


class _Auth(msgspec.Struct, tag_field="op", tag="auth", forbid_unknown_fields=True):
    account: str
    signature: str
    scheme: str = "personal_sign"
    id: _Id = None


class _Ping(msgspec.Struct, tag_field="op", tag="ping", forbid_unknown_fields=True):
    id: _Id = None


def _signed_op(kind_name: str) -> type:
    k = KINDS[kind_name]
    return msgspec.defstruct(f"Ws{k.message.PRIMARY_TYPE}", [(k.field, k.wire), ("signature", str), ("id", _Id, None)],
                             tag_field="op", tag=kind_name, forbid_unknown_fields=True)


_SIGNED_OPS = {name: _signed_op(name) for name in ("order", "cancel", "cancel_all", "cancel_all_after", "mmp",
                                                      "trigger", "amend")}
_OP_KIND = {v: k for k, v in _SIGNED_OPS.items()}
_Batch = msgspec.defstruct("WsBatch", [("orders", list[KINDS["order"].request]), ("id", _Id, None)],
                           tag_field="op", tag="batch", forbid_unknown_fields=True)
_decoder = msgspec.json.Decoder(Union[(_Subscribe, _Unsubscribe, _Challenge, _Auth, _Ping, _Batch,
                                       *_SIGNED_OPS.values())])  # type: ignore[misc]


# ---------------------------------------------------------------------- connection


class Conn:
    """One client connection: outgoing queue, writer task, subscriptions, identity."""

    def __init__(self, ws: web.WebSocketResponse, remote: str) -> None:
        self.ws = ws
        self.remote = remote
        self.queue: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.closed = False
        self.account: str | None = None
        self.challenge: tuple[str, int] | None = None
        self.books: set[str] = set()
        self.trades: set[str] = set()
        self.tickers: set[str] = set()
        self.private: set[str] = set()
        self.tasks: set[asyncio.Task] = set()
        self.writer = asyncio.create_task(self._write_loop(), name="ws-writer")

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self.queue) >= MAX_QUEUE:
            self.closed = True
            asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"slow consumer"))
            return
        self.queue.append(data)
        self.ready.set()

    def send_obj(self, obj: Any) -> None:
        self.send(dumps(obj))

    async def _write_loop(self) -> None:
        q = self.queue
        send = self.ws.send_frame  # the UTF-8 JSON bytes as a text frame (no decode and re-encode)
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                while q:
                    await send(q.popleft(), WSMsgType.TEXT)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            pass


class WsHub:
    """Fan-out of published commands to connections, by channel."""

    def __init__(self, service: SequencerService) -> None:
        self.service = service
        self.conns: set[Conn] = set()
        self.books: dict[str, set[Conn]] = {}
        self.trades: dict[str, set[Conn]] = {}
        self.tickers: dict[str, set[Conn]] = {}
        self._ticker_dirty: set[str] = set()  # changed since the last flush (see _note_tickers)
        self._ticker_seq = 0
        self._ticker_timer: asyncio.TimerHandle | None = None
        self.private: dict[str, set[Conn]] = {}  # account -> connections with any private channel
        self._unsub = service.subscribe(self.on_published)

    def on_published(self, batch: list[Published]) -> None:
        accounts_touched: dict[str, list] = {}  # account -> its _ACCOUNT_EVENTS in this batch
        for p in batch:
            for inst, (seq, bch, ach) in p.book.items():
                subs = self.books.get(inst)
                if subs:
                    msg = dumps({"type": "delta", "channel": "book", "instrument": inst, "seq": seq,
                                 "bids": [[str(a), str(b)] for a, b in bch], "asks": [[str(a), str(b)] for a, b in ach]})
                    for c in subs:
                        c.send(msg)
            events = p.outcome.events
            if self.trades and events:
                per: dict[str, list] = {}
                for ev in events:
                    if type(ev).__name__ == "OrderFilled" and ev.instrument in self.trades:
                        per.setdefault(ev.instrument, []).append(
                            {"price": str(ev.price), "size": str(ev.size), "taker_side": ev.taker_side,
                             "maker_order_id": ev.maker_order_id, "taker_order_id": ev.taker_order_id,
                             "seq": p.cmd.seq, "ts_ms": p.cmd.ts_ms})
                for inst, trades in per.items():
                    msg = dumps({"type": "trades", "channel": "trades", "instrument": inst, "trades": trades})
                    for c in self.trades.get(inst, ()):
                        c.send(msg)
            if self.private and p.accounts:
                for acct in p.accounts:
                    conns = self.private.get(acct)
                    if not conns:
                        continue
                    mine = [ev for ev in events if acct in _accounts(ev)]
                    acct_events = accounts_touched.setdefault(acct, [])
                    acct_events.extend(jsonable(ev) for ev in mine if type(ev).__name__ in _ACCOUNT_EVENTS)
                    orders = [jsonable(ev) for ev in mine if type(ev).__name__ in _ORDER_EVENTS]
                    fills = [jsonable(ev) for ev in mine if type(ev).__name__ in _FILL_EVENTS]
                    for c in conns:
                        if orders and "orders" in c.private:
                            c.send_obj({"type": "orders", "channel": "orders", "seq": p.cmd.seq,
                                        "ts_ms": p.cmd.ts_ms, "events": orders})
                        if fills and "fills" in c.private:
                            c.send_obj({"type": "fills", "channel": "fills", "seq": p.cmd.seq,
                                        "ts_ms": p.cmd.ts_ms, "fills": fills})
        if self.tickers:
            self._note_tickers(batch)
        for acct, acct_events in accounts_touched.items():
            conns = [c for c in self.private.get(acct, ()) if "account" in c.private]
            if conns:
                view = jsonable(self.service.sequencer.account(acct))
                msg = dumps({"type": "account", "channel": "account", "seq": batch[-1].cmd.seq, "account": view,
                             "events": acct_events})
                for c in conns:
                    c.send(msg)

    def _note_tickers(self, batch: list[Published]) -> None:
        """Note every subscribed instrument the batch changed (book, trade or mark); their tickers go out
        together at most every ``TICKER_INTERVAL_S`` (an option's ticker solves two implied vols: a burst
        of mark updates must not recompute them per batch on the publishing path)."""
        changed: set[str] = set()
        unds: set[str] = set()
        for p in batch:
            changed.update(p.book)
            for ev in p.outcome.events:
                name = type(ev).__name__
                if name == "OrderFilled" or name == "FundingPaid":
                    changed.add(ev.instrument)
                elif name == "MarkUpdated":
                    unds.add(ev.underlying)
        if unds:
            changed.update(i for i in self.tickers if i.split("-", 1)[0] in unds)
        changed.intersection_update(i for i, c in self.tickers.items() if c)
        if not changed:
            return
        self._ticker_dirty |= changed
        self._ticker_seq = batch[-1].cmd.seq
        if self._ticker_timer is None:
            self._ticker_timer = asyncio.get_running_loop().call_later(TICKER_INTERVAL_S, self._flush_tickers)

    def _flush_tickers(self) -> None:
        self._ticker_timer = None
        dirty, self._ticker_dirty = self._ticker_dirty, set()
        seq = self._ticker_seq
        wanted = sorted(i for i in dirty if self.tickers.get(i))
        for t in self.service.sequencer.tickers(wanted) if wanted else ():  # one vectorised pass; expired skipped
            inst = t["instrument"]
            msg = dumps({"type": "ticker", "channel": "ticker", "instrument": inst, "seq": seq, "ticker": jsonable(t)})
            for c in self.tickers.get(inst, ()):
                c.send(msg)

    def drop(self, conn: Conn) -> None:
        self.conns.discard(conn)
        for inst in conn.books:
            self.books.get(inst, set()).discard(conn)
        for inst in conn.trades:
            self.trades.get(inst, set()).discard(conn)
        for inst in conn.tickers:
            self.tickers.get(inst, set()).discard(conn)
        if conn.account:
            s = self.private.get(conn.account)
            if s is not None:
                s.discard(conn)
                if not s:
                    del self.private[conn.account]

    async def close_all(self) -> None:
        if self._ticker_timer is not None:
            self._ticker_timer.cancel()
            self._ticker_timer = None
        for c in list(self.conns):
            c.closed = True
            await c.ws.close(code=1001, message=b"server shutdown")
        self._unsub()


def _accounts(ev: Any) -> tuple[str, ...]:
    a = getattr(ev, "account", None)
    if a is not None:
        return (a,)
    return tuple(x for x in (getattr(ev, "maker_account", None) or getattr(ev, "maker", None),
                             getattr(ev, "taker_account", None) or getattr(ev, "taker", None)) if x)


HUB = web.AppKey("ws_hub", WsHub)


def setup(app: web.Application, service: SequencerService) -> None:
    app[HUB] = WsHub(service)


async def shutdown(app: web.Application) -> None:
    await app[HUB].close_all()


# ------------------------------------------------------------------------- handler


def _err(id_: Any, status: int, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": id_, "status": status, "error": {"code": code, "message": message}}


async def ws_handler(request: web.Request) -> web.StreamResponse:
    from aggregator.api.trading import LIMITS, SERVICE

    service = request.app[SERVICE]
    hub = request.app[HUB]
    limits = request.app[LIMITS]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=1 << 20)
    await ws.prepare(request)
    conn = Conn(ws, request.remote or "?")
    hub.conns.add(conn)
    try:
        async for m in ws:
            if m.type != WSMsgType.TEXT:
                if m.type == WSMsgType.ERROR:
                    break
                continue
            try:
                req = _decoder.decode(m.data)
            except msgspec.DecodeError as e:
                conn.send_obj(_err(None, 400, "invalid_request", str(e)))
                continue
            if limits.ip is not None and limits.ip.take(conn.remote, 1.0):
                conn.send_obj(_err(getattr(req, "id", None), 429, "rate_limited", "too many messages"))
                continue
            _dispatch(conn, hub, service, limits, req)
    finally:
        hub.drop(conn)
        conn.closed = True
        for t in list(conn.tasks):
            t.cancel()
        conn.writer.cancel()
    return ws


def _spawn(conn: Conn, coro: Any) -> None:
    t = asyncio.get_running_loop().create_task(coro)
    conn.tasks.add(t)
    t.add_done_callback(conn.tasks.discard)


def _dispatch(conn: Conn, hub: WsHub, service: SequencerService, limits: Any, req: Any) -> None:
    from aggregator.api.trading import process_batch, process_signed

    t = type(req)
    if t in _OP_KIND:
        kind = _OP_KIND[t]
        try:
            msg, sig = from_wire_request(kind, req)
        except RequestError as e:
            from aggregator.api.trading import status_of

            conn.send_obj(_err(req.id, status_of(e.code), e.code, e.message))
            return

        async def run() -> None:
            status, body = await process_signed(service, limits, kind, msg, sig)
            if status < 300:
                conn.send_obj({"type": "ack", "id": req.id, "status": status, **body})
            else:
                conn.send_obj({"type": "error", "id": req.id, "status": status, **body})

        if not service.running:
            conn.send_obj(_err(req.id, 503, "unavailable", "sequencer service is not running"))
            return
        _spawn(conn, run())
    elif t is _Batch:
        if not req.orders or len(req.orders) > MAX_BATCH:
            conn.send_obj(_err(req.id, 400, "invalid_request", f"batch: 1 to {MAX_BATCH} orders"))
            return
        items: list = []
        for r in req.orders:
            try:
                items.append(from_wire_request("order", r))
            except RequestError as e:
                items.append(e)

        async def run_batch() -> None:
            try:
                results = await process_batch(service, limits, items)
            except Exception as e:  # ApiError (unavailable)
                conn.send_obj(_err(req.id, getattr(e, "status", 500), getattr(e, "code", "internal"), str(e)))
                return
            conn.send_obj({"type": "batch", "id": req.id, "results": results})

        _spawn(conn, run_batch())
    elif t is _Subscribe:
        _subscribe(conn, hub, service, req)
    elif t is _Unsubscribe:
        if req.channel == "book" and req.instrument:
            conn.books.discard(req.instrument)
            hub.books.get(req.instrument, set()).discard(conn)
        elif req.channel == "trades" and req.instrument:
            conn.trades.discard(req.instrument)
            hub.trades.get(req.instrument, set()).discard(conn)
        elif req.channel == "ticker" and req.instrument:
            conn.tickers.discard(req.instrument)
            hub.tickers.get(req.instrument, set()).discard(conn)
        else:
            conn.private.discard(req.channel)
        conn.send_obj({"type": "unsubscribed", "id": req.id, "channel": req.channel, "instrument": req.instrument})
    elif t is _Challenge:
        text = f"Omniclear WebSocket login\nchallenge: {secrets.token_hex(16)}"
        expires = int(time.time() * 1000) + CHALLENGE_TTL_MS
        conn.challenge = (text, expires)
        conn.send_obj({"type": "challenge", "id": req.id, "challenge": text, "expires_ms": expires})
    elif t is _Auth:
        _auth(conn, hub, service, req)
    elif t is _Ping:
        conn.send_obj({"type": "pong", "id": req.id})


def _subscribe(conn: Conn, hub: WsHub, service: SequencerService, req: _Subscribe) -> None:
    ch = req.channel
    if ch in ("book", "trades", "ticker"):
        inst = req.instrument
        if not inst or not service.running or not service.knows_instrument(inst):
            conn.send_obj(_err(req.id, 404, "unknown_instrument", f"instrument {str(inst)[:64]!r} is not listed"))
            return
        if ch == "ticker":
            try:
                ticker = jsonable(service.sequencer.ticker(inst))
            except KeyError:  # expired: listed once, no ticker now
                conn.send_obj(_err(req.id, 404, "unknown_instrument", f"instrument {inst[:64]!r} is not active"))
                return
        conn.send_obj({"type": "subscribed", "id": req.id, "channel": ch, "instrument": inst})
        if ch == "book":
            conn.books.add(inst)
            hub.books.setdefault(inst, set()).add(conn)
            seq, bids, asks = service.book.snapshot(inst, req.depth or 1 << 30)
            conn.send_obj({"type": "snapshot", "channel": "book", "instrument": inst, "seq": seq,
                           "bids": [[str(p), str(s)] for p, s in bids], "asks": [[str(p), str(s)] for p, s in asks]})
        elif ch == "ticker":
            conn.tickers.add(inst)
            hub.tickers.setdefault(inst, set()).add(conn)
            conn.send_obj({"type": "ticker", "channel": "ticker", "instrument": inst,
                           "seq": service.sequencer.last_seq, "ticker": ticker})
        else:
            conn.trades.add(inst)
            hub.trades.setdefault(inst, set()).add(conn)
    elif ch in ("orders", "fills", "account"):
        if conn.account is None:
            conn.send_obj(_err(req.id, 401, "unauthorized", f"channel {ch} needs auth (op challenge, then auth)"))
            return
        conn.private.add(ch)
        hub.private.setdefault(conn.account, set()).add(conn)
        conn.send_obj({"type": "subscribed", "id": req.id, "channel": ch, "account": conn.account})
        if ch == "account":
            conn.send_obj({"type": "account", "channel": "account", "seq": service.last_seq,
                           "account": jsonable(service.sequencer.account(conn.account)), "events": []})
    else:
        conn.send_obj(_err(req.id, 400, "invalid_request", f"unknown channel {ch[:32]!r}"))


def _auth(conn: Conn, hub: WsHub, service: SequencerService, req: _Auth) -> None:
    ch = conn.challenge
    conn.challenge = None  # single use, whatever happens
    if ch is None or ch[1] < int(time.time() * 1000):
        conn.send_obj(_err(req.id, 401, "unauthorized", "no valid challenge: request one with op challenge"))
        return
    try:
        account = eip712.to_checksum_address(req.account)
        if req.scheme == "personal_sign":
            d = login_text_digest(ch[0])
        elif req.scheme == "eip712":
            d = login_eip712_digest(service.domain, account, ch[0])
        else:
            conn.send_obj(_err(req.id, 400, "invalid_request", "scheme must be personal_sign or eip712"))
            return
        signer = eip712.recover(d, req.signature)
    except eip712.Eip712Error as e:
        conn.send_obj(_err(req.id, 401, "unauthorized", f"bad login: {e}"))
        return
    if signer != account:
        conn.send_obj(_err(req.id, 401, "unauthorized", "the challenge was not signed by the account"))
        return
    if conn.account and conn.account != account:
        hub.drop(conn)
        hub.conns.add(conn)
        conn.private.clear()
    conn.account = account
    conn.send_obj({"type": "authenticated", "id": req.id, "account": account})

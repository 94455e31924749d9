"""Trading API: REST routes over the ``SequencerService`` (WebSocket in ``aggregator.api.ws``).

``add_trading_routes(app, service)`` registers every route of ``ROUTES`` (the table that
``GET /openapi.json`` is generated from), the WebSocket ``/v1/ws`` and a ``cleanup_ctx``
that starts the service with the app (if it is not running yet) and stops it after.

Signed requests
    ``POST`` bodies are ``{"<field>": <EIP-712 message, Solidity field names>,
    "signature": "0x<65 bytes r||s||v>"}`` with field ``order``, ``cancel``,
    ``cancelAll``, ``amend``, ``sessionKey`` or ``revoke``; unsigned integers may be JSON
    numbers or decimal strings. ``POST /v1/orders/batch`` takes ``{"orders": [...]}`` (1 to
    50 order requests) and answers 200 with one result per item, in order: the ack, or
    ``{"error": {...}}`` for that item alone.

Acknowledgement (2xx): ``{"seq", "accepted": true, "code": null, "message", "result",
"events"}``, sent only after the command is durable in the journal.

Errors: ``{"error": {"code", "message"}}`` (plus ``"seq"`` when the request was
sequenced and rejected by the core, so it is in the journal). Status by code
(``STATUS_BY_CODE``; any other core code is 422):

    400 invalid_request bad_signature invalid_tick invalid_lot expired nonce_window
        invalid_address invalid_amend invalid_amount invalid_recipient unknown_token invalid_batch
        invalid_trigger
    403 unauthorized_signer          (signer is neither the account nor its session key)
    404 unknown_instrument order_not_found not_found unknown_chain unknown_batch
    409 nonce_reused duplicate_client_order_id batch_out_of_order
    422 insufficient_margin reduce_only_would_increase fok_not_fillable
        post_only_would_cross market_closed too_many_orders no_price mmp_frozen
        insufficient_free_collateral withdrawals_halted negative_equity
    429 rate_limited                 (token bucket per account; per client IP before parsing)
    503 unavailable                  (service stopped or failed: retry later / elsewhere)

Amounts in responses are decimal strings of integers (price in quote units, size in
size units, balances in internal units); ids, seq and timestamps are JSON numbers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aggregator import eip712
from aggregator.api.errors import ApiError, error_middleware
from aggregator.api.ratelimit import RateLimit, TokenBuckets
from aggregator.sequencer_service import (
    MAX_BATCH,
    RequestError,
    SequencerService,
    ServiceUnavailable,
    dumps,
    jsonable,
    outcome_json,
    parse_batch,
    parse_signed,
)

__all__ = [
    "SERVICE",
    "LIMITS",
    "Route",
    "ROUTES",
    "STATUS_BY_CODE",
    "TradingOptions",
    "Limits",
    "add_trading_routes",
    "make_trading_app",
    "status_of",
]

SERVICE = web.AppKey("sequencer_service", SequencerService)

STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400, "bad_signature": 400, "invalid_tick": 400, "invalid_lot": 400,
    "invalid_trigger": 400,
    "expired": 400, "nonce_window": 400, "invalid_address": 400, "invalid_amend": 400, "invalid_amount": 400,
    "invalid_recipient": 400, "unknown_token": 400, "invalid_batch": 400,
    "unauthorized": 401,
    "unauthorized_signer": 403,
    "unknown_instrument": 404, "order_not_found": 404, "not_found": 404, "unknown_chain": 404, "unknown_batch": 404,
    "nonce_reused": 409, "duplicate_client_order_id": 409, "batch_out_of_order": 409,
    "insufficient_margin": 422, "reduce_only_would_increase": 422, "fok_not_fillable": 422,
    "post_only_would_cross": 422, "market_closed": 422, "too_many_orders": 422, "no_price": 422, "mmp_frozen": 422,
    "insufficient_free_collateral": 422, "withdrawals_halted": 422, "negative_equity": 422,
    "rate_limited": 429,
    "unavailable": 503,
}


def status_of(code: str | None) -> int:
    """Return the HTTP status of a stable error code (core codes not listed: 422)."""
    return STATUS_BY_CODE.get(code or "", 422)


@dataclasses.dataclass(frozen=True)
class TradingOptions:
    """Per-account token bucket (``rate`` None: no limit) and per-IP bucket before parsing."""

    rate: float | None = 200.0
    burst: float = 400.0
    ip_rate: float | None = 2_000.0
    ip_burst: float = 4_000.0
    max_depth: int = 500


class Limits:
    """The rate limiters of one app."""

    def __init__(self, opts: TradingOptions, clock: Callable[[], float] | None = None) -> None:
        kw = {} if clock is None else {"clock": clock}
        self.account = TokenBuckets(RateLimit(opts.rate, opts.burst), **kw) if opts.rate else None
        self.ip = TokenBuckets(RateLimit(opts.ip_rate, opts.ip_burst), **kw) if opts.ip_rate else None

    def check_ip(self, request: web.Request, cost: float = 1.0) -> None:
        if self.ip is not None:
            wait = self.ip.take(request.remote or "?", cost)
            if wait:
                raise ApiError(f"too many requests from this client; retry in {wait:.3f}s", code="rate_limited",
                               status=429)

    def account_wait(self, account: str, cost: float = 1.0) -> float:
        return self.account.take(account, cost) if self.account is not None else 0.0


LIMITS = web.AppKey("trading_limits", Limits)
OPTIONS = web.AppKey("trading_options", TradingOptions)


# ------------------------------------------------------------------------- helpers


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def error_body(code: str, message: str, seq: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if seq is not None:
        err["seq"] = seq
    return {"error": err}


def outcome_response(outcome: Any) -> tuple[int, dict[str, Any]]:
    """Return ``(status, body)`` for a sequenced outcome."""
    if outcome.accepted:
        return 200, outcome_json(outcome)
    code = outcome.code or "rejected"
    return status_of(code), error_body(code, outcome.message or code, outcome.seq)


def _addr(raw: str) -> str:
    try:
        return eip712.to_checksum_address(raw)
    except eip712.MessageError:
        raise ApiError(f"not an address: {raw[:64]!r}", code="invalid_address", status=400) from None


def account_query(request: web.Request) -> str:
    """Return the checksum ``account`` query parameter (required)."""
    raw = request.query.get("account")
    if not raw:
        raise ApiError("query parameter account is required", code="invalid_request")
    return _addr(raw)


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ApiError(f"{name} must be an integer {lo}..{hi}, got {raw[:20]!r}", code="invalid_request")
    return int(raw)


# the per-IP bucket's cost of a public read, by how much work it does on the event loop (a signed request
# costs 1); e.g. at the default 2,000/s per IP, GET /v1/tickers is allowed 40 times a second
READ_COST = {"markets": 20.0, "tickers": 50.0, "account": 5.0, "insurance": 5.0, "read": 2.0}


def _service(request: web.Request, read: str | None = None) -> SequencerService:
    """Return the running service; ``read`` names a public read's cost (``READ_COST``) to take from the
    caller's per-IP bucket first."""
    if read is not None:
        request.app[LIMITS].check_ip(request, READ_COST[read])
    svc = request.app[SERVICE]
    if not svc.running:
        raise ApiError("sequencer service is not running", code="unavailable", status=503)
    return svc


async def process_signed(service: SequencerService, limits: Limits, kind: str, msg: Any,
                         signature: bytes) -> tuple[int, dict[str, Any]]:
    """Verify, rate-limit by account, sequence and await durability: ``(status, body)``.

    Shared by REST and WebSocket order entry so both apply exactly the same checks.
    """
    try:
        signer = await service.verifier.verify(msg, signature)
        if isinstance(signer, Exception):
            raise signer
        wait = limits.account_wait(msg.account)
        if wait:
            return 429, error_body("rate_limited", f"account {msg.account} is over its rate; retry in {wait:.3f}s")
        outcome = await service.execute(_COMMAND[kind], signer, msg, signature)
    except RequestError as e:
        return status_of(e.code), error_body(e.code, e.message)
    except ServiceUnavailable as e:
        return 503, error_body("unavailable", str(e))
    return outcome_response(outcome)


async def process_batch(service: SequencerService, limits: Limits,
                        items: list[tuple[Any, bytes] | RequestError]) -> list[dict[str, Any]]:
    """Verify all orders of a batch in parallel (one future), sequence the valid ones in order, await once."""
    ok = [it for it in items if not isinstance(it, RequestError)]
    verified = iter(await service.verifier.verify_batch(ok)) if ok else iter(())
    results: list[dict[str, Any] | None] = [None] * len(items)
    last = None
    cmd = _COMMAND["order"]
    sequence, account_wait = service.sequence_nowait, limits.account_wait
    try:
        for i, it in enumerate(items):
            if isinstance(it, RequestError):
                results[i] = error_body(it.code, it.message)
                continue
            signer = next(verified)
            if isinstance(signer, Exception):
                e = signer if isinstance(signer, RequestError) else RequestError("bad_signature", str(signer))
                results[i] = error_body(e.code, e.message)
                continue
            msg = it[0]
            wait = account_wait(msg.account)
            if wait:
                results[i] = error_body("rate_limited", f"account {msg.account} is over its rate; "
                                                        f"retry in {wait:.3f}s")
                continue
            outcome = sequence(cmd, signer, msg, it[1])
            last = outcome.seq
            results[i] = outcome_json(outcome) if outcome.accepted else outcome_response(outcome)[1]
        if last is not None:
            await service.durable(last)  # in order: the last one covers the batch
    except ServiceUnavailable as e:
        raise ApiError(str(e), code="unavailable", status=503) from None
    return results  # type: ignore[return-value]


from aggregator.sequencer_service import KINDS as _KINDS  # noqa: E402

_COMMAND = {k: v.command for k, v in _KINDS.items()}


# -------------------------------------------------------------------------- handlers


async def get_eip712(request: web.Request) -> web.Response:
    return _json(eip712.eip712_schema(request.app[SERVICE].domain))


def _instrument_or_404(svc: SequencerService, name: str) -> str:
    if not svc.knows_instrument(name):
        raise ApiError(f"instrument {name[:64]!r} is not listed", code="unknown_instrument", status=404)
    return name


async def get_markets(request: web.Request) -> web.Response:
    svc = _service(request, "markets")
    return _json({"markets": jsonable(svc.sequencer.markets())})


async def get_book(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    inst = _instrument_or_404(svc, request.match_info["instrument"])
    depth = _int_query(request, "depth", 20, 1, request.app[OPTIONS].max_depth)
    seq, bids, asks = svc.book.snapshot(inst, depth)
    return _json({"instrument": inst, "seq": seq,
                  "bids": [[str(p), str(s)] for p, s in bids], "asks": [[str(p), str(s)] for p, s in asks]})


async def get_tickers(request: web.Request) -> web.Response:
    return _json({"tickers": jsonable(_service(request, "tickers").sequencer.tickers())})


async def get_ticker(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    inst = request.match_info["instrument"]
    try:
        return _json(jsonable(svc.sequencer.ticker(inst)))
    except KeyError:  # UnknownInstrument: never listed, or expired
        raise ApiError(f"instrument {inst[:64]!r} is not listed", code="unknown_instrument", status=404) from None


_CANDLE_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}


async def get_candles(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    inst = _instrument_or_404(svc, request.match_info["instrument"])
    interval = request.query.get("interval", "1m")
    if interval not in _CANDLE_MINUTES:
        raise ApiError(f"interval must be one of {sorted(_CANDLE_MINUTES)}, got {interval[:10]!r}",
                       code="invalid_request")
    limit = _int_query(request, "limit", 1440, 1, 1440)
    return _json({"instrument": inst, "interval": interval,
                  "candles": svc.sequencer.candles(inst, _CANDLE_MINUTES[interval], limit)})


async def get_funding_history(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    inst = _instrument_or_404(svc, request.match_info["instrument"])
    limit = _int_query(request, "limit", 100, 1, 1000)
    try:
        hist = svc.sequencer.funding_history(inst, limit)
    except KeyError:  # UnknownInstrument: an option
        raise ApiError(f"{inst!r} is not a perpetual", code="invalid_request") from None
    return _json({"instrument": inst, "funding": hist})


async def get_insurance(request: web.Request) -> web.Response:
    return _json(jsonable(_service(request, "insurance").sequencer.insurance()))


async def get_trades(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    inst = _instrument_or_404(svc, request.match_info["instrument"])
    limit = _int_query(request, "limit", 100, 1, 1000)
    return _json({"instrument": inst, "trades": jsonable(svc.sequencer.trades(inst, limit))})


def _signed_handler(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        svc = _service(request)
        limits = request.app[LIMITS]
        limits.check_ip(request)
        body = await request.read()
        try:
            msg, sig = parse_signed(kind, body)
        except RequestError as e:
            raise ApiError(e.message, code=e.code, status=status_of(e.code)) from None
        status, out = await process_signed(svc, limits, kind, msg, sig)
        return _json(out, status)

    handler.__name__ = f"post_{kind}"
    return handler


async def post_batch(request: web.Request) -> web.Response:
    svc = _service(request)
    limits = request.app[LIMITS]
    limits.check_ip(request)
    body = await request.read()
    try:
        items = parse_batch(body, MAX_BATCH)
    except RequestError as e:
        raise ApiError(e.message, code=e.code, status=400) from None
    return _json({"results": await process_batch(svc, limits, items)})


def _account_and_instrument(request: web.Request) -> tuple[SequencerService, str, str | None]:
    """Return the service, the ``account`` query and the optional ``instrument`` query (404 if unknown)."""
    svc = _service(request, "read")
    account = account_query(request)
    inst = request.query.get("instrument") or None
    if inst is not None:
        _instrument_or_404(svc, inst)
    return svc, account, inst


async def get_open_orders(request: web.Request) -> web.Response:
    svc, account, inst = _account_and_instrument(request)
    return _json({"account": account, "orders": jsonable(svc.sequencer.open_orders(account, inst))})


async def get_order(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    account = account_query(request)
    oid = _int_query(request, "order_id", 0, 0, 2**64 - 1)
    coid = _int_query(request, "client_order_id", 0, 0, 2**64 - 1)
    if not (oid or coid) or (oid and coid):
        raise ApiError("give one of order_id and client_order_id", code="invalid_request", status=400)
    o = svc.sequencer.order(account, oid, coid)
    if o is None:
        raise ApiError(f"no order {oid or coid} of {account} (unknown, or ended before the last kept ones)",
                       code="order_not_found", status=404)
    return _json({"account": account, "order": jsonable(o)})


async def get_order_history(request: web.Request) -> web.Response:
    svc, account, inst = _account_and_instrument(request)
    limit = _int_query(request, "limit", 100, 1, 1000)
    return _json({"account": account, "orders": jsonable(svc.sequencer.closed_orders(account, inst, limit))})


async def get_fills(request: web.Request) -> web.Response:
    svc = _service(request, "read")
    account = account_query(request)
    limit = _int_query(request, "limit", 100, 1, 1000)
    return _json({"account": account, "fills": jsonable(svc.sequencer.fills(account, limit))})


def _account_view(svc: SequencerService, account: str) -> dict[str, Any]:
    view = jsonable(svc.sequencer.account(account))
    if view is None:
        view = {}
    return view if isinstance(view, dict) else {"account": view}


async def get_positions(request: web.Request) -> web.Response:
    svc = _service(request, "account")
    account = _addr(request.match_info["address"])
    view = _account_view(svc, account)
    return _json({"account": account, "positions": view.get("positions", [])})


async def get_margin(request: web.Request) -> web.Response:
    svc = _service(request, "account")
    account = _addr(request.match_info["address"])
    return _json({"account": account, **_account_view(svc, account)})


async def get_openapi(request: web.Request) -> web.Response:
    from aggregator.api.openapi import openapi_document

    return _json(openapi_document(request.app))


# ---------------------------------------------------------------------- route table


@dataclasses.dataclass(frozen=True)
class Route:
    """One route: method, path, handler and what the OpenAPI document says about it."""

    method: str
    path: str
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    summary: str
    tag: str
    body: str | None = None  # request schema name (components.schemas)
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, description, required)
    response: str = "Object"  # 200 schema name
    errors: tuple[str, ...] = ()  # stable error codes this route can return


_SIGNED_ERRORS = ("invalid_request", "bad_signature", "unauthorized_signer", "nonce_reused", "expired",
                  "nonce_window", "rate_limited", "unavailable")
_ORDER_ERRORS = _SIGNED_ERRORS + ("unknown_instrument", "invalid_tick", "invalid_lot", "insufficient_margin",
                                  "reduce_only_would_increase", "fok_not_fillable", "post_only_would_cross",
                                  "market_closed", "too_many_orders", "no_price", "mmp_frozen")


def _routes() -> list[Route]:
    from aggregator.api import ws

    return [
        Route("GET", "/v1/eip712", get_eip712, "EIP-712 domain, types and encodings to sign every message", "meta",
              response="Eip712Schema"),
        Route("GET", "/openapi.json", get_openapi, "This document", "meta"),
        Route("GET", "/v1/markets", get_markets, "Listed instruments with tick, lot and status", "market data",
              response="Markets"),
        Route("GET", "/v1/markets/{instrument}/book", get_book,
              "Order book snapshot; seq is the per-instrument sequence of the WebSocket book deltas", "market data",
              query=(("depth", "levels per side (1..500, default 20)", False),), response="Book",
              errors=("unknown_instrument", "invalid_request")),
        Route("GET", "/v1/tickers", get_tickers, "Ticker of every listed instrument (see the one-instrument route)",
              "market data", response="Tickers"),
        Route("GET", "/v1/markets/{instrument}/ticker", get_ticker,
              "Ticker: best bid/ask with sizes, last, mark, index, open interest, 24-hour volume/high/low/open "
              "(by the minute); perps: funding rate and next funding time; options: Black-76 Greeks on the "
              "mark's inputs and the implied vols of the mark, best bid and best ask", "market data",
              response="Ticker", errors=("unknown_instrument",)),
        Route("GET", "/v1/markets/{instrument}/candles", get_candles,
              "OHLCV candles of the last 24 hours, oldest first: [open time ms, open, high, low, close (quote "
              "units), volume (size units)]; intervals without a trade have none", "market data",
              query=(("interval", "1m (default), 5m, 15m or 1h", False), ("limit", "1..1440, default 1440", False)),
              errors=("unknown_instrument", "invalid_request")),
        Route("GET", "/v1/markets/{instrument}/funding-history", get_funding_history,
              "A perpetual's last funding intervals, oldest first: time, rate (1e-8 per interval), mark",
              "market data", query=(("limit", "1..1000, default 100", False),),
              errors=("unknown_instrument", "invalid_request")),
        Route("GET", "/v1/insurance", get_insurance,
              "The insurance fund: balance, the options it holds, and its record (liquidations and penalties, "
              "bankruptcies covered, size unwound in the book, auto-deleveragings, loss socialised after fees)",
              "market data"),
        Route("GET", "/v1/markets/{instrument}/trades", get_trades, "Recent trades", "market data",
              query=(("limit", "1..1000, default 100", False),), errors=("unknown_instrument", "invalid_request")),
        Route("POST", "/v1/orders", _signed_handler("order"), "Place one signed order", "trading",
              body="OrderRequest", response="Ack", errors=_ORDER_ERRORS),
        Route("POST", "/v1/orders/batch", post_batch, "Place up to 50 signed orders (one result per item)",
              "trading", body="OrderBatch", response="BatchAck", errors=("invalid_request", "rate_limited",
                                                                       "unavailable")),
        Route("POST", "/v1/orders/cancel", _signed_handler("cancel"), "Cancel one order (signed Cancel)", "trading",
              body="CancelRequest", response="Ack", errors=_SIGNED_ERRORS + ("order_not_found", "unknown_instrument")),
        Route("POST", "/v1/orders/cancel-all", _signed_handler("cancel_all"),
              "Cancel every order of the account, in one instrument or all (signed CancelAll)", "trading",
              body="CancelAllRequest", response="Ack", errors=_SIGNED_ERRORS + ("unknown_instrument",)),
        Route("POST", "/v1/orders/cancel-all-after", _signed_handler("cancel_all_after"),
              "Dead man's switch (signed CancelAllAfter): every order of the account is cancelled timeoutMs after "
              "this request unless re-armed first; timeoutMs 0 disarms", "trading",
              body="CancelAllAfterRequest", response="Ack", errors=_SIGNED_ERRORS),
        Route("POST", "/v1/mmp", _signed_handler("mmp"),
              "Market maker protection for the account's options on one underlying (signed MmpConfig): past "
              "qtyLimit of maker fills within intervalMs, its option orders there are cancelled and new ones "
              "refused (mmp_frozen) for frozenMs", "trading", body="MmpConfigRequest", response="Ack",
              errors=_SIGNED_ERRORS + ("unknown_instrument",)),
        Route("POST", "/v1/orders/trigger", _signed_handler("trigger"),
              "Place a trigger order (stop-loss / take-profit) on a perpetual (signed TriggerOrder): untriggered, "
              "no margin reserved, until the mark reaches triggerPrice (at or above it if triggerAbove, else at or "
              "below); then its order is placed with the usual checks. Cancel it like an order, by its id",
              "trading", body="TriggerOrderRequest", response="Ack",
              errors=_SIGNED_ERRORS + ("unknown_instrument", "invalid_tick", "invalid_lot", "invalid_trigger",
                                       "too_many_orders", "duplicate_client_order_id", "insufficient_margin")),
        Route("POST", "/v1/orders/amend", _signed_handler("amend"), "Amend price and/or total size (signed Amend)",
              "trading", body="AmendRequest", response="Ack", errors=_ORDER_ERRORS + ("order_not_found",)),
        Route("POST", "/v1/session-keys", _signed_handler("session_key"),
              "Authorise a session key (signed SessionKey, by the account)", "accounts", body="SessionKeyRequest",
              response="Ack", errors=_SIGNED_ERRORS),
        Route("POST", "/v1/session-keys/revoke", _signed_handler("revoke_session_key"),
              "Revoke a session key (signed RevokeSessionKey)", "accounts", body="RevokeSessionKeyRequest",
              response="Ack", errors=_SIGNED_ERRORS),
        Route("GET", "/v1/orders", get_open_orders, "Open orders of an account", "trading",
              query=(("account", "address", True), ("instrument", "only this instrument", False)),
              errors=("invalid_address", "invalid_request", "unknown_instrument")),
        Route("GET", "/v1/orders/status", get_order,
              "One order of an account by order_id or client_order_id: open, untriggered, or ended (filled, "
              "cancelled, expired; the account's last ones are kept)", "trading",
              query=(("account", "address", True), ("order_id", "the venue's id", False),
                     ("client_order_id", "the client's id (the latest order with it)", False)),
              errors=("invalid_address", "invalid_request", "order_not_found")),
        Route("GET", "/v1/orders/history", get_order_history,
              "Ended orders of an account (filled, cancelled, expired), newest first", "trading",
              query=(("account", "address", True), ("instrument", "only this instrument", False),
                     ("limit", "1..1000, default 100", False)),
              errors=("invalid_address", "invalid_request", "unknown_instrument")),
        Route("GET", "/v1/fills", get_fills, "Fills of an account, newest first", "trading",
              query=(("account", "address", True), ("limit", "1..1000, default 100", False)),
              errors=("invalid_address", "invalid_request")),
        Route("GET", "/v1/positions/{address}", get_positions, "Open positions of an account", "accounts",
              errors=("invalid_address",)),
        Route("GET", "/v1/accounts/{address}/margin", get_margin,
              "Unified account: balance per chain, positions, margin requirements, free collateral", "accounts",
              response="AccountMargin", errors=("invalid_address",)),
        Route("GET", "/v1/ws", ws.ws_handler,
              "WebSocket: public book/trades, private orders/fills/account (after auth), order entry", "websocket",
              response="WebSocket"),
    ]


ROUTES: list[Route] = []


def add_trading_routes(app: web.Application, service: SequencerService,
                       options: TradingOptions | None = None) -> None:
    """Register the trading routes, the WebSocket and the service's lifecycle on ``app``."""
    from aggregator.api import ws

    opts = options or TradingOptions()
    app[SERVICE] = service
    app[OPTIONS] = opts
    app[LIMITS] = Limits(opts)
    if not ROUTES:
        ROUTES.extend(_routes())
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler)
    ws.setup(app, service)

    async def lifecycle(app: web.Application):
        started_here = not service.running
        if started_here:
            await service.start()
        yield
        await ws.shutdown(app)
        if started_here:
            await service.stop()

    app.cleanup_ctx.append(lifecycle)


def make_trading_app(service: SequencerService, options: TradingOptions | None = None) -> web.Application:
    """Return a stand-alone app (JSON errors + trading routes) around ``service``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1 << 20)
    add_trading_routes(app, service, options)
    return app

"""``OmniclearClient``: the REST verbs (ccxt names and result shapes) and signing.

One ``aiohttp.ClientSession`` per client, opened on first use and closed by ``close()``
(or ``async with``). ``_fetch`` is the only place that touches HTTP: aiohttp and timeout
errors become ``NetworkError`` subclasses there (``raise ... from e``) and error bodies
become the class of their stable code (``aggregator.client.errors``).

Signing: every message is an ``aggregator.eip712`` dataclass, hashed with the fast digest
and signed with eth-account's ``LocalAccount.unsafe_sign_hash`` (the digest is the full
EIP-712 ``0x1901`` hash, so this equals ``sign_typed_data``; a test pins it). Orders,
cancels, amends, trigger orders and the cancel-all-after switch are signed by the session key once ``authorize_session_key`` has run,
by the account key otherwise; session keys are granted and WebSocket logins signed by
the account key only. The domain is read from ``GET /v1/eip712`` and its separator
checked against the one computed locally.

Expiry: messages expire ``expiry_s`` seconds after ``clock_ms()`` (the wall clock unless
injected; a venue refuses an expiry more than its window ahead of *its* clock).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Self

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount

from aggregator import eip712
from aggregator.client import parse
from aggregator.client.errors import (
    AuthenticationError,
    BadRequest,
    BadResponse,
    BadSymbol,
    ExchangeNotAvailable,
    InvalidOrder,
    NetworkError,
    OmniclearError,
    RequestTimeout,
    error_for,
)
from aggregator.client.units import (
    QUOTE,
    QUOTE_DECIMALS,
    Human,
    Market,
    NonceGenerator,
    from_units,
    iso8601,
    market_from_info,
    to_units,
)

__all__ = ["OmniclearClient", "KeyLike", "MAX_BATCH"]

KeyLike = LocalAccount | str | bytes
MAX_BATCH = 50
_N = eip712.SECP256K1_N
_TIF = {"GTC": 1, "IOC": 2, "FOK": 3, "PO": 4}
_STP = {"cancel_resting": 1, "expire_maker": 1, "cancel_taking": 2, "expire_taker": 2, "cancel_both": 3,
        "expire_both": 3}
_SIDE = {"buy": 1, "sell": 2}
_TYPE = {"limit": 1, "market": 2}


def local_account(key: KeyLike) -> LocalAccount:
    """Return an eth-account ``LocalAccount`` for an account, a hex private key or 32 raw bytes."""
    if isinstance(key, LocalAccount):
        return key
    try:
        return Account.from_key(key)
    except (ValueError, TypeError) as e:
        raise AuthenticationError(f"not a private key: {type(key).__name__}") from e


def sign_digest(signer: LocalAccount, digest32: bytes) -> str:
    """Return ``0x`` + r||s||v (v 27/28, low-s as the venue and OpenZeppelin require) of ``digest32``."""
    sig = bytes(signer.unsafe_sign_hash(digest32).signature)
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    if v < 27:
        v += 27
    if s > _N // 2:
        s, v = _N - s, 55 - v  # the other valid signature of the same digest
    return "0x" + (r + s.to_bytes(32, "big") + bytes((v,))).hex()


class OmniclearClient:
    """Async Omniclear client with ccxt's unified verbs; see the package docstring for the design."""

    def __init__(self, url: str, account: KeyLike | None = None, *, address: str | None = None,
                 session_key: KeyLike | None = None, clock_ms: Callable[[], int] | None = None,
                 expiry_s: int = 600, timeout_s: float = 10.0, nonces: Callable[[], int] | None = None) -> None:
        import time

        self.url = url.rstrip("/")
        self._account = local_account(account) if account is not None else None
        if self._account is None and address is None:
            raise AuthenticationError("give an account key, or the account address with a session key")
        self.address = eip712.to_checksum_address(address) if address else self._account.address  # type: ignore
        if self._account is not None and self._account.address != self.address:
            raise AuthenticationError("address is not the account key's address")
        self._session_signer = local_account(session_key) if session_key is not None else None
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.expiry_s = expiry_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.nonce = nonces or NonceGenerator()
        self.markets: dict[str, dict[str, Any]] = {}
        self.markets_by_id: dict[str, Market] = {}
        self._by_symbol: dict[str, Market] = {}
        self._domain: eip712.Domain | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stream: Any = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the WebSocket (if any) and the HTTP session."""
        if self._stream is not None:
            await self._stream.close()
            self._stream = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        """Return the client's one ``ClientSession`` (opened on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    @property
    def session_key_address(self) -> str | None:
        """Return the address of the session key orders are signed with, if any."""
        return self._session_signer.address if self._session_signer else None

    # ---------------------------------------------------------------------- HTTP

    async def _fetch(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                     body: Any = None) -> Any:
        """Send one request; return its JSON or raise the error class of its code."""
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        headers = {"Content-Type": "application/json"} if data is not None else None
        try:
            async with self.session().request(method, self.url + path, params=params, data=data,
                                              headers=headers) as r:
                status, raw = r.status, await r.read()
        except TimeoutError as e:
            raise RequestTimeout(f"{method} {path} timed out after {self.timeout.total}s") from e
        except aiohttp.ClientConnectionError as e:
            raise ExchangeNotAvailable(f"{method} {path}: {e}") from e
        except aiohttp.ClientError as e:
            raise NetworkError(f"{method} {path}: {e}") from e
        try:
            js = json.loads(raw)
        except ValueError as e:
            cls = ExchangeNotAvailable if status >= 500 else BadResponse
            raise cls(f"{method} {path}: HTTP {status}, not JSON: {raw[:120]!r}", status=status) from e
        if status >= 400:
            raise error_for(js.get("error") if isinstance(js, dict) else js, status)
        return js

    async def domain(self) -> eip712.Domain:
        """Return the venue's EIP-712 domain (fetched once, separator checked)."""
        if self._domain is None:
            js = await self._fetch("GET", "/v1/eip712")
            d = js["domain"]
            dom = eip712.Domain(int(d["chainId"]), d["verifyingContract"], d.get("name", "Omniclear"),
                                d.get("version", "1"))
            if js.get("domainSeparator") and js["domainSeparator"].lower() != "0x" + dom.separator.hex():
                raise BadResponse(f"domain separator {js['domainSeparator']} does not match the domain {d}")
            self._domain = dom
        return self._domain

    def _account_key(self) -> LocalAccount:
        if self._account is None:
            raise AuthenticationError("this needs the account key (the client has only a session key)")
        return self._account

    def _trading_key(self) -> LocalAccount:
        return self._session_signer or self._account_key()

    def expiry(self, params: Mapping[str, Any] | None = None) -> int:
        """Return the expiry (Unix seconds) of a new message: ``params['expiry']`` or now + ``expiry_s``."""
        if params and params.get("expiry") is not None:
            return int(params["expiry"])
        return self.clock_ms() // 1000 + self.expiry_s

    async def _body(self, field: str, msg: Any, signer: LocalAccount) -> dict[str, Any]:
        dom = await self.domain()
        return {field: eip712.message_to_dict(msg), "signature": sign_digest(signer, eip712.digest(dom, msg))}

    async def _signed(self, path: str, field: str, msg: Any, signer: LocalAccount | None = None) -> dict[str, Any]:
        return await self._fetch("POST", path, body=await self._body(field, msg, signer or self._trading_key()))

    # ------------------------------------------------------------------- markets

    async def fetch_markets(self, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return every listed instrument as a ccxt market structure."""
        js = await self._fetch("GET", "/v1/markets")
        return [market_from_info(m).ccxt() for m in js["markets"]]

    async def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """Return ``{symbol: market}`` (cached; ``reload`` refetches)."""
        if self.markets and not reload:
            return self.markets
        js = await self._fetch("GET", "/v1/markets")
        ms = [market_from_info(m) for m in js["markets"]]
        self.markets_by_id = {m.id: m for m in ms}
        self._by_symbol = {m.symbol: m for m in ms}
        self.markets = {m.symbol: m.ccxt() for m in ms}
        return self.markets

    @property
    def symbols(self) -> list[str]:
        """Return the loaded symbols, sorted."""
        return sorted(self.markets)

    async def market(self, symbol: str) -> Market:
        """Return the market of a ccxt symbol or venue id (reloading once if unknown); else ``BadSymbol``."""
        for attempt in range(2):
            if not self.markets or attempt:
                await self.load_markets(reload=True)
            m = self._by_symbol.get(symbol) or self.markets_by_id.get(symbol)
            if m is not None:
                return m
        raise BadSymbol(f"unknown symbol {symbol!r}", code="unknown_instrument")

    # --------------------------------------------------------------- market data

    async def fetch_order_book(self, symbol: str, limit: int | None = None,
                               params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return ``{'bids', 'asks', 'timestamp', 'datetime', 'nonce'}``; ``nonce`` is the book's seq."""
        m = await self.market(symbol)
        js = await self._fetch("GET", f"/v1/markets/{m.id}/book", params={"depth": limit or 20})
        return {"symbol": m.symbol, "bids": parse.book_side(m, js["bids"]), "asks": parse.book_side(m, js["asks"]),
                "timestamp": js.get("ts_ms"), "datetime": None, "nonce": int(js["seq"]), "info": js}

    async def fetch_trades(self, symbol: str, since: int | None = None, limit: int | None = None,
                           params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return recent public trades, oldest first (``since``: ms timestamp, inclusive)."""
        m = await self.market(symbol)
        js = await self._fetch("GET", f"/v1/markets/{m.id}/trades", params={"limit": min(limit or 100, 1000)})
        trades = sorted((parse.public_trade(m, t) for t in js["trades"]), key=_trade_key)
        return [t for t in trades if since is None or (t["timestamp"] or 0) >= since]

    async def _tickers(self, symbols: list[str] | None) -> list[tuple[Market, dict[str, Any]]]:
        js = await self._fetch("GET", "/v1/tickers")
        wanted = {(await self.market(s)).id for s in symbols} if symbols else None
        out = []
        for t in js["tickers"]:
            if wanted is None or t["instrument"] in wanted:
                out.append((await self.market(t["instrument"]), t))
        return out

    async def _ticker_of(self, symbol: str, kind: str | None = None) -> tuple[Market, dict[str, Any]]:
        """Return (market, its ``GET /v1/markets/{id}/ticker``); ``BadSymbol`` unless of ``kind`` (if given)."""
        m = await self.market(symbol)
        if kind is not None and m.kind != kind:
            raise BadSymbol(f"{symbol} is a {m.kind}, not a {kind} market", code="invalid_request")
        return m, await self._fetch("GET", f"/v1/markets/{m.id}/ticker")

    async def fetch_ticker(self, symbol: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the ccxt ticker: best bid/ask with sizes, last, mark, index, 24-hour figures (by the minute)."""
        return parse.ticker(*await self._ticker_of(symbol))

    async def fetch_tickers(self, symbols: list[str] | None = None,
                            params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Return ``{symbol: ticker}`` of every listed instrument (or of ``symbols``), from one request."""
        return {m.symbol: parse.ticker(m, t) for m, t in await self._tickers(symbols)}

    async def fetch_funding_rate(self, symbol: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return a perpetual's ccxt funding rate: ``fundingRate`` is the rate the next funding would charge
        now, ``previousFundingRate`` the last one charged; ``BadSymbol`` for an option."""
        return parse.funding_rate(*await self._ticker_of(symbol, "perpetual"))

    async def fetch_funding_rates(self, symbols: list[str] | None = None,
                                  params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Return ``{symbol: funding rate}`` of every perpetual (or of ``symbols``)."""
        return {m.symbol: parse.funding_rate(m, t) for m, t in await self._tickers(symbols) if m.kind == "perpetual"}

    async def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None,
                          limit: int | None = None, params: Mapping[str, Any] | None = None) -> list[list[Any]]:
        """Return ``[[ms, open, high, low, close, volume], ...]`` of the last 24 hours, oldest first
        (timeframes 1m, 5m, 15m, 1h; minutes without a trade have no candle)."""
        m = await self.market(symbol)
        js = await self._fetch("GET", f"/v1/markets/{m.id}/candles",
                               params={"interval": timeframe, "limit": str(min(limit or 1440, 1440))})
        return [[int(t), m.price(o), m.price(h), m.price(lo), m.price(c), m.amount(v)]
                for t, o, h, lo, c, v in js["candles"] if since is None or int(t) >= since]

    async def fetch_funding_rate_history(self, symbol: str, since: int | None = None, limit: int | None = None,
                                         params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return a perpetual's funding rates charged, oldest first (ccxt funding rate history)."""
        m = await self.market(symbol)
        js = await self._fetch("GET", f"/v1/markets/{m.id}/funding-history",
                               params={"limit": str(min(limit or 1000, 1000))})
        return [{"info": f, "symbol": m.symbol, "fundingRate": Decimal(int(f["rate_e8"])) / 10**8,
                 "timestamp": int(f["ts_ms"]), "datetime": iso8601(int(f["ts_ms"]))}
                for f in js["funding"] if since is None or int(f["ts_ms"]) >= since]

    async def fetch_greeks(self, symbol: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return an option's ccxt greeks (Black-76 on the mark's inputs, bid/ask implied vols); ``BadSymbol``
        for a perpetual."""
        return parse.greeks(*await self._ticker_of(symbol, "option"))

    async def fetch_all_greeks(self, symbols: list[str] | None = None,
                               params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Return ``{symbol: greeks}`` of every listed option (or of ``symbols``)."""
        return {m.symbol: parse.greeks(m, t) for m, t in await self._tickers(symbols) if m.kind == "option"}

    # ------------------------------------------------------------------- orders

    def _order_msg(self, m: Market, type_: str, side: str, amount: Human, price: Human | None,
                   params: Mapping[str, Any]) -> tuple[eip712.Order, int]:
        if type_ not in _TYPE:
            raise InvalidOrder(f"type must be 'limit' or 'market', got {type_!r}")
        if side not in _SIDE:
            raise InvalidOrder(f"side must be 'buy' or 'sell', got {side!r}")
        size = m.size_units(amount)
        if type_ == "limit":
            if price is None:
                raise InvalidOrder("a limit order needs a price")
            px = m.price_units(price)
        else:  # worst acceptable price, 0: the venue's protection band only
            px = 0 if price is None else m.price_units(price)
        tif_name = str(params.get("timeInForce") or ("IOC" if type_ == "market" else "GTC")).upper()
        if tif_name not in _TIF:
            raise InvalidOrder(f"timeInForce must be one of {sorted(_TIF)}, got {tif_name!r}")
        tif = _TIF[tif_name]
        if params.get("postOnly"):
            if tif in (2, 3) or type_ == "market":
                raise InvalidOrder("postOnly cannot be combined with a market, IOC or FOK order")
            tif = 4
        stp_raw = params.get("stp", params.get("selfTradePrevention", 1))
        stp = stp_raw if isinstance(stp_raw, int) and not isinstance(stp_raw, bool) else _STP.get(str(stp_raw))
        if stp not in (1, 2, 3):
            raise InvalidOrder(f"stp must be one of {sorted(_STP)} or 1..3, got {stp_raw!r}")
        coid = _client_order_id(params.get("clientOrderId"))
        try:
            msg = eip712.Order(self.address, m.id, _SIDE[side], _TYPE[type_], tif, stp,
                               bool(params.get("reduceOnly", False)), px, size, coid, self.nonce(),
                               self.expiry(params))
        except eip712.MessageError as e:
            raise InvalidOrder(str(e)) from e
        return msg, tif

    async def create_order(self, symbol: str, type: str, side: str, amount: Human, price: Human | None = None,
                           params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Sign and place one order; return its ccxt order (status open, closed or canceled).

        ``params``: ``timeInForce`` (GTC, IOC, FOK, PO), ``postOnly``, ``reduceOnly``,
        ``clientOrderId`` (uint64, int or decimal string), ``stp`` (cancel_resting,
        cancel_taking, cancel_both), ``expiry`` (Unix seconds). A refused order raises.

        Trigger orders (perpetuals; ccxt's unified params, one of): ``triggerPrice`` with
        ``triggerDirection`` ``"above"`` / ``"below"``; ``stopLossPrice`` (a sell fires at or
        below it, a buy at or above); ``takeProfitPrice`` (a sell fires at or above it, a buy
        at or below). The order is signed as a ``TriggerOrder`` (``POST /v1/orders/trigger``;
        ``stp`` does not apply: the default) and placed with the other params once the mark
        reaches the price; the result is open (untriggered) with ``triggerPrice`` set.
        ``cancel_order`` cancels it by its id.
        """
        params = params or {}
        m = await self.market(symbol)
        msg, tif = self._order_msg(m, type, side, amount, price, params)
        trigger = _trigger_params(side, params)
        if trigger is not None:
            px, above = trigger
            try:
                tmsg = eip712.TriggerOrder(msg.account, msg.instrument, msg.side, msg.order_type, msg.time_in_force,
                                           msg.reduce_only, m.price_units(px, "trigger price"), above, msg.price,
                                           msg.size, msg.client_order_id, msg.nonce, msg.expiry)
            except eip712.MessageError as e:
                raise InvalidOrder(str(e)) from e
            ack = await self._signed("/v1/orders/trigger", "trigger", tmsg)
            return parse.order_from_result(m, ack["result"], ack, side=side, type_=type, tif=tif,
                                           reduce_only=msg.reduce_only)
        ack = await self._signed("/v1/orders", "order", msg)
        return parse.order_from_result(m, ack["result"], ack, side=side, type_=type, tif=tif,
                                       reduce_only=msg.reduce_only)

    async def create_orders(self, orders: Iterable[Mapping[str, Any]],
                            params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Place up to 50 orders in one request; return one ccxt order per item, in order.

        Each item is ``{'symbol', 'type', 'side', 'amount', 'price', 'params'}``. An item
        the client or the venue refuses comes back with ``status`` ``'rejected'``,
        ``info['error']`` and the exception under ``'error'``; the others are placed.
        """
        items = list(orders)
        if not 1 <= len(items) <= MAX_BATCH:
            raise BadRequest(f"create_orders takes 1 to {MAX_BATCH} orders, got {len(items)}")
        out: list[dict[str, Any] | None] = [None] * len(items)
        sent: list[tuple[int, Market, eip712.Order, int, Mapping[str, Any]]] = []
        bodies = []
        for i, it in enumerate(items):
            try:
                m = await self.market(str(it["symbol"]))
                msg, tif = self._order_msg(m, it["type"], it["side"], it["amount"], it.get("price"),
                                           it.get("params") or {})
            except OmniclearError as e:
                out[i] = _rejected(it, e, self._by_symbol.get(str(it.get("symbol"))))
                continue
            sent.append((i, m, msg, tif, it))
            bodies.append(await self._body("order", msg, self._trading_key()))
        if bodies:
            js = await self._fetch("POST", "/v1/orders/batch", body={"orders": bodies})
            results = js["results"]
            if len(results) != len(bodies):
                raise BadResponse(f"batch of {len(bodies)} answered {len(results)} results")
            for (i, m, msg, tif, it), res in zip(sent, results):
                if "error" in res:
                    e = error_for(res["error"], None)
                    out[i] = _rejected(it, e, m)
                else:
                    out[i] = parse.order_from_result(m, res["result"], res, side=it["side"], type_=it["type"],
                                                     tif=tif, reduce_only=msg.reduce_only)
        return out  # type: ignore[return-value]

    async def cancel_order(self, id: str | int | None, symbol: str | None = None,
                           params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Cancel one order by id (or by ``params['clientOrderId']``); return its ccxt order."""
        params = params or {}
        if symbol is None:
            raise BadRequest("cancel_order needs the symbol (a Cancel names its instrument)")
        m = await self.market(symbol)
        oid, coid = _ids(id, params)
        msg = eip712.Cancel(self.address, m.id, oid, coid, self.nonce(), self.expiry(params))
        ack = await self._signed("/v1/orders/cancel", "cancel", msg)
        return parse.order_from_result(m, ack["result"], ack)

    async def cancel_all_orders(self, symbol: str | None = None,
                                params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Cancel every open order (of one symbol, or all); return ``[{'id', 'status': 'canceled', ...}]``."""
        params = params or {}
        m = await self.market(symbol) if symbol is not None else None
        msg = eip712.CancelAll(self.address, m.id if m else "", self.nonce(), self.expiry(params))
        ack = await self._signed("/v1/orders/cancel-all", "cancelAll", msg)
        return [{"id": str(i), "status": "canceled", "symbol": m.symbol if m else None, "info": ack}
                for i in ack["result"]["cancelled"]]

    async def cancel_all_orders_after(self, timeout: int, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Dead man's switch (ccxt ``cancelAllOrdersAfter``): cancel every order ``timeout`` ms from now
        unless called again first; ``timeout`` 0 disarms. Return ``{'timeout', 'deadline', 'info'}``
        (``deadline``: the venue's ms timestamp, None when disarmed)."""
        params = params or {}
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise BadRequest(f"timeout must be an int (milliseconds), got {timeout!r}")
        try:
            msg = eip712.CancelAllAfter(self.address, timeout, self.nonce(), self.expiry(params))
        except eip712.MessageError as e:
            raise BadRequest(str(e)) from e
        ack = await self._signed("/v1/orders/cancel-all-after", "cancelAllAfter", msg)
        return {"timeout": timeout, "deadline": ack["result"]["deadline_ms"], "info": ack}

    async def set_mmp_config(self, underlying: str, interval_ms: int, frozen_ms: int, quantity_limit: Human | None,
                             params: Mapping[str, Any] | None = None, *,
                             delta_limit: Human | None = None) -> dict[str, Any]:
        """Market maker protection on ``underlying``'s options (as Deribit's ``set_mmp_config``): once
        maker fills total more than ``quantity_limit`` (in the underlying, e.g. ``"0.5"`` ETH) within
        ``interval_ms``, or their net delta (Black-76 delta times size, in the underlying, signed by
        side) is beyond ``delta_limit`` either way, the option orders there are cancelled and new ones
        refused (``InvalidOrder``, code ``mmp_frozen``) for ``frozen_ms`` (0: until the next call).
        A limit of None or 0 is off (at least one is needed); ``interval_ms`` 0 turns protection off."""
        params = params or {}
        await self.load_markets()
        m = next((m for m in self.markets_by_id.values() if m.base == underlying), None)
        if m is None:
            raise BadSymbol(f"no market on underlying {underlying!r}", code="unknown_instrument")

        def units(v: Human | None, what: str) -> int:
            return to_units(v, m.size_decimals, what=what, allow_zero=True) if interval_ms and v is not None else 0

        limit, dlimit = units(quantity_limit, "quantity_limit"), units(delta_limit, "delta_limit")
        try:
            msg = eip712.MmpConfig(self.address, underlying, interval_ms, frozen_ms, limit, self.nonce(),
                                   self.expiry(params), dlimit)
        except eip712.MessageError as e:
            raise BadRequest(str(e)) from e
        ack = await self._signed("/v1/mmp", "mmp", msg)
        return ack["result"] | {"info": ack}

    async def edit_order(self, id: str | int | None, symbol: str, type: str | None = None, side: str | None = None,
                         amount: Human | None = None, price: Human | None = None,
                         params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Amend an open order's price and/or total ``amount``; return its ccxt order."""
        params = params or {}
        m = await self.market(symbol)
        oid, coid = _ids(id, params)
        if amount is None and price is None:
            raise InvalidOrder("edit_order needs a new amount or a new price")
        size = m.size_units(amount) if amount is not None else 0
        px = m.price_units(price) if price is not None else 0
        msg = eip712.Amend(self.address, m.id, oid, coid, px, size, self.nonce(), self.expiry(params))
        ack = await self._signed("/v1/orders/amend", "amend", msg)
        return parse.order_from_result(m, ack["result"], ack, side=side, type_=type)

    async def fetch_open_orders(self, symbol: str | None = None, since: int | None = None,
                                limit: int | None = None,
                                params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's open orders (of one symbol, or all), oldest first."""
        q = {"account": self.address}
        if symbol is not None:
            q["instrument"] = (await self.market(symbol)).id
        js = await self._fetch("GET", "/v1/orders", params=q)
        out = []
        for o in js["orders"]:
            out.append(parse.order_from_open(await self.market(o["instrument"]), o))
        out.sort(key=lambda o: (o["timestamp"] or 0, int(o["id"])))
        out = [o for o in out if since is None or (o["timestamp"] or 0) >= since]
        return out[-limit:] if limit else out

    async def fetch_order(self, id: str | int | None, symbol: str | None = None,
                          params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return one of the account's orders by id (or ``params={"clientOrderId": ...}``): open, or ended
        (``closed``, ``canceled``, ``expired``) among the account's last ones the venue keeps;
        ``OrderNotFound`` otherwise."""
        oid, coid = _ids(id, params or {})
        q = {"account": self.address, **({"order_id": str(oid)} if oid else {"client_order_id": str(coid)})}
        js = await self._fetch("GET", "/v1/orders/status", params=q)
        o = js["order"]
        return parse.order_from_open(await self.market(o["instrument"]), o)

    async def _ended(self, symbol: str | None, since: int | None, limit: int | None,
                     statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        q = {"account": self.address, "limit": "1000"}
        if symbol is not None:
            q["instrument"] = (await self.market(symbol)).id
        js = await self._fetch("GET", "/v1/orders/history", params=q)
        out = [parse.order_from_open(await self.market(o["instrument"]), o) for o in js["orders"]
               if o["status"] in statuses]
        out.sort(key=lambda o: (o["timestamp"] or 0, int(o["id"])))
        out = [o for o in out if since is None or (o["timestamp"] or 0) >= since]
        return out[-limit:] if limit else out

    async def fetch_closed_orders(self, symbol: str | None = None, since: int | None = None,
                                  limit: int | None = None,
                                  params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's filled orders (status ``closed``), oldest first."""
        return await self._ended(symbol, since, limit, ("filled",))

    async def fetch_canceled_orders(self, symbol: str | None = None, since: int | None = None,
                                    limit: int | None = None,
                                    params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's cancelled and expired orders (partly filled ones included), oldest first."""
        return await self._ended(symbol, since, limit, ("cancelled", "expired"))

    async def fetch_orders(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                           params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's open and ended orders, oldest first."""
        out = await self._ended(symbol, since, None, ("filled", "cancelled", "expired"))
        out += await self.fetch_open_orders(symbol, since)
        out.sort(key=lambda o: (o["timestamp"] or 0, int(o["id"])))
        return out[-limit:] if limit else out

    async def fetch_my_trades(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                              params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's fills, oldest first (fee in USDC, ``takerOrMaker`` set)."""
        m = await self.market(symbol) if symbol is not None else None
        js = await self._fetch("GET", "/v1/fills", params={"account": self.address, "limit": min(limit or 1000, 1000)})
        out = []
        for f in js["fills"]:
            if m is not None and f["instrument"] != m.id:
                continue
            out.append(parse.trade_from_fill(m or await self.market(f["instrument"]), f))
        out.sort(key=_trade_key)
        out = [t for t in out if since is None or (t["timestamp"] or 0) >= since]
        return out[-limit:] if limit else out

    # ------------------------------------------------------------------ account

    async def _margin(self) -> dict[str, Any]:
        return await self._fetch("GET", f"/v1/accounts/{self.address}/margin")

    async def fetch_balance(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the unified USDC balance: total = equity, used = initial margin, free = free collateral.

        ``info`` is the raw margin view, with ``balances`` per chain id in internal units.
        """
        js = await self._margin()
        total = from_units(int(js.get("equity") or 0), QUOTE_DECIMALS)
        used = from_units(int(js.get("initial_margin") or 0), QUOTE_DECIMALS)
        free = from_units(int(js.get("free_collateral") or 0), QUOTE_DECIMALS) if "free_collateral" in js \
            else total - used
        return {QUOTE: {"free": free, "used": used, "total": total}, "free": {QUOTE: free},
                "used": {QUOTE: used}, "total": {QUOTE: total}, "timestamp": None, "datetime": None, "info": js}

    async def fetch_positions(self, symbols: list[str] | None = None,
                              params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the open positions as ccxt position structures (cross margin, one-way).

        The venue reports margin per account, not per position, so ``initialMargin`` and
        ``maintenanceMargin`` are None and the account's figures are in ``info``.
        """
        js = await self._margin()
        wanted = {(await self.market(s)).id for s in symbols} if symbols else None
        out = []
        for p in js.get("positions") or ():
            size = int(p["size"])
            if not size or (wanted is not None and p["instrument"] not in wanted):
                continue
            m = await self.market(p["instrument"])
            mark = int(p["mark"]) if p.get("mark") is not None else None
            out.append({
                "info": {**p, "account_initial_margin": js.get("initial_margin"),
                         "account_maintenance_margin": js.get("maintenance_margin")},
                "id": None, "symbol": m.symbol, "timestamp": None, "datetime": None, "side":
                "long" if size > 0 else "short", "contracts": m.amount(abs(size)), "contractSize": Decimal(1),
                "entryPrice": m.price(p["avg_entry"]), "markPrice": m.price(mark) if mark is not None else None,
                "notional": m.cost(mark, abs(size)) if mark is not None else None,
                "unrealizedPnl": from_units(int(p.get("unrealised_pnl") or 0), QUOTE_DECIMALS),
                "realizedPnl": from_units(int(p.get("realised_pnl") or 0), QUOTE_DECIMALS),
                "initialMargin": None, "maintenanceMargin": None, "collateral": None, "leverage": None,
                "liquidationPrice": m.price(p["liquidation_price"]) if p.get("liquidation_price") else None,
                "marginMode": "cross", "hedged": False, "percentage": None,
            })
        return out

    async def close_position(self, symbol: str, side: str | None = None,
                             params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Close the whole position in ``symbol`` (ccxt ``closePosition``): one reduce-only market
        order, IOC by default, within the venue's protection band (what the book cannot fill there
        expires). ``side`` (``"long"``/``"short"``), if given, must be the position's. Raise
        ``InvalidOrder`` if there is no position; the venue refuses it (``reduce_only_would_increase``)
        while reduce-only orders rest on the closing side: cancel them first."""
        p = dict(params or {})
        m = await self.market(symbol)
        js = await self._margin()
        size = next((int(x["size"]) for x in js.get("positions") or () if x["instrument"] == m.id), 0)
        if not size:
            raise InvalidOrder(f"no open position in {m.symbol}")
        held = "long" if size > 0 else "short"
        if side is not None and side != held:
            raise InvalidOrder(f"the position in {m.symbol} is {held}, not {side}")
        p["reduceOnly"] = True
        p.setdefault("timeInForce", "IOC")
        return await self.create_order(m.symbol, "market", "sell" if size > 0 else "buy", m.amount(abs(size)), None, p)

    # -------------------------------------------------------------- withdrawals

    async def _withdrawal_chains(self) -> list[dict[str, Any]]:
        return (await self._fetch("GET", "/v1/settlement-chains"))["chains"]

    async def fetch_currencies(self, params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """Return the collateral currency with one ccxt network per settlement chain (by name, else id)."""
        networks = {}
        for c in await self._withdrawal_chains():
            name = c.get("name") or str(c["chain_id"])
            networks[name] = {"id": str(c["chain_id"]), "network": name, "active": True, "deposit": True,
                              "withdraw": not c["withdrawals_halted"], "fee": Decimal(0),
                              "precision": from_units(1, QUOTE_DECIMALS), "info": c}
        return {QUOTE: {"id": QUOTE, "code": QUOTE, "name": "USD Coin", "active": True, "deposit": True,
                        "withdraw": any(n["withdraw"] for n in networks.values()), "fee": Decimal(0),
                        "precision": from_units(1, QUOTE_DECIMALS), "networks": networks, "info": None}}

    async def withdraw(self, code: str, amount: Human, address: str, tag: str | None = None,
                       params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Withdraw ``amount`` USDC to ``address`` on the chain ``params['network']`` (name or chain id).

        Signed by the account key (a session key never withdraws). The amount is exact:
        more than 6 decimals is refused, never rounded; the signed ``amount`` is in the
        destination token's native units. Return the ccxt transaction (status ``pending``
        until the batch that pays it is applied: poll ``fetch_withdrawal``).
        """
        if code != QUOTE:
            raise BadRequest(f"only {QUOTE} can be withdrawn, not {code!r}")
        network = (params or {}).get("network")
        if network is None:
            raise BadRequest("withdraw needs params={'network': <chain name or id>}")
        chains = await self._withdrawal_chains()
        chain = next((c for c in chains if str(network) in (str(c["chain_id"]), c.get("name"))), None)
        if chain is None:
            known = ", ".join(c.get("name") or str(c["chain_id"]) for c in chains)
            raise BadRequest(f"unknown network {network!r}: the venue settles on {known}")
        token = (params or {}).get("token") or chain.get("token")
        if token is None:
            raise BadRequest(f"the venue publishes no token for chain {chain['chain_id']}: pass params['token']")
        units = to_units(amount, QUOTE_DECIMALS, what="amount")
        native = units * 10 ** (int(chain["token_decimals"]) - QUOTE_DECIMALS)
        msg = eip712.Withdrawal(self.address, eip712.to_checksum_address(token), native, int(chain["chain_id"]),
                                eip712.to_checksum_address(address), self.nonce(), self.expiry(params))
        ack = await self._signed("/v1/withdrawals", "withdrawal", msg, self._account_key())
        return self._transaction(ack["result"], chains)

    async def fetch_withdrawal(self, id: str, code: str | None = None,
                               params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return one withdrawal as a ccxt transaction (``txid`` once paid, ``comment`` the reason if failed)."""
        js = await self._fetch("GET", f"/v1/withdrawals/{id}")
        return self._transaction(js, await self._withdrawal_chains())

    async def fetch_withdrawals(self, code: str | None = None, since: int | None = None, limit: int | None = None,
                                params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's withdrawals, oldest first."""
        js = await self._fetch("GET", "/v1/withdrawals", params={"account": self.address})
        chains = await self._withdrawal_chains()
        out = [self._transaction(w, chains) for w in js["withdrawals"]]
        out = [t for t in out if since is None or t["timestamp"] >= since]
        return out[-limit:] if limit else out

    @staticmethod
    def _transaction(w: Mapping[str, Any], chains: list[dict[str, Any]]) -> dict[str, Any]:
        names = {c["chain_id"]: c.get("name") or str(c["chain_id"]) for c in chains}
        status = {"reserved": "pending", "batched": "pending", "paid": "ok", "failed": "failed"}.get(w["status"],
                                                                                                  w["status"])
        return {"info": dict(w), "id": w["withdrawal_id"], "txid": w.get("tx_hash"), "type": "withdrawal",
                "timestamp": w["ts_ms"], "datetime": iso8601(w["ts_ms"]), "network": names.get(w["chain_id"]),
                "address": w["recipient"], "addressFrom": w["account"], "addressTo": w["recipient"],
                "tag": None, "tagFrom": None, "tagTo": None, "currency": QUOTE,
                "amount": from_units(int(w["amount"]), QUOTE_DECIMALS), "status": status, "updated": None,
                "comment": w.get("reason"), "internal": False, "fee": {"currency": QUOTE, "cost": Decimal(0)}}

    # ------------------------------------------------------------- session keys

    async def authorize_session_key(self, session_key: KeyLike | None = None, valid_for_s: int = 86_400,
                                    params: Mapping[str, Any] | None = None) -> str:
        """Grant a session key (a new random one if None) with the account key; sign orders with it from now on.

        Return the session key's address.
        """
        key = local_account(session_key) if session_key is not None else Account.create()
        valid_until = self.clock_ms() // 1000 + valid_for_s
        msg = eip712.SessionKey(self.address, key.address, valid_until, self.nonce(), self.expiry(params))
        await self._signed("/v1/session-keys", "sessionKey", msg, self._account_key())
        self._session_signer = key
        return key.address

    async def revoke_session_key(self, session_key: str | None = None,
                                 params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Revoke a session key (the current one if None); orders are then signed by the account key."""
        addr = session_key or self.session_key_address
        if addr is None:
            raise BadRequest("no session key to revoke")
        msg = eip712.RevokeSessionKey(self.address, eip712.to_checksum_address(addr), self.nonce(),
                                      self.expiry(params))
        signer = self._account or self._session_signer
        ack = await self._signed("/v1/session-keys/revoke", "revoke", msg, signer)
        if self._session_signer is not None and self._session_signer.address == msg.session_key:
            self._session_signer = None
        return ack

    # ---------------------------------------------------------------- WebSocket

    def _ws(self) -> Any:
        if self._stream is None:
            from aggregator.client.stream import Stream

            self._stream = Stream(self)
        return self._stream

    async def watch_order_book(self, symbol: str, limit: int | None = None,
                               params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the book after its next change not yet returned (first call: the snapshot)."""
        return await self._ws().watch_order_book(symbol, limit)

    async def watch_trades(self, symbol: str, since: int | None = None, limit: int | None = None,
                           params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the public trades received since the previous call (waiting for one)."""
        return await self._ws().watch_trades(symbol, limit)

    async def watch_ticker(self, symbol: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the ccxt ticker of ``symbol`` when a newer one arrives (the first call: the current one)."""
        return await self._ws().watch_ticker(symbol)

    async def watch_orders(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                           params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's order updates received since the previous call (private, signed login)."""
        return await self._ws().watch_orders(symbol, limit)

    async def watch_my_trades(self, symbol: str | None = None, since: int | None = None, limit: int | None = None,
                              params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return the account's fills received since the previous call (private, signed login)."""
        return await self._ws().watch_my_trades(symbol, limit)


def _trigger_params(side: str, params: Mapping[str, Any]) -> tuple[Any, bool] | None:
    """Return (trigger price, above) from ccxt's trigger params, None for a plain order."""
    given = [k for k in ("triggerPrice", "stopLossPrice", "takeProfitPrice") if params.get(k) is not None]
    if not given:
        return None
    if len(given) > 1:
        raise InvalidOrder(f"give one of triggerPrice, stopLossPrice and takeProfitPrice, got {given}")
    k = given[0]
    if k == "triggerPrice":
        d = str(params.get("triggerDirection") or "").lower()
        if d not in ("above", "below"):
            raise InvalidOrder(f"triggerPrice needs triggerDirection 'above' or 'below', got {d or None!r}")
        return params[k], d == "above"
    buy = side == "buy"
    return params[k], buy if k == "stopLossPrice" else not buy


def _trade_key(t: Mapping[str, Any]) -> tuple[int, int, str]:
    info = t["info"]
    return (t["timestamp"] or 0, int(info.get("seq") or 0), t["id"])


def _client_order_id(raw: Any) -> int:
    if raw is None or raw == "":
        return 0
    if isinstance(raw, bool) or not (isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit())):
        raise InvalidOrder(f"clientOrderId must be a uint64 (int or decimal string), got {raw!r}")
    n = int(raw)
    if not 0 < n < 2**64:
        raise InvalidOrder(f"clientOrderId must be 1..2^64-1, got {n}")
    return n


def _ids(id_: str | int | None, params: Mapping[str, Any]) -> tuple[int, int]:
    coid = _client_order_id(params.get("clientOrderId"))
    try:
        oid = 0 if id_ is None else int(id_)
    except ValueError:
        raise InvalidOrder(f"order id must be an integer, got {id_!r}") from None
    if (oid == 0) == (coid == 0):
        raise InvalidOrder("give exactly one of the order id and params['clientOrderId']")
    return oid, coid


def _rejected(item: Mapping[str, Any], e: OmniclearError, m: Market | None) -> dict[str, Any]:
    p = item.get("params") or {}
    return {"id": None, "clientOrderId": str(p["clientOrderId"]) if p.get("clientOrderId") else None,
            "status": "rejected", "symbol": m.symbol if m else item.get("symbol"), "type": item.get("type"),
            "side": item.get("side"), "amount": item.get("amount"), "price": item.get("price"),
            "filled": Decimal(0), "remaining": Decimal(0), "trades": [], "fee": None,
            "info": {"error": {"code": e.code, "message": e.message}}, "error": e}

"""Turn the API's integer JSON into ccxt result structures (pure functions, ``Decimal`` values)."""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Any

from aggregator.client.units import QUOTE, QUOTE_DECIMALS, Market, from_units, iso8601

__all__ = ["STATUS", "SIDE", "TIF", "order_from_result", "order_from_open", "trade_from_fill",
           "public_trade", "book_side", "average", "ticker", "funding_rate", "greeks"]

STATUS = {"open": "open", "partially_filled": "open", "untriggered": "open", "filled": "closed", "cancelled": "canceled",
          "canceled": "canceled", "expired": "expired", "rejected": "rejected", "triggered": "closed"}
SIDE = {1: "buy", 2: "sell", "buy": "buy", "sell": "sell"}
TIF = {1: "GTC", 2: "IOC", 3: "FOK", 4: "PO"}
_AVG = Context(prec=28)


def _fee(n: int | str | None) -> dict[str, Any] | None:
    return None if n is None else {"cost": from_units(n, QUOTE_DECIMALS), "currency": QUOTE}


def average(market: Market, fills: list[tuple[int, int]]) -> Decimal | None:
    """Return the size-weighted average price of ``(price, size)`` fills (28 digits; display only)."""
    size = sum(s for _, s in fills)
    if not size:
        return None
    return _AVG.divide(Decimal(sum(p * s for p, s in fills)), Decimal(size * 10**QUOTE_DECIMALS))


def _order(market: Market, *, id_: Any, coid: int | None, status: str, side: str | None, type_: str | None,
           tif: int | None, reduce_only: bool | None, price: int | None, size: int | None, filled: int,
           remaining: int, fills: list[tuple[int, int]], fee: int | None, ts_ms: int | None,
           trades: list[dict[str, Any]], info: Any, trigger_price: int | None = None,
           value: int | None = None) -> dict[str, Any]:
    """``value``: the venue's sum of price * size of the fills (unscaled), when ``fills`` are not listed."""
    cost = sum((market.cost(p, s) for p, s in fills), Decimal(0)) if fills else None
    avg = average(market, fills)
    if value is not None and filled and not fills:
        cost = from_units(value, market.size_decimals + QUOTE_DECIMALS)
        avg = _AVG.divide(Decimal(value), Decimal(filled * 10**QUOTE_DECIMALS))
    return {
        "id": None if id_ is None else str(id_), "clientOrderId": str(coid) if coid else None,
        "timestamp": ts_ms, "datetime": iso8601(ts_ms), "lastTradeTimestamp": None,
        "status": STATUS.get(status, status), "symbol": market.symbol, "type": type_,
        "timeInForce": TIF.get(tif) if tif else None, "postOnly": tif == 4 if tif else None,
        "reduceOnly": reduce_only, "side": side,
        "price": market.price(price) if price else None,
        "triggerPrice": market.price(trigger_price) if trigger_price else None,
        "amount": market.amount(size) if size is not None else None,
        "filled": market.amount(filled), "remaining": market.amount(remaining),
        "cost": cost if cost is not None else Decimal(0), "average": avg,
        "trades": trades, "fee": _fee(fee), "fees": [_fee(fee)] if fee is not None else [], "info": info,
    }


def order_from_result(market: Market, result: dict[str, Any], info: Any, *, side: str | None = None,
                      type_: str | None = None, tif: int | None = None,
                      reduce_only: bool | None = None) -> dict[str, Any]:
    """Return the ccxt order of an ack's ``result`` (create, amend or cancel; a trigger order's has
    ``triggerPrice`` set, status open while untriggered)."""
    fills = [(int(f["price"]), int(f["size"])) for f in result.get("fills") or ()]
    oid = result.get("order_id")
    trades = [{
        "id": None, "order": str(oid), "info": f, "timestamp": None, "datetime": None, "symbol": market.symbol,
        "type": type_, "side": side, "takerOrMaker": "taker", "price": market.price(f["price"]),
        "amount": market.amount(f["size"]), "cost": market.cost(int(f["price"]), int(f["size"])),
        "fee": _fee(f.get("fee")),
    } for f in result.get("fills") or ()]
    size = result.get("size")
    return _order(market, id_=oid, coid=int(result.get("client_order_id") or 0), status=str(result.get("status")),
                  side=side, type_=type_, tif=tif, reduce_only=reduce_only,
                  price=int(result["price"]) if result.get("price") is not None else None,
                  size=int(size) if size is not None else None, filled=int(result.get("filled") or 0),
                  remaining=int(result.get("remaining") or 0), fills=fills,
                  fee=int(result["fee"]) if result.get("fee") is not None else None, ts_ms=None, trades=trades,
                  info=info, trigger_price=int(result["trigger_price"]) if result.get("trigger_price") else None)


def order_from_open(market: Market, o: dict[str, Any]) -> dict[str, Any]:
    """Return the ccxt order of one ``GET /v1/orders`` entry (an untriggered trigger order: ``triggerPrice``
    set, ``type`` its order's type, status open), or of an ended one (``GET /v1/orders/status`` or
    ``/history``: cost and average from ``filled_value``; a trigger that fired is ``closed``)."""
    tif = int(o.get("time_in_force") or 1)
    trigger = o.get("type") == "trigger"
    otype = str(o.get("order_type") or "limit")
    return _order(market, id_=o["order_id"], coid=int(o.get("client_order_id") or 0), status=str(o["status"]),
                  side=SIDE.get(o.get("side")), type_=otype if trigger or otype != "trigger" else "limit",
                  tif=tif, reduce_only=bool(o.get("reduce_only")),
                  price=int(o["price"]), size=int(o["size"]), filled=int(o["filled"]), remaining=int(o["remaining"]),
                  fills=[], fee=None, ts_ms=o.get("ts_ms"), trades=[], info=o,
                  trigger_price=int(o["trigger_price"]) if trigger else None,
                  value=int(o["filled_value"]) if o.get("filled_value") is not None else None)


def trade_id(seq: Any, maker_order_id: Any) -> str:
    """Return a trade's id: one command (``seq``) fills each maker order at most once."""
    return f"{seq}-{maker_order_id}"


def trade_from_fill(market: Market, f: dict[str, Any]) -> dict[str, Any]:
    """Return the ccxt trade of one ``GET /v1/fills`` entry (the account's own fill)."""
    price, size = int(f["price"]), int(f["size"])
    ts = f.get("ts_ms")
    return {"id": trade_id(f.get("seq"), f.get("maker_order_id")), "order": str(f.get("order_id")), "info": f,
            "timestamp": ts, "datetime": iso8601(ts), "symbol": market.symbol, "type": None,
            "side": SIDE.get(f.get("side")), "takerOrMaker": f.get("liquidity"), "price": market.price(price),
            "amount": market.amount(size), "cost": market.cost(price, size), "fee": _fee(f.get("fee"))}


def public_trade(market: Market, t: dict[str, Any]) -> dict[str, Any]:
    """Return the ccxt trade of a public trade (REST or WebSocket ``trades``)."""
    price, size = int(t["price"]), int(t["size"])
    ts = t.get("ts_ms")
    return {"id": trade_id(t.get("seq"), t.get("maker_order_id")), "order": None, "info": t, "timestamp": ts,
            "datetime": iso8601(ts), "symbol": market.symbol, "type": None, "side": SIDE.get(t.get("taker_side")),
            "takerOrMaker": None, "price": market.price(price), "amount": market.amount(size),
            "cost": market.cost(price, size), "fee": None}


def book_side(market: Market, levels: Any, limit: int | None = None) -> list[list[Decimal]]:
    """Return ``[[price, amount], ...]`` of integer ``[price, size]`` levels (already in book order)."""
    out = [[market.price(p), market.amount(s)] for p, s in levels]
    return out[:limit] if limit else out


def _px(market: Market, n: Any) -> Decimal | None:
    return None if n is None else market.price(n)


def ticker(market: Market, t: dict[str, Any]) -> dict[str, Any]:
    """Return the ccxt ticker of one ``GET /v1/markets/{id}/ticker`` answer (24-hour figures by the minute)."""
    day = t.get("day") or {}
    base = market.amount(day.get("volume") or 0)
    quote = from_units(day.get("quote_volume") or 0, QUOTE_DECIMALS)
    open_, close = _px(market, day.get("open")), _px(market, day.get("close"))
    change = close - open_ if open_ is not None and close is not None else None
    return {
        "symbol": market.symbol, "timestamp": t.get("ts_ms"), "datetime": iso8601(t.get("ts_ms")),
        "high": _px(market, day.get("high")), "low": _px(market, day.get("low")),
        "bid": _px(market, t.get("best_bid")),
        "bidVolume": market.amount(t["best_bid_size"]) if t.get("best_bid_size") is not None else None,
        "ask": _px(market, t.get("best_ask")),
        "askVolume": market.amount(t["best_ask_size"]) if t.get("best_ask_size") is not None else None,
        "vwap": _AVG.divide(quote, base) if base else None, "open": open_, "close": close,
        "last": _px(market, t.get("last_price")), "previousClose": None, "change": change,
        "percentage": _AVG.divide(change * 100, open_) if change is not None and open_ else None,
        "average": (open_ + close) / 2 if change is not None else None,
        "baseVolume": base, "quoteVolume": quote,
        "markPrice": _px(market, t.get("mark")), "indexPrice": _px(market, t.get("index")), "info": t,
    }


_RATE = Decimal(10) ** -8


def funding_rate(market: Market, t: dict[str, Any]) -> dict[str, Any]:
    """Return the ccxt funding rate structure of a perp's ticker: ``fundingRate`` is what the next
    funding would charge now (predicted), ``previousFundingRate`` the last one charged."""
    nxt = t.get("next_funding_ms")
    interval = t.get("funding_interval_ms")
    prev_ts = nxt - interval if nxt is not None and interval else None
    hours = interval / 3_600_000 if interval else None
    return {
        "info": t, "symbol": market.symbol, "markPrice": _px(market, t.get("mark")),
        "indexPrice": _px(market, t.get("index")), "interestRate": Decimal(0), "estimatedSettlePrice": None,
        "timestamp": t.get("ts_ms"), "datetime": iso8601(t.get("ts_ms")),
        "fundingRate": Decimal(int(t.get("predicted_funding_rate_e8") or 0)) * _RATE,
        "fundingTimestamp": nxt, "fundingDatetime": iso8601(nxt),
        "nextFundingRate": None, "nextFundingTimestamp": None, "nextFundingDatetime": None,
        "previousFundingRate": Decimal(int(t.get("funding_rate_e8") or 0)) * _RATE,
        "previousFundingTimestamp": prev_ts, "previousFundingDatetime": iso8601(prev_ts),
        "interval": None if hours is None else (f"{hours:g}h" if hours >= 1 else f"{interval // 60_000}m"),
    }


def greeks(market: Market, t: dict[str, Any]) -> dict[str, Any]:
    """Return the ccxt greeks structure of an option's ticker (Black-76 on the mark's inputs)."""
    g = t.get("greeks") or {}
    return {
        "symbol": market.symbol, "timestamp": t.get("ts_ms"), "datetime": iso8601(t.get("ts_ms")),
        "delta": g.get("delta"), "gamma": g.get("gamma"), "theta": g.get("theta"), "vega": g.get("vega"),
        "rho": None,
        "bidSize": market.amount(t["best_bid_size"]) if t.get("best_bid_size") is not None else None,
        "askSize": market.amount(t["best_ask_size"]) if t.get("best_ask_size") is not None else None,
        "bidImpliedVolatility": t.get("bid_iv"), "askImpliedVolatility": t.get("ask_iv"),
        "markImpliedVolatility": t.get("mark_iv"),
        "bidPrice": _px(market, t.get("best_bid")), "askPrice": _px(market, t.get("best_ask")),
        "markPrice": _px(market, t.get("mark")), "lastPrice": _px(market, t.get("last_price")),
        "underlyingPrice": _px(market, t.get("index")), "info": t,
    }

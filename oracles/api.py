"""HTTP price API: ``GET /v1/prices`` and ``GET /v1/prices/{feed}``.

Every price is given twice, as a decimal string (``price``) and as the signed 8-decimal
integer (``priceE8``, a string so JavaScript clients lose nothing). ``report`` is the
last signed report of the feed (signatures, signers, digest, EIP-712 domain) or null.
Only ``status == "ok"`` means the price is current. Errors are
``{"error": {"code": ..., "message": ...}}``; an unknown feed is a 404.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from oracles.report import feed_id
from oracles.types import format_fixed

if TYPE_CHECKING:
    from oracles.service import OracleService

ORACLE_SERVICE: web.AppKey[Any] = web.AppKey("oracle_service", object)


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def feed_view(service: OracleService, feed: str) -> dict[str, Any]:
    """Return the API view of one feed (KeyError if unknown)."""
    agg, rep = service.latest(feed)
    view: dict[str, Any] = {
        "feed": feed,
        "feedId": "0x" + feed_id(feed).hex(),
        "decimals": 8,
        "price": None, "priceE8": None, "confidence": None, "confidenceE8": None,
        "status": "stale", "reason": "no evaluation yet", "marketStatus": None,
        "timestamp": None, "evaluatedMs": None,
        "report": rep.to_dict() if rep is not None else None,
    }
    if agg is not None:
        view.update({
            "status": agg.status.value, "reason": agg.reason, "marketStatus": agg.market_status.name.lower(),
            "evaluatedMs": agg.evaluated_ms,
            "timestamp": None if agg.timestamp_ms is None else agg.timestamp_ms // 1000,
        })
        if agg.price is not None:
            view.update({"price": format_fixed(agg.price), "priceE8": str(agg.price)})
        if agg.confidence is not None:
            view.update({"confidence": format_fixed(agg.confidence), "confidenceE8": str(agg.confidence)})
    return view


def add_price_routes(app: web.Application, service: OracleService) -> None:
    """Register ``GET /v1/prices`` and ``GET /v1/prices/{feed}`` on ``app``."""
    app[ORACLE_SERVICE] = service

    async def list_prices(request: web.Request) -> web.Response:
        svc = request.app[ORACLE_SERVICE]
        return web.json_response({"prices": [feed_view(svc, f) for f in svc.feeds]})

    async def one_price(request: web.Request) -> web.Response:
        svc = request.app[ORACLE_SERVICE]
        name = request.match_info["feed"]
        if name not in svc.feeds:
            return error(404, "unknown_feed", f"unknown feed {name!r}; known: {sorted(svc.feeds)}")
        return web.json_response(feed_view(svc, name))

    app.router.add_get("/v1/prices", list_prices)
    app.router.add_get("/v1/prices/{feed}", one_price)

"""OpenAPI 3.1 document of the trading API, generated from ``aggregator.api.trading.ROUTES``.

The route table is the single source: a route added there is registered *and*
described. The main service's other routes (ledger, oracle prices, health, metrics) are
described from ``SERVICE_ROUTES`` when they are registered on the app; the test
``test_openapi_describes_every_registered_route`` fails for any route registered on the
main service's app but missing here. Request schemas of signed messages are
generated from ``aggregator.eip712`` (the same field lists a wallet signs).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from aggregator import eip712

__all__ = ["openapi_document", "described_paths", "registered_paths", "SERVICE_ROUTES"]

# Routes of the main service that live outside the trading table (ledger, oracle, ops):
# (method, path, operationId, summary, tag, errors). Described when registered on the app.
SERVICE_ROUTES: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...] = (
    ("GET", "/health", "health", "Liveness", "meta", ()),
    ("GET", "/metrics", "metrics", "Prometheus text exposition", "meta", ()),
    ("GET", "/v1/accounts/{address}", "get_account",
     "Settled (on-chain) balance per chain and in total, as the ledger recorded the vault deposits", "accounts",
     ("invalid_address", "account_not_found")),
    ("GET", "/v1/chains", "get_chains",
     "Per-chain custody as the ledger sees it, with the latest reconciliation and the withdrawal halt flag",
     "chains", ()),
    ("POST", "/v1/withdrawals", "post_withdrawal",
     "Withdraw to any chain (signed Withdrawal, by the account itself): reserved now, paid by the next batch",
     "settlement", ("invalid_request", "bad_signature", "unauthorized_signer", "nonce_reused", "expired",
                    "insufficient_free_collateral", "unknown_chain", "unknown_token", "withdrawals_halted",
                    "invalid_amount", "rate_limited", "unavailable")),
    ("GET", "/v1/withdrawals", "list_withdrawals", "Withdrawals of an account (query: account), oldest first",
     "settlement", ("invalid_address", "invalid_request")),
    ("GET", "/v1/withdrawals/{withdrawal_id}", "get_withdrawal",
     "One withdrawal: reserved, batched (batch number), paid (tx hash) or failed (reason)", "settlement", ("not_found",)),
    ("GET", "/v1/settlement-chains", "list_settlement_chains",
     "Chains a withdrawal may name: token address and decimals to sign, name, withdrawal halt", "settlement", ()),
    ("GET", "/v1/batches", "list_batches",
     "Settlement batches: hub tx, gas, message ids, per-batch and cumulative netting", "settlement", ()),
    ("GET", "/v1/prices", "list_prices", "Every oracle feed: price (8 decimals), confidence, status and reason",
     "market data", ()),
    ("GET", "/v1/prices/{feed}", "one_price", "One oracle feed with its latest signed report", "market data",
     ("unknown_feed",)),
)
_EXTRA_STATUS = {"account_not_found": 404, "unknown_feed": 404}

_ADDRESS = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
_UINT = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}],
         "description": "unsigned integer (< 2**64 in this API), as a JSON number or a decimal string"}
_SIG = {"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$", "description": "65 bytes r || s || v, v in {27, 28}"}


def _message_schema(cls: type) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for sol, _attr, typ in cls.FIELDS:
        if typ == "address":
            props[sol] = dict(_ADDRESS)
        elif typ == "string":
            props[sol] = {"type": "string"}
        elif typ == "bool":
            props[sol] = {"type": "boolean"}
        else:
            props[sol] = dict(_UINT, description=f"{typ}; " + _UINT["description"])
    return {"type": "object", "properties": props, "required": [s for s, _, _ in cls.FIELDS],
            "additionalProperties": False}


def _signed_request(field: str, msg: str) -> dict[str, Any]:
    return {"type": "object", "required": [field, "signature"], "additionalProperties": False,
            "properties": {field: {"$ref": f"#/components/schemas/{msg}"}, "signature": _SIG}}


def _schemas() -> dict[str, Any]:
    s: dict[str, Any] = {name: _message_schema(cls) for name, cls in eip712.MESSAGE_TYPES.items()}
    s.update({
        "OrderRequest": _signed_request("order", "Order"),
        "CancelRequest": _signed_request("cancel", "Cancel"),
        "CancelAllRequest": _signed_request("cancelAll", "CancelAll"),
        "CancelAllAfterRequest": _signed_request("cancelAllAfter", "CancelAllAfter"),
        "MmpConfigRequest": _signed_request("mmp", "MmpConfig"),
        "TriggerOrderRequest": _signed_request("trigger", "TriggerOrder"),
        "AmendRequest": _signed_request("amend", "Amend"),
        "SessionKeyRequest": _signed_request("sessionKey", "SessionKey"),
        "RevokeSessionKeyRequest": _signed_request("revoke", "RevokeSessionKey"),
        "OrderBatch": {"type": "object", "required": ["orders"], "additionalProperties": False,
                       "properties": {"orders": {"type": "array", "minItems": 1, "maxItems": 50,
                                                 "items": {"$ref": "#/components/schemas/OrderRequest"}}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "seq": {"type": "integer", "description": "present when the core rejected a "
                                                                     "sequenced (journalled) request"}}}}},
        "Ack": {"type": "object", "required": ["seq", "accepted", "result", "events"], "properties": {
            "seq": {"type": "integer"}, "accepted": {"type": "boolean"}, "code": {"type": ["string", "null"]},
            "message": {"type": "string"}, "result": {"type": "object"},
            "events": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}}}}}},
        "BatchAck": {"type": "object", "properties": {"results": {"type": "array", "items": {
            "oneOf": [{"$ref": "#/components/schemas/Ack"}, {"$ref": "#/components/schemas/Error"}]}}}},
        "Level": {"type": "array", "prefixItems": [{"type": "string", "description": "price, quote units"},
                                                   {"type": "string", "description": "size, size units"}]},
        "Book": {"type": "object", "properties": {
            "instrument": {"type": "string"},
            "seq": {"type": "integer", "description": "per-instrument book sequence, as in WebSocket deltas"},
            "bids": {"type": "array", "items": {"$ref": "#/components/schemas/Level"}},
            "asks": {"type": "array", "items": {"$ref": "#/components/schemas/Level"}}}},
        "Markets": {"type": "object", "properties": {"markets": {"type": "array", "items": {"type": "object"}}}},
        "Ticker": {"type": "object", "required": ["instrument", "ts_ms", "day"], "properties": {
            "instrument": {"type": "string"}, "ts_ms": {"type": "integer"},
            "best_bid": {"type": ["integer", "null"]}, "best_bid_size": {"type": ["integer", "null"]},
            "best_ask": {"type": ["integer", "null"]}, "best_ask_size": {"type": ["integer", "null"]},
            "last_price": {"type": ["integer", "null"]}, "mark": {"type": ["integer", "null"]},
            "index": {"type": ["integer", "null"]}, "open_interest": {"type": "integer"},
            "day": {"type": "object", "description": "24 hours to the minute: volume (size units), quote_volume "
                                                     "(1e-6 USDC), high, low, open, close (quote units), trades"},
            "funding_rate_e8": {"type": "integer"}, "next_funding_ms": {"type": ["integer", "null"]},
            "greeks": {"type": ["object", "null"], "description": "options: delta, gamma (per 1 USDC), vega "
                                                                   "(per vol point), theta (per day), in USDC"},
            "mark_iv": {"type": "number"}, "bid_iv": {"type": ["number", "null"]},
            "ask_iv": {"type": ["number", "null"]}}},
        "Tickers": {"type": "object", "properties": {"tickers": {"type": "array",
                                                                 "items": {"$ref": "#/components/schemas/Ticker"}}}},
        "AccountMargin": {"type": "object", "description": "balance per chain, positions, margin, free collateral"},
        "Eip712Schema": {"type": "object", "properties": {"domain": {"type": "object"}, "types": {"type": "object"},
                                                          "typeHashes": {"type": "object"}}},
        "Object": {"type": "object"},
        "WebSocket": {"type": "object", "description": "101 Switching Protocols; see aggregator/api/ws.py"},
    })
    return s


def _status_of(code: str) -> int:
    from aggregator.api.trading import status_of

    return _EXTRA_STATUS.get(code) or status_of(code)


def _error_responses(errors: tuple[str, ...]) -> dict[str, Any]:
    by_status: dict[int, list[str]] = {}
    for code in errors:
        by_status.setdefault(_status_of(code), []).append(code)
    return {str(st): {"description": "error codes: " + ", ".join(codes), "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for st, codes in sorted(by_status.items())}


def _path_params(path: str) -> list[dict[str, Any]]:
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"{(\w+)}", path)]


def registered_paths(app: web.Application) -> set[tuple[str, str]]:
    """Return ``{(METHOD, path)}`` registered on ``app`` (HEAD, which aiohttp adds to GET, left out)."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and route.method not in ("HEAD", "*"):
            out.add((route.method, path))
    return out


def openapi_document(app: web.Application | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every route in ``ROUTES``."""
    from aggregator.api.trading import ROUTES, _routes

    routes = ROUTES or _routes()
    paths: dict[str, Any] = {}
    for r in routes:
        params = _path_params(r.path)
        params += [{"name": n, "in": "query", "required": req, "description": d, "schema": {"type": "string"}}
                   for n, d, req in r.query]
        responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{r.response}"}}}}}
        responses.update(_error_responses(r.errors))
        op: dict[str, Any] = {"summary": r.summary, "tags": [r.tag], "operationId": r.handler.__name__,
                              "responses": responses}
        if params:
            op["parameters"] = params
        if r.body:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{r.body}"}}}}
        paths.setdefault(r.path, {})[r.method.lower()] = op
    registered = registered_paths(app) if app is not None else set()
    for method, path, op_id, summary, tag, errors in SERVICE_ROUTES:
        if (method, path) not in registered:
            continue
        op = {"summary": summary, "tags": [tag], "operationId": op_id,
              "responses": {"200": {"description": "OK"}, **_error_responses(errors)}}
        if _path_params(path):
            op["parameters"] = _path_params(path)
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Omniclear trading API", "version": "1",
                 "description": "Signed EIP-712 requests (see GET /v1/eip712); errors are "
                                "{\"error\": {\"code\", \"message\"}} with stable codes."},
        "paths": paths,
        "components": {"schemas": _schemas()},
    }


def described_paths(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """Return ``{(METHOD, path)}`` described by ``doc``."""
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}

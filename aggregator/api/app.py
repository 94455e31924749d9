"""App factory for the unified API (aiohttp): typed app keys, routes, JSON errors.

Read-only ledger routes so far:
- ``GET /health``
- ``GET /v1/accounts/{address}``: the account's settled balance on each chain and the total
  in the ledger's internal unit (400 for a malformed address, 404 for an unknown one).
- ``GET /v1/chains``: per-chain custody as the ledger sees it, with the latest reconciliation.
- ``GET /metrics``: Prometheus text exposition.
Amounts are decimal strings of integers (token units or internal units), never floats.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from eth_utils import is_hex_address, to_checksum_address

from aggregator.api.errors import BadRequest, NotFound, error_middleware
from aggregator.ledger import Ledger
from aggregator.metrics import Metrics

LEDGER = web.AppKey("ledger", Ledger)
RECONCILER = web.AppKey("reconciler", object)
METRICS = web.AppKey("metrics", Metrics)


def parse_address(raw: str) -> str:
    """Return the checksum form of ``raw``; BadRequest if it is not a 20-byte hex address."""
    if not isinstance(raw, str) or not is_hex_address(raw):
        raise BadRequest(f"not an address: {raw[:64]!r}", code="invalid_address")
    return to_checksum_address(raw)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def get_account(request: web.Request) -> web.Response:
    address = parse_address(request.match_info["address"])
    ledger = request.app[LEDGER]
    view = await asyncio.to_thread(ledger.account, address)
    if view is None:
        raise NotFound(f"no account {address}", code="account_not_found")
    return web.json_response({
        "address": view.address,
        "unit_decimals": ledger.settings.ledger.decimals,
        "total": str(view.total_internal),
        "balances": [
            {"chain": b.chain, "chain_id": b.chain_id, "token": b.token, "token_decimals": b.decimals,
             "native": str(b.native), "internal": str(b.internal)}
            for b in view.balances
        ],
    })


async def get_chains(request: web.Request) -> web.Response:
    ledger = request.app[LEDGER]
    rows = await asyncio.to_thread(ledger.custody)
    by_id = {c.chain_id: c for c in ledger.settings.chains}
    reconciler = request.app.get(RECONCILER)
    recon = getattr(reconciler, "latest", {})
    halted = getattr(reconciler, "halted", set())
    return web.json_response({
        "unit_decimals": ledger.settings.ledger.decimals,
        "chains": [
            {"name": r.chain, "chain_id": r.chain_id, "hub": by_id[r.chain_id].hub,
             "token_symbol": by_id[r.chain_id].token.symbol, "token_decimals": by_id[r.chain_id].token.decimals,
             "confirmations": by_id[r.chain_id].confirmations,
             "settled_native": str(r.native), "settled_internal": str(r.internal),
             "deposits": r.deposits, "accounts": r.accounts, "indexed_block": r.cursor_block,
             "withdrawals_halted": r.chain_id in halted,
             "reconciliation": recon[r.chain_id].to_json() if r.chain_id in recon else {"status": "unknown"}}
            for r in rows
        ],
    })


async def get_metrics(request: web.Request) -> web.Response:
    text = await asyncio.to_thread(request.app[METRICS].render)
    return web.Response(text=text, content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def make_app(ledger: Ledger, metrics: Metrics | None = None, reconciler: object | None = None) -> web.Application:
    """Build the API application over ``ledger``."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1 << 20)
    app[LEDGER] = ledger
    app[METRICS] = metrics or Metrics()
    if reconciler is not None:
        app[RECONCILER] = reconciler
    app.router.add_get("/health", health)
    app.router.add_get("/v1/accounts/{address}", get_account)
    app.router.add_get("/v1/chains", get_chains)
    app.router.add_get("/metrics", get_metrics)
    return app

"""Withdrawal routes: a signed ``Withdrawal`` in, its status out.

``POST /v1/withdrawals`` takes ``{"withdrawal": <EIP-712 Withdrawal>, "signature": "0x…"}``
(``amount`` in the destination token's native units; signed by the account itself, never
by a session key). The sequencer checks free collateral, reserves the amount (moving the
account's balance to the destination chain if needed) and the next batch pays it. The
answer is the acknowledgement (``result`` carries the withdrawal with its id) or the
error with its stable code: ``insufficient_free_collateral``, ``unknown_chain``,
``withdrawals_halted`` (reconciliation stopped the chain), ``nonce_reused``,
``bad_signature``, ``unauthorized_signer``, ``expired``, ``invalid_amount``,
``invalid_request``. Nothing is reserved when it is refused.

``GET /v1/withdrawals/{id}``: ``status`` is ``reserved`` (in the ledger, waiting for a
batch), ``batched`` (in batch ``batch_number``, on its way), ``paid`` (the vault paid it;
``tx_hash`` and ``block_number`` of the payment once the vault watcher has seen it),
``failed`` (its chain was halted before a batch took it: the amount is back in the
account, ``reason`` says why).
``GET /v1/withdrawals?account=0x…`` lists an account's withdrawals, oldest first.

``GET /v1/settlement-chains``: the chains a withdrawal may name, with the token address and
decimals to sign (``amount`` is in that token's native units), the chain's name where the
ledger knows it, and whether withdrawals there are halted.

``GET /v1/batches``: the settlement batches this process closed or submitted (number,
hub transaction, gas, message id per chain, withdrawals, and the batch's netting: gross
cross-chain obligations, bridged volume, efficiency in basis points), newest first, with
the cumulative netting report and each chain's last applied batch.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from aggregator.api.errors import ApiError
from aggregator.api.trading import LIMITS, SERVICE, _json, _service, account_query, process_signed, status_of
from aggregator.ledger import Ledger
from aggregator.sequencer_service import RequestError, parse_signed

__all__ = ["add_withdrawal_routes", "WITHDRAWAL_CODES"]

LEDGER = web.AppKey("withdrawal_ledger", Ledger)
BATCHER = web.AppKey("batcher", object)
WITHDRAWAL_CODES = ("insufficient_free_collateral", "unknown_chain", "withdrawals_halted", "invalid_amount")


async def post_withdrawal(request: web.Request) -> web.Response:
    svc = _service(request)
    limits = request.app[LIMITS]
    limits.check_ip(request)
    try:
        msg, sig = parse_signed("withdrawal", await request.read())
    except RequestError as e:
        raise ApiError(e.message, code=e.code, status=status_of(e.code)) from None
    status, out = await process_signed(svc, limits, "withdrawal", msg, sig)
    return _json(out, status)


async def _view(request: web.Request, w: dict) -> dict:
    if w.get("status") == "paid" and LEDGER in request.app:
        paid = await asyncio.to_thread(request.app[LEDGER].withdrawal_payment, w["withdrawal_id"])
        if paid is not None:
            w = {**w, "tx_hash": paid.tx_hash, "block_number": paid.block_number}
    return {k: (str(v) if k in ("amount", "native_amount") else v) for k, v in w.items()}


async def get_withdrawal(request: web.Request) -> web.Response:
    svc = _service(request)
    wid = request.match_info["withdrawal_id"]
    w = svc.sequencer.withdrawal(wid)
    if w is None:
        raise ApiError(f"no withdrawal {wid[:80]!r}", code="not_found", status=404)
    return _json(await _view(request, w))


async def list_withdrawals(request: web.Request) -> web.Response:
    svc = _service(request)
    account = account_query(request)
    return _json({"account": account,
                  "withdrawals": [await _view(request, w) for w in svc.sequencer.withdrawals(account)]})


async def list_settlement_chains(request: web.Request) -> web.Response:
    chains = _service(request).sequencer.withdrawal_chains()
    if LEDGER in request.app:
        names = {c.chain_id: c.name for c in request.app[LEDGER].settings.chains}
        chains = [{"name": names.get(c["chain_id"]), **c} for c in chains]
    return _json({"chains": chains})


async def list_batches(request: web.Request) -> web.Response:
    svc = _service(request)
    seq = svc.sequencer
    batcher = request.app.get(BATCHER)
    records = sorted(getattr(batcher, "records", {}).values(), key=lambda r: -r.number)[:200]
    return _json({
        "netting": seq.netting(),
        "last_applied": {str(c): seq.last_settled_batch(c) for c in seq.settlement_chains()},
        "batches": [{"number": r.number, "closed_at": r.closed_at, "submitted_at": r.submitted_at,
                     "tx_hash": r.tx_hash, "gas_used": r.gas_used, "withdrawals": r.withdrawals,
                     "message_ids": {str(k): v for k, v in r.message_ids.items()}, "netting": r.netting}
                    for r in records],
    })


def add_withdrawal_routes(app: web.Application, ledger: Ledger | None = None, batcher: object | None = None) -> None:
    """Register the withdrawal and batch routes (after ``add_trading_routes``, whose service they use)."""
    if SERVICE not in app:
        raise RuntimeError("add_trading_routes must run first")
    if ledger is not None:
        app[LEDGER] = ledger
    if batcher is not None:
        app[BATCHER] = batcher
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/settlement-chains", list_settlement_chains)
    app.router.add_post("/v1/withdrawals", post_withdrawal)
    app.router.add_get("/v1/withdrawals", list_withdrawals)
    app.router.add_get("/v1/withdrawals/{withdrawal_id}", get_withdrawal)

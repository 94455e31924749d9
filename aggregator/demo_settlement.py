"""The demo's settlement phase: withdrawals on other chains, batches, relay, payment.

Every trader signs an EIP-712 ``Withdrawal`` of part of its free collateral to a chain
where it never deposited (or, having deposited everywhere, to the one it holds least
on), plus one request beyond its free collateral that must be refused with
``insufficient_free_collateral`` and reserve nothing. The service's batcher nets the
batch and commits it on the hub; the relayer (its own process in ``aggregator demo``,
like in production) delivers every settlement and bridge message; the vaults apply the
batches, move the net imbalance through the token bridge and pay. The phase waits until
every withdrawal is ``paid`` and reads each recipient's token balance on the destination
chain: it must have grown by exactly the amount.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from web3 import Web3

from aggregator import eip712
from aggregator.demo_trading import TradingError, domain_of
from bridges.contracts import contract

_nonces = itertools.count(int(time.time() * 1_000_000) + 7_777)


@dataclass
class WithdrawalRun:
    id: str
    account: str
    chain_id: int
    amount_native: int
    requested_at: float
    paid_at: float | None = None
    tx_hash: str | None = None
    batch_number: int | None = None
    recipient_before: int = 0
    recipient_after: int = 0


@dataclass
class SettlementFigures:
    withdrawals: list[WithdrawalRun] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)


def _withdrawal(key: bytes, domain: eip712.Domain, account: str, token: str, amount: int, chain_id: int
                ) -> dict[str, Any]:
    msg = eip712.Withdrawal(account, token, amount, chain_id, account, next(_nonces), int(time.time()) + 600)
    return {"withdrawal": eip712.message_to_dict(msg), "signature": "0x" + eip712.sign(key, domain, msg).hex()}


def _destination(margin: dict[str, Any], chains: list[Any], rng: random.Random) -> Any:
    held = {int(c): int(v) for c, v in (margin.get("balances") or {}).items()}
    never = [c for c in chains if held.get(c.chain_id, 0) == 0]
    if never:
        return rng.choice(never)
    return min(chains, key=lambda c: (held.get(c.chain_id, 0), c.chain_id))


async def request_withdrawals(url: str, keys: list[bytes], chains: list[Any], rng: random.Random,
                              share: tuple[int, int] = (40, 90)) -> SettlementFigures:
    """Sign and send one withdrawal per trader (``share`` percent of its free collateral)."""
    figs = SettlementFigures()
    from eth_account import Account

    async with aiohttp.ClientSession() as session:
        domain = await domain_of(session, url)
        for key in keys:
            account = Account.from_key(key).address
            async with session.get(f"{url}/v1/accounts/{account}/margin") as r:
                margin = await r.json()
            free = int(margin.get("free_collateral") or 0)
            if free <= 0:
                continue
            dest = _destination(margin, chains, rng)
            scale = 10 ** (dest.token_decimals - 6)
            # Too much first (twice the equity: marks move between the read and the request,
            # so "free + 1" would not be reliably too much): refused, nothing reserved.
            too_much = 2 * int(margin.get("equity") or 0) + 10**6
            async with session.post(f"{url}/v1/withdrawals", json=_withdrawal(
                    key, domain, account, dest.token, too_much * scale, dest.chain_id)) as r:
                body = await r.json()
                code = (body.get("error") or {}).get("code", f"http {r.status}")
                figs.refused[code] = figs.refused.get(code, 0) + 1
            amount = free * rng.randint(*share) // 100 * scale
            w3 = Web3(Web3.HTTPProvider(dest.rpc_url))
            before = int(await asyncio.to_thread(contract(w3, "CollateralToken", dest.token).functions
                                                 .balanceOf(account).call))
            async with session.post(f"{url}/v1/withdrawals", json=_withdrawal(
                    key, domain, account, dest.token, amount, dest.chain_id)) as r:
                body = await r.json()
                if r.status != 200:
                    raise TradingError(f"withdrawal of {amount} on {dest.name} refused: {body}")
            wid = body["result"]["withdrawal_id"] if isinstance(body.get("result"), dict) else None
            if wid is None:
                raise TradingError(f"withdrawal acknowledged without an id: {body}")
            figs.withdrawals.append(WithdrawalRun(wid, account, dest.chain_id, amount, time.monotonic(),
                                                  recipient_before=before))
    return figs


async def wait_paid(url: str, figs: SettlementFigures, chains: dict[int, Any], timeout: float = 180.0) -> None:
    """Poll every withdrawal until ``paid``; then read each recipient's balance on its chain."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        pending = {w.id: w for w in figs.withdrawals}
        while pending:
            for wid, w in list(pending.items()):
                async with session.get(f"{url}/v1/withdrawals/{wid}") as r:
                    body = await r.json()
                if body.get("status") == "paid" and body.get("tx_hash"):
                    w.paid_at = time.monotonic()
                    w.tx_hash = body["tx_hash"]
                    w.batch_number = body.get("batch_number")
                    del pending[wid]
            if pending and time.monotonic() > deadline:
                states = {}
                for wid in pending:
                    async with session.get(f"{url}/v1/withdrawals/{wid}") as r:
                        states[wid[:10]] = (await r.json()).get("status")
                raise TimeoutError(f"{len(pending)} withdrawals not paid within {timeout:g}s: {states}")
            await asyncio.sleep(0.1)
    for w in figs.withdrawals:
        c = chains[w.chain_id]
        w3 = Web3(Web3.HTTPProvider(c.rpc_url))
        w.recipient_after = int(await asyncio.to_thread(contract(w3, "CollateralToken", c.token).functions
                                                        .balanceOf(w.account).call))

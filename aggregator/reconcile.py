"""Reconciliation: every vault's on-chain custody against the ledger, chain by chain.

The comparison is made *at the block the ledger has processed up to* (the deposit
watcher's cursor), reading the vault with ``eth_call`` at that block: deposits that are
still waiting for confirmations are in flight, not a mismatch, and nothing races.
Checked per chain:
- the vault's token holdings >= the vault's sum of settled balances (solvency). Tokens
  sent to the vault outside ``deposit`` are a *surplus*: reported, never a halt (anyone
  could otherwise stop withdrawals by sending a token unit to a vault);
- that sum == the ledger's settled total for the chain;
- every account's settled balance in the vault == its ledger balance on that chain.
A mismatch is logged with its figures, recorded as an alert, exposed by ``/v1/chains``
and ``/metrics``, and marks the chain halted: new withdrawals there are refused until an
operator has explained it (``clear_halt``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

from web3 import AsyncWeb3

from aggregator.deposits import CURSOR_NAME
from aggregator.devnet import ChainDeployment, Deployment
from aggregator.ledger import Ledger
from bridges.chain import ChainClient
from bridges.contracts import abi

log = logging.getLogger(__name__)


@dataclass
class ChainReconciliation:
    chain: str
    chain_id: int
    block: int | None
    vault_holdings: int = 0
    vault_settled: int = 0
    ledger_settled: int = 0
    accounts_checked: int = 0
    account_mismatches: list[tuple[str, int, int]] = field(default_factory=list)
    error: str | None = None
    checked_at: float = 0.0
    in_flight: int = 0  # bridge-ins minted to the vault for batches it has not applied yet (native)

    @property
    def status(self) -> str:
        if self.error or self.block is None:
            return "unknown"
        return "ok" if self.ok else "mismatch"

    @property
    def ok(self) -> bool:
        return (self.error is None and self.block is not None
                and self.vault_holdings >= self.vault_settled + self.in_flight
                and self.vault_settled == self.ledger_settled
                and not self.account_mismatches)

    @property
    def surplus(self) -> int:
        """Tokens the vault holds beyond every settled balance and in-flight bridge-in (donations)."""
        return self.vault_holdings - self.vault_settled - self.in_flight

    def to_json(self) -> dict:
        return {
            "status": self.status, "block": self.block, "vault_holdings": str(self.vault_holdings),
            "vault_settled": str(self.vault_settled), "ledger_settled": str(self.ledger_settled),
            "in_flight": str(self.in_flight), "surplus": str(self.surplus),
            "accounts_checked": self.accounts_checked,
            "account_mismatches": [{"account": a, "chain": str(c), "ledger": str(lv)}
                                   for a, c, lv in self.account_mismatches],
            "error": self.error,
        }


class Reconciler:
    """Compares each chain's vault with the ledger, once or continuously."""

    def __init__(self, ledger: Ledger, deployment: Deployment, clients: dict[int, ChainClient],
                 interval: float = 2.0,
                 on_halt: Callable[[int, bool, str], Awaitable[None]] | None = None) -> None:
        self.ledger = ledger
        self.deployment = deployment
        self.clients = clients
        self.interval = interval
        self.on_halt = on_halt  # (chain id, halted, reason): the sequencer journals the halt
        self.latest: dict[int, ChainReconciliation] = {}
        self.halted: set[int] = set()

    def _ledger_at_cursor(self, chain_id: int, attempts: int = 20) -> tuple[Any, dict[str, int]]:
        """Return the watcher's cursor and the ledger's balances as of that same cursor.

        The watcher commits credits and its cursor in one transaction, so balances read
        between two equal cursor reads belong to that cursor (a commit in between moves
        it, and the read is retried). This holds on any isolation level.
        """
        for _ in range(attempts):
            before = self.ledger.cursor(chain_id, CURSOR_NAME)
            balances = self.ledger.balances_on_chain(chain_id)
            after = self.ledger.cursor(chain_id, CURSOR_NAME)
            if before == after:
                return before, balances
        raise RuntimeError(f"chain {chain_id}: the ledger kept moving while it was read")

    async def check_chain(self, c: ChainDeployment) -> ChainReconciliation:
        try:
            cursor, ledger_balances = await asyncio.to_thread(self._ledger_at_cursor, c.chain_id)
        except RuntimeError as e:
            return ChainReconciliation(c.name, c.chain_id, None, checked_at=time.time(), error=str(e))
        rec = ChainReconciliation(c.name, c.chain_id, cursor.block_number if cursor else None, checked_at=time.time())
        if cursor is None:
            return rec
        w3: AsyncWeb3 = self.clients[c.chain_id].w3
        token = w3.eth.contract(address=AsyncWeb3.to_checksum_address(c.token), abi=abi("CollateralToken"))
        vault = w3.eth.contract(address=AsyncWeb3.to_checksum_address(c.vault), abi=abi("CollateralVault"))
        at = cursor.block_number
        try:
            rec.vault_holdings = int(await token.functions.balanceOf(c.vault).call(block_identifier=at))
            rec.vault_settled = int(await vault.functions.totalBalance(c.token).call(block_identifier=at))
            rec.ledger_settled = sum(ledger_balances.values())
            accounts = sorted(ledger_balances)
            onchain = await asyncio.gather(*(vault.functions.balanceOf(a, c.token).call(block_identifier=at)
                                             for a in accounts))
            rec.in_flight = await self._in_flight(w3, c, at)
        except Exception as e:  # the chain did not answer: unknown, not a mismatch
            rec.error = f"{type(e).__name__}: {e}"[:300]
            return rec
        rec.accounts_checked = len(accounts)
        rec.account_mismatches = [(a, int(v), ledger_balances[a]) for a, v in zip(accounts, onchain)
                                  if int(v) != ledger_balances[a]]
        return rec

    async def _in_flight(self, w3: AsyncWeb3, c: ChainDeployment, at: int) -> int:
        """Native tokens the bridge minted to the vault, at block ``at``, for batches the vault
        has not applied by then: they are on their way into settled balances."""
        if not getattr(c, "token_bridge", ""):
            return 0
        pending = await asyncio.to_thread(self.ledger.unapplied_bridge_ins, c.chain_id, at)
        if not pending:
            return 0
        bridge = w3.eth.contract(address=AsyncWeb3.to_checksum_address(c.token_bridge), abi=abi("TokenBridge"))
        got = await asyncio.gather(*(bridge.functions.received(n, src).call(block_identifier=at)
                                     for n, src in pending))
        return sum(int(g) for g in got) * 10 ** (c.token_decimals - 6)

    async def check_all(self) -> list[ChainReconciliation]:
        results = await asyncio.gather(*(self.check_chain(c) for c in self.deployment.chains))
        for r in results:
            self.latest[r.chain_id] = r
            if r.status == "mismatch" and r.chain_id not in self.halted:
                self.halted.add(r.chain_id)
                msg = (f"block {r.block}: vault holdings {r.vault_holdings}, vault settled {r.vault_settled}, "
                       f"ledger settled {r.ledger_settled}, {len(r.account_mismatches)} account mismatches "
                       f"{r.account_mismatches[:3]}; withdrawals on {r.chain} stopped")
                await asyncio.to_thread(self.ledger.alert, r.chain_id, "reconcile-mismatch", msg)
                if self.on_halt is not None:
                    await self.on_halt(r.chain_id, True, msg)
        return results

    async def clear_halt(self, chain_id: int) -> None:
        """Let withdrawals resume on a chain once an operator has explained the mismatch."""
        self.halted.discard(chain_id)
        if self.on_halt is not None:
            await self.on_halt(chain_id, False, "cleared by an operator")

    def withdrawals_allowed(self, chain_id: int) -> bool:
        return chain_id not in self.halted

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_all()
            except Exception:
                log.exception("reconciliation pass failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except asyncio.TimeoutError:
                pass

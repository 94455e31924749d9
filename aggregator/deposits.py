"""The vault watchers' sink, backed by the ledger.

``DepositSink`` turns a confirmed range of vault logs (``Deposit``, ``BatchApplied``,
``WithdrawalPaid``: ``bridges.events.VAULT_TOPICS``) into ledger changes; the ledger
writes them and the watcher cursor in one transaction, keyed by (chain id, deposit
nonce) and (chain id, batch number), so a re-scan, a restart or a second watcher
applies nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aggregator.ledger import Ledger
from bridges.events import decode_vault_log
from bridges.watcher import Cursor

CURSOR_NAME = "vault-deposits"


class DepositSink:
    """A ``WatchSink`` that applies vault logs to the ledger (deposits credit unified accounts)."""

    def __init__(self, ledger: Ledger, on_credit: Callable[[], None] | None = None) -> None:
        self.ledger = ledger
        self.on_credit = on_credit  # called after a commit that applied something

    def cursor(self, chain_id: int, name: str) -> Cursor | None:
        return self.ledger.cursor(chain_id, name)

    def block_hashes(self, chain_id: int, name: str, below_or_at: int, limit: int) -> list[tuple[int, str]]:
        return self.ledger.block_hashes(chain_id, name, below_or_at, limit)

    def rewind(self, chain_id: int, name: str, to: Cursor) -> None:
        self.ledger.rewind(chain_id, name, to)

    def alert(self, chain_id: int, kind: str, message: str) -> None:
        self.ledger.alert(chain_id, kind, message)

    def apply(self, chain_id: int, name: str, logs: Sequence[Any], cursor: Cursor,
              blocks: Sequence[tuple[int, str]]) -> int:
        events = [decode_vault_log(chain_id, lg) for lg in logs]
        n = len(self.ledger.apply_deposits(chain_id, events, name, cursor, blocks))
        if n and self.on_credit is not None:
            self.on_credit()
        return n

"""Adapter: a core ``Batch`` (``aggregator.core.batch``) as the hub's byte-exact encoding.

The core returns plain data so it stays free of the ABI codec; this module maps it onto
``bridges.messages`` (pure too): one ``ChainSettlement`` per settlement chain (the chain id
is the Mailbox domain), the ``BatchHeader`` chained to the previous batch hash, and the
hub's rules checked locally (``check_batch``) before anything is signed or sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.core.batch import Batch
from bridges import messages as M

__all__ = ["to_settlements", "to_header", "check"]


def to_settlements(batch: Batch) -> list[M.ChainSettlement]:
    """Return the batch's ``ChainSettlement`` list, ascending by domain (what ``submitBatch`` takes)."""
    out = []
    for c in batch.chains:
        out.append(M.ChainSettlement(
            domain=c.chain_id,
            batch_number=batch.number,
            deltas=tuple(M.AccountDelta(a, v) for a, v in c.deltas),
            withdrawals=tuple(M.Withdrawal(w.withdrawal_id, w.account, w.recipient, w.amount) for w in c.withdrawals),
            bridge_out=tuple(M.BridgeTransfer(d, v) for d, v in c.bridge_out),
            bridge_in=tuple(M.BridgeTransfer(d, v) for d, v in c.bridge_in),
        ))
    return out


def to_header(batch: Batch, prev_batch_hash: bytes, settlements: Sequence[M.ChainSettlement] | None = None
              ) -> M.BatchHeader:
    """Return the header of ``batch``; ``prev_batch_hash`` is the previous header's hash (zero before batch 1)."""
    s = to_settlements(batch) if settlements is None else settlements
    return M.BatchHeader(batch.number, prev_batch_hash, batch.state_root, batch.journal_hash, M.settlements_hash(s))


def check(batch: Batch, domains: Sequence[int] | None = None) -> list[M.ChainSettlement]:
    """Return the settlements after checking them with the hub's rules (``BatchRuleError`` otherwise).

    ``domains`` are the hub's registered domains (default: the batch's own chains).
    """
    s = to_settlements(batch)
    M.check_batch(batch.number, s, batch.domains if domains is None else domains)
    return s

"""Withdrawals in the pure core: the record the sequencer keeps, and where the money comes from.

Life of a withdrawal (``aggregator.core.sequencer``, commands ``Withdraw``, ``CloseBatch``,
``BatchSettled``)
    ``reserved``  the signed ``eip712.Withdrawal`` was accepted: the amount left the
                  account's ledger balance on the destination chain (moved there first from
                  its other chains if needed, see ``pull_to``);
    ``batched``   a ``CloseBatch`` put it into batch ``batch_number`` for that chain's vault;
    ``paid``      ``BatchSettled(chain, batch_number)``: the vault applied the batch, which
                  pays every withdrawal in it (the vault refuses an id twice).
    ``failed``    the ``CloseBatch`` that would have batched it found its chain halted
                  (``SetWithdrawalHalt``: reconciliation no longer agrees with the vault):
                  nothing is paid on a chain whose custody does not reconcile, so the amount
                  is credited back to the account's balance on that chain and ``reason``
                  says why; the trader may withdraw it again, elsewhere or later.
    A batched withdrawal never goes back: a vault applies a batch whole or not at all, and
    retries; only a ``reserved`` one can fail.

Identity
    ``withdrawal_id = hashStruct(Withdrawal)`` (the EIP-712 struct hash, 32 bytes): the same
    for every copy of the signed message and different for any other, independent of the
    domain; the nonce rule accepts one message at most once, so ids never repeat.

Units
    ``amount`` in the signed message is in the destination token's native units; the
    ledger and the batch use canonical units (1e-6 USD): ``amount = native / scale``, and a
    native amount that is not a whole canonical unit is refused (``invalid_amount``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["RESERVED", "BATCHED", "PAID", "FAILED", "WithdrawalRecord", "pull_to"]

RESERVED = "reserved"
BATCHED = "batched"
PAID = "paid"
FAILED = "failed"


class WithdrawalRecord:
    """One accepted withdrawal (mutable status; everything else fixed at acceptance)."""

    __slots__ = ("withdrawal_id", "account", "recipient", "chain_id", "token", "amount", "native_amount",
                 "nonce", "seq", "ts_ms", "moved", "status", "batch_number", "reason")

    def __init__(self, withdrawal_id: bytes, account: str, recipient: str, chain_id: int, token: str,
                 amount: int, native_amount: int, nonce: int, seq: int, ts_ms: int,
                 moved: tuple[tuple[int, int], ...]) -> None:
        self.withdrawal_id = withdrawal_id
        self.account = account
        self.recipient = recipient
        self.chain_id = chain_id
        self.token = token
        self.amount = amount  # canonical units
        self.native_amount = native_amount
        self.nonce = nonce
        self.seq = seq
        self.ts_ms = ts_ms
        self.moved = moved  # (from chain, amount) moved to chain_id to fund it
        self.status = RESERVED
        self.batch_number = 0
        self.reason = ""  # why it failed

    def to_dict(self) -> dict:
        """Return the JSON-able view (``/v1/withdrawals``)."""
        return {"withdrawal_id": "0x" + self.withdrawal_id.hex(), "account": self.account,
                "recipient": self.recipient, "chain_id": self.chain_id, "token": self.token,
                "amount": self.amount, "native_amount": self.native_amount, "nonce": self.nonce,
                "seq": self.seq, "ts_ms": self.ts_ms, "moved_from": [[c, a] for c, a in self.moved],
                "status": self.status, "batch_number": self.batch_number or None,
                "reason": getattr(self, "reason", "") or None}


def pull_to(balances: Mapping[int, int], dest: int, amount: int) -> tuple[tuple[int, int], ...]:
    """Return the moves ``(from chain, amount)`` that bring ``dest``'s balance up to ``amount``.

    Nothing moves if ``dest`` already holds ``amount``. Otherwise the shortfall is taken
    from the account's other chains with a positive balance, largest first (ties: lower
    chain id), so the fewest chains are touched. If the positive balances do not cover it
    (the account has a negative chain), what is missing is left for the batch to net
    (``batch.cover_negatives``); the caller has already checked the account's total.
    """
    have = balances.get(dest, 0)
    need = amount - max(have, 0)
    moves: list[tuple[int, int]] = []
    if need <= 0:
        return ()
    for c, v in sorted(((c, v) for c, v in balances.items() if c != dest and v > 0), key=lambda t: (-t[1], t[0])):
        take = min(v, need)
        moves.append((c, take))
        need -= take
        if not need:
            break
    return tuple(moves)

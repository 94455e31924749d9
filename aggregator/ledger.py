"""The ledger store: each vault's custody per account, as the chain has it, exactly once.

A unified account holds a settled balance per chain (native token units, exactly what
the vault on that chain holds for it). Its margin value is the sum over chains of each
balance in internal units, each rounded down (see ``aggregator.units``).

What moves a balance here is what moved it on-chain, read from the vault's logs:
``Deposit`` (credit), and ``BatchApplied`` (the batch's deltas and withdrawals for that
chain, taken from the ``settlement_body`` the batcher stored before submitting the
batch, and checked against the log's totals). ``WithdrawalPaid`` records the payment's
transaction.

Exactly once: ``ledger_deposit``'s primary key is (chain id, deposit nonce),
``settlement_applied``'s is (chain id, batch number). The logs of a block range and the
watcher cursor that covers them are written in one transaction; a replayed or re-scanned
log is recognised by its key and skipped, and a concurrent writer that wins the race
makes the loser retry and skip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from aggregator.config import Settings
from aggregator.models import (
    Account,
    Balance,
    ChainAlert,
    ChainBlock,
    ChainCursor,
    Deposit,
    SettlementApplied,
    SettlementBody,
    WithdrawalPayment,
    utcnow,
)
from aggregator.units import to_internal
from bridges.events import BatchAppliedEvent, DepositEvent, WithdrawalPaidEvent
from bridges.messages import decode_settlement, native_scale
from bridges.watcher import Cursor

log = logging.getLogger(__name__)

KEEP_BLOCK_HASHES = 512
VaultEvent = DepositEvent | BatchAppliedEvent | WithdrawalPaidEvent


@dataclass(frozen=True)
class ChainBalance:
    chain: str
    chain_id: int
    token: str
    native: int
    internal: int
    decimals: int


@dataclass(frozen=True)
class AccountView:
    address: str
    balances: tuple[ChainBalance, ...]

    @property
    def total_internal(self) -> int:
        return sum(b.internal for b in self.balances)


@dataclass(frozen=True)
class Custody:
    chain: str
    chain_id: int
    native: int
    internal: int
    deposits: int
    accounts: int
    cursor_block: int | None


def _chunks(items: Sequence, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class LedgerError(Exception):
    """The ledger refused an operation; the message says why."""


class Ledger:
    """Ledger operations over one database engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, settings: Settings, tokens: dict[int, str] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self._decimals = {c.chain_id: c.token.decimals for c in settings.chains}
        self._names = {c.chain_id: c.name for c in settings.chains}
        self.tokens = dict(tokens or {})  # chain id -> settlement token (needed to apply batches)

    def to_internal(self, chain_id: int, native: int) -> int:
        """Return ``native`` units of ``chain_id``'s token in internal units (rounded down)."""
        return to_internal(native, self._decimals[chain_id], self.settings.ledger.decimals)

    _to_internal = to_internal

    # --- writes --------------------------------------------------------------------

    def apply_deposits(
        self,
        chain_id: int,
        events: Sequence[VaultEvent],
        cursor_name: str,
        cursor: Cursor,
        blocks: Iterable[tuple[int, str]] = (),
    ) -> list[VaultEvent]:
        """Apply the vault ``events`` not applied before, and move the cursor, in one transaction.

        ``events`` are deposits, applied batches and paid withdrawals of ``chain_id`` (in
        log order). Return the events that were newly applied. ``blocks`` are (number,
        hash) pairs of processed blocks, kept for reorg walk-back.
        """
        if chain_id not in self._decimals:
            raise LedgerError(f"unknown chain id {chain_id}")
        blocks = list(blocks)
        for attempt in range(5):
            try:
                return self._apply_once(chain_id, events, cursor_name, cursor, blocks)
            except (IntegrityError, OperationalError) as e:
                # Another writer credited some of these (or held the lock) first: retry,
                # and the deposits it credited are then skipped by key.
                log.info("vault log batch on chain %d retried after %s", chain_id, type(e).__name__)
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    apply_vault_events = apply_deposits

    def _apply_once(self, chain_id, events, cursor_name, cursor, blocks) -> list[VaultEvent]:
        deposits = [e for e in events if isinstance(e, DepositEvent)]
        batches = [e for e in events if isinstance(e, BatchAppliedEvent)]
        paid = [e for e in events if isinstance(e, WithdrawalPaidEvent)]
        applied: list[VaultEvent] = []
        with Session(self.engine) as s, s.no_autoflush:
            seen: set[int] = set()
            nonces = [e.deposit_nonce for e in deposits]
            for part in _chunks(nonces):
                seen.update(s.exec(select(Deposit.deposit_nonce).where(
                    Deposit.chain_id == chain_id, Deposit.deposit_nonce.in_(part))).all())  # type: ignore[attr-defined]
            credited: list[DepositEvent] = []
            for e in deposits:
                if e.chain_id != chain_id:
                    raise LedgerError(f"deposit from chain {e.chain_id} in a batch for chain {chain_id}")
                if e.amount <= 0:
                    raise LedgerError(f"deposit {e.chain_id}/{e.deposit_nonce} has non-positive amount {e.amount}")
                if e.deposit_nonce not in seen:
                    seen.add(e.deposit_nonce)
                    credited.append(e)
            if credited:
                self._credit(s, chain_id, credited)
            applied.extend(credited)
            for b in sorted(batches, key=lambda b: b.batch_number):
                if s.get(SettlementApplied, (chain_id, b.batch_number)) is None:
                    self._apply_batch(s, chain_id, b)
                    applied.append(b)
            for p in paid:
                if s.get(WithdrawalPayment, p.withdrawal_id) is None:
                    s.add(WithdrawalPayment(withdrawal_id=p.withdrawal_id, chain_id=chain_id, account=p.account,
                                            recipient=p.recipient, amount_native=p.amount,
                                            block_number=p.block_number, tx_hash=p.tx_hash))
                    applied.append(p)
            row = s.get(ChainCursor, (chain_id, cursor_name))
            if row is None:
                s.add(ChainCursor(chain_id=chain_id, name=cursor_name, block_number=cursor.block_number,
                                  block_hash=cursor.block_hash))
            else:
                row.block_number, row.block_hash, row.updated_at = cursor.block_number, cursor.block_hash, utcnow()
                s.add(row)
            for number, h in blocks:
                s.merge(ChainBlock(chain_id=chain_id, name=cursor_name, number=number, hash=h))
            s.exec(delete(ChainBlock).where(  # type: ignore[call-overload]
                ChainBlock.chain_id == chain_id, ChainBlock.name == cursor_name,
                ChainBlock.number < cursor.block_number - KEEP_BLOCK_HASHES))
            s.commit()
        return applied

    def _apply_batch(self, s: Session, chain_id: int, ev: BatchAppliedEvent) -> None:
        """Apply one ``BatchApplied`` log: the stored body's deltas and withdrawals, checked
        against the log's totals (a mismatch means the body is not what the vault applied)."""
        row = s.get(SettlementBody, (ev.batch_number, chain_id))
        token = self.tokens.get(chain_id)
        if row is None or token is None:
            raise LedgerError(f"chain {chain_id} applied batch {ev.batch_number} but the ledger has "
                              f"{'no body for it' if row is None else 'no settlement token for the chain'}")
        body = decode_settlement(bytes.fromhex(row.body.removeprefix("0x")))
        scale = native_scale(self._decimals[chain_id])
        changes: dict[str, int] = {}
        debited = credited = withdrawn = 0
        for d in body.deltas:
            changes[d.account] = changes.get(d.account, 0) + d.amount * scale
            if d.amount < 0:
                debited += -d.amount * scale
            else:
                credited += d.amount * scale
        for w in body.withdrawals:
            changes[w.account] = changes.get(w.account, 0) - w.amount * scale
            withdrawn += w.amount * scale
        if (debited, credited, withdrawn) != (ev.debited, ev.credited, ev.withdrawn):
            raise LedgerError(f"chain {chain_id} batch {ev.batch_number}: log totals {ev.debited}/{ev.credited}/"
                              f"{ev.withdrawn} != stored body {debited}/{credited}/{withdrawn}")
        self._adjust(s, chain_id, token, changes)
        s.add(SettlementApplied(chain_id=chain_id, batch_number=ev.batch_number, block_number=ev.block_number,
                                block_hash=ev.block_hash, tx_hash=ev.tx_hash, log_index=ev.log_index))

    def _adjust(self, s: Session, chain_id: int, token: str, changes: dict[str, int]) -> None:
        """Add ``changes`` (native units, by account) to balances on ``chain_id``; never below zero."""
        accounts = sorted(changes)
        known = set(s.exec(select(Account.address).where(Account.address.in_(accounts))).all())  # type: ignore[attr-defined]
        missing = [{"address": a, "created_at": utcnow()} for a in accounts if a not in known]
        if missing:
            s.execute(insert(Account), missing)
        rows = {b.account: b for b in s.exec(select(Balance).where(
            Balance.chain_id == chain_id, Balance.token == token, Balance.account.in_(accounts))).all()}  # type: ignore[attr-defined]
        now = utcnow()
        for a in accounts:
            bal = rows.get(a) or Balance(account=a, chain_id=chain_id, token=token, native=0)
            bal.native += changes[a]
            if bal.native < 0:
                raise LedgerError(f"chain {chain_id}: settlement takes {a} below zero ({bal.native})")
            bal.updated_at = now
            s.add(bal)
        s.flush()

    def store_settlements(self, batch_number: int, bodies: dict[int, bytes]) -> None:
        """Record what batch ``batch_number`` changes per chain (idempotent; a different body is refused)."""
        with Session(self.engine) as s:
            for chain_id, body in sorted(bodies.items()):
                text = "0x" + bytes(body).hex()
                row = s.get(SettlementBody, (batch_number, chain_id))
                if row is None:
                    s.add(SettlementBody(batch_number=batch_number, chain_id=chain_id, body=text))
                elif row.body != text:
                    raise LedgerError(f"batch {batch_number} on chain {chain_id} is already stored with another body")
            s.commit()

    def withdrawal_payment(self, withdrawal_id: str) -> WithdrawalPayment | None:
        """Return the on-chain payment of a withdrawal (``0x`` hex id), if its log was seen."""
        with Session(self.engine) as s:
            return s.get(WithdrawalPayment, withdrawal_id.lower())

    def unapplied_bridge_ins(self, chain_id: int, at_block: int) -> list[tuple[int, int]]:
        """Return ``(batch_number, from_chain)`` of the bridge-in legs into ``chain_id`` of
        stored batches its vault had not applied at ``at_block`` (per the applied logs)."""
        with Session(self.engine) as s:
            applied = set(s.exec(select(SettlementApplied.batch_number).where(
                SettlementApplied.chain_id == chain_id, SettlementApplied.block_number <= at_block)).all())
            rows = s.exec(select(SettlementBody).where(SettlementBody.chain_id == chain_id)
                          .order_by(SettlementBody.batch_number)).all()
            out = []
            for row in rows:
                if row.batch_number in applied:
                    continue
                body = decode_settlement(bytes.fromhex(row.body.removeprefix("0x")))
                out.extend((row.batch_number, leg.domain) for leg in body.bridge_in)
            return out

    def applied_batches(self, chain_id: int, after: int = 0) -> list[SettlementApplied]:
        """Return the batches ``chain_id``'s vault applied with a number above ``after``, in order."""
        with Session(self.engine) as s:
            return list(s.exec(select(SettlementApplied).where(
                SettlementApplied.chain_id == chain_id, SettlementApplied.batch_number > after)
                .order_by(SettlementApplied.batch_number)).all())

    def _credit(self, s: Session, chain_id: int, events: list[DepositEvent]) -> None:
        """Add the accounts, balances and deposit rows for ``events`` (all new, one chain)."""
        accounts = sorted({e.account for e in events})
        known: set[str] = set()
        balances: dict[tuple[str, str], Balance] = {}
        for part in _chunks(accounts):
            known.update(s.exec(select(Account.address).where(Account.address.in_(part))).all())  # type: ignore[attr-defined]
            for b in s.exec(select(Balance).where(Balance.chain_id == chain_id,
                                                  Balance.account.in_(part))).all():  # type: ignore[attr-defined]
                balances[(b.account, b.token)] = b
        new_accounts = [{"address": a, "created_at": utcnow()} for a in accounts if a not in known]
        if new_accounts:
            s.execute(insert(Account), new_accounts)
        now = utcnow()
        for e in events:
            bal = balances.get((e.account, e.token))
            if bal is None:
                bal = balances[(e.account, e.token)] = Balance(account=e.account, chain_id=chain_id, token=e.token,
                                                               native=0)
            bal.native += e.amount
            bal.updated_at = now
        s.add_all(balances.values())
        s.flush()
        s.execute(insert(Deposit), [
            {"chain_id": e.chain_id, "deposit_nonce": e.deposit_nonce, "account": e.account, "token": e.token,
             "amount_native": e.amount, "amount_internal": self._to_internal(e.chain_id, e.amount),
             "block_number": e.block_number, "block_hash": e.block_hash, "tx_hash": e.tx_hash,
             "log_index": e.log_index, "credited_at": now}
            for e in events])

    def rewind(self, chain_id: int, cursor_name: str, to: Cursor) -> None:
        """Move the cursor back to ``to`` after a reorg and forget the orphaned hashes."""
        with Session(self.engine) as s:
            row = s.get(ChainCursor, (chain_id, cursor_name))
            if row is not None:
                row.block_number, row.block_hash, row.updated_at = to.block_number, to.block_hash, utcnow()
                s.add(row)
            s.exec(delete(ChainBlock).where(  # type: ignore[call-overload]
                ChainBlock.chain_id == chain_id, ChainBlock.name == cursor_name, ChainBlock.number > to.block_number))
            s.commit()

    def alert(self, chain_id: int, kind: str, message: str) -> None:
        log.error("ALERT chain %d %s: %s", chain_id, kind, message)
        with Session(self.engine) as s:
            s.add(ChainAlert(chain_id=chain_id, kind=kind, message=message))
            s.commit()

    # --- reads ---------------------------------------------------------------------

    def cursor(self, chain_id: int, cursor_name: str) -> Cursor | None:
        with Session(self.engine) as s:
            row = s.get(ChainCursor, (chain_id, cursor_name))
            return None if row is None else Cursor(row.block_number, row.block_hash)

    def block_hashes(self, chain_id: int, cursor_name: str, below_or_at: int, limit: int) -> list[tuple[int, str]]:
        """Return up to ``limit`` processed (number, hash) pairs at or below a height, newest first."""
        with Session(self.engine) as s:
            rows = s.exec(select(ChainBlock).where(
                ChainBlock.chain_id == chain_id, ChainBlock.name == cursor_name, ChainBlock.number <= below_or_at,
            ).order_by(ChainBlock.number.desc()).limit(limit)).all()  # type: ignore[attr-defined]
            return [(r.number, r.hash) for r in rows]

    def account(self, address: str) -> AccountView | None:
        """Return the account's balance on each chain, or None if it never deposited."""
        with Session(self.engine) as s:
            if s.get(Account, address) is None:
                return None
            rows = s.exec(select(Balance).where(Balance.account == address)).all()
            balances = tuple(sorted(
                (ChainBalance(self._names.get(r.chain_id, str(r.chain_id)), r.chain_id, r.token, r.native,
                              self._to_internal(r.chain_id, r.native), self._decimals.get(r.chain_id, 0))
                 for r in rows if r.chain_id in self._decimals),
                key=lambda b: b.chain_id))
            return AccountView(address, balances)

    def balances_on_chain(self, chain_id: int) -> dict[str, int]:
        """Return every account's settled balance on ``chain_id`` (native units)."""
        with Session(self.engine) as s:
            rows = s.exec(select(Balance.account, Balance.native).where(Balance.chain_id == chain_id)).all()
            out: dict[str, int] = {}
            for account, native in rows:
                out[account] = out.get(account, 0) + native
            return out

    def custody(self) -> list[Custody]:
        """Return, per configured chain, the sum of settled balances as the ledger sees it."""
        out = []
        with Session(self.engine) as s:
            for c in self.settings.chains:
                natives = s.exec(select(Balance.native).where(Balance.chain_id == c.chain_id)).all()
                total = sum(natives)
                internal = sum(self._to_internal(c.chain_id, n) for n in natives)
                deposits = s.exec(select(func.count()).select_from(Deposit).where(Deposit.chain_id == c.chain_id)).one()
                cur = s.exec(select(func.max(ChainCursor.block_number)).where(ChainCursor.chain_id == c.chain_id)).one()
                out.append(Custody(c.name, c.chain_id, total, internal, int(deposits),
                                   len(natives), cur))
        return out

    def deposits_after(self, chain_id: int, nonce: int, limit: int = 10_000) -> list[tuple[int, int, str, int]]:
        """Return ``(chain_id, deposit_nonce, account, amount_internal)`` of ``chain_id``'s
        deposits with a nonce above ``nonce``, in nonce order (at most ``limit``)."""
        with Session(self.engine) as s:
            rows = s.exec(select(Deposit.chain_id, Deposit.deposit_nonce, Deposit.account, Deposit.amount_internal)
                          .where(Deposit.chain_id == chain_id, Deposit.deposit_nonce > nonce)
                          .order_by(Deposit.deposit_nonce).limit(limit)).all()
            return [(int(c), int(n), a, int(v)) for c, n, a, v in rows]

    def deposit_count(self, chain_id: int | None = None) -> int:
        with Session(self.engine) as s:
            q = select(func.count()).select_from(Deposit)
            if chain_id is not None:
                q = q.where(Deposit.chain_id == chain_id)
            return int(s.exec(q).one())

    def alerts(self, chain_id: int | None = None) -> list[ChainAlert]:
        with Session(self.engine) as s:
            q = select(ChainAlert).order_by(ChainAlert.id)
            if chain_id is not None:
                q = q.where(ChainAlert.chain_id == chain_id)
            return list(s.exec(q).all())

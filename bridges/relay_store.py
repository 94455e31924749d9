"""The relayer's durable state: one row per Mailbox message id, cursors, block hashes, alerts.

Tables (prefix ``relay_``; SQLite WAL or PostgreSQL, the same code):

- ``relay_message``: a dispatched message and its delivery state. Status moves
  ``pending → submitted → delivered``; a failed attempt is ``failed`` (``reason``, a
  ``next_attempt_at``) and is tried again until its reason's cap, then ``dead``
  (dead-letter; ``aggregator relayer retry ID`` revives it). A deep reorg that removes
  the dispatch marks an undelivered row ``orphaned``; a re-scan that finds the message
  again (same id) revives it.
- ``relay_cursor`` / ``relay_block``: the watcher's cursor per (chain, name) and the hashes
  of processed blocks, for reorg walk-back (``bridges.watcher.WatchSink``).
- ``relay_alert``: deep reorgs and other incidents.

Invariants:
- A message row and the cursor that covers its Dispatch log are written in one
  transaction; inserting is keyed by the message id, so a re-scan adds nothing twice.
- A worker acts on a row only while it holds the row's lease: ``claim`` is a
  compare-and-set ``UPDATE ... WHERE lease_until < now`` (one winner, on SQLite and on
  PostgreSQL), and every later transition is conditioned on ``lease_owner``. Leases only
  narrow the race; the Mailbox's delivered-by-id makes a second delivery impossible.
- ``delivered`` is terminal and is written whenever the chain says so, lease or not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from hexbytes import HexBytes
from sqlalchemy import Column, LargeBinary, and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from bridges.errors import ChainError
from bridges.messages import MailboxMessage, decode_message
from bridges.watcher import Cursor

log = logging.getLogger(__name__)

DISPATCH_SIGNATURE = "Dispatch(bytes32,address,uint32,uint32,bytes)"
DISPATCH_TOPIC = "0x" + keccak(text=DISPATCH_SIGNATURE).hex()
PROCESS_TOPIC = "0x" + keccak(text="Process(bytes32,uint32,bytes32,address)").hex()

PENDING = "pending"
SUBMITTED = "submitted"
DELIVERED = "delivered"
FAILED = "failed"
DEAD = "dead"
ORPHANED = "orphaned"
STATUSES = (PENDING, SUBMITTED, DELIVERED, FAILED, DEAD, ORPHANED)
CLAIMABLE = (PENDING, SUBMITTED, FAILED)


class StoreError(ChainError):
    """A relay-store operation is impossible (unknown id, bad state)."""


class RelayMessage(SQLModel, table=True):
    __tablename__ = "relay_message"

    id: str = Field(primary_key=True, max_length=66)  # 0x + keccak(message)
    origin: int = Field(index=True)
    destination: int = Field(index=True)
    nonce: int
    sender: str = Field(max_length=66)  # bytes32, 0x-hex
    recipient: str = Field(max_length=66)
    version: int = 1
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default=PENDING, index=True, max_length=16)
    reason: str | None = None
    retries: int = 0
    tx_hash: str | None = Field(default=None, max_length=66)
    tx_nonce: int | None = None
    dispatch_block: int
    dispatch_block_hash: str = Field(max_length=66)
    dispatch_tx: str = Field(max_length=66)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: float | None = None
    next_attempt_at: float = 0.0
    created_at: float
    updated_at: float
    submitted_at: float | None = None
    delivered_at: float | None = None

    def message(self) -> MailboxMessage:
        return MailboxMessage(nonce=self.nonce, origin=self.origin, sender=bytes(HexBytes(self.sender)),
                              destination=self.destination, recipient=bytes(HexBytes(self.recipient)),
                              body=bytes(self.body), version=self.version)


class RelayCursor(SQLModel, table=True):
    __tablename__ = "relay_cursor"

    chain_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=64)
    block_number: int
    block_hash: str = Field(max_length=66)
    updated_at: float


class RelayBlock(SQLModel, table=True):
    __tablename__ = "relay_block"

    chain_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=64)
    number: int = Field(primary_key=True)
    hash: str = Field(max_length=66)


class RelayAlert(SQLModel, table=True):
    __tablename__ = "relay_alert"

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int
    kind: str = Field(max_length=32)
    message: str
    created_at: float


@dataclass(frozen=True)
class DispatchEvent:
    """A decoded Mailbox ``Dispatch`` log; ``message`` is the packed message."""

    id: bytes
    sender: str
    destination: int
    nonce: int
    message: bytes
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


def decode_dispatch(log_entry: Any) -> DispatchEvent:
    """Decode a ``Dispatch(bytes32 indexed id, address indexed sender, uint32 indexed
    destination, uint32 nonce, bytes message)`` log and check the id is the message's hash."""
    topics = [HexBytes(t) for t in log_entry["topics"]]
    if len(topics) != 4 or topics[0].to_0x_hex() != DISPATCH_TOPIC:
        raise StoreError(f"not a Dispatch log: {[t.to_0x_hex() for t in topics]}")
    nonce, message = abi_decode(["uint32", "bytes"], bytes(HexBytes(log_entry["data"])))
    mid = bytes(topics[1])
    if keccak(bytes(message)) != mid:
        raise StoreError(f"Dispatch 0x{mid.hex()} carries a message that does not hash to its id")
    return DispatchEvent(
        id=mid, sender="0x" + bytes(topics[2])[-20:].hex(), destination=int.from_bytes(topics[3], "big"),
        nonce=int(nonce), message=bytes(message), block_number=int(log_entry["blockNumber"]),
        block_hash=HexBytes(log_entry["blockHash"]).to_0x_hex(),
        tx_hash=HexBytes(log_entry["transactionHash"]).to_0x_hex(), log_index=int(log_entry["logIndex"]),
    )


class RelayStore:
    """Durable relayer state over an engine; also the ``WatchSink`` of the Dispatch watchers.

    ``clock`` returns epoch seconds (injected so tests can move time).
    """

    def __init__(self, engine: Engine, clock: Any = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def create_tables(self) -> None:
        SQLModel.metadata.create_all(self.engine, tables=[
            RelayMessage.__table__, RelayCursor.__table__, RelayBlock.__table__, RelayAlert.__table__])  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ WatchSink

    def cursor(self, chain_id: int, name: str) -> Cursor | None:
        with Session(self.engine) as s:
            row = s.get(RelayCursor, (chain_id, name))
            return None if row is None else Cursor(row.block_number, row.block_hash)

    def block_hashes(self, chain_id: int, name: str, below_or_at: int, limit: int) -> list[tuple[int, str]]:
        with Session(self.engine) as s:
            rows = s.exec(select(RelayBlock).where(
                RelayBlock.chain_id == chain_id, RelayBlock.name == name, RelayBlock.number <= below_or_at,
            ).order_by(RelayBlock.number.desc()).limit(limit)).all()  # type: ignore[attr-defined]
            return [(r.number, r.hash) for r in rows]

    def rewind(self, chain_id: int, name: str, to: Cursor) -> None:
        """Move the cursor back after a reorg; undelivered messages above it become ``orphaned``."""
        now = self.clock()
        with Session(self.engine) as s:
            row = s.get(RelayCursor, (chain_id, name))
            if row is not None:
                row.block_number, row.block_hash, row.updated_at = to.block_number, to.block_hash, now
                s.add(row)
            s.exec(RelayBlock.__table__.delete().where(  # type: ignore[attr-defined,call-overload]
                and_(RelayBlock.chain_id == chain_id, RelayBlock.name == name, RelayBlock.number > to.block_number)))
            s.exec(update(RelayMessage).where(  # type: ignore[call-overload]
                RelayMessage.origin == chain_id, RelayMessage.dispatch_block > to.block_number,
                RelayMessage.status != DELIVERED,
            ).values(status=ORPHANED, reason="dispatch block reorged away", lease_owner=None, lease_until=None,
                     updated_at=now))
            s.commit()

    def alert(self, chain_id: int, kind: str, message: str) -> None:
        log.error("ALERT chain %d %s: %s", chain_id, kind, message)
        with Session(self.engine) as s:
            s.add(RelayAlert(chain_id=chain_id, kind=kind, message=message, created_at=self.clock()))
            s.commit()

    def apply(self, chain_id: int, name: str, logs: Sequence[Any], cursor: Cursor,
              blocks: Sequence[tuple[int, str]]) -> int:
        """Record the Dispatch logs of a confirmed range and the cursor, atomically."""
        events = [decode_dispatch(lg) for lg in logs]
        for attempt in range(3):
            try:
                return self._apply(chain_id, name, events, cursor, blocks)
            except IntegrityError:  # another relayer inserted the same rows first
                if attempt == 2:
                    raise
        return 0  # pragma: no cover

    def _apply(self, chain_id: int, name: str, events: Sequence[DispatchEvent], cursor: Cursor,
               blocks: Sequence[tuple[int, str]]) -> int:
        now = self.clock()
        added = 0
        with Session(self.engine) as s:
            ids = ["0x" + e.id.hex() for e in events]
            existing = {r.id: r for r in s.exec(select(RelayMessage).where(RelayMessage.id.in_(ids))).all()} \
                if ids else {}  # type: ignore[attr-defined]
            for e, mid in zip(events, ids):
                m = decode_message(e.message)
                if m.origin != chain_id:
                    log.warning("Dispatch %s on chain %d names origin %d; ignored", mid, chain_id, m.origin)
                    continue
                row = existing.get(mid)
                if row is None:
                    s.add(RelayMessage(
                        id=mid, origin=m.origin, destination=m.destination, nonce=m.nonce,
                        sender="0x" + m.sender.hex(), recipient="0x" + m.recipient.hex(), version=m.version,
                        body=m.body, status=PENDING, dispatch_block=e.block_number,
                        dispatch_block_hash=e.block_hash, dispatch_tx=e.tx_hash, next_attempt_at=now,
                        created_at=now, updated_at=now))
                    existing[mid] = row  # type: ignore[assignment]
                    added += 1
                elif row.status == ORPHANED:  # re-included after a reorg: same bytes, same id
                    row.status, row.reason, row.retries = PENDING, "re-included after reorg", 0
                    row.dispatch_block, row.dispatch_block_hash, row.dispatch_tx = e.block_number, e.block_hash, e.tx_hash
                    row.next_attempt_at, row.updated_at = now, now
                    s.add(row)
                    added += 1
            cur = s.get(RelayCursor, (chain_id, name))
            if cur is None:
                s.add(RelayCursor(chain_id=chain_id, name=name, block_number=cursor.block_number,
                                  block_hash=cursor.block_hash, updated_at=now))
            else:
                cur.block_number, cur.block_hash, cur.updated_at = cursor.block_number, cursor.block_hash, now
                s.add(cur)
            nums = [n for n, _ in blocks]
            have = {b.number: b for b in s.exec(select(RelayBlock).where(
                RelayBlock.chain_id == chain_id, RelayBlock.name == name,
                RelayBlock.number.in_(nums))).all()} if nums else {}  # type: ignore[attr-defined]
            for n, h in blocks:
                b = have.get(n)
                if b is None:
                    s.add(RelayBlock(chain_id=chain_id, name=name, number=n, hash=h))
                elif b.hash != h:
                    b.hash = h
                    s.add(b)
            s.commit()
        return added

    # ------------------------------------------------------------------ leases

    def claim_next(self, owner: str, destination: int, lease_s: float, limit: int = 16,
                   pipeline: int = 0) -> list[RelayMessage]:
        """Claim, for ``destination``, the head (lowest undelivered nonce) of each path that is
        free and due (up to ``limit`` paths); each claim is a compare-and-set on the lease.

        ``pipeline`` > 0: where ``owner`` itself holds the head and has sent its transaction
        (``submitted``), claim the next message of the path instead, up to ``pipeline``
        messages past the head, so its delivery can follow in the same block. Nobody else
        ever works past a head they do not hold; the Mailbox's path nonce keeps the order.
        """
        now = self.clock()
        with Session(self.engine) as s:
            # The head of each path (lowest undelivered nonce), leased or not: a path whose head
            # is leased or backing off is skipped whole, so nobody works past its head.
            heads = s.exec(select(RelayMessage.origin, RelayMessage.sender, func.min(RelayMessage.nonce)).where(
                RelayMessage.destination == destination,
                RelayMessage.status.in_(CLAIMABLE),  # type: ignore[attr-defined]
            ).group_by(RelayMessage.origin, RelayMessage.sender)).all()
            ready: list[RelayMessage] = []
            for origin, sender, nonce in heads:
                rows = s.exec(select(RelayMessage).where(
                    RelayMessage.destination == destination, RelayMessage.origin == origin,
                    RelayMessage.sender == sender, RelayMessage.nonce >= nonce,
                    RelayMessage.nonce <= nonce + pipeline,
                    RelayMessage.status.in_(CLAIMABLE),  # type: ignore[attr-defined]
                ).order_by(RelayMessage.nonce)).all()  # type: ignore[arg-type]
                expect = nonce
                for r in rows:
                    if r.nonce != expect:
                        break  # a gap: the next message is not stored yet
                    leased = r.lease_until is not None and r.lease_until >= now
                    if leased and r.lease_owner == owner and r.status == SUBMITTED:
                        expect += 1  # ours and on its way: its successor may follow it
                        continue
                    if not leased and r.next_attempt_at <= now:
                        ready.append(r)
                    break
            claimed: list[RelayMessage] = []
            for r in ready[:limit]:
                res = s.exec(update(RelayMessage).where(  # type: ignore[call-overload]
                    RelayMessage.id == r.id, RelayMessage.status.in_(CLAIMABLE),  # type: ignore[attr-defined]
                    or_(RelayMessage.lease_until.is_(None), RelayMessage.lease_until < now),  # type: ignore[union-attr]
                ).values(lease_owner=owner, lease_until=now + lease_s))
                if res.rowcount == 1:
                    claimed.append(r)
            s.commit()
            for r in claimed:
                s.refresh(r)
                s.expunge(r)
            return claimed

    def _update_leased(self, mid: str, owner: str, **values: Any) -> bool:
        values["updated_at"] = self.clock()
        with Session(self.engine) as s:
            res = s.exec(update(RelayMessage).where(  # type: ignore[call-overload]
                RelayMessage.id == mid, RelayMessage.lease_owner == owner, RelayMessage.status != DELIVERED,
            ).values(**values))
            s.commit()
            ok = res.rowcount == 1
        if not ok:
            log.info("message %s: lease lost by %s (or already delivered)", mid, owner)
        return ok

    def note(self, mid: str, owner: str, reason: str, lease_s: float) -> bool:
        """Record why a leased message is still waiting (and extend the lease) while its
        worker keeps it to try again in memory."""
        return self._update_leased(mid, owner, reason=reason[:500], lease_until=self.clock() + lease_s)

    def renew(self, mid: str, owner: str, lease_s: float) -> bool:
        return self._update_leased(mid, owner, lease_until=self.clock() + lease_s)

    def mark_submitted(self, mid: str, owner: str, tx_hash: str, tx_nonce: int) -> bool:
        return self._update_leased(mid, owner, status=SUBMITTED, tx_hash=tx_hash, tx_nonce=tx_nonce,
                                   submitted_at=self.clock())

    def mark_retry(self, mid: str, owner: str, reason: str, delay_s: float, *, count: bool = True,
                   retries: int | None = None) -> bool:
        values: dict[str, Any] = {"status": FAILED, "reason": reason[:500], "next_attempt_at": self.clock() + delay_s,
                                  "lease_owner": None, "lease_until": None}
        if count and retries is not None:
            values["retries"] = retries
        return self._update_leased(mid, owner, **values)

    def mark_dead(self, mid: str, owner: str, reason: str, retries: int | None = None) -> bool:
        values: dict[str, Any] = {"status": DEAD, "reason": reason[:500], "lease_owner": None, "lease_until": None}
        if retries is not None:
            values["retries"] = retries
        return self._update_leased(mid, owner, **values)

    def mark_delivered(self, mid: str, tx_hash: str | None) -> bool:
        """Record that the destination Mailbox has delivered ``mid`` (terminal; no lease needed)."""
        now = self.clock()
        values: dict[str, Any] = {"status": DELIVERED, "reason": None, "delivered_at": now, "updated_at": now,
                                  "lease_owner": None, "lease_until": None}
        if tx_hash:
            values["tx_hash"] = tx_hash
        with Session(self.engine) as s:
            res = s.exec(update(RelayMessage).where(  # type: ignore[call-overload]
                RelayMessage.id == mid, RelayMessage.status != DELIVERED).values(**values))
            s.commit()
            return res.rowcount == 1

    def release(self, mid: str, owner: str) -> bool:
        """Give a lease back without changing the status (shutdown)."""
        return self._update_leased(mid, owner, lease_owner=None, lease_until=None)

    # ------------------------------------------------------------------ admin and metrics

    def get(self, mid: str) -> RelayMessage | None:
        with Session(self.engine) as s:
            row = s.get(RelayMessage, mid.lower())
            if row is not None:
                s.expunge(row)
            return row

    def list(self, status: str | None = None, limit: int = 1000) -> list[RelayMessage]:
        with Session(self.engine) as s:
            q = select(RelayMessage)
            if status:
                q = q.where(RelayMessage.status == status)
            rows = list(s.exec(q.order_by(RelayMessage.created_at, RelayMessage.origin, RelayMessage.nonce)
                               .limit(limit)).all())
            for r in rows:
                s.expunge(r)
            return rows

    def retry(self, mid: str) -> RelayMessage:
        """Put a failed, dead or orphaned message back in the queue with its retry count reset."""
        now = self.clock()
        with Session(self.engine) as s:
            row = s.get(RelayMessage, mid.lower())
            if row is None:
                raise StoreError(f"no message {mid}")
            if row.status == DELIVERED:
                raise StoreError(f"message {mid} is already delivered")
            row.status, row.retries, row.reason = PENDING, 0, "manual retry"
            row.next_attempt_at, row.lease_owner, row.lease_until, row.updated_at = now, None, None, now
            s.add(row)
            s.commit()
            s.refresh(row)
            s.expunge(row)
            return row

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.exec(select(RelayMessage.status, func.count()).group_by(RelayMessage.status)).all()
        out = {st: 0 for st in STATUSES}
        out.update({st: int(n) for st, n in rows})
        return out

    def last_delivered_nonces(self) -> list[tuple[int, int, str, int]]:
        """(origin, destination, sender, highest delivered nonce) per path."""
        with Session(self.engine) as s:
            rows = s.exec(select(RelayMessage.origin, RelayMessage.destination, RelayMessage.sender,
                                 func.max(RelayMessage.nonce)).where(RelayMessage.status == DELIVERED)
                          .group_by(RelayMessage.origin, RelayMessage.destination, RelayMessage.sender)).all()
        return [(int(o), int(d), str(snd), int(n)) for o, d, snd, n in rows]

    def alerts(self, chain_id: int | None = None) -> list[RelayAlert]:
        with Session(self.engine) as s:
            q = select(RelayAlert)
            if chain_id is not None:
                q = q.where(RelayAlert.chain_id == chain_id)
            rows = list(s.exec(q.order_by(RelayAlert.id)).all())  # type: ignore[arg-type]
            for r in rows:
                s.expunge(r)
            return rows

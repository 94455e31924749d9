"""Ledger and chain-indexer tables (sqlmodel), identical on SQLite and PostgreSQL.

Token amounts can exceed 64 bits (18-decimal tokens), so they are stored by ``U256``:
NUMERIC(78, 0) on PostgreSQL and decimal text on SQLite, always read back as ``int``.
Nothing in these tables is ever a float.

Keys that make the invariants hold in the database itself:
- ``ledger_deposit`` (chain_id, deposit_nonce) is the primary key: a deposit is credited
  at most once, whoever sees it and however often.
- ``chain_cursor`` is written in the same transaction as the credits it covers, so a
  crash never leaves a credit without its cursor or a cursor past an uncredited deposit.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, Numeric, String, TypeDecorator
from sqlmodel import Field, SQLModel


class U256(TypeDecorator):
    """An arbitrary-size integer column: NUMERIC(78,0) on PostgreSQL, text on SQLite."""

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"U256 column takes int, got {type(value).__name__}")
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value, dialect):
        return None if value is None else int(value)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _u256(**kw) -> Field:  # type: ignore[valid-type]
    return Field(sa_column=Column(U256(), nullable=False, **kw))


class Account(SQLModel, table=True):
    __tablename__ = "ledger_account"

    address: str = Field(primary_key=True, max_length=42)  # checksum address
    created_at: datetime = Field(default_factory=utcnow)


class Balance(SQLModel, table=True):
    """An account's settled balance of one chain's collateral token, in native units."""

    __tablename__ = "ledger_balance"

    account: str = Field(primary_key=True, foreign_key="ledger_account.address", max_length=42)
    chain_id: int = Field(primary_key=True)
    token: str = Field(primary_key=True, max_length=42)
    native: int = _u256()
    updated_at: datetime = Field(default_factory=utcnow)


class Deposit(SQLModel, table=True):
    """A vault ``Deposit`` event credited to the unified account (exactly once)."""

    __tablename__ = "ledger_deposit"

    chain_id: int = Field(primary_key=True)
    deposit_nonce: int = Field(primary_key=True)
    account: str = Field(foreign_key="ledger_account.address", index=True, max_length=42)
    token: str = Field(max_length=42)
    amount_native: int = _u256()
    amount_internal: int = _u256()
    block_number: int
    block_hash: str = Field(max_length=66)
    tx_hash: str = Field(max_length=66)
    log_index: int
    credited_at: datetime = Field(default_factory=utcnow)


class ChainCursor(SQLModel, table=True):
    """The last block a watcher has fully processed on a chain (block number and hash)."""

    __tablename__ = "chain_cursor"

    chain_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=64)
    block_number: int
    block_hash: str = Field(max_length=66)
    updated_at: datetime = Field(default_factory=utcnow)


class ChainBlock(SQLModel, table=True):
    """Hashes of recently processed blocks: the watcher walks them back after a reorg."""

    __tablename__ = "chain_block"

    chain_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True, max_length=64)
    number: int = Field(primary_key=True)
    hash: str = Field(max_length=66)


class ChainAlert(SQLModel, table=True):
    """Something an operator must look at: a deep reorg, a reconciliation mismatch."""

    __tablename__ = "chain_alert"

    id: int | None = Field(default=None, primary_key=True)
    chain_id: int = Field(index=True)
    kind: str = Field(max_length=32)
    message: str
    created_at: datetime = Field(default_factory=utcnow)


class SettlementBody(SQLModel, table=True):
    """What one batch changes on one chain (``abi.encode(ChainSettlement)``, hex), stored by
    the batcher *before* the batch is submitted, so the vault watcher can always apply a
    ``BatchApplied`` log to the ledger exactly as the vault applied it."""

    __tablename__ = "settlement_body"

    batch_number: int = Field(primary_key=True)
    chain_id: int = Field(primary_key=True)
    body: str
    created_at: datetime = Field(default_factory=utcnow)


class SettlementApplied(SQLModel, table=True):
    """A vault's ``BatchApplied`` log, applied to the ledger once per (chain, batch)."""

    __tablename__ = "settlement_applied"

    chain_id: int = Field(primary_key=True)
    batch_number: int = Field(primary_key=True)
    block_number: int
    block_hash: str = Field(max_length=66)
    tx_hash: str = Field(max_length=66)
    log_index: int
    applied_at: datetime = Field(default_factory=utcnow)


class WithdrawalPayment(SQLModel, table=True):
    """A vault's ``WithdrawalPaid`` log: the withdrawal left the vault in this transaction."""

    __tablename__ = "settlement_withdrawal_paid"

    withdrawal_id: str = Field(primary_key=True, max_length=66)
    chain_id: int = Field(index=True)
    account: str = Field(max_length=42)
    recipient: str = Field(max_length=42)
    amount_native: int = _u256()
    block_number: int
    tx_hash: str = Field(max_length=66)
    paid_at: datetime = Field(default_factory=utcnow)

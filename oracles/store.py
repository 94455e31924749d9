"""Persistence of observations, aggregates and signed reports (sqlmodel, ``oracle_`` tables).

Invariants:
- prices are stored exactly: observations as the decimal text the source gave, aggregates
  and reports as integers (8 decimals) in text columns wide enough for ``int256``; nothing
  is ever a float;
- ``oracle_aggregate`` holds every change of a feed's aggregate (price, confidence,
  status), in evaluation order; the settlement TWAP is rebuilt from it alone, and equals
  the live one (``price_points`` returns exactly what the service fed its live window);
- ``oracle_report`` holds every signed report with its signatures; re-signing the same
  report with the same keys gives the same bytes (RFC 6979), so a rebuilt settlement
  report can be compared byte for byte.

Blocking (SQLAlchemy); the service calls it from a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, String
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, select

from oracles.report import SignedPriceReport
from oracles.twap import PricePoint
from oracles.types import Aggregate, FeedStatus, Observation


def _int_text(**kw) -> Field:  # type: ignore[valid-type]
    return Field(sa_column=Column(String(80), **kw))


class OracleObservationRow(SQLModel, table=True):
    __tablename__ = "oracle_observation"

    id: int | None = Field(default=None, primary_key=True)
    feed: str = Field(index=True, max_length=32)
    source: str = Field(max_length=64)
    price: str = Field(max_length=80)  # exact decimal text as received
    confidence: str = Field(max_length=80)
    publish_ms: int = Field(index=True)
    received_ms: int
    halted: bool = False
    rejected: str | None = Field(default=None, max_length=400)


class OracleAggregateRow(SQLModel, table=True):
    __tablename__ = "oracle_aggregate"

    id: int | None = Field(default=None, primary_key=True)
    feed: str = Field(index=True, max_length=32)
    evaluated_ms: int = Field(index=True)
    status: str = Field(max_length=16)
    reason: str = Field(max_length=400)
    market_status: int
    price: str | None = _int_text(nullable=True)
    confidence: str | None = _int_text(nullable=True)
    timestamp_ms: int | None = None
    sources: str = Field(default="", max_length=400)


class OracleReportRow(SQLModel, table=True):
    __tablename__ = "oracle_report"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # live | status | settlement
    feed: str = Field(index=True, max_length=32)
    feed_id: str = Field(max_length=66)
    price: str = Field(max_length=80)
    confidence: str = Field(max_length=80)
    timestamp: int = Field(index=True)
    market_status: int
    chain_id: int
    verifying_contract: str = Field(max_length=42)
    digest: str = Field(max_length=66)
    signatures: str  # JSON list of 0x-hex
    signers: str  # JSON list of addresses
    created_ms: int


@dataclass(frozen=True)
class ObservationRecord:
    observation: Observation
    received_ms: int
    rejected: str | None = None


class OracleStore:
    """Reads and writes the oracle tables of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(
        self,
        observations: Sequence[ObservationRecord] = (),
        aggregates: Sequence[Aggregate] = (),
        reports: Sequence[tuple[str, SignedPriceReport, int]] = (),
    ) -> None:
        """Write one poll's rows in a single transaction. ``reports``: (kind, report, created_ms)."""
        if not (observations or aggregates or reports):
            return
        with Session(self.engine) as s:
            for r in observations:
                o = r.observation
                s.add(OracleObservationRow(
                    feed=o.feed, source=o.source, price=str(o.price), confidence=str(o.confidence),
                    publish_ms=o.publish_ms, received_ms=r.received_ms, halted=o.halted, rejected=r.rejected,
                ))
            for a in aggregates:
                s.add(OracleAggregateRow(
                    feed=a.feed, evaluated_ms=a.evaluated_ms, status=a.status.value, reason=a.reason[:400],
                    market_status=int(a.market_status),
                    price=None if a.price is None else str(a.price),
                    confidence=None if a.confidence is None else str(a.confidence),
                    timestamp_ms=a.timestamp_ms, sources=",".join(a.sources),
                ))
            for kind, rep, created in reports:
                d = rep.to_dict()
                s.add(OracleReportRow(
                    kind=kind, feed=rep.feed, feed_id=d["feedId"], price=d["price"], confidence=d["confidence"],
                    timestamp=rep.report.timestamp, market_status=rep.report.market_status,
                    chain_id=rep.domain.chain_id, verifying_contract=d["domain"]["verifyingContract"],
                    digest=d["digest"], signatures=json.dumps(d["signatures"]), signers=json.dumps(d["signers"]),
                    created_ms=created,
                ))
            s.commit()

    def price_points(self, feed: str, start_ms: int, end_ms: int) -> list[PricePoint]:
        """Return the aggregate changes of ``feed`` in ``[start_ms, end_ms)`` plus the last one
        before ``start_ms``, as TWAP points (``price`` None where the feed was not ok)."""
        with Session(self.engine) as s:
            before = s.exec(
                select(OracleAggregateRow)
                .where(OracleAggregateRow.feed == feed, OracleAggregateRow.evaluated_ms < start_ms)
                .order_by(OracleAggregateRow.evaluated_ms.desc(), OracleAggregateRow.id.desc())  # type: ignore[union-attr]
                .limit(1)
            ).all()
            rows = s.exec(
                select(OracleAggregateRow)
                .where(OracleAggregateRow.feed == feed, OracleAggregateRow.evaluated_ms >= start_ms,
                       OracleAggregateRow.evaluated_ms < end_ms)
                .order_by(OracleAggregateRow.evaluated_ms, OracleAggregateRow.id)  # type: ignore[arg-type]
            ).all()
        return [point_of_row(r) for r in (*before, *rows)]

    def reports(self, feed: str | None = None, kind: str | None = None, limit: int = 100) -> list[SignedPriceReport]:
        """Return the newest stored reports, newest first."""
        with Session(self.engine) as s:
            q = select(OracleReportRow)
            if feed is not None:
                q = q.where(OracleReportRow.feed == feed)
            if kind is not None:
                q = q.where(OracleReportRow.kind == kind)
            rows = s.exec(q.order_by(OracleReportRow.id.desc()).limit(limit)).all()  # type: ignore[union-attr]
        return [report_of_row(r) for r in rows]

    def count(self, table: type[SQLModel]) -> int:
        with Session(self.engine) as s:
            return len(s.exec(select(table)).all())


def point_of(a: Aggregate) -> PricePoint:
    """Return the TWAP point an aggregate contributes (the live path uses this too)."""
    ok = a.status is FeedStatus.OK and a.price is not None
    return PricePoint(a.evaluated_ms, a.price if ok else None, (a.confidence or 0) if ok else 0)


def point_of_row(r: OracleAggregateRow) -> PricePoint:
    ok = r.status == FeedStatus.OK.value and r.price is not None
    return PricePoint(r.evaluated_ms, int(r.price) if ok and r.price else None,
                      int(r.confidence) if ok and r.confidence else 0)


def report_of_row(r: OracleReportRow) -> SignedPriceReport:
    return SignedPriceReport.from_dict({
        "feedId": r.feed_id, "price": r.price, "confidence": r.confidence, "timestamp": r.timestamp,
        "marketStatus": r.market_status,
        "domain": {"chainId": r.chain_id, "verifyingContract": r.verifying_contract},
        "signatures": json.loads(r.signatures), "signers": json.loads(r.signers),
    })


def observation_records(obs: Iterable[Observation], received_ms: int) -> list[ObservationRecord]:
    return [ObservationRecord(o, received_ms) for o in obs]

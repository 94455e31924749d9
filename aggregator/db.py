"""Database engine: SQLite (WAL) by default, PostgreSQL by URL — the same code on both.

Every table of every module registers itself on ``SQLModel.metadata`` by being imported;
``init_db`` creates whatever is missing. Modules keep their tables prefixed by their
area (``ledger_``, ``chain_``, ``oracle_``, ...).
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine


def make_engine(url: str, echo: bool = False) -> Engine:
    """Return an engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - driver hook
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10)


def init_db(engine: Engine) -> None:
    """Create every registered table that does not exist yet."""
    SQLModel.metadata.create_all(engine)

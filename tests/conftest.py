"""Shared fixtures: real anvil chains on free ports, stopped after each test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from aggregator.config import local_settings
from bridges.anvil import AnvilProcess, free_port, start_anvil


@pytest.fixture
def anvil_factory() -> Iterator[Callable[..., AnvilProcess]]:
    """Start anvils on free ports: ``anvil_factory(chain_id=..., block_time=...)``."""
    started: list[AnvilProcess] = []

    def start(chain_id: int = 31337, block_time: float | None = None, **kw) -> AnvilProcess:
        proc = start_anvil(free_port(), chain_id, block_time=block_time, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def anvil(anvil_factory) -> AnvilProcess:
    """One automining anvil on a free port."""
    return anvil_factory()


@pytest.fixture
def db_url(tmp_path) -> Iterator[str]:
    """A fresh, empty database: SQLite in tmp_path, or a new PostgreSQL database when
    ``OMNICLEAR_TEST_DB_URL`` names a server (CI runs the suite on both)."""
    base = os.environ.get("OMNICLEAR_TEST_DB_URL")
    if not base:
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    import psycopg

    name = f"omniclear_test_{uuid.uuid4().hex[:12]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine(db_url):
    """An engine on a fresh database with every table created."""
    from aggregator.db import init_db, make_engine

    eng = make_engine(db_url)
    init_db(eng)
    yield eng
    eng.dispose()


def chain_settings(*chains: tuple[str, int, int, int], hub: str | None = None):
    """Settings for (name, chain_id, port, token decimals) chains, confirmations 3."""
    return local_settings(*chains, hub=hub)


@pytest.fixture
def one_chain(anvil):
    """An automined anvil with the token (18 decimals) and vault deployed: (settings, deployment)."""
    from aggregator.devnet import Deployment, deploy_chain, DEPLOYER_KEY, GUARDIAN_KEY
    from bridges.contracts import ensure_built
    from eth_account import Account

    ensure_built()
    settings = chain_settings(("solo", anvil.chain_id, anvil.port, 18))
    rec = deploy_chain(settings.chains[0], oracle=False)
    dep = Deployment([rec], Account.from_key(DEPLOYER_KEY).address, Account.from_key(GUARDIAN_KEY).address)
    return settings, dep

"""Shared fixtures: real anvil chains on free ports, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

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

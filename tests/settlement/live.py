"""Real-anvil settlement tests: the service and a relayer running together, stopped cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bridges.relay_store import RelayStore
from bridges.relayer import build_relayer, close_relayer


@asynccontextmanager
async def service_with_relayer(svc: Any, dep: Any, engine: Any) -> AsyncIterator[RelayStore]:
    """Start ``svc`` and a relayer on its database; yield the relay store; stop both and dispose the engine."""
    stop = asyncio.Event()
    relayer = None
    task = None
    try:
        await svc.start()
        store = RelayStore(engine)
        store.create_tables()
        relayer = build_relayer(dep, store)
        task = asyncio.create_task(relayer.run(stop))
        yield store
    finally:
        stop.set()
        if task is not None:
            await task
        if relayer is not None:
            await close_relayer(relayer)
        await svc.stop()
        engine.dispose()

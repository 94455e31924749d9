"""Event watcher for one chain: confirmations, reorg detection, persisted cursor.

Invariants:
- Only blocks with at least ``confirmations`` blocks on top of them are read
  (``number <= head - confirmations``); an event removed by a shallower reorg is never
  seen, hence never acted on.
- The sink applies a batch of logs and the cursor that covers them atomically; the
  cursor therefore never passes an event that was not applied.
- Before each scan the cursor block's hash is compared with the chain's. On mismatch the
  watcher walks back through the hashes it stored (cursor blocks and blocks with events)
  to the newest one still canonical, rewinds there and scans again; the sink's
  idempotent apply makes the re-scan harmless. A reorg deeper than ``confirmations``
  raises an alert: something already acted on may be gone.
- After a restart, the first scan starts ``overlap`` blocks below the cursor, so an
  event is never missed across restarts, and never applied twice (the sink's key).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bridges.chain import ChainClient
from bridges.errors import ChainError, TransientChainError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cursor:
    block_number: int
    block_hash: str


class WatchSink(Protocol):
    """Where a watcher's progress and events go (the ledger, the relayer's store)."""

    def cursor(self, chain_id: int, name: str) -> Cursor | None: ...

    def block_hashes(self, chain_id: int, name: str, below_or_at: int, limit: int) -> list[tuple[int, str]]: ...

    def rewind(self, chain_id: int, name: str, to: Cursor) -> None: ...

    def apply(self, chain_id: int, name: str, logs: Sequence[Any], cursor: Cursor,
              blocks: Sequence[tuple[int, str]]) -> int: ...

    def alert(self, chain_id: int, kind: str, message: str) -> None: ...


@dataclass
class WatcherStats:
    polls: int = 0
    logs: int = 0
    applied: int = 0
    reorgs: int = 0
    last_safe_block: int = -1
    last_error: str | None = None


async def _none() -> None:
    return None


class EventWatcher:
    """Polls one chain for logs of ``address`` whose first topic is ``topic0`` (one, or any of
    several) and feeds a sink."""

    def __init__(
        self,
        client: ChainClient,
        sink: WatchSink,
        *,
        name: str,
        address: str | list[str],
        topic0: str | Sequence[str],
        confirmations: int,
        start_block: int = 0,
        batch_blocks: int = 2_000,
        overlap: int = 64,
        poll_interval: float = 0.05,
        walkback_limit: int = 256,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.client = client
        self.sink = sink
        self.name = name
        self.address = address
        self.topic0 = topic0 if isinstance(topic0, str) else list(topic0)  # a list is an OR in eth_getLogs
        self.confirmations = confirmations
        self.start_block = start_block
        self.batch_blocks = batch_blocks
        self.overlap = overlap
        self.poll_interval = poll_interval
        self.walkback_limit = walkback_limit
        self.stats = WatcherStats()
        self._restarted = True
        self._idle_head: str | None = None  # hash of the head at which the last poll found nothing left to scan
        # Called on the event loop with (chain id, rows added) after an apply that added
        # something, so a consumer can act now rather than at its next poll.
        self.on_applied: Callable[[int, int], None] | None = None

    @property
    def chain_id(self) -> int:
        return self.client.chain_id

    async def _sink(self, method: str, *args: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sink, method), *args)

    async def poll_once(self) -> bool:
        """Scan the next range of confirmed blocks; return True if more remain behind."""
        self.stats.polls += 1
        tip = await self.client.block("latest")
        head = tip.number
        safe = head - self.confirmations
        self.stats.last_safe_block = safe
        if tip.hash == self._idle_head and not self._restarted:
            # Same head block as when nothing was left to scan: nothing new is confirmed, and
            # no reorg happened (a reorg below the head replaces the head too).
            return False
        cur: Cursor | None = await self._sink("cursor", self.chain_id, self.name)
        next_block, to_block = self._range(cur, safe)
        if cur is not None:
            # The cursor's canonical check and the range's last header in one round trip.
            canonical, to_ref = await asyncio.gather(self._still_canonical(cur),
                                                     self.client.block(to_block) if next_block <= safe else _none())
            if not canonical:
                cur = await self._handle_reorg(cur, head)
                next_block, to_block = self._range(cur, safe)
                to_ref = None
        else:
            to_ref = None
        if next_block > safe:
            self._restarted = False
            self._idle_head = tip.hash
            return False
        if to_ref is None:
            to_ref = await self.client.block(to_block)
        # The logs are read after the range's last header and checked against headers read
        # after them: a log from a block that is not canonical, or a range end that moved
        # while it was scanned, fails the poll.
        logs = await self.client.get_logs(self.address, [self.topic0], next_block, to_block)
        blocks, again = await asyncio.gather(self._verify_log_blocks(logs), self.client.block(to_block))
        blocks[to_ref.number] = to_ref.hash
        if again.hash != to_ref.hash:
            raise TransientChainError(f"block {to_block} changed while scanning", chain=self.client.name)
        if cur is not None and to_block < cur.block_number:
            new_cursor = cur  # an overlap re-scan below the cursor never moves it back
        else:
            new_cursor = Cursor(to_ref.number, to_ref.hash)
        applied = await self._sink("apply", self.chain_id, self.name, logs, new_cursor, sorted(blocks.items()))
        self.stats.logs += len(logs)
        self.stats.applied += applied
        self._restarted = False
        if applied and self.on_applied is not None:
            self.on_applied(self.chain_id, applied)
        more = to_block < safe
        self._idle_head = None if more else tip.hash
        return more

    def _range(self, cur: Cursor | None, safe: int) -> tuple[int, int]:
        """The next block to scan and the last block of this poll's range."""
        next_block = self.start_block if cur is None else cur.block_number + 1
        if self._restarted and cur is not None:
            next_block = max(self.start_block, next_block - self.overlap)
        return next_block, min(safe, next_block + self.batch_blocks - 1)

    async def _still_canonical(self, cur: Cursor) -> bool:
        try:
            ref = await self.client.block(cur.block_number)
        except TransientChainError:
            # The chain is shorter than our cursor: the cursor block was reorged away.
            if await self.client.block_number() < cur.block_number:
                return False
            raise
        return ref.hash == cur.block_hash

    async def _verify_log_blocks(self, logs: Sequence[Any]) -> dict[int, str]:
        """Check that every log's block hash is the canonical one; return those hashes."""
        wanted: dict[int, str] = {}
        for lg in logs:
            wanted[int(lg["blockNumber"])] = "0x" + bytes(lg["blockHash"]).hex()
        refs = await asyncio.gather(*(self.client.block(n) for n in wanted))
        for ref in refs:
            if ref.hash != wanted[ref.number]:
                raise TransientChainError(f"log from non-canonical block {ref.number}", chain=self.client.name)
        return wanted

    async def _handle_reorg(self, cur: Cursor, head: int) -> Cursor | None:
        self.stats.reorgs += 1
        known = await self._sink("block_hashes", self.chain_id, self.name, cur.block_number, self.walkback_limit)
        target: Cursor | None = None
        for number, h in known:
            if number > head:
                continue
            try:
                ref = await self.client.block(number)
            except TransientChainError:
                continue
            if ref.hash == h:
                target = Cursor(number, h)
                break
        depth = cur.block_number - (target.block_number if target else self.start_block - 1)
        msg = (f"reorg: cursor block {cur.block_number} {cur.block_hash[:10]} is no longer canonical; "
               f"rewinding {depth} blocks to {target.block_number if target else 'start'}")
        log.warning("[%s] %s", self.client.name, msg)
        # The cursor only ever covers blocks with `confirmations` on top: losing one of
        # them means a reorg deeper than the confirmations this chain was trusted with.
        await self._sink("alert", self.chain_id, "deep-reorg", msg)
        if target is None:
            target = Cursor(self.start_block - 1, "0x" + "00" * 32)
        await self._sink("rewind", self.chain_id, self.name, target)
        return None if target.block_number < self.start_block else target

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; errors are logged and retried, never fatal."""
        backoff = self.poll_interval
        while not stop.is_set():
            more = False
            try:
                more = await self.poll_once()
                backoff = self.poll_interval
                self.stats.last_error = None
            except ChainError as e:
                self.stats.last_error = str(e)
                log.warning("[%s] watcher %s: %s", self.client.name, self.name, e)
                backoff = min(backoff * 2, 5.0)
            except Exception as e:  # a watcher must outlive any single bad poll
                self.stats.last_error = f"{type(e).__name__}: {e}"
                log.exception("[%s] watcher %s failed a poll", self.client.name, self.name)
                backoff = min(backoff * 2, 5.0)
            if more:
                continue
            try:
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            except asyncio.TimeoutError:
                pass

"""The sequencer inside the main service: vault events and prices in, the trading API out.

Two adapters feed the one ``SequencerService`` (the single writer, see
``aggregator.sequencer_service``) of the main process:

``VaultForwarder``
    The ledger database is where a confirmed vault log is first recorded (a deposit once
    per ``(chain_id, deposit_nonce)``, an applied batch once per ``(chain_id,
    batch_number)``, in the same transaction as the watcher's cursor). The forwarder
    sequences every recorded deposit as a ``DepositCredit`` and every applied batch as a
    ``BatchSettled`` (in batch order per chain; the sequencer ignores a repeat).
    It is woken after each ledger commit and also sweeps on start: it asks the ledger for
    the deposits of each chain above the highest nonce the sequencer has (the journal
    replay rebuilds that), so a crash between the ledger commit and the journal append
    loses nothing, and ``submit_deposit`` is idempotent per key, so nothing is credited
    twice. Deposit nonces are assigned by the vault in order and credited by the watcher
    in block order, so "above the highest nonce" misses none.

``OracleFeed``
    Subscribes to the oracle's signed ``PriceReport``s, verifies each one like the
    on-chain verifier does (m-of-n known signers, no duplicates, not from the future)
    and sequences it as a ``PriceUpdate``: the sequencer never sees a price that the
    contracts would not accept. A report's market status maps to the sequencer's status
    (open -> ``ok``, any other -> ``market-closed``). Feed status changes that carry no
    new signed price (``stale``, ``halted``, ``deviating``) come from the oracle's status
    channel with the last signed price: they can only close a market to new risk, never
    move a mark.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aggregator.core import commands as C
from aggregator.ledger import Ledger
from aggregator.sequencer_service import SequencerService, ServiceUnavailable

log = logging.getLogger(__name__)

__all__ = ["VaultForwarder", "OracleFeed"]


class VaultForwarder:
    """Sequence every deposit and applied batch the ledger has recorded, exactly once (see module doc)."""

    def __init__(self, ledger: Ledger, service: SequencerService, chain_ids: list[int]) -> None:
        self.ledger = ledger
        self.service = service
        self.chain_ids = list(chain_ids)
        self.forwarded = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def notify(self) -> None:
        """Wake the forwarder (call after the ledger committed new deposits; thread-safe)."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    def _high_water(self) -> dict[int, int]:
        high: dict[int, int] = {cid: -1 for cid in self.chain_ids}
        for cid, nonce in self.service.deposit_keys():
            if nonce > high.get(cid, -1):
                high[cid] = nonce
        return high

    async def sweep(self) -> int:
        """Forward every recorded deposit and applied batch the sequencer does not have; return how many."""
        high = self._high_water()
        n = 0
        for cid in self.chain_ids:
            while True:
                rows = await asyncio.to_thread(self.ledger.deposits_after, cid, high[cid], 5_000)
                for chain_id, nonce, account, amount in rows:
                    if await self.service.submit_deposit(chain_id, nonce, account, amount) is not None:
                        n += 1
                    high[cid] = nonce
                if len(rows) < 5_000:
                    break
            settled = self.service.sequencer.last_settled_batch(cid)
            for row in await asyncio.to_thread(self.ledger.applied_batches, cid, settled):
                out = await self.service.execute(C.BatchSettled, cid, row.batch_number)
                if not out.accepted:
                    log.error("BatchSettled(%d, %d) refused: %s %s", cid, row.batch_number, out.code, out.message)
                    break
                n += 1
        self.forwarded += n
        return n

    async def run(self, stop: asyncio.Event, interval: float = 1.0) -> None:
        """Sweep on start, then whenever woken (and every ``interval`` s as a safety net)."""
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._wake.clear()
            try:
                await self.sweep()
            except ServiceUnavailable as e:
                log.error("deposit forwarding stopped: %s", e)
                return
            except Exception:  # noqa: BLE001 - a DB hiccup must not kill forwarding; retried next wake
                log.exception("deposit forwarding failed; retrying")
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()


class OracleFeed:
    """Verify the oracle's signed reports and sequence them as prices (see module doc)."""

    def __init__(self, service: SequencerService, known_signers: list[str], threshold: int,
                 feeds: set[str] | None = None) -> None:
        self.service = service
        self.known_signers = list(known_signers)
        self.threshold = threshold
        self.feeds = feeds
        self.accepted = 0
        self.refused = 0
        self._last_signed: dict[str, tuple[int, int, int]] = {}  # feed -> (price, confidence, ts)
        self._unsubscribe: list[Callable[[], None]] = []

    def attach(self, oracle) -> None:  # noqa: ANN001 - oracles.service.OracleService
        """Subscribe to ``oracle``'s reports and status changes."""
        self._unsubscribe.append(oracle.subscribe(self.on_report))
        self._unsubscribe.append(oracle.on_status(self.on_status))

    def detach(self) -> None:
        for u in self._unsubscribe:
            u()
        self._unsubscribe.clear()

    async def on_report(self, signed) -> None:  # noqa: ANN001 - oracles.report.SignedPriceReport
        from oracles.report import ReportError, verify_report
        from oracles.types import MarketStatus

        feed = signed.feed
        if self.feeds is not None and feed not in self.feeds:
            return
        try:
            verify_report(signed, self.known_signers, self.threshold,
                          now_s=self.service.clock_ms() // 1000 + 5)
        except ReportError as e:
            self.refused += 1
            log.warning("price report for %s refused: %s", feed, e)
            return
        r = signed.report
        status = "ok" if r.market_status == MarketStatus.OPEN else "market-closed"
        self._last_signed[feed] = (r.price, r.confidence, r.timestamp)
        await self._submit(feed, r.price, r.confidence, r.timestamp, status)

    async def on_status(self, agg) -> None:  # noqa: ANN001 - oracles.types.Aggregate
        status = agg.status.value
        if status not in ("stale", "halted", "deviating"):
            return  # ok and market-closed arrive as signed reports
        last = self._last_signed.get(agg.feed)
        if last is None:
            return
        await self._submit(agg.feed, last[0], last[1], last[2], status)

    async def _submit(self, feed: str, price: int, confidence: int, ts: int, status: str) -> None:
        try:
            await self.service.submit_price(feed, price, confidence, ts, status)
            self.accepted += 1
        except ServiceUnavailable as e:
            log.error("price for %s not sequenced: %s", feed, e)

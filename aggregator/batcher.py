"""Settlement batches in the main service: close, store, commit on the hub, hear back.

``Batcher`` (one per sequencer; it is the only one that submits batches)
    Every ``interval`` seconds (counted from the previous close, or from the previous look
    that found nothing to settle; a hub commit that takes longer delays the next close until
    its receipt), or as soon as
    ``max_fills`` fills were sequenced since the last batch, or - so that a withdrawal does
    not wait out the interval - as soon as a withdrawal was reserved, but not sooner than
    ``withdrawal_spacing`` seconds after the previous close and only once every chain has
    applied the previous batch (``None``: withdrawals wait for the interval like everything
    else). The last condition matters under load: a batch closed while its predecessor is
    still on its way queues behind it on some chain (batches apply in order, and a chain
    waiting for a bridge-in holds the next one), so closing it early wins nothing and costs
    a hub transaction, a message per chain and netting (measured with
    ``bench/bench_withdrawal_latency.py``: more batches, more bridge legs, higher p99).
    In every case only if the sequencer has something to settle (``pending_batch_preview``
    is not empty) and after the previous batch's hub transaction has its receipt (batches
    are committed one at a time, in order): sequence ``CloseBatch(journal_hash)``, where ``journal_hash`` is the keccak of
    the journal records (``commands.encode`` of every command) after the previous batch's
    ``seq`` up to the one before this ``CloseBatch`` - so anyone holding the journal can
    check which commands a batch covers. Then, in this order: store each chain's encoded
    ``ChainSettlement`` in the ledger (``settlement_body``: the vault watcher needs it to
    apply the chain's ``BatchApplied`` log), sign the header with the sequencer key and
    send ``submitBatch`` to the hub (``bridges.settle``). The hub dispatches one message
    per chain; the relayer delivers them.

Crash safety
    The batch is a pure function of the journal (replay rebuilds ``Sequencer.batch(n)``),
    the hub is the record of what was committed. ``catch_up`` runs on start and after any
    failed submission: every batch the sequencer closed above the hub's
    ``lastBatchNumber`` is stored and submitted again in order (``prevBatchHash`` read
    from the hub), so a crash between ``CloseBatch`` and ``submitBatch`` delays a batch,
    never loses or doubles it (the hub refuses a number twice).

Hearing back
    ``VaultForwarder`` (``aggregator.trading_node``) sequences ``BatchSettled(chain, n)``
    from the ledger's ``settlement_applied`` rows (written by the vault watcher when the
    chain's ``BatchApplied`` log has its confirmations): the sequencer then marks that
    chain's withdrawals paid and advances its confirmed on-chain view.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aggregator import settlement
from aggregator.eip712 import keccak
from aggregator.core import commands as C
from aggregator.ledger import Ledger
from aggregator.sequencer_service import Published, SequencerService, ServiceUnavailable
from bridges import messages as M
from bridges.chain import ChainClient, NonceManager
from bridges.contracts import abi
from bridges.settle import BatchSubmission, submit_batch

log = logging.getLogger(__name__)

__all__ = ["Batcher", "BatchRecord"]


ZERO = bytes(32)


@dataclass
class BatchRecord:
    """What happened to one batch in this process (``/metrics``, the demo's report)."""

    number: int
    closed_at: float
    submitted_at: float | None = None
    tx_hash: str | None = None
    gas_used: int | None = None
    message_ids: dict[int, str] = field(default_factory=dict)
    netting: dict[str, int] = field(default_factory=dict)
    withdrawals: int = 0


class Batcher:
    """See the module docstring."""

    def __init__(self, service: SequencerService, ledger: Ledger, hub_client: ChainClient, hub_address: str,
                 sequencer_key: str, domains: list[int], *, interval: float = 2.0, max_fills: int = 1_000,
                 withdrawal_spacing: float | None = 0.25) -> None:
        self.service = service
        self.ledger = ledger
        self.hub_client = hub_client
        self.hub_address = hub_address
        self.sequencer_key = sequencer_key
        self.domains = sorted(domains)
        self.interval = interval
        self.max_fills = max_fills
        self.withdrawal_spacing = withdrawal_spacing
        self.nonces = NonceManager()
        self.records: dict[int, BatchRecord] = {}
        self.failures = 0
        self._hash = ZERO
        self._hashed_to = 0  # last seq folded into _hash
        self._fills = 0
        self._withdrawals = 0  # reserved since the last close
        self._last_close = float("-inf")  # time.monotonic() of the last close
        self._round_start = float("-inf")  # time.monotonic() at the start of the last round
        self._wake = asyncio.Event()
        self._unsubscribe: Any = None
        self._hub = hub_client.w3.eth.contract(address=hub_client.w3.to_checksum_address(hub_address),
                                               abi=abi("SettlementHub"))

    # ----------------------------------------------------------- journal hash

    def attach(self) -> None:
        """Fold the journal since the last batch into the running hash, then follow new commands.

        Call right after the service started, before anything else is sequenced: the
        journal on disk is then exactly what has been sequenced.
        """
        last = self.service.sequencer.last_batch()
        start = last.seq + 1 if last is not None else 1
        for cmd in self.service.journal.replay(start):
            self._fold(cmd)
        self._unsubscribe = self.service.subscribe(self._on_published)

    def _fold(self, cmd: C.Command) -> None:
        if cmd.seq <= self._hashed_to:
            return
        self._hash = ZERO if type(cmd) is C.CloseBatch else keccak(self._hash + C.encode(cmd))
        self._hashed_to = cmd.seq

    def _on_published(self, batch: list[Published]) -> None:
        for p in batch:
            self._fold(p.cmd)
            for ev in p.outcome.events:
                name = type(ev).__name__
                if name == "OrderFilled":
                    self._fills += 1
                elif name == "WithdrawalReserved":
                    self._withdrawals += 1
        if self._fills >= self.max_fills or (self._withdrawals and self.withdrawal_spacing is not None):
            self._wake.set()

    # ---------------------------------------------------------------- batches

    async def close(self) -> Any:
        """Close a batch now if there is anything to settle; return the ``Batch`` or None."""
        seq = self.service.sequencer
        try:
            if seq.pending_batch_preview().is_empty():
                return None
        except ValueError as e:
            log.warning("no batch can be closed now: %s", e)
            return None
        # The running hash covers every published (durable) command; the commands sequenced
        # but not yet durable follow it in seq order. Nothing is sequenced between this
        # and the CloseBatch below (no await in between), so the digest covers exactly
        # the records before it.
        digest = self._hash
        for cmd in self.service.undurable_commands():
            if cmd.seq > self._hashed_to:
                digest = ZERO if type(cmd) is C.CloseBatch else keccak(digest + C.encode(cmd))
        self._last_close = time.monotonic()
        outcome = await self.service.execute(C.CloseBatch, digest)
        if not outcome.accepted:
            log.error("CloseBatch refused: %s %s", outcome.code, outcome.message)
            return None
        self._fills = 0
        self._withdrawals = 0
        batch = seq.batch(outcome.result["batch_number"]) if isinstance(outcome.result, dict) else seq.last_batch()
        self.records[batch.number] = BatchRecord(batch.number, time.time(), netting=batch.netting.to_dict(),
                                                 withdrawals=len(batch.withdrawals))
        return batch

    async def _hub_state(self) -> tuple[int, bytes]:
        n = int(await self._hub.functions.lastBatchNumber().call())
        h = bytes(await self._hub.functions.lastBatchHash().call())
        return n, h

    async def submit(self, batch: Any, prev_hash: bytes) -> BatchSubmission:
        """Store the batch's bodies, then commit it on the hub."""
        settlements = settlement.check(batch, self.domains)
        await asyncio.to_thread(self.ledger.store_settlements, batch.number,
                                {s.domain: M.encode_settlement(s) for s in settlements})
        header = settlement.to_header(batch, prev_hash, settlements)
        sub = await submit_batch(self.hub_client, self.hub_address, header, settlements, self.sequencer_key,
                                 nonces=self.nonces)
        rec = self.records.setdefault(batch.number, BatchRecord(batch.number, time.time(),
                                                                netting=batch.netting.to_dict(),
                                                                withdrawals=len(batch.withdrawals)))
        rec.submitted_at = time.time()
        rec.tx_hash = sub.tx_hash
        rec.message_ids = {d: "0x" + m.hex() for d, m in sub.message_ids.items()}
        try:
            receipt = await self.hub_client.w3.eth.get_transaction_receipt(sub.tx_hash)
            rec.gas_used = int(receipt["gasUsed"])
        except Exception:  # noqa: BLE001 - a figure for the report, not a correctness matter
            pass
        log.info("batch %d committed on the hub in %s", batch.number, sub.tx_hash)
        return sub

    async def catch_up(self) -> int:
        """Submit, in order, every closed batch the hub does not have yet; return how many."""
        on_hub, prev = await self._hub_state()
        last = self.service.sequencer.last_batch()
        n = 0
        while last is not None and on_hub < last.number:
            batch = self.service.sequencer.batch(on_hub + 1)
            if batch is None:
                raise RuntimeError(f"batch {on_hub + 1} is closed but the sequencer no longer has it")
            await self.submit(batch, prev)
            on_hub, prev = await self._hub_state()
            n += 1
        return n

    def _due_in(self) -> float:
        """Seconds until the next close is due (0: now)."""
        now = time.monotonic()
        if self._fills >= self.max_fills:
            return 0.0
        due = self.interval - (now - max(self._last_close, self._round_start))
        if self._withdrawals and self.withdrawal_spacing is not None and self._settled_everywhere():
            due = min(due, self.withdrawal_spacing - (now - self._last_close))
        return max(0.0, due)

    def _settled_everywhere(self) -> bool:
        """Whether every chain reported the last closed batch applied (see the module doc)."""
        seq = self.service.sequencer
        last = seq.last_batch()
        return last is None or all(seq.last_settled_batch(c) >= last.number for c in last.domains)

    async def run(self, stop: asyncio.Event) -> None:
        """Catch up, then close and submit batches until ``stop``."""
        pending_catch_up = True
        while not stop.is_set():
            self._round_start = time.monotonic()
            try:
                if pending_catch_up:
                    await self.catch_up()
                    pending_catch_up = False
                batch = await self.close()
                if batch is None:
                    self._withdrawals = 0  # nothing closable: they wait for the interval
                else:
                    _, prev = await self._hub_state()
                    await self.submit(batch, prev)
            except ServiceUnavailable as e:
                log.error("batcher stopped: %s", e)
                return
            except Exception:  # noqa: BLE001 - retried by catch_up on the next round
                self.failures += 1
                pending_catch_up = True
                self._withdrawals = 0  # a failed round backs off a whole interval
                log.exception("batch submission failed; catching up next round")
            # Sleep until the next close is due; a fill count reached or a withdrawal reserved
            # (the wake event) may bring it forward.
            while not stop.is_set():
                delay = self._due_in()
                if delay <= 0:
                    break
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

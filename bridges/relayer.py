"""The relayer daemon: watch every Mailbox's Dispatch, deliver each message exactly once.

Modelled on Hyperlane's relayer (DESIGN "Relayer daemon"). Per chain an ``EventWatcher``
reads ``Dispatch`` logs of the chain's Mailbox after the chain's confirmations (reorg
detection by block hash, persisted cursor, overlap re-scan) into the ``RelayStore``; per
destination a delivery loop claims the lowest undelivered message of each path (or, behind
a head this relayer has already sent, the path's next message: ``pipeline_depth``) and
delivers each in its own task (one slow path never holds up another); the Dispatch
watchers wake the loops as soon as they store a message. Each delivery:

1. pre-checks, in one concurrent round with the validators' signatures (``bridges.validator``;
   the validators check the Dispatch on the origin chain themselves), ``mailbox.delivered(id)``
   on the latest block (delivered → done, no transaction) and the path's ``inboundNonce`` on
   the latest and the pending block: a message whose predecessor is neither delivered nor
   sent waits;
2. simulates ``process`` on the *pending* block, so a message sent right behind its path
   predecessor, or a settlement sent right behind the mint it waits for, lands in the same
   block (a revert is classified: ``AlreadyDelivered`` = delivered if the latest block says
   so, else a wait, ``MessageOutOfOrder`` = wait, ``BridgeInPending`` (the vault waiting for
   a token-bridge mint) = a fast, uncounted wait that the worker keeps, with its lease,
   retrying as soon as this relayer sends or delivers anything to that chain, any other
   recipient revert = capped backoff);
3. sends ``process`` with the next nonce of its key; if no receipt comes within
   ``stuck_after_s`` it re-signs the *same nonce* with fees raised by ``bump_factor``
   (replacement), up to ``max_bumps`` times; "nonce too low" resyncs the nonce manager.

Invariants:
- Exactly once: the destination Mailbox refuses a delivered id, and every attempt starts
  with the on-chain pre-check, so crashes, retries, lost RPC answers and several relayers
  at once can cost gas but never deliver twice. Only the latest block can say "delivered"
  (terminal); the pending block only ever says "wait" or "go".
- Per-path order: the Mailbox's path nonce; a message sent behind its predecessor carries
  the next nonce of the same key, so it executes after it, and reverts (an uncounted wait)
  if the predecessor did not land.
- A row is acted on only under its lease (compare-and-set claim in the store); a crashed
  relayer's lease expires and another (or the restarted one) picks the message up.
- Retries are typed (``Reason``): each reason has its own jittered exponential backoff
  (tenacity wait strategies, evaluated against the persisted retry count) and a cap, after
  which the message is dead-lettered; waiting for a predecessor, or for the bridge mint a
  settlement needs (``RECIPIENT_WAITING``), never counts and is retried within 0.1-0.3 s.
- Graceful shutdown (SIGTERM): stop claiming, let in-flight deliveries finish (bounded by
  ``shutdown_grace_s``), release leases, close clients.

Nonces: the in-memory ``NonceManager`` starts from the chain's pending count, so after a
restart the chain is the persisted truth; a relayer key is used by one relayer at a time
(``--key-index``), a shared key still works through "nonce too low" resyncs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes
from tenacity import wait_fixed, wait_random, wait_random_exponential
from web3 import Web3

from bridges.chain import ChainClient, NonceManager, RetryPolicy
from bridges.contracts import abi
from bridges.errors import ChainError, NonceTooLow, RejectedChainError, TransientChainError
from bridges.relay_store import DISPATCH_TOPIC, RelayMessage, RelayStore
from bridges.validator import (
    DestinationMailbox,
    InProcessValidators,
    NotEnoughSignatures,
    OriginChain,
    SignatureSource,
    SignRequest,
    ValidatorRefused,
    ValidatorSigner,
)
from bridges.watcher import EventWatcher

log = logging.getLogger(__name__)

WATCHER_NAME = "mailbox-dispatch"


class Reason(StrEnum):
    """Why a delivery attempt did not finish; each has its own retry rule."""

    WAITING_PREDECESSOR = "waiting_predecessor"
    AWAITING_SIGNATURES = "awaiting_signatures"
    RECIPIENT_WAITING = "recipient_waiting"  # the recipient reverts "not yet" (BridgeInPending)
    RECIPIENT_REVERT = "recipient_revert"
    RPC_ERROR = "rpc_error"
    TX_REVERTED = "tx_reverted"
    STUCK = "stuck"
    INVALID = "invalid"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class RetryRule:
    """Backoff (a tenacity wait strategy) and a cap on counted retries (None: no cap)."""

    wait: Any
    cap: int | None
    counts: bool = True


RETRY_RULES: dict[Reason, RetryRule] = {
    Reason.WAITING_PREDECESSOR: RetryRule(wait_fixed(0.05) + wait_random(0, 0.1), cap=None, counts=False),
    # A settlement waiting for its bridge mint is progress elsewhere, not a fault: fast, never counted.
    Reason.RECIPIENT_WAITING: RetryRule(wait_fixed(0.1) + wait_random(0, 0.2), cap=None, counts=False),
    Reason.AWAITING_SIGNATURES: RetryRule(wait_random_exponential(multiplier=0.1, max=2.0), cap=60),
    Reason.RECIPIENT_REVERT: RetryRule(wait_random_exponential(multiplier=0.1, max=3.0), cap=40),
    Reason.RPC_ERROR: RetryRule(wait_random_exponential(multiplier=0.1, max=5.0), cap=30),
    Reason.TX_REVERTED: RetryRule(wait_random_exponential(multiplier=0.2, max=5.0), cap=10),
    Reason.STUCK: RetryRule(wait_random_exponential(multiplier=0.5, max=10.0), cap=10),
    Reason.INVALID: RetryRule(wait_fixed(0), cap=0),
    Reason.SUPERSEDED: RetryRule(wait_fixed(0), cap=0),
}


def retry_delay(reason: Reason, retries: int) -> float:
    """The wait before retry number ``retries`` (1-based) for ``reason``."""
    return float(RETRY_RULES[reason].wait(SimpleNamespace(attempt_number=max(1, retries))))


class DeliveryRetry(ChainError):
    """An attempt that did not deliver; ``reason`` decides when (and whether) to try again."""

    def __init__(self, reason: Reason, message: str, *, chain: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{reason.value}: {message}", chain=chain)


@dataclass(frozen=True)
class RelayerConfig:
    lease_s: float = 30.0
    idle_sleep_s: float = 0.25  # a look at the store without a wake-up (another relayer's leases, restarts)
    paths_per_destination: int = 16
    stuck_after_s: float = 5.0
    max_bumps: int = 5
    bump_factor: float = 1.25
    receipt_poll_s: float = 0.05
    shutdown_grace_s: float = 15.0
    rpc_timeout_s: float = 10.0
    watcher_poll_s: float = 0.05
    pipeline_depth: int = 4  # messages of one path sent behind its in-flight head (0: one at a time)
    recipient_wait_s: float = 5.0  # how long a worker keeps a RECIPIENT_WAITING message before handing it back


@dataclass
class RelayChain:
    """A chain the relayer serves: its client, Mailbox, confirmations and first block."""

    name: str
    domain: int
    client: ChainClient
    mailbox: str
    confirmations: int
    start_block: int = 0


# ---------------------------------------------------------------------- ABI helpers


@lru_cache(maxsize=1)
def _mailbox_contract() -> Any:
    return Web3().eth.contract(abi=abi("Mailbox"))


# Selectors of the two views every delivery reads (web3's encode_abi re-hashes the signature per call).
_DELIVERED = keccak(text="delivered(bytes32)")[:4]
_INBOUND_NONCE = keccak(text="inboundNonce(uint32,bytes32)")[:4]


def _abi_type(inp: dict[str, Any]) -> str:
    t = str(inp["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + t[5:]
    return t


@lru_cache(maxsize=1)
def error_selectors() -> dict[bytes, str]:
    """4-byte selector → custom error name, over every contract a delivery can reach."""
    out: dict[bytes, str] = {}
    for name in ("Mailbox", "CollateralVault", "TokenBridge", "CollateralToken"):
        for item in abi(name):
            if item.get("type") == "error":
                sig = f"{item['name']}({','.join(_abi_type(i) for i in item.get('inputs', []))})"
                out[keccak(text=sig)[:4]] = str(item["name"])
    return out


def revert_name(exc: BaseException) -> str:
    """The custom error name behind a revert (``"Error"``/``"Panic"``/``"unknown"`` otherwise)."""
    seen: BaseException | None = exc
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
            sel = bytes.fromhex(data[2:10])
            if sel == bytes.fromhex("08c379a0"):
                return "Error"
            if sel == bytes.fromhex("4e487b71"):
                return "Panic"
            return error_selectors().get(sel, "unknown")
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    for sel, name in error_selectors().items():
        if "0x" + sel.hex() in text:
            return name
    return "unknown"


_WAIT_ERRORS = {"MessageOutOfOrder"}
_RECIPIENT_WAIT_ERRORS = {"BridgeInPending"}  # recipient reverts that mean "not yet", not "never"
_SIGNATURE_ERRORS = {"ThresholdNotMet", "InvalidSignature", "UnknownValidator", "DuplicateOrUnsortedSigner"}
_INVALID_ERRORS = {"WrongDestination", "WrongVersion", "InvalidMessageLength"}


def classify_revert(name: str) -> Reason:
    """The retry reason for a ``process`` simulation that reverted with custom error ``name``
    (``AlreadyDelivered`` is handled before: it means done)."""
    if name in _WAIT_ERRORS:
        return Reason.WAITING_PREDECESSOR
    if name in _RECIPIENT_WAIT_ERRORS:
        return Reason.RECIPIENT_WAITING
    if name in _SIGNATURE_ERRORS:
        return Reason.AWAITING_SIGNATURES
    if name in _INVALID_ERRORS:
        return Reason.INVALID
    return Reason.RECIPIENT_REVERT


# ---------------------------------------------------------------------- metrics


class LatencyHistogram:
    """A Prometheus histogram of delivery latency (seconds), rendered by hand."""

    BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

    def __init__(self) -> None:
        self.counts = [0] * len(self.BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.total += 1
        self.sum += v
        for i, b in enumerate(self.BUCKETS):
            if v <= b:
                self.counts[i] += 1

    def render(self, name: str, help_text: str) -> list[str]:
        lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for b, c in zip(self.BUCKETS, self.counts):
            lines.append(f'{name}_bucket{{le="{b:g}"}} {c}')
        lines += [f'{name}_bucket{{le="+Inf"}} {self.total}', f"{name}_sum {self.sum:.6f}", f"{name}_count {self.total}"]
        return lines


@dataclass
class RelayerStats:
    delivered: int = 0  # by this relayer's transactions
    found_delivered: int = 0  # the pre-check found it done (another relayer, or a lost answer)
    retries: dict[str, int] = field(default_factory=dict)
    dead: int = 0
    gas_bumps: int = 0
    nonce_resyncs: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


# ---------------------------------------------------------------------- the relayer


class Relayer:
    """Watches every chain's Mailbox and delivers what it dispatched (see the module doc)."""

    def __init__(self, chains: list[RelayChain], store: RelayStore, signatures: SignatureSource, key: str,
                 threshold: int, *, owner: str | None = None, config: RelayerConfig = RelayerConfig(),
                 clock: Callable[[], float] = time.time) -> None:
        self.chains = {c.domain: c for c in chains}
        self.store = store
        self.signatures = signatures
        self._key = key
        self.address = str(Account.from_key(key).address)
        self.threshold = threshold
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.config = config
        self.clock = clock
        self.nonces = NonceManager()
        self.stats = RelayerStats()
        self.watchers = [
            EventWatcher(c.client, store, name=WATCHER_NAME, address=c.mailbox, topic0=DISPATCH_TOPIC,
                         confirmations=c.confirmations, start_block=c.start_block, poll_interval=config.watcher_poll_s)
            for c in chains
        ]
        self._in_flight: set[str] = set()
        self._wake: dict[int, asyncio.Event] = {}
        self._activity: dict[int, asyncio.Event] = {}  # pulsed when this relayer sends or delivers to a domain
        self._stopping = False
        self.started_at = clock()

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and deliver until ``stop`` is set; then finish in-flight work and return."""
        self._wake = {d: asyncio.Event() for d in self.chains}
        for w in self.watchers:
            w.on_applied = self._on_dispatches
        tasks = [asyncio.create_task(w.run(stop), name=f"watch-{w.client.name}") for w in self.watchers]
        tasks += [asyncio.create_task(self._delivery_loop(c, stop), name=f"deliver-{c.name}")
                  for c in self.chains.values()]
        await stop.wait()
        self._stopping = True
        for ev in self._wake.values():
            ev.set()
        for d in list(self._activity):
            self._pulse(d)
        done, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_s)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for mid in list(self._in_flight):
            await asyncio.to_thread(self.store.release, mid, self.owner)

    def _on_dispatches(self, _chain_id: int, _added: int) -> None:
        """A watcher stored new messages: let every delivery loop claim now (not at its next idle tick)."""
        for ev in self._wake.values():
            ev.set()

    async def _delivery_loop(self, dest: RelayChain, stop: asyncio.Event) -> None:
        """Claim each free path's head and deliver it in its own task: a path waiting for a
        receipt (or backing off) never holds up another path to the same destination."""
        wake = self._wake[dest.domain]
        running: set[asyncio.Task] = set()

        def finished(t: asyncio.Task) -> None:
            running.discard(t)
            wake.set()  # the path's next message (or a retry) may be claimable now

        while not stop.is_set():
            wake.clear()
            try:
                rows = await asyncio.to_thread(self.store.claim_next, self.owner, dest.domain, self.config.lease_s,
                                               self.config.paths_per_destination, self.config.pipeline_depth)
            except Exception:
                log.exception("claiming messages for %s failed", dest.name)
                rows = []
            for r in rows:
                t = asyncio.create_task(self.deliver(r), name=f"deliver-{r.id[:10]}")
                running.add(t)
                t.add_done_callback(finished)
            try:
                await asyncio.wait_for(wake.wait(), timeout=self.config.idle_sleep_s)
            except asyncio.TimeoutError:
                pass
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    # ------------------------------------------------------------------ one message

    async def deliver(self, row: RelayMessage) -> str:
        """Attempt one claimed message; persist the outcome; return its status word."""
        self._in_flight.add(row.id)
        try:
            return await self._deliver(row)
        finally:
            self._in_flight.discard(row.id)

    async def _deliver(self, row: RelayMessage) -> str:
        waiting_since: float | None = None
        renewed = 0.0
        while True:
            try:
                tx_hash = await self._attempt(row)
            except DeliveryRetry as e:
                if e.reason is not Reason.RECIPIENT_WAITING or self._stopping:
                    return await self._schedule(row, e.reason, str(e))
                # The recipient waits for a bridge-in (a mint on its way to this chain): keep the
                # lease and try again as soon as this relayer sends or delivers anything to the
                # destination (the mint, typically: the next attempt then simulates against the
                # pending block and lands in the same block as the mint), or after the
                # reason's short backoff; hand the message back to the store after a while.
                now = time.monotonic()
                if waiting_since is None:
                    waiting_since = renewed = now
                    if not await asyncio.to_thread(self.store.note, row.id, self.owner, str(e), self.config.lease_s):
                        return "lease-lost"
                elif now - waiting_since > self.config.recipient_wait_s:
                    return await self._schedule(row, e.reason, str(e))
                elif now - renewed > self.config.lease_s / 3:
                    renewed = now
                    if not await asyncio.to_thread(self.store.renew, row.id, self.owner, self.config.lease_s):
                        return "lease-lost"
                self.stats.retries[e.reason.value] = self.stats.retries.get(e.reason.value, 0) + 1
                await self._activity_on(row.destination, retry_delay(e.reason, 1))
                continue
            except TransientChainError as e:
                return await self._schedule(row, Reason.RPC_ERROR, str(e))
            except ChainError as e:
                return await self._schedule(row, Reason.RPC_ERROR, str(e))
            except Exception as e:  # a bug must not kill the loop; it shows as a retry reason
                log.exception("delivering %s failed unexpectedly", row.id)
                return await self._schedule(row, Reason.RPC_ERROR, f"{type(e).__name__}: {e}")
            break
        await asyncio.to_thread(self.store.mark_delivered, row.id, tx_hash)
        self._pulse(row.destination)
        self.stats.latency.observe(max(0.0, self.clock() - row.created_at))
        if tx_hash is None:
            self.stats.found_delivered += 1
            return "found-delivered"
        self.stats.delivered += 1
        return "delivered"

    def _pulse(self, domain: int) -> None:
        """Wake every worker waiting for activity on ``domain``."""
        ev = self._activity.get(domain)
        self._activity[domain] = asyncio.Event()
        if ev is not None:
            ev.set()

    async def _activity_on(self, domain: int, timeout: float) -> None:
        ev = self._activity.setdefault(domain, asyncio.Event())
        try:
            await asyncio.wait_for(ev.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            pass

    async def _schedule(self, row: RelayMessage, reason: Reason, detail: str) -> str:
        rule = RETRY_RULES[reason]
        retries = row.retries + (1 if rule.counts else 0)
        self.stats.retries[reason.value] = self.stats.retries.get(reason.value, 0) + 1
        if rule.cap is not None and retries > rule.cap:
            log.warning("message %s dead after %d retries: %s", row.id, retries, detail)
            self.stats.dead += 1
            await asyncio.to_thread(self.store.mark_dead, row.id, self.owner, detail, retries)
            return "dead"
        if rule.counts:  # uncounted waits are routine: they would flood the log
            log.info("message %s retry %d (%s)", row.id, retries, detail)
        delay = retry_delay(reason, retries)
        await asyncio.to_thread(self.store.mark_retry, row.id, self.owner, detail, delay,
                                count=rule.counts, retries=retries)
        wake = getattr(self, "_wake", {}).get(row.destination)
        if wake is not None:  # claim it again when it is due, not at the next idle look
            asyncio.get_running_loop().call_later(delay, wake.set)
        return "retry"

    async def _attempt(self, row: RelayMessage) -> str | None:
        """Deliver ``row``; return the delivering tx hash, None if it was already delivered."""
        dest = self.chains.get(row.destination)
        if dest is None:
            raise DeliveryRetry(Reason.INVALID, f"no chain for destination domain {row.destination}")
        msg = row.message()
        mid = msg.id
        if "0x" + mid.hex() != row.id:
            raise DeliveryRetry(Reason.INVALID, "stored message does not hash to its id")
        # One round trip for the pre-checks and the validators' signatures together: a
        # signature over a confirmed Dispatch is harmless if the message turns out delivered.
        # The path nonce is read on the latest block (what is final enough to judge) and on
        # the pending one (a predecessor this relayer just sent counts as on its way).
        done, inbound, inbound_pending, sigs = await asyncio.gather(
            self._delivered(dest, mid), self._inbound_nonce(dest, msg.origin, msg.sender),
            self._inbound_nonce(dest, msg.origin, msg.sender, "pending"),
            self.signatures.signatures(SignRequest(msg.encode(), row.dispatch_block), self.threshold),
            return_exceptions=True)
        if isinstance(done, BaseException):
            raise done
        if isinstance(inbound, BaseException):
            raise inbound
        if isinstance(inbound_pending, BaseException):
            raise inbound_pending
        if done:
            return None
        if msg.nonce < inbound:
            if await self._delivered(dest, mid):  # delivered by someone else since the pre-check
                return None
            raise DeliveryRetry(Reason.SUPERSEDED, f"path already past nonce {msg.nonce} (at {inbound})")
        if msg.nonce > inbound_pending:
            raise DeliveryRetry(Reason.WAITING_PREDECESSOR, f"path at nonce {inbound_pending} (pending), "
                                f"message is {msg.nonce}")
        if msg.nonce < inbound_pending:
            raise DeliveryRetry(Reason.WAITING_PREDECESSOR, "a delivery of this message is pending")
        if isinstance(sigs, (NotEnoughSignatures, ValidatorRefused)):
            raise DeliveryRetry(Reason.AWAITING_SIGNATURES, str(sigs)) from sigs
        if isinstance(sigs, BaseException):
            raise sigs
        data = _mailbox_contract().encode_abi("process", args=[msg.encode(), sigs[: self.threshold]])
        tx: dict[str, Any] = {"to": dest.mailbox, "data": data, "from": self.address, "chainId": dest.client.chain_id}
        gas, fees = await asyncio.gather(self._estimate(dest, tx, mid), self._fees(dest.client),
                                         return_exceptions=True)
        if isinstance(gas, BaseException):
            raise gas
        if gas is None:
            return None
        if isinstance(fees, BaseException):
            raise fees
        tx["gas"] = gas
        receipt = await self._send_with_bumps(dest, tx, row, fees)
        if int(receipt["status"]) == 1:
            return HexBytes(receipt["transactionHash"]).to_0x_hex()
        if await self._delivered(dest, mid):
            return None  # another relayer's transaction landed first
        if msg.nonce > await self._inbound_nonce(dest, msg.origin, msg.sender):
            # Sent right behind a predecessor that did not land: not this message's fault.
            raise DeliveryRetry(Reason.WAITING_PREDECESSOR, "sent behind a predecessor that did not land",
                                chain=dest.name)
        raise DeliveryRetry(Reason.TX_REVERTED, f"process tx {HexBytes(receipt['transactionHash']).to_0x_hex()} "
                            "reverted", chain=dest.name)

    async def _delivered(self, dest: RelayChain, mid: bytes) -> bool:
        data = "0x" + (_DELIVERED + abi_encode(["bytes32"], [mid])).hex()
        out = await dest.client.call({"to": dest.mailbox, "data": data})
        return bool(abi_decode(["bool"], out)[0])

    async def _inbound_nonce(self, dest: RelayChain, origin: int, sender: bytes, block: str = "latest") -> int:
        data = "0x" + (_INBOUND_NONCE + abi_encode(["uint32", "bytes32"], [origin, sender])).hex()
        out = await dest.client.call({"to": dest.mailbox, "data": data}, block)
        return int(abi_decode(["uint32"], out)[0])

    async def _estimate(self, dest: RelayChain, tx: dict[str, Any], mid: bytes) -> int | None:
        """Simulate ``process`` on the pending block; classify a revert. None means "already delivered".

        The pending block holds the transactions already sent (by this relayer: the mint a
        settlement waits for), so a delivery that depends on one can be sent right behind it
        at the next nonce and land in the same block. A simulation is only a forecast: the
        Mailbox decides on chain (delivered-by-id, path nonce, the vault's bridge-in check).
        """
        client = dest.client
        try:
            est = await client.idempotent(lambda: client.w3.eth.estimate_gas(tx, "pending"))  # type: ignore[arg-type]
        except RejectedChainError as e:
            name = revert_name(e)
            if name == "AlreadyDelivered":
                if await self._delivered(dest, mid):
                    return None
                # Delivered only in the pending block: a process transaction is on its way.
                raise DeliveryRetry(Reason.WAITING_PREDECESSOR, "a delivery is pending", chain=dest.name) from e
            reason = classify_revert(name)
            detail = name if reason is not Reason.RECIPIENT_REVERT else f"{name}: {str(e)[:200]}"
            raise DeliveryRetry(reason, detail, chain=dest.name) from e
        return int(est * 13 // 10) + 30_000

    # ------------------------------------------------------------------ transactions

    async def _fees(self, client: ChainClient) -> tuple[int, int]:
        latest = await client.idempotent(lambda: client.w3.eth.get_block("latest"))
        tip = 10**9
        return int(latest["baseFeePerGas"]) * 2 + tip, tip

    async def _broadcast(self, client: ChainClient, raw: bytes) -> None:
        try:
            await client.idempotent(lambda: client.w3.eth.send_raw_transaction(raw))
        except NonceTooLow:
            raise
        except RejectedChainError as e:
            if "already known" in str(e).lower():
                return  # our own earlier send reached the node; the answer was lost
            raise

    async def _receipt(self, client: ChainClient, tx_hash: bytes) -> dict[str, Any] | None:
        try:
            r = await client.once(lambda: client.w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        except TransientChainError:
            return None
        return dict(r) if r is not None else None

    async def _send_with_bumps(self, dest: RelayChain, tx: dict[str, Any], row: RelayMessage,
                               fees: tuple[int, int] | None = None) -> dict[str, Any]:
        """Send ``tx`` at a fresh nonce; replace it at the same nonce with higher fees while stuck."""
        client = dest.client
        acct = Account.from_key(self._key)
        max_fee, tip = fees if fees is not None else await self._fees(client)
        hashes: list[bytes] = []
        for _ in range(3):
            async with self.nonces.lock(acct.address, client.chain_id):
                nonce = await self.nonces.next(client, acct.address)
                signed = acct.sign_transaction({**tx, "nonce": nonce, "maxFeePerGas": max_fee,
                                                "maxPriorityFeePerGas": tip})
                await asyncio.to_thread(self.store.mark_submitted, row.id, self.owner, signed.hash.to_0x_hex(), nonce)
                try:
                    await self._broadcast(client, signed.raw_transaction)
                    self._pulse(row.destination)
                    if row.destination in self._wake:
                        self._wake[row.destination].set()  # the path's next message may follow now
                except NonceTooLow:
                    self.stats.nonce_resyncs += 1
                    await self.nonces.resync(client, acct.address)
                    continue
                except ChainError:
                    await self.nonces.resync(client, acct.address)  # the nonce may not be in any mempool
                    raise
            hashes.append(bytes(signed.hash))
            break
        else:
            raise DeliveryRetry(Reason.RPC_ERROR, "nonce too low three times in a row", chain=dest.name)
        bumps = 0
        while True:
            deadline = time.monotonic() + self.config.stuck_after_s
            while time.monotonic() < deadline:
                for h in hashes:
                    r = await self._receipt(client, h)
                    if r is not None:
                        return r
                await asyncio.sleep(self.config.receipt_poll_s)
            if bumps >= self.config.max_bumps:
                raise DeliveryRetry(Reason.STUCK, f"no receipt after {bumps} gas bumps at nonce {nonce}",
                                    chain=dest.name)
            await asyncio.to_thread(self.store.renew, row.id, self.owner, self.config.lease_s)
            bumps += 1
            self.stats.gas_bumps += 1
            cur_fee, _ = await self._fees(client)
            tip = math.ceil(tip * self.config.bump_factor) + 1
            max_fee = max(math.ceil(max_fee * self.config.bump_factor) + 1, cur_fee + tip)
            signed = acct.sign_transaction({**tx, "nonce": nonce, "maxFeePerGas": max_fee,
                                            "maxPriorityFeePerGas": tip})
            log.info("message %s: gas bump %d at nonce %d (maxFee %d)", row.id, bumps, nonce, max_fee)
            try:
                await self._broadcast(client, signed.raw_transaction)
            except NonceTooLow:
                # One of our transactions at this nonce was mined meanwhile: find its receipt.
                for _ in range(40):
                    for h in hashes:
                        r = await self._receipt(client, h)
                        if r is not None:
                            return r
                    await asyncio.sleep(self.config.receipt_poll_s)
                await self.nonces.resync(client, acct.address)
                raise DeliveryRetry(Reason.RPC_ERROR, f"nonce {nonce} consumed by another transaction",
                                    chain=dest.name) from None
            except RejectedChainError as e:
                if "underpriced" not in str(e).lower():
                    raise
                continue  # the next round bumps again
            hashes.append(bytes(signed.hash))
            await asyncio.to_thread(self.store.mark_submitted, row.id, self.owner, signed.hash.to_0x_hex(), nonce)

    # ------------------------------------------------------------------ observability

    def health(self) -> dict[str, Any]:
        chains = {w.client.name: {"last_safe_block": w.stats.last_safe_block, "last_error": w.stats.last_error,
                                  "reorgs": w.stats.reorgs} for w in self.watchers}
        ok = all(w.stats.last_error is None for w in self.watchers)
        return {"ok": ok, "owner": self.owner, "relayer": self.address, "uptime_s": round(self.clock() - self.started_at, 3),
                "chains": chains, "in_flight": len(self._in_flight), "delivered": self.stats.delivered}

    def render_metrics(self) -> str:
        counts = self.store.counts()
        lines = ["# HELP omniclear_relay_messages Relay queue length by status.",
                 "# TYPE omniclear_relay_messages gauge"]
        lines += [f'omniclear_relay_messages{{status="{s}"}} {n}' for s, n in sorted(counts.items())]
        lines += ["# HELP omniclear_relay_last_delivered_nonce Highest delivered nonce per path.",
                  "# TYPE omniclear_relay_last_delivered_nonce gauge"]
        for origin, destination, sender, nonce in self.store.last_delivered_nonces():
            lines.append(f'omniclear_relay_last_delivered_nonce{{origin="{origin}",destination="{destination}",'
                         f'sender="{sender}"}} {nonce}')
        lines += ["# HELP omniclear_relay_deliveries_total Messages delivered, by who delivered them.",
                  "# TYPE omniclear_relay_deliveries_total counter",
                  f'omniclear_relay_deliveries_total{{by="self"}} {self.stats.delivered}',
                  f'omniclear_relay_deliveries_total{{by="found"}} {self.stats.found_delivered}',
                  "# HELP omniclear_relay_retries_total Delivery attempts that will be retried, by reason.",
                  "# TYPE omniclear_relay_retries_total counter"]
        lines += [f'omniclear_relay_retries_total{{reason="{r}"}} {n}' for r, n in sorted(self.stats.retries.items())]
        lines += ["# HELP omniclear_relay_dead_total Messages dead-lettered by this relayer.",
                  "# TYPE omniclear_relay_dead_total counter", f"omniclear_relay_dead_total {self.stats.dead}",
                  "# HELP omniclear_relay_gas_bumps_total Same-nonce replacements sent.",
                  "# TYPE omniclear_relay_gas_bumps_total counter",
                  f"omniclear_relay_gas_bumps_total {self.stats.gas_bumps}",
                  "# HELP omniclear_relay_watcher_safe_block Highest confirmed block per chain.",
                  "# TYPE omniclear_relay_watcher_safe_block gauge"]
        lines += [f'omniclear_relay_watcher_safe_block{{chain="{w.client.name}"}} {w.stats.last_safe_block}'
                  for w in self.watchers]
        lines += self.stats.latency.render("omniclear_relay_delivery_latency_seconds",
                                           "From Dispatch seen (confirmed) to delivered.")
        return "\n".join(lines) + "\n"

    async def close(self) -> None:
        for c in self.chains.values():
            await c.client.close()


# ---------------------------------------------------------------------- wiring


def build_relayer(dep: Any, store: RelayStore, *, key: str | None = None, key_index: int = 0,
                  owner: str | None = None, config: RelayerConfig = RelayerConfig(),
                  rpc_urls: dict[str, str] | None = None) -> Relayer:
    """Build a relayer (and the devnet's in-process validators) for a ``devnet.Deployment``.

    ``rpc_urls`` overrides a chain's RPC URL by name (the relayer's; validators keep theirs).
    Call inside a running event loop.
    """
    st = dep.settlement
    if st is None or any(not c.mailbox for c in dep.chains):
        raise ChainError("the deployment has no settlement layer: run `aggregator devnet up` again")
    rpc_urls = rpc_urls or {}
    retry = RetryPolicy()
    chains = [RelayChain(c.name, c.chain_id, ChainClient(c.name, rpc_urls.get(c.name, c.rpc_url), c.chain_id,
                                                          timeout=config.rpc_timeout_s, retry=retry),
                         c.mailbox, c.confirmations, c.deploy_block) for c in dep.chains]
    # Devnet shortcut (see bridges.validator): the validators run here, each with its own clients.
    destinations = {c.chain_id: DestinationMailbox(c.chain_id, c.mailbox) for c in dep.chains}
    signers = []
    for vkey in st.validator_keys:
        origins = {c.chain_id: OriginChain(ChainClient(f"{c.name}/validator", c.rpc_url, c.chain_id,
                                                       timeout=config.rpc_timeout_s), c.mailbox, c.confirmations)
                   for c in dep.chains}
        signers.append(ValidatorSigner(vkey, origins, destinations))
    validators = InProcessValidators(signers)
    relayer = Relayer(chains, store, validators, key or st.relayer_keys[key_index], st.threshold, owner=owner,
                      config=config)
    relayer._validator_clients = [o.client for v in signers for o in v.origins.values()]  # type: ignore[attr-defined]
    return relayer


async def close_relayer(relayer: Relayer) -> None:
    await relayer.close()
    for c in getattr(relayer, "_validator_clients", []):
        await c.close()


def make_app(relayer: Relayer) -> web.Application:
    """``/health`` (JSON, 503 when a watcher's last poll failed) and ``/metrics`` (Prometheus)."""

    async def health(_req: web.Request) -> web.Response:
        body = relayer.health()
        body["queue"] = await asyncio.to_thread(relayer.store.counts)
        return web.json_response(body, status=200 if body["ok"] else 503)

    async def metrics(_req: web.Request) -> web.Response:
        text = await asyncio.to_thread(relayer.render_metrics)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    return app


async def run_daemon(dep: Any, db_url: str, *, port: int | None = None, host: str = "127.0.0.1",
                     key_index: int = 0, owner: str | None = None, config: RelayerConfig = RelayerConfig(),
                     ready: Callable[[int | None], None] | None = None) -> None:
    """Run the relayer until SIGTERM/SIGINT; serve /health and /metrics on ``port``."""
    from aggregator.db import make_engine

    engine = make_engine(db_url)
    store = RelayStore(engine)
    store.create_tables()
    relayer = build_relayer(dep, store, key_index=key_index, owner=owner, config=config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner: web.AppRunner | None = None
    bound: int | None = None
    try:
        if port is not None:
            runner = web.AppRunner(make_app(relayer))
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound = port
        if ready:
            ready(bound)
        await relayer.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        await close_relayer(relayer)
        engine.dispose()

"""Validator signers: attest a Mailbox message only once its Dispatch is confirmed on its origin.

Trust boundary (stage 1, DESIGN "Trust model"): the destination Mailbox accepts a message
with ``threshold`` signatures of distinct validators over ``Mailbox.deliveryDigest(id)``.
A validator is an independent party with its own key and its own view of the origin chain;
it signs message ``id`` only after checking, on that chain, that

1. ``keccak(message) == id`` and the message names this validator's origin domain;
2. a ``Dispatch`` log with that id, from the origin Mailbox, sits in block ``n``, whose hash
   is the canonical block hash at height ``n`` (no reorged-away log is ever attested);
3. the log's message bytes equal the bytes to sign;
4. ``head - n >= confirmations`` of the origin chain.

The relayer only *asks* (``SignatureSource``) and never holds validator keys in
production: there each validator runs its own ``ValidatorSigner`` behind its own endpoint.
On the devnet (and in tests) ``InProcessValidators`` runs the devnet validator keys in the
relayer's process — each signer still checks the chain by itself, so the rules above hold,
but the key custody does not; that is a devnet shortcut, not a design.

``sign_message_id`` is the pure signing function (golden-vector friendly); the rest is the
I/O shell.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eth_account import Account
from hexbytes import HexBytes

from bridges.chain import ChainClient
from bridges.errors import ChainError, TransientChainError
from bridges.messages import decode_message, delivery_digest, message_id, sort_signatures
from bridges.relay_store import DISPATCH_TOPIC, decode_dispatch
from aggregator.eip712 import sign_digest

log = logging.getLogger(__name__)

__all__ = ["ValidatorRefused", "NotEnoughSignatures", "SignRequest", "OriginChain", "DestinationMailbox",
           "sign_message_id", "ValidatorSigner", "SignatureSource", "InProcessValidators"]


class ValidatorRefused(ChainError):
    """A validator will not sign (yet): ``reason`` is one of ``unconfirmed``, ``not-found``,
    ``mismatch``, ``unknown-chain``."""

    def __init__(self, reason: str, message: str, *, chain: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}", chain=chain)


class NotEnoughSignatures(ChainError):
    """Fewer than ``threshold`` validators attested a message (so far)."""


@dataclass(frozen=True)
class SignRequest:
    """What the relayer asks for: the message bytes and where it saw the Dispatch."""

    message: bytes
    block_number: int

    @property
    def id(self) -> bytes:
        return message_id(self.message)


@dataclass(frozen=True)
class OriginChain:
    """A chain a validator watches: its client, Mailbox and confirmation depth."""

    client: ChainClient
    mailbox: str
    confirmations: int


@dataclass(frozen=True)
class DestinationMailbox:
    chain_id: int
    mailbox: str


def sign_message_id(key: bytes | str, msg_id: bytes, destination_chain_id: int, destination_mailbox: str) -> bytes:
    """Sign the delivery of ``msg_id`` to ``destination_mailbox``: 65 bytes ``r||s||v`` (pure)."""
    return sign_digest(key, delivery_digest(msg_id, destination_chain_id, destination_mailbox))


class ValidatorSigner:
    """One validator: a key and its own view of every origin chain (domain → OriginChain)."""

    def __init__(self, key: str, origins: dict[int, OriginChain], destinations: dict[int, DestinationMailbox]) -> None:
        self._key = key
        self.address = str(Account.from_key(key).address)
        self.origins = origins
        self.destinations = destinations
        self._signed: dict[bytes, bytes] = {}

    async def attest(self, req: SignRequest) -> bytes:
        """Return this validator's signature for ``req`` or raise ``ValidatorRefused``."""
        mid = req.id
        if mid in self._signed:
            return self._signed[mid]
        msg = decode_message(req.message)
        origin = self.origins.get(msg.origin)
        dest = self.destinations.get(msg.destination)
        if origin is None or dest is None:
            raise ValidatorRefused("unknown-chain", f"{msg.origin}->{msg.destination}")
        client = origin.client
        head = await client.block_number()
        if head - req.block_number < origin.confirmations:
            raise ValidatorRefused("unconfirmed", f"block {req.block_number} has {head - req.block_number} of "
                                   f"{origin.confirmations} confirmations", chain=client.name)
        # The head first, then the log and the canonical block together: a block that had the
        # confirmations on top when the head was read is not undone by a shallower reorg, so
        # reading its hash afterwards (in whichever order with the log) sees the same block.
        logs, ref = await asyncio.gather(
            client.get_logs(origin.mailbox, [DISPATCH_TOPIC, "0x" + mid.hex()], req.block_number, req.block_number),
            client.block(req.block_number))
        if not logs:
            raise ValidatorRefused("not-found", f"no Dispatch 0x{mid.hex()} in block {req.block_number}",
                                   chain=client.name)
        for lg in logs:
            if HexBytes(lg["blockHash"]).to_0x_hex() != ref.hash:
                continue  # a log from a block that is no longer canonical
            ev = decode_dispatch(lg)
            if ev.message != bytes(req.message):
                raise ValidatorRefused("mismatch", f"Dispatch 0x{mid.hex()} carries other bytes", chain=client.name)
            sig = sign_message_id(self._key, mid, dest.chain_id, dest.mailbox)
            self._signed[mid] = sig
            return sig
        raise ValidatorRefused("not-found", f"Dispatch 0x{mid.hex()} is not in canonical block {req.block_number}",
                               chain=client.name)


class SignatureSource(Protocol):
    """Where the relayer gets validator signatures (in-process on the devnet, HTTP in production)."""

    async def signatures(self, req: SignRequest, threshold: int) -> list[bytes]: ...


class InProcessValidators:
    """Ask every validator concurrently; return ≥ ``threshold`` signatures sorted by signer."""

    def __init__(self, signers: Sequence[ValidatorSigner]) -> None:
        self.signers = list(signers)

    async def signatures(self, req: SignRequest, threshold: int) -> list[bytes]:
        results = await asyncio.gather(*(v.attest(req) for v in self.signers), return_exceptions=True)
        sigs = [r for r in results if isinstance(r, bytes)]
        errors = [r for r in results if not isinstance(r, bytes)]
        if len(sigs) < threshold:
            reasons = sorted({getattr(e, "reason", type(e).__name__) for e in errors})
            transient = any(isinstance(e, TransientChainError) for e in errors)
            detail = f"{len(sigs)}/{threshold} signatures; refused: {', '.join(reasons)}"
            raise (TransientChainError if transient and not sigs else NotEnoughSignatures)(detail)
        msg = decode_message(req.message)
        dest = self.signers[0].destinations[msg.destination]
        return sort_signatures(delivery_digest(req.id, dest.chain_id, dest.mailbox), sigs)

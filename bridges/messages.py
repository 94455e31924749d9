"""Omniclear's settlement messages, byte for byte as the contracts build and check them.

Pure: no I/O, no web3. Every function here has a Solidity twin, and the shared vectors in
``contracts/test/vectors/settlement_messages.json`` (written by ``python -m
tests.settlement.vectors``) are checked by pytest and by forge so the two never drift.

Mailbox message (``contracts/src/libraries/Message.sol``), packed like Hyperlane's::

    version uint8 | nonce uint32 | origin uint32 | sender bytes32 | destination uint32 |
    recipient bytes32 | body bytes          (77-byte header, big-endian integers)

``message_id = keccak256(message)``. The nonce counts per path ``(origin, sender,
destination)`` from 0; the destination Mailbox accepts a path's messages only in order.

Validator signature (``Mailbox.deliveryDigest``): EIP-712 over ``Delivery(bytes32
messageId)`` in the domain ``{name: "Omniclear Mailbox", version: "1", chainId:
<destination chain id>, verifyingContract: <destination Mailbox>}``. ``process`` wants at
least ``threshold`` signatures from distinct validators, sorted by signer address
ascending (``sign_delivery`` with several keys returns them in that order).

Settlement body (what the SettlementHub dispatches to each vault): ``abi.encode(ChainSettlement)``
with ``ChainSettlement = (uint32 domain, uint64 batchNumber, (address account, int256
amount)[] deltas, (bytes32 withdrawalId, address account, address recipient, uint256
amount)[] withdrawals, (uint32 toDomain, uint256 amount)[] bridgeOut, (uint32 fromDomain,
uint256 amount)[] bridgeIn)``; every amount is in the canonical unit (1e-6 USD), each vault
multiplies by ``10**(decimals - 6)``. ``settlements_hash = keccak256(abi.encode(ChainSettlement[]))``.

Batch header: EIP-712 ``Batch(uint64 batchNumber,bytes32 prevBatchHash,bytes32
stateRoot,bytes32 journalHash,bytes32 settlementsHash)`` in the domain ``{name:
"Omniclear", version: "1", chainId: <hub chain id>, verifyingContract: <SettlementHub>}``.
``batch_hash`` is the struct hash (what the next header's ``prevBatchHash`` carries; zero
before batch 1); the sequencer signs ``batch_digest``.

``check_batch`` mirrors the hub's rules, so a batcher can refuse a batch before paying gas:
every registered domain once, ascending; Σ deltas == 0 over the batch; per chain Σ deltas ==
Σ bridgeIn − Σ bridgeOut; bridge legs ascending by domain, non-zero, matched one-to-one;
no chain both sends and receives in one batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode

from aggregator.eip712 import Domain, keccak, recover, sign_digest, to_checksum_address

__all__ = [
    "MESSAGE_VERSION",
    "HEADER_LENGTH",
    "CANONICAL_DECIMALS",
    "BATCH_TYPE",
    "BATCH_TYPEHASH",
    "DELIVERY_TYPE",
    "DELIVERY_TYPEHASH",
    "SETTLEMENT_ABI",
    "MessageCodecError",
    "BatchRuleError",
    "MailboxMessage",
    "AccountDelta",
    "Withdrawal",
    "BridgeTransfer",
    "ChainSettlement",
    "BatchHeader",
    "address_to_bytes32",
    "bytes32_to_address",
    "encode_message",
    "decode_message",
    "message_id",
    "encode_settlement",
    "decode_settlement",
    "settlements_hash",
    "batch_hash",
    "hub_domain",
    "batch_digest",
    "sign_batch",
    "mailbox_domain",
    "delivery_digest",
    "sign_delivery",
    "recover_delivery_signer",
    "sort_signatures",
    "native_scale",
    "to_native",
    "check_batch",
    "bridge_deps",
]

MESSAGE_VERSION = 1
HEADER_LENGTH = 77
CANONICAL_DECIMALS = 6

BATCH_TYPE = (
    "Batch(uint64 batchNumber,bytes32 prevBatchHash,bytes32 stateRoot,bytes32 journalHash,"
    "bytes32 settlementsHash)"
)
BATCH_TYPEHASH = keccak(BATCH_TYPE.encode())
DELIVERY_TYPE = "Delivery(bytes32 messageId)"
DELIVERY_TYPEHASH = keccak(DELIVERY_TYPE.encode())
MAILBOX_DOMAIN_NAME = "Omniclear Mailbox"
HUB_DOMAIN_NAME = "Omniclear"

SETTLEMENT_ABI = (
    "(uint32,uint64,(address,int256)[],(bytes32,address,address,uint256)[],(uint32,uint256)[],(uint32,uint256)[])"
)

_U32 = 2**32
_U64 = 2**64
_U256 = 2**256
_I256 = 2**255


class MessageCodecError(ValueError):
    """A value does not fit its on-chain type, or bytes do not decode as a message."""


class BatchRuleError(ValueError):
    """A batch breaks a rule SettlementHub enforces; ``name`` is the contract's error name."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name


# ------------------------------------------------------------------ field helpers


def _uint(name: str, v: int, bound: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < bound:
        raise MessageCodecError(f"{name} must be an integer in [0, {bound}), got {v!r}")
    return v


def _int256(name: str, v: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -_I256 <= v < _I256:
        raise MessageCodecError(f"{name} must fit int256, got {v!r}")
    return v


def _b32(name: str, v: bytes | str) -> bytes:
    if isinstance(v, str):
        try:
            v = bytes.fromhex(v[2:] if v.startswith("0x") else v)
        except ValueError:
            raise MessageCodecError(f"{name} is not hex") from None
    if not isinstance(v, (bytes, bytearray)) or len(v) != 32:
        raise MessageCodecError(f"{name} must be 32 bytes")
    return bytes(v)


def _addr(name: str, v: str | bytes) -> str:
    try:
        return to_checksum_address(v)
    except Exception as e:  # eip712 raises its own error type; translate at the boundary
        raise MessageCodecError(f"{name} is not an address: {v!r}") from e


def address_to_bytes32(address: str | bytes) -> bytes:
    """Left-pad a 20-byte address to 32 bytes (``Message.addressToBytes32``)."""
    return bytes(12) + bytes.fromhex(_addr("address", address)[2:])


def bytes32_to_address(b: bytes) -> str:
    """The low 20 bytes of ``b`` as a checksum address (``Message.bytes32ToAddress``)."""
    return to_checksum_address(_b32("bytes32", b)[12:])


# ------------------------------------------------------------------ mailbox message


@dataclass(frozen=True, slots=True)
class MailboxMessage:
    """One Mailbox message; ``encode()`` gives the packed bytes, ``id`` their keccak."""

    nonce: int
    origin: int
    sender: bytes
    destination: int
    recipient: bytes
    body: bytes = b""
    version: int = MESSAGE_VERSION

    def __post_init__(self) -> None:
        _uint("version", self.version, 256)
        _uint("nonce", self.nonce, _U32)
        _uint("origin", self.origin, _U32)
        _uint("destination", self.destination, _U32)
        object.__setattr__(self, "sender", _b32("sender", self.sender))
        object.__setattr__(self, "recipient", _b32("recipient", self.recipient))
        if not isinstance(self.body, (bytes, bytearray)):
            raise MessageCodecError("body must be bytes")
        object.__setattr__(self, "body", bytes(self.body))

    def encode(self) -> bytes:
        """Return the packed message (``Message.formatMessage``)."""
        return (
            self.version.to_bytes(1, "big")
            + self.nonce.to_bytes(4, "big")
            + self.origin.to_bytes(4, "big")
            + self.sender
            + self.destination.to_bytes(4, "big")
            + self.recipient
            + self.body
        )

    @property
    def id(self) -> bytes:
        """``keccak256(encode())``."""
        return keccak(self.encode())

    @property
    def sender_address(self) -> str:
        return bytes32_to_address(self.sender)

    @property
    def recipient_address(self) -> str:
        return bytes32_to_address(self.recipient)


def encode_message(msg: MailboxMessage) -> bytes:
    """Return the packed bytes of ``msg``."""
    return msg.encode()


def decode_message(data: bytes | str) -> MailboxMessage:
    """Parse packed message bytes (hex accepted); refuse anything shorter than the header."""
    if isinstance(data, str):
        data = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    data = bytes(data)
    if len(data) < HEADER_LENGTH:
        raise MessageCodecError(f"a message has a {HEADER_LENGTH}-byte header, got {len(data)} bytes")
    return MailboxMessage(
        version=data[0],
        nonce=int.from_bytes(data[1:5], "big"),
        origin=int.from_bytes(data[5:9], "big"),
        sender=data[9:41],
        destination=int.from_bytes(data[41:45], "big"),
        recipient=data[45:77],
        body=data[77:],
    )


def message_id(message: bytes | MailboxMessage) -> bytes:
    """``keccak256`` of the packed message."""
    return message.id if isinstance(message, MailboxMessage) else keccak(bytes(message))


# ------------------------------------------------------------------ settlement body


@dataclass(frozen=True, slots=True)
class AccountDelta:
    """Net change of ``account``'s settled balance on one chain (canonical units)."""

    account: str
    amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "account", _addr("account", self.account))
        _int256("amount", self.amount)

    def as_abi(self) -> tuple:
        return (self.account, self.amount)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """Pay ``amount`` (canonical) of ``account``'s balance to ``recipient``, once per id."""

    withdrawal_id: bytes
    account: str
    recipient: str
    amount: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "withdrawal_id", _b32("withdrawal_id", self.withdrawal_id))
        object.__setattr__(self, "account", _addr("account", self.account))
        object.__setattr__(self, "recipient", _addr("recipient", self.recipient))
        _uint("amount", self.amount, _U256)

    def as_abi(self) -> tuple:
        return (self.withdrawal_id, self.account, self.recipient, self.amount)


@dataclass(frozen=True, slots=True)
class BridgeTransfer:
    """A bridge leg: ``domain`` is the destination of a bridge-out, the source of a bridge-in."""

    domain: int
    amount: int

    def __post_init__(self) -> None:
        _uint("domain", self.domain, _U32)
        _uint("amount", self.amount, _U256)

    def as_abi(self) -> tuple:
        return (self.domain, self.amount)


@dataclass(frozen=True, slots=True)
class ChainSettlement:
    """Everything one batch changes on one chain (the body of one settlement message)."""

    domain: int
    batch_number: int
    deltas: tuple[AccountDelta, ...] = ()
    withdrawals: tuple[Withdrawal, ...] = ()
    bridge_out: tuple[BridgeTransfer, ...] = ()
    bridge_in: tuple[BridgeTransfer, ...] = ()

    def __post_init__(self) -> None:
        _uint("domain", self.domain, _U32)
        _uint("batch_number", self.batch_number, _U64)
        for name in ("deltas", "withdrawals", "bridge_out", "bridge_in"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def as_abi(self) -> tuple:
        return (
            self.domain,
            self.batch_number,
            [d.as_abi() for d in self.deltas],
            [w.as_abi() for w in self.withdrawals],
            [b.as_abi() for b in self.bridge_out],
            [b.as_abi() for b in self.bridge_in],
        )

    @classmethod
    def from_abi(cls, t: Sequence) -> "ChainSettlement":
        domain, batch, deltas, withdrawals, outs, ins = t
        return cls(
            domain=domain,
            batch_number=batch,
            deltas=tuple(AccountDelta(a, v) for a, v in deltas),
            withdrawals=tuple(Withdrawal(i, a, r, v) for i, a, r, v in withdrawals),
            bridge_out=tuple(BridgeTransfer(d, v) for d, v in outs),
            bridge_in=tuple(BridgeTransfer(d, v) for d, v in ins),
        )


def encode_settlement(s: ChainSettlement) -> bytes:
    """``abi.encode(ChainSettlement)``: the settlement message body."""
    return abi_encode([SETTLEMENT_ABI], [s.as_abi()])


def decode_settlement(body: bytes) -> ChainSettlement:
    """Parse a settlement message body."""
    try:
        (t,) = abi_decode([SETTLEMENT_ABI], bytes(body))
    except Exception as e:
        raise MessageCodecError(f"not a ChainSettlement body: {e}") from e
    return ChainSettlement.from_abi(t)


def settlements_hash(settlements: Iterable[ChainSettlement]) -> bytes:
    """``keccak256(abi.encode(ChainSettlement[]))``."""
    return keccak(abi_encode([SETTLEMENT_ABI + "[]"], [[s.as_abi() for s in settlements]]))


# ------------------------------------------------------------------ batch header


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The header the sequencer signs; ``hash`` is its EIP-712 struct hash (``batchHash``)."""

    batch_number: int
    prev_batch_hash: bytes
    state_root: bytes
    journal_hash: bytes
    settlements_hash: bytes
    hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _uint("batch_number", self.batch_number, _U64)
        for name in ("prev_batch_hash", "state_root", "journal_hash", "settlements_hash"):
            object.__setattr__(self, name, _b32(name, getattr(self, name)))
        object.__setattr__(
            self,
            "hash",
            keccak(
                BATCH_TYPEHASH
                + self.batch_number.to_bytes(32, "big")
                + self.prev_batch_hash
                + self.state_root
                + self.journal_hash
                + self.settlements_hash
            ),
        )

    def as_abi(self) -> tuple:
        return (self.batch_number, self.prev_batch_hash, self.state_root, self.journal_hash, self.settlements_hash)


def batch_hash(header: BatchHeader) -> bytes:
    """The EIP-712 struct hash of ``header`` (``SettlementHub.hashBatch``)."""
    return header.hash


def hub_domain(chain_id: int, hub_address: str) -> Domain:
    """The SettlementHub's EIP-712 domain (shared with traders' orders and withdrawals)."""
    return Domain(chain_id=chain_id, verifying_contract=hub_address, name=HUB_DOMAIN_NAME, version="1")


def batch_digest(header: BatchHeader, chain_id: int, hub_address: str) -> bytes:
    """The digest the sequencer signs (``SettlementHub.batchDigest``)."""
    return keccak(b"\x19\x01" + hub_domain(chain_id, hub_address).separator + header.hash)


def sign_batch(key: bytes | str, header: BatchHeader, chain_id: int, hub_address: str) -> bytes:
    """Sign ``header`` for the hub at ``hub_address`` on ``chain_id``: 65 bytes ``r||s||v``."""
    return sign_digest(key, batch_digest(header, chain_id, hub_address))


# ------------------------------------------------------------------ validator signatures


def mailbox_domain(chain_id: int, mailbox_address: str) -> Domain:
    """The destination Mailbox's EIP-712 domain."""
    return Domain(chain_id=chain_id, verifying_contract=mailbox_address, name=MAILBOX_DOMAIN_NAME, version="1")


def delivery_digest(msg_id: bytes, chain_id: int, mailbox_address: str) -> bytes:
    """What validators sign for message ``msg_id`` delivered to ``mailbox_address`` on
    ``chain_id`` (``Mailbox.deliveryDigest``)."""
    struct = keccak(DELIVERY_TYPEHASH + _b32("message id", msg_id))
    return keccak(b"\x19\x01" + mailbox_domain(chain_id, mailbox_address).separator + struct)


def recover_delivery_signer(msg_id: bytes, chain_id: int, mailbox_address: str, signature: bytes) -> str:
    """The checksum address that signed the delivery of ``msg_id``."""
    return recover(delivery_digest(msg_id, chain_id, mailbox_address), signature)


def sort_signatures(digest: bytes, signatures: Iterable[bytes]) -> list[bytes]:
    """Order signatures by signer address ascending, dropping repeats of a signer."""
    by_signer: dict[int, bytes] = {}
    for sig in signatures:
        by_signer.setdefault(int(recover(digest, sig), 16), bytes(sig))
    return [by_signer[k] for k in sorted(by_signer)]


def sign_delivery(keys: Iterable[bytes | str], msg_id: bytes, chain_id: int, mailbox_address: str) -> list[bytes]:
    """Sign the delivery of ``msg_id`` with each key; return the signatures in the order
    ``Mailbox.process`` wants (signer address ascending)."""
    digest = delivery_digest(msg_id, chain_id, mailbox_address)
    return sort_signatures(digest, (sign_digest(k, digest) for k in keys))


# ------------------------------------------------------------------ units and batch rules


def native_scale(decimals: int) -> int:
    """Native units per canonical unit; refuses tokens with fewer than 6 decimals."""
    if decimals < CANONICAL_DECIMALS:
        raise MessageCodecError(f"UnsupportedDecimals: {decimals} < {CANONICAL_DECIMALS}")
    return 10 ** (decimals - CANONICAL_DECIMALS)


def to_native(canonical: int, decimals: int) -> int:
    """Exact canonical → native conversion (what the vault and the bridge do)."""
    return canonical * native_scale(decimals)


def _legs_ok(domain: int, legs: Sequence[BridgeTransfer]) -> int:
    prev = 0
    total = 0
    for leg in legs:
        if leg.domain <= prev or leg.domain == domain or leg.amount == 0:
            raise BatchRuleError("InvalidBridgeTransfers", f"domain {domain}")
        prev = leg.domain
        total += leg.amount
    return total


def check_batch(batch_number: int, settlements: Sequence[ChainSettlement], domains: Sequence[int]) -> None:
    """Raise ``BatchRuleError`` (named like the hub's revert) unless SettlementHub would accept
    ``settlements`` for ``batch_number`` with the registered ``domains``."""
    registered = sorted(domains)
    if len(settlements) != len(registered):
        raise BatchRuleError("DomainSetMismatch", f"expected {len(registered)} chains, got {len(settlements)}")
    delta_total = out_total = in_total = 0
    for s, d in zip(settlements, registered):
        if s.domain != d:
            raise BatchRuleError("UnknownDomain", f"{s.domain}")
        if s.batch_number != batch_number:
            raise BatchRuleError("BatchNumberMismatch", f"domain {s.domain}: {s.batch_number}")
        for w in s.withdrawals:
            if w.withdrawal_id == bytes(32) or w.amount == 0 or int(w.account, 16) == 0 or int(w.recipient, 16) == 0:
                raise BatchRuleError("InvalidWithdrawal", f"domain {s.domain}: 0x{w.withdrawal_id.hex()}")
        delta_sum = sum(x.amount for x in s.deltas)
        bin_, bout = _legs_ok(s.domain, s.bridge_in), _legs_ok(s.domain, s.bridge_out)
        if delta_sum != bin_ - bout:
            raise BatchRuleError("DeltasDoNotBalance", f"domain {s.domain}: Σ deltas {delta_sum} != {bin_ - bout}")
        if bin_ and bout:
            raise BatchRuleError("BridgeCycle", f"domain {s.domain} both sends and receives")
        delta_total += delta_sum
        out_total += bout
        in_total += bin_
    if delta_total:
        raise BatchRuleError("Unbalanced", f"Σ deltas {delta_total}")
    if out_total != in_total:
        raise BatchRuleError("Unbalanced", f"Σ bridgeOut − Σ bridgeIn = {out_total - in_total}")
    ins = {(s.domain, leg.domain): leg.amount for s in settlements for leg in s.bridge_in}
    outs = {(leg.domain, s.domain): leg.amount for s in settlements for leg in s.bridge_out}
    if ins != outs:
        bad = sorted(set(ins.items()) ^ set(outs.items()))[0][0]
        raise BatchRuleError("BridgeMismatch", f"from {bad[1]} to {bad[0]}")


def bridge_deps(settlements: Sequence[ChainSettlement]) -> dict[int, set[int]]:
    """For each chain, the chains whose settlement must be delivered first (its bridge-in sources):
    a relayer delivers sources first, and treats ``BridgeInPending`` as "retry later"."""
    return {s.domain: {leg.domain for leg in s.bridge_in} for s in settlements}

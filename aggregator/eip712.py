"""EIP-712 messages of Omniclear: types, fast digests, signing and signer recovery.

Domain
    ``{name: "Omniclear", version: "1", chainId: <hub chain id>, verifyingContract:
    <SettlementHub address>}``: one domain for every action, so a signature made for one
    deployment or chain is worthless on another.

Types (``TYPES`` is served as JSON by ``GET /v1/eip712``, see ``eip712_schema``)
    - ``Order(address account, string instrument, uint8 side, uint8 orderType,
      uint8 timeInForce, uint8 selfTradePrevention, bool reduceOnly, uint256 price,
      uint256 size, uint64 clientOrderId, uint64 nonce, uint64 expiry)``.
      ``instrument`` is the canonical name (``ETH-27DEC26-3000-C``), chosen over a bytes32
      id so a wallet shows the user what they sign. ``price`` is in quote units (1e-6
      USDC per whole underlying), ``size`` in the instrument's size units
      (``aggregator/instruments.toml``). Enum codes are those of
      ``aggregator.core.matching``: side 1 buy / 2 sell; orderType 1 limit / 2 market;
      timeInForce 1 GTC / 2 IOC / 3 FOK / 4 post-only; selfTradePrevention 1 cancel
      resting / 2 cancel taking / 3 cancel both. For a market order ``price`` is the
      worst price the signer accepts (0: only the venue's protection band applies).
      ``clientOrderId`` 0 means none.
    - ``TriggerOrder(address account, string instrument, uint8 side, uint8 orderType,
      uint8 timeInForce, bool reduceOnly, uint256 triggerPrice, bool triggerAbove,
      uint256 price, uint256 size, uint64 clientOrderId, uint64 nonce, uint64 expiry)``:
      a stop-loss / take-profit on a perpetual. The order fields follow ``Order``'s rules
      (self-trade prevention is the default, cancel resting); ``triggerPrice`` > 0 is in
      quote units: once the mark is at or above it (``triggerAbove``) or at or below it
      (not ``triggerAbove``), the order is placed. It lives until ``expiry``.
    - ``Cancel(address account, string instrument, uint64 orderId, uint64 clientOrderId,
      uint64 nonce, uint64 expiry)``: exactly one of ``orderId`` / ``clientOrderId`` is
      non-zero.
    - ``CancelAll(address account, string instrument, uint64 nonce, uint64 expiry)``:
      ``instrument`` empty means every instrument.
    - ``CancelAllAfter(address account, uint64 timeoutMs, uint64 nonce, uint64 expiry)``:
      a dead man's switch. Every order of the account is cancelled ``timeoutMs`` after
      this message is sequenced unless another one re-arms it first; ``timeoutMs`` 0
      disarms it, otherwise 1,000 to 86,400,000 (one second to one day).
    - ``MmpConfig(address account, string underlying, uint64 intervalMs, uint64 frozenMs,
      uint64 qtyLimit, uint64 nonce, uint64 expiry, uint64 deltaLimit)``: market maker
      protection for the account's options on ``underlying`` (e.g. ``ETH``): once its
      maker fills there total more than ``qtyLimit`` size units within ``intervalMs``, or
      their net delta (Black-76 delta at the fill times size, in size units of the
      underlying) is beyond ``deltaLimit`` either way, its option orders on that
      underlying are cancelled and new ones refused for ``frozenMs`` (0: until the next
      MmpConfig). A limit of 0 is off. ``intervalMs`` 0 turns protection off; otherwise 1
      to 3,600,000 ms with at least one limit >= 1 and ``frozenMs`` <= 86,400,000.
    - ``Amend(address account, string instrument, uint64 orderId, uint64 clientOrderId,
      uint256 price, uint256 size, uint64 nonce, uint64 expiry)``: one of the ids non-zero;
      ``price`` / ``size`` 0 means unchanged (not both); ``size`` is the new total size.
    - ``SessionKey(address account, address sessionKey, uint64 validUntil, uint64 nonce,
      uint64 expiry)``: the account authorises ``sessionKey`` to sign Order, TriggerOrder,
      Cancel, CancelAll, CancelAllAfter, MmpConfig and Amend for it until ``validUntil``
      (Unix seconds).
      Signed by the account.
    - ``RevokeSessionKey(address account, address sessionKey, uint64 nonce, uint64
      expiry)``: signed by the account (or by the session key itself).
    - ``Withdrawal(address account, address token, uint256 amount, uint256
      destinationChainId, address recipient, uint64 nonce, uint64 expiry)``: ``amount`` in
      the token's native units on the destination chain. Signed by the account only,
      never by a session key.
    Every message carries ``nonce`` and ``expiry`` (Unix seconds): the replay rule is in
    ``aggregator.core.nonces``.

Fast path
    Type hashes and the domain separator are computed once; a digest is
    ``keccak(0x1901 || domainSeparator || keccak(typeHash || enc(fields)))`` with the
    fields packed by hand (string hashes cached), a few microseconds instead of
    ``encode_typed_data``'s hundreds. Recovery calls coincurve directly and returns the
    EIP-55 checksum address. The golden vectors in
    ``contracts/test/vectors/eip712_orders.json`` pin both paths to eth-account.

Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} (0/1 accepted and
normalised). High-``s`` signatures are refused, as OpenZeppelin's ``ECDSA.recover``
refuses them on-chain, so every signature the sequencer accepts is also valid for the
contracts that may check it in a fraud proof.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import coincurve

from aggregator.core.instruments import InstrumentError, parse_name

try:  # pycryptodome ships with eth-account (via eth-keyfile); calling it directly is fastest
    from Crypto.Hash import keccak as _keccak_mod

    def keccak(data: bytes) -> bytes:
        """Return keccak-256 of ``data``."""
        return _keccak_mod.new(data=data, digest_bits=256).digest()
except ImportError:  # pragma: no cover
    from eth_hash.auto import keccak as _eth_keccak

    def keccak(data: bytes) -> bytes:
        """Return keccak-256 of ``data``."""
        return _eth_keccak(data)


__all__ = [
    "Eip712Error",
    "MessageError",
    "SignatureError",
    "Domain",
    "Order",
    "TriggerOrder",
    "Cancel",
    "CancelAll",
    "CancelAllAfter",
    "CANCEL_AFTER_MIN_MS",
    "CANCEL_AFTER_MAX_MS",
    "MmpConfig",
    "Amend",
    "SessionKey",
    "RevokeSessionKey",
    "Withdrawal",
    "MESSAGE_TYPES",
    "TYPES",
    "keccak",
    "type_hash",
    "struct_hash",
    "digest",
    "typed_data",
    "eip712_schema",
    "message_from_dict",
    "message_to_dict",
    "sign_digest",
    "sign",
    "recover",
    "recover_raw",
    "recover_signer",
    "normalize_signature",
    "to_checksum_address",
]

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2
_ADDR_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


class Eip712Error(ValueError):
    """Root of this module's errors."""


class MessageError(Eip712Error):
    """A message field has a value its EIP-712 type (or Omniclear's rules) cannot hold."""


class SignatureError(Eip712Error):
    """A signature is malformed or does not recover a signer."""


# ------------------------------------------------------------------ address helpers


def to_checksum_address(addr: bytes | str) -> str:
    """Return the EIP-55 checksum form of a 20-byte address (bytes or hex string)."""
    if isinstance(addr, str):
        if not _ADDR_RE.match(addr):
            raise MessageError(f"not an address (0x + 40 hex digits): {addr!r}")
        h = addr[2:].lower()
    else:
        if len(addr) != 20:
            raise MessageError(f"an address is 20 bytes, got {len(addr)}")
        h = addr.hex()
    hh = keccak(h.encode()).hex()
    return "0x" + "".join(c.upper() if c > "9" and hh[i] >= "8" else c for i, c in enumerate(h))


def _address(name: str, v: Any) -> str:
    if not isinstance(v, str) or not _ADDR_RE.match(v):
        raise MessageError(f"{name} must be an address (0x + 40 hex digits), got {v!r}")
    cs = to_checksum_address(v)
    body = v[2:]
    if body != body.lower() and body != body.upper() and v != cs:
        raise MessageError(f"{name} {v!r} fails its EIP-55 checksum (expected {cs})")
    return cs


def _uint(name: str, v: Any, bits: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise MessageError(f"{name} must be an integer (uint{bits}), got {type(v).__name__}")
    if not 0 <= v < 1 << bits:
        raise MessageError(f"{name} = {v} does not fit in uint{bits}")
    return v


def _code(name: str, v: Any, allowed: range) -> int:
    _uint(name, v, 8)
    if v not in allowed:
        raise MessageError(f"{name} = {v} is not one of {list(allowed)}")
    return v


def _instrument(v: Any, allow_empty: bool = False) -> str:
    if not isinstance(v, str):
        raise MessageError(f"instrument must be a string, got {type(v).__name__}")
    if allow_empty and v == "":
        return v
    try:
        parse_name(v)
    except InstrumentError as e:
        raise MessageError(str(e)) from None
    return v


# ---------------------------------------------------------------------------- domain


@dataclass(frozen=True, slots=True)
class Domain:
    """The EIP-712 domain; ``separator`` is computed once."""

    chain_id: int
    verifying_contract: str
    name: str = "Omniclear"
    version: str = "1"
    separator: bytes = field(init=False, repr=False, compare=False)

    TYPE: ClassVar[str] = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"

    def __post_init__(self) -> None:
        _uint("chainId", self.chain_id, 256)
        if self.chain_id == 0:
            raise MessageError("chainId must not be 0")
        object.__setattr__(self, "verifying_contract", _address("verifyingContract", self.verifying_contract))
        sep = keccak(
            keccak(self.TYPE.encode())
            + keccak(self.name.encode())
            + keccak(self.version.encode())
            + self.chain_id.to_bytes(32, "big")
            + bytes(12) + bytes.fromhex(self.verifying_contract[2:])
        )
        object.__setattr__(self, "separator", sep)

    def as_dict(self) -> dict[str, Any]:
        """Return the domain as EIP-712 JSON (``eth_signTypedData_v4``'s ``domain``)."""
        return {"name": self.name, "version": self.version, "chainId": self.chain_id,
                "verifyingContract": self.verifying_contract}


# ------------------------------------------------------------------------- messages
# Each message class declares FIELDS as (solidity name, python attribute, EIP-712 type).


@dataclass(frozen=True, slots=True)
class Order:
    account: str
    instrument: str
    side: int
    order_type: int
    time_in_force: int
    self_trade_prevention: int
    reduce_only: bool
    price: int
    size: int
    client_order_id: int
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "Order"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("instrument", "instrument", "string"),
        ("side", "side", "uint8"),
        ("orderType", "order_type", "uint8"),
        ("timeInForce", "time_in_force", "uint8"),
        ("selfTradePrevention", "self_trade_prevention", "uint8"),
        ("reduceOnly", "reduce_only", "bool"),
        ("price", "price", "uint256"),
        ("size", "size", "uint256"),
        ("clientOrderId", "client_order_id", "uint64"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        _code("selfTradePrevention", self.self_trade_prevention, range(1, 4))
        _order_rules(self)


def _order_rules(msg: Any) -> None:
    """The rules an ``Order`` and a ``TriggerOrder`` share (after ``_validate``)."""
    _code("side", msg.side, range(1, 3))
    _code("orderType", msg.order_type, range(1, 3))
    _code("timeInForce", msg.time_in_force, range(1, 5))
    _instrument(msg.instrument)
    if msg.size == 0:
        raise MessageError("size must be positive")
    if msg.order_type == 1 and msg.price == 0:
        raise MessageError("a limit order needs a positive price")


@dataclass(frozen=True, slots=True)
class TriggerOrder:
    account: str
    instrument: str
    side: int
    order_type: int
    time_in_force: int
    reduce_only: bool
    trigger_price: int
    trigger_above: bool
    price: int
    size: int
    client_order_id: int
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "TriggerOrder"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("instrument", "instrument", "string"),
        ("side", "side", "uint8"),
        ("orderType", "order_type", "uint8"),
        ("timeInForce", "time_in_force", "uint8"),
        ("reduceOnly", "reduce_only", "bool"),
        ("triggerPrice", "trigger_price", "uint256"),
        ("triggerAbove", "trigger_above", "bool"),
        ("price", "price", "uint256"),
        ("size", "size", "uint256"),
        ("clientOrderId", "client_order_id", "uint64"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    # the order it places when it fires: self-trade prevention is the default (cancel resting)
    self_trade_prevention: ClassVar[int] = 1

    def __post_init__(self) -> None:
        _validate(self)
        _order_rules(self)
        if self.trigger_price == 0:
            raise MessageError("triggerPrice must be positive")


@dataclass(frozen=True, slots=True)
class Cancel:
    account: str
    instrument: str
    order_id: int
    client_order_id: int
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "Cancel"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("instrument", "instrument", "string"),
        ("orderId", "order_id", "uint64"),
        ("clientOrderId", "client_order_id", "uint64"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        _instrument(self.instrument)
        if (self.order_id == 0) == (self.client_order_id == 0):
            raise MessageError("exactly one of orderId and clientOrderId must be non-zero")


@dataclass(frozen=True, slots=True)
class CancelAll:
    account: str
    instrument: str
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "CancelAll"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("instrument", "instrument", "string"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        _instrument(self.instrument, allow_empty=True)


CANCEL_AFTER_MIN_MS = 1_000
CANCEL_AFTER_MAX_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CancelAllAfter:
    account: str
    timeout_ms: int
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "CancelAllAfter"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("timeoutMs", "timeout_ms", "uint64"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        if self.timeout_ms and not CANCEL_AFTER_MIN_MS <= self.timeout_ms <= CANCEL_AFTER_MAX_MS:
            raise MessageError(f"timeoutMs must be 0 (disarm) or {CANCEL_AFTER_MIN_MS:,} to "
                               f"{CANCEL_AFTER_MAX_MS:,} ms, got {self.timeout_ms}")


MMP_MAX_INTERVAL_MS = 3_600_000
MMP_MAX_FROZEN_MS = 86_400_000
_UNDERLYING_RE = re.compile(r"^[A-Z0-9]{2,10}$")


@dataclass(frozen=True, slots=True)
class MmpConfig:
    account: str
    underlying: str
    interval_ms: int
    frozen_ms: int
    qty_limit: int
    nonce: int
    expiry: int
    delta_limit: int = 0  # last, so that a config without it reads as before

    PRIMARY_TYPE: ClassVar[str] = "MmpConfig"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("underlying", "underlying", "string"),
        ("intervalMs", "interval_ms", "uint64"),
        ("frozenMs", "frozen_ms", "uint64"),
        ("qtyLimit", "qty_limit", "uint64"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
        ("deltaLimit", "delta_limit", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        if not _UNDERLYING_RE.match(self.underlying):
            raise MessageError(f"underlying must be 2-10 upper-case letters/digits, got {self.underlying!r}")
        if self.interval_ms:
            if self.interval_ms > MMP_MAX_INTERVAL_MS:
                raise MessageError(f"intervalMs must be 0 (off) or 1 to {MMP_MAX_INTERVAL_MS:,}, got {self.interval_ms}")
            if not (self.qty_limit or self.delta_limit):
                raise MessageError("qtyLimit or deltaLimit must be at least 1 when intervalMs is set")
            if self.frozen_ms > MMP_MAX_FROZEN_MS:
                raise MessageError(f"frozenMs must be at most {MMP_MAX_FROZEN_MS:,}, got {self.frozen_ms}")


@dataclass(frozen=True, slots=True)
class Amend:
    account: str
    instrument: str
    order_id: int
    client_order_id: int
    price: int
    size: int
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "Amend"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("instrument", "instrument", "string"),
        ("orderId", "order_id", "uint64"),
        ("clientOrderId", "client_order_id", "uint64"),
        ("price", "price", "uint256"),
        ("size", "size", "uint256"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        _instrument(self.instrument)
        if (self.order_id == 0) == (self.client_order_id == 0):
            raise MessageError("exactly one of orderId and clientOrderId must be non-zero")
        if self.price == 0 and self.size == 0:
            raise MessageError("an amend must change the price or the size")


@dataclass(frozen=True, slots=True)
class SessionKey:
    account: str
    session_key: str
    valid_until: int
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "SessionKey"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("sessionKey", "session_key", "address"),
        ("validUntil", "valid_until", "uint64"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        if self.session_key == self.account:
            raise MessageError("an account cannot delegate to itself")


@dataclass(frozen=True, slots=True)
class RevokeSessionKey:
    account: str
    session_key: str
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "RevokeSessionKey"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("sessionKey", "session_key", "address"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)


@dataclass(frozen=True, slots=True)
class Withdrawal:
    account: str
    token: str
    amount: int
    destination_chain_id: int
    recipient: str
    nonce: int
    expiry: int

    PRIMARY_TYPE: ClassVar[str] = "Withdrawal"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("account", "account", "address"),
        ("token", "token", "address"),
        ("amount", "amount", "uint256"),
        ("destinationChainId", "destination_chain_id", "uint256"),
        ("recipient", "recipient", "address"),
        ("nonce", "nonce", "uint64"),
        ("expiry", "expiry", "uint64"),
    )

    def __post_init__(self) -> None:
        _validate(self)
        if self.amount == 0:
            raise MessageError("amount must be positive")
        if self.destination_chain_id == 0:
            raise MessageError("destinationChainId must not be 0")


Message = (Order | Cancel | CancelAll | CancelAllAfter | MmpConfig | Amend | SessionKey | RevokeSessionKey
           | Withdrawal | TriggerOrder)
MESSAGE_TYPES: dict[str, type] = {
    c.PRIMARY_TYPE: c
    for c in (Order, Cancel, CancelAll, CancelAllAfter, MmpConfig, Amend, SessionKey, RevokeSessionKey, Withdrawal,
              TriggerOrder)
}


def _validate(msg: Any) -> None:
    """Check and normalise every field against its EIP-712 type (addresses to checksum)."""
    for sol, attr, typ in msg.FIELDS:
        v = getattr(msg, attr)
        if typ == "address":
            object.__setattr__(msg, attr, _address(sol, v))
        elif typ == "string":
            if not isinstance(v, str):
                raise MessageError(f"{sol} must be a string, got {type(v).__name__}")
        elif typ == "bool":
            if not isinstance(v, bool):
                raise MessageError(f"{sol} must be a bool, got {type(v).__name__}")
        else:
            _uint(sol, v, int(typ[4:]))


def _encode_type(cls: type) -> str:
    return f"{cls.PRIMARY_TYPE}(" + ",".join(f"{t} {n}" for n, _, t in cls.FIELDS) + ")"


TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    **{name: [{"name": n, "type": t} for n, _, t in cls.FIELDS] for name, cls in MESSAGE_TYPES.items()},
}

_TYPE_HASH: dict[type, bytes] = {cls: keccak(_encode_type(cls).encode()) for cls in MESSAGE_TYPES.values()}


def type_hash(primary_type: str) -> bytes:
    """Return ``keccak(encodeType)`` of a primary type."""
    return _TYPE_HASH[MESSAGE_TYPES[primary_type]]


# -------------------------------------------------------------------- fast encoding

_STR_CACHE: dict[str, bytes] = {}
_STR_CACHE_MAX = 4096


def _enc_string(v: str) -> bytes:
    h = _STR_CACHE.get(v)
    if h is None:
        h = keccak(v.encode())
        if len(_STR_CACHE) >= _STR_CACHE_MAX:
            _STR_CACHE.clear()
        _STR_CACHE[v] = h
    return h


def _compile_encoder(cls: type, keccak_fn: Any = None, enc_string: Any = None):
    """Build ``struct_hash`` for one message class from its FIELDS (one expression, no loop).

    ``keccak_fn`` / ``enc_string`` replace the hash and the string encoder (the sequencer's
    verifier threads pass a per-thread native keccak); the encoding is the same.
    """
    parts = []
    for _, attr, typ in cls.FIELDS:
        if typ == "address":
            parts.append(f"_Z12 + _fromhex(m.{attr}[2:])")
        elif typ == "string":
            parts.append(f"_enc_string(m.{attr})")
        elif typ == "bool":
            parts.append(f"(_TRUE if m.{attr} else _FALSE)")
        else:
            parts.append(f"m.{attr}.to_bytes(32, 'big')")
    src = f"def _hash_{cls.PRIMARY_TYPE}(m):\n    return keccak(_TH + " + " + ".join(parts) + ")\n"
    env = {"_Z12": b"\x00" * 12, "_fromhex": bytes.fromhex, "_enc_string": enc_string or _enc_string,
           "keccak": keccak_fn or keccak, "_TRUE": b"\x00" * 31 + b"\x01", "_FALSE": b"\x00" * 32,
           "_TH": _TYPE_HASH[cls]}
    exec(compile(src, f"<eip712 {cls.PRIMARY_TYPE}>", "exec"), env)  # noqa: S102 - source built from FIELDS only
    return env[f"_hash_{cls.PRIMARY_TYPE}"]


_STRUCT_HASH: dict[type, Any] = {cls: _compile_encoder(cls) for cls in MESSAGE_TYPES.values()}


def struct_hash(msg: Message) -> bytes:
    """Return ``hashStruct(msg)``."""
    return _STRUCT_HASH[type(msg)](msg)


def digest(domain: Domain, msg: Message) -> bytes:
    """Return the 32-byte EIP-712 digest a wallet signs for ``msg`` in ``domain``."""
    return keccak(b"\x19\x01" + domain.separator + struct_hash(msg))


# --------------------------------------------------------------------- JSON forms


def message_to_dict(msg: Message) -> dict[str, Any]:
    """Return the message as EIP-712 JSON values keyed by Solidity field names."""
    return {sol: getattr(msg, attr) for sol, attr, _ in msg.FIELDS}


def message_from_dict(primary_type: str, data: Mapping[str, Any]) -> Message:
    """Build a message from EIP-712 JSON (integers may be decimal strings); refuse bad values."""
    cls = MESSAGE_TYPES.get(primary_type)
    if cls is None:
        raise MessageError(f"unknown primary type {primary_type!r}; known: {sorted(MESSAGE_TYPES)}")
    expected = {sol for sol, _, _ in cls.FIELDS}
    extra, missing = set(data) - expected, expected - set(data)
    if extra or missing:
        raise MessageError(f"{primary_type}: missing fields {sorted(missing)}, unexpected fields {sorted(extra)}")
    kw: dict[str, Any] = {}
    for sol, attr, typ in cls.FIELDS:
        v = data[sol]
        if typ.startswith("uint") and isinstance(v, str):
            if not v.isdigit() or not v.isascii() or (len(v) > 1 and v[0] == "0"):
                raise MessageError(f"{sol} must be a decimal integer string, got {v!r}")
            v = int(v)
        kw[attr] = v
    return cls(**kw)


def typed_data(domain: Domain, msg: Message) -> dict[str, Any]:
    """Return the full EIP-712 JSON of ``msg`` (for ``eth_signTypedData_v4`` or eth-account)."""
    return {
        "types": {"EIP712Domain": TYPES["EIP712Domain"], msg.PRIMARY_TYPE: TYPES[msg.PRIMARY_TYPE]},
        "primaryType": msg.PRIMARY_TYPE,
        "domain": domain.as_dict(),
        "message": message_to_dict(msg),
    }


def eip712_schema(domain: Domain) -> dict[str, Any]:
    """Return what ``GET /v1/eip712`` serves: domain, separator, types and their hashes."""
    return {
        "domain": domain.as_dict(),
        "domainSeparator": "0x" + domain.separator.hex(),
        "types": TYPES,
        "primaryTypes": list(MESSAGE_TYPES),
        "typeHashes": {name: "0x" + _TYPE_HASH[cls].hex() for name, cls in MESSAGE_TYPES.items()},
        "encodings": {
            "signature": "65 bytes r || s || v, v in {27, 28}, s in the lower half of the curve order",
            "expiry": "Unix seconds; the sequencer refuses a message after it or more than the maximum lifetime ahead",
            "nonce": "any uint64 not used by the same signer while a message carrying it is unexpired",
            "price": "integer quote units: 1e-6 USDC per one whole unit of the underlying, multiple of the tick",
            "size": "integer size units of the instrument (10^-size_decimals of the underlying), multiple of the lot",
            "side": {"1": "buy", "2": "sell"},
            "orderType": {"1": "limit", "2": "market"},
            "timeInForce": {"1": "GTC", "2": "IOC", "3": "FOK", "4": "post-only"},
            "selfTradePrevention": {"1": "cancel resting", "2": "cancel taking", "3": "cancel both"},
        },
    }


# --------------------------------------------------------------- signing, recovery


def _private_key(key: bytes | str) -> coincurve.PrivateKey:
    if isinstance(key, str):
        key = bytes.fromhex(key[2:] if key.startswith("0x") else key)
    if len(key) != 32:
        raise SignatureError(f"a private key is 32 bytes, got {len(key)}")
    try:
        return coincurve.PrivateKey(key)
    except Exception as e:
        raise SignatureError("invalid private key (zero or not below the curve order)") from e


def sign_digest(private_key: bytes | str, digest32: bytes) -> bytes:
    """Sign a 32-byte digest; return ``r || s || v`` (v = 27/28, low s, RFC 6979 nonce)."""
    if len(digest32) != 32:
        raise SignatureError(f"a digest is 32 bytes, got {len(digest32)}")
    sig = _private_key(private_key).sign_recoverable(digest32, hasher=None)
    return sig[:64] + bytes((sig[64] + 27,))


def sign(private_key: bytes | str, domain: Domain, msg: Message) -> bytes:
    """Sign ``msg`` in ``domain``; return the 65-byte signature."""
    return sign_digest(private_key, digest(domain, msg))


def normalize_signature(signature: bytes | str) -> bytes:
    """Return ``signature`` as 65 bytes with v in {27, 28}; refuse malformed or high-s ones."""
    if isinstance(signature, str):
        s = signature[2:] if signature.startswith("0x") else signature
        try:
            signature = bytes.fromhex(s)
        except ValueError:
            raise SignatureError("signature is not hex") from None
    if not isinstance(signature, (bytes, bytearray)):
        raise SignatureError(f"signature must be bytes or hex, got {type(signature).__name__}")
    if len(signature) != 65:
        raise SignatureError(f"a signature is 65 bytes (r || s || v), got {len(signature)}")
    v = signature[64]
    if v in (0, 1):
        v += 27
    if v not in (27, 28):
        raise SignatureError(f"signature v must be 27 or 28 (or 0/1), got {signature[64]}")
    r = int.from_bytes(signature[:32], "big")
    s_ = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise SignatureError("signature r is zero or not below the curve order")
    if not 0 < s_ <= _HALF_N:
        raise SignatureError("signature s is zero or in the upper half of the curve order (malleable; use low s)")
    return bytes(signature[:64]) + bytes((v,))


def recover(digest32: bytes, signature: bytes | str) -> str:
    """Return the checksum address that signed ``digest32``; raise ``SignatureError`` otherwise."""
    return to_checksum_address(recover_raw(digest32, signature))


def recover_raw(digest32: bytes, signature: bytes | str) -> bytes:
    """Return the 20-byte address that signed ``digest32`` (no checksum: for hot-path comparisons)."""
    if not isinstance(digest32, (bytes, bytearray)) or len(digest32) != 32:
        raise SignatureError("a digest is 32 bytes")
    sig = normalize_signature(signature)
    try:
        pub = coincurve.PublicKey.from_signature_and_message(sig[:64] + bytes((sig[64] - 27,)), bytes(digest32),
                                                            hasher=None)
    except Exception as e:
        raise SignatureError("signature does not recover a public key") from e
    return keccak(pub.format(compressed=False)[1:])[12:]


def recover_signer(domain: Domain, msg: Message, signature: bytes | str) -> str:
    """Return the checksum address that signed ``msg`` in ``domain``."""
    return recover(digest(domain, msg), signature)


def replace(msg: Message, **changes: Any) -> Message:
    """Return a copy of ``msg`` with fields changed (validated again)."""
    return dataclasses.replace(msg, **changes)

"""EIP-712 ``PriceReport``: encoding, digest, m-of-n signing and verification.

The struct, as ``PriceReportVerifier.sol`` hashes it::

    PriceReport(bytes32 feedId,int256 price,uint256 confidence,uint64 timestamp,uint8 marketStatus)

Choices (shared with the contract, pinned by ``contracts/test/vectors/price_report*.json``):
- ``price`` is ``int256`` with 8 decimals, like Chainlink's ``answer``, so the on-chain
  feed can return it unchanged from ``latestRoundData``; the verifier and these helpers
  refuse a price <= 0 anyway. ``confidence`` is ``uint256`` with the same 8 decimals.
- ``timestamp`` is whole seconds (``uint64``) of the price's observation time.
- ``feedId`` is the feed's ASCII name, left-aligned and zero-padded to 32 bytes (the same
  as Solidity's ``bytes32("ETH-USD")``), so ids are readable in explorers and logs.
- Domain: name ``"Omniclear Oracle"``, version ``"1"``, the chain id and the verifier's
  address (OpenZeppelin ``EIP712``): a report signed for one chain's verifier is not valid
  on another. Off-chain consumers use a domain of their own choosing (the hub's).
- Signatures are 65 bytes ``r || s || v`` with ``v`` in {27, 28} and low ``s`` (coincurve /
  libsecp256k1 produce low-s, RFC 6979 deterministic signatures: a fixed key and report
  always give the same bytes).

Pure: hashing and signing only, no I/O, no clock (freshness checks take ``now_s``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_hash.auto import keccak
from eth_utils import to_checksum_address

from oracles.types import MarketStatus, OracleError

DOMAIN_NAME = "Omniclear Oracle"
DOMAIN_VERSION = "1"
REPORT_TYPE = "PriceReport(bytes32 feedId,int256 price,uint256 confidence,uint64 timestamp,uint8 marketStatus)"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
REPORT_TYPEHASH = keccak(REPORT_TYPE.encode())
DOMAIN_TYPEHASH = keccak(DOMAIN_TYPE.encode())

_INT256_MAX = 2**255 - 1
_UINT256_MAX = 2**256 - 1
_UINT64_MAX = 2**64 - 1
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class ReportError(OracleError):
    """A report or signature is malformed or does not verify."""


class InsufficientSignatures(ReportError):
    pass


class DuplicateSigner(ReportError):
    pass


class UnknownSigner(ReportError):
    pass


class ReportStale(ReportError):
    pass


class ReportFromFuture(ReportError):
    pass


class InvalidSignature(ReportError):
    pass


def feed_id(name: str) -> bytes:
    """Return the ``bytes32`` id of feed ``name`` (ASCII, left-aligned, zero-padded)."""
    raw = name.encode("ascii")
    if not raw or len(raw) > 31 or b"\x00" in raw:
        raise ReportError(f"feed name must be 1-31 ASCII bytes without NUL: {name!r}")
    return raw.ljust(32, b"\x00")


def feed_name(fid: bytes) -> str:
    """Return the feed name encoded in a ``bytes32`` id."""
    if len(fid) != 32:
        raise ReportError(f"feed id must be 32 bytes, got {len(fid)}")
    return fid.rstrip(b"\x00").decode("ascii")


@dataclass(frozen=True)
class Eip712Domain:
    """The EIP-712 domain of one ``PriceReportVerifier`` deployment."""

    chain_id: int
    verifying_contract: str = "0x0000000000000000000000000000000000000000"

    @cached_property
    def separator(self) -> bytes:
        addr = bytes.fromhex(self.verifying_contract.removeprefix("0x"))
        if len(addr) != 20:
            raise ReportError(f"verifying contract must be 20 bytes: {self.verifying_contract}")
        return keccak(
            DOMAIN_TYPEHASH
            + keccak(DOMAIN_NAME.encode())
            + keccak(DOMAIN_VERSION.encode())
            + self.chain_id.to_bytes(32, "big")
            + addr.rjust(32, b"\x00")
        )

    def to_dict(self) -> dict[str, Any]:
        return {"chainId": self.chain_id, "verifyingContract": to_checksum_address(self.verifying_contract)}


@dataclass(frozen=True, slots=True)
class PriceReport:
    """The signed statement: feed, price (8 decimals), confidence, time (s), market status."""

    feed_id: bytes
    price: int
    confidence: int
    timestamp: int
    market_status: int

    def __post_init__(self) -> None:
        if len(self.feed_id) != 32:
            raise ReportError("feed_id must be 32 bytes")
        for name, v, lo, hi in (
            ("price", self.price, 1, _INT256_MAX),
            ("confidence", self.confidence, 0, _UINT256_MAX),
            ("timestamp", self.timestamp, 0, _UINT64_MAX),
            ("market_status", self.market_status, 1, max(MarketStatus)),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise ReportError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")

    @property
    def feed(self) -> str:
        return feed_name(self.feed_id)

    def struct_hash(self) -> bytes:
        return keccak(
            REPORT_TYPEHASH
            + self.feed_id
            + self.price.to_bytes(32, "big", signed=True)
            + self.confidence.to_bytes(32, "big")
            + self.timestamp.to_bytes(32, "big")
            + self.market_status.to_bytes(32, "big")
        )

    def digest(self, domain: Eip712Domain) -> bytes:
        """Return the EIP-712 digest ``keccak(0x1901 || domainSeparator || structHash)``."""
        return keccak(b"\x19\x01" + domain.separator + self.struct_hash())

    def as_tuple(self) -> tuple[bytes, int, int, int, int]:
        """Return the ABI tuple for ``(bytes32,int256,uint256,uint64,uint8)``."""
        return (self.feed_id, self.price, self.confidence, self.timestamp, self.market_status)

    def typed_data(self, domain: Eip712Domain) -> dict[str, Any]:
        """Return the full EIP-712 typed-data message (for eth-account and wallets)."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
                ],
                "PriceReport": [
                    {"name": "feedId", "type": "bytes32"}, {"name": "price", "type": "int256"},
                    {"name": "confidence", "type": "uint256"}, {"name": "timestamp", "type": "uint64"},
                    {"name": "marketStatus", "type": "uint8"},
                ],
            },
            "primaryType": "PriceReport",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, **domain.to_dict()},
            "message": {
                "feedId": self.feed_id, "price": self.price, "confidence": self.confidence,
                "timestamp": self.timestamp, "marketStatus": self.market_status,
            },
        }


def sign_digest(key: PrivateKey, digest: bytes) -> bytes:
    """Sign a 32-byte digest; return ``r || s || v`` with ``v`` in {27, 28}."""
    sig = key.sign_recoverable(digest, hasher=None)
    return sig[:64] + bytes([sig[64] + 27])


def recover_signer(digest: bytes, signature: bytes) -> str:
    """Return the checksummed address that signed ``digest``; reject malformed or high-s."""
    if len(signature) != 65:
        raise InvalidSignature(f"signature must be 65 bytes, got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28, got {v}")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > _SECP256K1_N // 2:
        raise InvalidSignature("signature s is zero or not in the lower half order (malleable)")
    try:
        pub = PublicKey.from_signature_and_message(signature[:64] + bytes([v - 27]), digest, hasher=None)
    except Exception as e:  # coincurve raises ValueError/Exception on an invalid point
        raise InvalidSignature(f"signature does not recover: {e}") from e
    return to_checksum_address(keccak(pub.format(compressed=False)[1:])[12:])


def address_of(key: str | bytes) -> str:
    """Return the checksummed address of a private key (hex string or 32 bytes)."""
    pk = _private_key(key)
    return to_checksum_address(keccak(pk.public_key.format(compressed=False)[1:])[12:])


def _private_key(key: str | bytes | PrivateKey) -> PrivateKey:
    if isinstance(key, PrivateKey):
        return key
    raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else key
    if len(raw) != 32:
        raise ReportError("a private key is 32 bytes")
    return PrivateKey(raw)


@dataclass(frozen=True)
class SignedPriceReport:
    """A report with its signatures for one domain. ``signers[i]`` signed ``signatures[i]``."""

    report: PriceReport
    domain: Eip712Domain
    signatures: tuple[bytes, ...]
    signers: tuple[str, ...]
    digest: bytes = field(default=b"", compare=False)

    @property
    def feed(self) -> str:
        return self.report.feed

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "feedId": "0x" + r.feed_id.hex(),
            "feed": r.feed,
            "price": str(r.price),
            "decimals": 8,
            "confidence": str(r.confidence),
            "timestamp": r.timestamp,
            "marketStatus": r.market_status,
            "domain": self.domain.to_dict(),
            "digest": "0x" + (self.digest or r.digest(self.domain)).hex(),
            "signatures": ["0x" + s.hex() for s in self.signatures],
            "signers": list(self.signers),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignedPriceReport:
        report = PriceReport(
            feed_id=bytes.fromhex(d["feedId"].removeprefix("0x")), price=int(d["price"]),
            confidence=int(d["confidence"]), timestamp=int(d["timestamp"]),
            market_status=int(d["marketStatus"]),
        )
        domain = Eip712Domain(int(d["domain"]["chainId"]), d["domain"]["verifyingContract"])
        return cls(
            report=report, domain=domain,
            signatures=tuple(bytes.fromhex(s.removeprefix("0x")) for s in d["signatures"]),
            signers=tuple(d.get("signers", ())), digest=report.digest(domain),
        )


class ReportSigner:
    """The oracle's m-of-n signer set held by this process (one key per oracle node).

    In production each key lives in its own node; holding several here is the devnet
    and test arrangement. Signing uses coincurve directly (no typed-data encoding per
    call: the type hash and domain separator are precomputed).
    """

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ReportError("at least one signer key is required")
        self._keys = [_private_key(k) for k in keys]
        self.addresses = tuple(address_of(k.secret) for k in self._keys)

    def sign(self, report: PriceReport, domain: Eip712Domain, count: int | None = None) -> SignedPriceReport:
        """Sign ``report`` for ``domain`` with the first ``count`` keys (default: all)."""
        keys = self._keys if count is None else self._keys[:count]
        digest = report.digest(domain)
        sigs = tuple(sign_digest(k, digest) for k in keys)
        return SignedPriceReport(report, domain, sigs, self.addresses[: len(sigs)], digest)


def verify_report(
    signed: SignedPriceReport,
    known_signers: Iterable[str],
    threshold: int,
    now_s: int | None = None,
    max_age_s: int | None = None,
) -> tuple[str, ...]:
    """Check ``signed`` like the contract does; return the recovered signers.

    Raise ``InsufficientSignatures``, ``InvalidSignature``, ``UnknownSigner``,
    ``DuplicateSigner``, ``ReportFromFuture`` or ``ReportStale``. Freshness is checked
    only when ``now_s`` is given.
    """
    known = {a.lower() for a in known_signers}
    if len(signed.signatures) < threshold:
        raise InsufficientSignatures(f"{len(signed.signatures)} signatures < threshold {threshold}")
    r = signed.report
    if now_s is not None:
        if r.timestamp > now_s:
            raise ReportFromFuture(f"report timestamp {r.timestamp} > now {now_s}")
        if max_age_s is not None and now_s - r.timestamp > max_age_s:
            raise ReportStale(f"report is {now_s - r.timestamp}s old > {max_age_s}s")
    digest = r.digest(signed.domain)
    seen: set[str] = set()
    out = []
    for sig in signed.signatures:
        who = recover_signer(digest, sig)
        low = who.lower()
        if low not in known:
            raise UnknownSigner(f"{who} is not an oracle signer")
        if low in seen:
            raise DuplicateSigner(f"{who} signed twice")
        seen.add(low)
        out.append(who)
    return tuple(out)

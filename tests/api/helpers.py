"""Shared pieces of the API tests: keys, signing, a service on a test clock, seeding."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aggregator import eip712
from aggregator.eip712 import Domain, keccak, message_to_dict, sign
from aggregator.sequencer_service import SequencerService, default_sequencer_config, default_sequencer_factory

DOMAIN = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
T0_MS = 1_790_000_000_000  # 2026-09-21T12:53:20Z
ETH_PRICE8 = 3_000 * 10**8
_nonce = itertools.count(1)


class Clock:
    """A settable millisecond clock."""

    def __init__(self, now_ms: int = T0_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


def key(i: int) -> bytes:
    return keccak(f"omniclear-api-test-key-{i}".encode())


def address_of(k: bytes) -> str:
    import coincurve

    return eip712.to_checksum_address(keccak(coincurve.PrivateKey(k).public_key.format(compressed=False)[1:])[12:])


@dataclass
class Trader:
    key: bytes
    address: str

    @classmethod
    def make(cls, i: int) -> Trader:
        k = key(i)
        return cls(k, address_of(k))

    def expiry(self, clock: Clock, ahead_s: int = 3600) -> int:
        return clock.now_ms // 1000 + ahead_s

    def order_msg(self, clock: Clock, instrument: str = "ETH-PERP", side: int = 1, price: int = 3_000_000_000,
                  size: int = 1_000, *, order_type: int = 1, tif: int = 1, stp: int = 1, reduce_only: bool = False,
                  coid: int = 0, nonce: int | None = None, expiry: int | None = None,
                  account: str | None = None) -> eip712.Order:
        return eip712.Order(account or self.address, instrument, side, order_type, tif, stp, reduce_only, price, size,
                            coid, next(_nonce) if nonce is None else nonce,
                            self.expiry(clock) if expiry is None else expiry)


def body(field: str, msg: Any, k: bytes, domain: Domain = DOMAIN) -> dict[str, Any]:
    """Return the JSON request ``{field: message, "signature": ...}`` signed with ``k``."""
    return {field: message_to_dict(msg), "signature": "0x" + sign(k, domain, msg).hex()}


def next_nonce() -> int:
    return next(_nonce)


def make_service(journal_dir, clock: Clock, **kw: Any) -> SequencerService:
    cfg = default_sequencer_config(DOMAIN.chain_id)
    kw.setdefault("tick_interval_s", None)
    return SequencerService(default_sequencer_factory(cfg), DOMAIN, str(journal_dir), clock_ms=clock, **kw)


async def seed(service: SequencerService, traders: list[Trader], amount: int = 1_000_000 * 10**6,
               price8: int = ETH_PRICE8) -> None:
    """List instruments (Tick), publish ETH/BTC prices and credit each trader ``amount``."""
    await service.tick()
    now_s = service.clock_ms() // 1000
    await service.submit_price("ETH-USD", price8, 10**6, now_s, "ok")
    await service.submit_price("BTC-USD", 100_000 * 10**8, 10**6, now_s, "ok")
    for i, t in enumerate(traders):
        await service.submit_deposit(31337, 10_000 + i + abs(hash(t.address)) % 10**9, t.address, amount)

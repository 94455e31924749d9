"""Wire types for the on-chain events Omniclear reads, and their decoders.

Decoding is done from raw logs with eth_abi (no contract object per log), so a backlog
of thousands of deposits decodes in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

DEPOSIT_SIGNATURE = "Deposit(address,address,uint256,uint64)"
DEPOSIT_TOPIC = "0x" + keccak(text=DEPOSIT_SIGNATURE).hex()


class EventDecodeError(ValueError):
    """A log does not have the shape of the event it was fetched as."""


@dataclass(frozen=True)
class DepositEvent:
    """``Deposit(address indexed account, address indexed token, uint256 amount, uint64 indexed depositNonce)``."""

    chain_id: int
    account: str
    token: str
    amount: int
    deposit_nonce: int
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


def _hex(v: Any) -> str:
    return HexBytes(v).to_0x_hex()


@lru_cache(maxsize=65_536)
def _checksum(raw: bytes) -> str:
    return to_checksum_address(raw)


def _topic_address(t: Any) -> str:
    return _checksum(bytes(HexBytes(t)[-20:]))


def decode_deposit(chain_id: int, log: Any) -> DepositEvent:
    """Decode one vault ``Deposit`` log (a web3 log dict)."""
    topics = log["topics"]
    if len(topics) != 4 or _hex(topics[0]) != DEPOSIT_TOPIC:
        raise EventDecodeError(f"not a Deposit log: topics={[_hex(t) for t in topics]}")
    (amount,) = abi_decode(["uint256"], bytes(HexBytes(log["data"])))
    return DepositEvent(
        chain_id=chain_id,
        account=_topic_address(topics[1]),
        token=_topic_address(topics[2]),
        amount=int(amount),
        deposit_nonce=int.from_bytes(HexBytes(topics[3]), "big"),
        block_number=int(log["blockNumber"]),
        block_hash=_hex(log["blockHash"]),
        tx_hash=_hex(log["transactionHash"]),
        log_index=int(log["logIndex"]),
    )

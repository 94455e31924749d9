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


BATCH_APPLIED_SIGNATURE = "BatchApplied(uint64,uint256,uint256,uint256,uint256,uint256)"
BATCH_APPLIED_TOPIC = "0x" + keccak(text=BATCH_APPLIED_SIGNATURE).hex()
WITHDRAWAL_PAID_SIGNATURE = "WithdrawalPaid(bytes32,address,address,uint256)"
WITHDRAWAL_PAID_TOPIC = "0x" + keccak(text=WITHDRAWAL_PAID_SIGNATURE).hex()
VAULT_TOPICS = (DEPOSIT_TOPIC, BATCH_APPLIED_TOPIC, WITHDRAWAL_PAID_TOPIC)


@dataclass(frozen=True)
class BatchAppliedEvent:
    """``BatchApplied(uint64 indexed batchNumber, debited, credited, bridgedOut, bridgedIn, withdrawn)``
    (totals in native units)."""

    chain_id: int
    batch_number: int
    debited: int
    credited: int
    bridged_out: int
    bridged_in: int
    withdrawn: int
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class WithdrawalPaidEvent:
    """``WithdrawalPaid(bytes32 indexed withdrawalId, address indexed account, address indexed
    recipient, uint256 amount)`` (native units)."""

    chain_id: int
    withdrawal_id: str
    account: str
    recipient: str
    amount: int
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


def _where(log: Any) -> dict[str, Any]:
    return {"block_number": int(log["blockNumber"]), "block_hash": _hex(log["blockHash"]),
            "tx_hash": _hex(log["transactionHash"]), "log_index": int(log["logIndex"])}


def decode_vault_log(chain_id: int, log: Any) -> DepositEvent | BatchAppliedEvent | WithdrawalPaidEvent:
    """Decode any vault log Omniclear reads (``VAULT_TOPICS``), by its first topic."""
    topics = log["topics"]
    t0 = _hex(topics[0]) if topics else None
    if t0 == DEPOSIT_TOPIC:
        return decode_deposit(chain_id, log)
    data = bytes(HexBytes(log["data"]))
    if t0 == BATCH_APPLIED_TOPIC and len(topics) == 2:
        debited, credited, out, into, withdrawn = abi_decode(["uint256"] * 5, data)
        return BatchAppliedEvent(chain_id, int.from_bytes(HexBytes(topics[1]), "big"), int(debited), int(credited),
                                 int(out), int(into), int(withdrawn), **_where(log))
    if t0 == WITHDRAWAL_PAID_TOPIC and len(topics) == 4:
        (amount,) = abi_decode(["uint256"], data)
        return WithdrawalPaidEvent(chain_id, _hex(topics[1]), _topic_address(topics[2]), _topic_address(topics[3]),
                                   int(amount), **_where(log))
    raise EventDecodeError(f"not a vault log Omniclear reads: topics={[_hex(t) for t in topics]}")

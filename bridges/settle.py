"""Submit a signed settlement batch to the hub's ``SettlementHub`` (the batcher's adapter).

``submit_batch`` signs the header with the sequencer key (``messages.sign_batch``), checks
the batch against the hub's rules locally when the registered domains are given
(``messages.check_batch``: a bad batch costs no gas), sends ``submitBatch`` and returns the
message id the hub dispatched to each domain (from ``SettlementDispatched``), which the
relayer then delivers.

Invariant: the only effect is one ``submitBatch`` transaction; the hub itself refuses a
batch out of order, with a wrong previous hash, an unbalanced netting or a bad signature
(a ``RejectedChainError`` carrying the revert).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_account import Account
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3

from bridges.chain import ChainClient, NonceManager
from bridges.contracts import abi
from bridges.messages import BatchHeader, ChainSettlement, check_batch, sign_batch

__all__ = ["BatchSubmission", "SETTLEMENT_DISPATCHED_TOPIC", "encode_submit_batch", "submit_batch"]

SETTLEMENT_DISPATCHED_TOPIC = "0x" + keccak(text="SettlementDispatched(uint64,uint32,bytes32)").hex()


@dataclass(frozen=True)
class BatchSubmission:
    """A committed batch: its transaction and the message id dispatched to each domain."""

    batch_number: int
    tx_hash: str
    block_number: int
    block_hash: str
    message_ids: dict[int, bytes]


@lru_cache(maxsize=1)
def _hub_contract() -> Any:
    return Web3().eth.contract(abi=abi("SettlementHub"))


def encode_submit_batch(header: BatchHeader, settlements: Sequence[ChainSettlement], signature: bytes) -> str:
    """Return the calldata of ``submitBatch(header, settlements, signature)``."""
    return str(_hub_contract().encode_abi("submitBatch", args=[header.as_abi(), [s.as_abi() for s in settlements],
                                                               bytes(signature)]))


def _dispatched(receipt: dict[str, Any], hub_address: str) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for lg in receipt.get("logs", []):
        if Web3.to_checksum_address(lg["address"]) != Web3.to_checksum_address(hub_address):
            continue
        topics = [HexBytes(t) for t in lg["topics"]]
        if not topics or topics[0].to_0x_hex() != SETTLEMENT_DISPATCHED_TOPIC:
            continue
        domain = int.from_bytes(topics[2], "big")
        out[domain] = bytes(HexBytes(lg["data"]))[:32]
    return out


async def submit_batch(client: ChainClient, hub_address: str, header: BatchHeader,
                       settlements: Sequence[ChainSettlement], sequencer_key: str, *,
                       sender_key: str | None = None, nonces: NonceManager | None = None,
                       domains: Sequence[int] | None = None, timeout: float = 60.0) -> BatchSubmission:
    """Sign ``header`` with ``sequencer_key`` and commit it on the hub; wait for the receipt.

    ``sender_key`` pays the gas (default: the sequencer key; anyone may submit a signed
    batch). With ``domains`` (the hub's registered domains) the batch rules are checked
    first and a ``messages.BatchRuleError`` is raised without sending anything.
    """
    if domains is not None:
        check_batch(header.batch_number, settlements, domains)
    signature = sign_batch(sequencer_key, header, client.chain_id, hub_address)
    data = encode_submit_batch(header, settlements, signature)
    key = sender_key or sequencer_key
    receipt = await client.send_transaction(key, {"to": Web3.to_checksum_address(hub_address), "data": data},
                                            nonces or NonceManager(), timeout=timeout)
    return BatchSubmission(
        batch_number=header.batch_number,
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
        block_number=int(receipt["blockNumber"]),
        block_hash=HexBytes(receipt["blockHash"]).to_0x_hex(),
        message_ids=_dispatched(receipt, hub_address),
    )


def sequencer_address(sequencer_key: str) -> str:
    """The address the hub must know as its sequencer for ``sequencer_key``."""
    return str(Account.from_key(sequencer_key).address)

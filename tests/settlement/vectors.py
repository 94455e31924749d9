"""Shared settlement vectors, checked by pytest and by forge: build, and write with ``python -m``.

    python -m tests.settlement.vectors   # rewrites contracts/test/vectors/settlement_messages.json

Everything comes from ``bridges.messages`` (the Python twin of ``Message.sol``,
``Settlement.sol``, ``SettlementHub`` and ``Mailbox``): Mailbox messages (packed bytes + id),
two chained batches (per-chain settlement bodies, ``settlements_hash``, header ``batch_hash``,
EIP-712 digest, the sequencer's RFC 6979 signature), the exact messages the hub dispatches for
them, and validator delivery digests + sorted signatures for a fixed destination Mailbox.

Fixed deployment (what ``SettlementVectors.t.sol`` recreates): anvil dev account 0 deploys, on
chain 31337, the hub's Mailbox (nonce 0) then the SettlementHub (nonce 1), then the destination
Mailbox of domain 42161 (nonce 2); the hub registers the vault addresses below. Integers that
may exceed 2**53 are decimal strings; domains, nonces and batch numbers are JSON numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aggregator.eip712 import keccak, recover, to_checksum_address
from bridges.messages import (
    BATCH_TYPE,
    BATCH_TYPEHASH,
    DELIVERY_TYPE,
    DELIVERY_TYPEHASH,
    AccountDelta,
    BatchHeader,
    BridgeTransfer,
    ChainSettlement,
    MailboxMessage,
    Withdrawal,
    address_to_bytes32,
    batch_digest,
    check_batch,
    delivery_digest,
    encode_settlement,
    hub_domain,
    mailbox_domain,
    settlements_hash,
    sign_batch,
    sign_delivery,
)

VECTORS_FILE = Path(__file__).resolve().parents[2] / "contracts" / "test" / "vectors" / "settlement_messages.json"

# anvil dev accounts: 0 deploys, 1 is the sequencer, 2..4 are the Mailbox validators
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SEQUENCER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
VALIDATOR_KEYS = (
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
)
THRESHOLD = 2

HUB_CHAIN_ID = 31337
DEST_DOMAIN = 42161  # the destination Mailbox's domain and chain id
BNB_DOMAIN = 56  # an 18-decimal chain: amounts stay canonical in the messages
DOMAINS = (BNB_DOMAIN, HUB_CHAIN_ID, DEST_DOMAIN)  # registered on the hub, ascending
VAULTS = {
    d: to_checksum_address(a)
    for d, a in (
        (BNB_DOMAIN, "0x0000000000000000000000000000000000005601"),
        (HUB_CHAIN_ID, "0x0000000000000000000000000000000000031337"),
        (DEST_DOMAIN, "0x0000000000000000000000000000000000042161"),
    )
}

ALICE = to_checksum_address("0x00000000000000000000000000000000000A11CE")
BOB = to_checksum_address("0x0000000000000000000000000000000000000B0B")
CAROL = to_checksum_address("0x00000000000000000000000000000000000CA201")
FEES = to_checksum_address("0x000000000000000000000000000000000000FEE5")
PAYEE = to_checksum_address("0x00000000000000000000000000000000DeaDBeef")


def create_address(deployer: str, nonce: int) -> str:
    """``CREATE`` address of ``deployer``'s ``nonce``-th deployment (``nonce < 128``)."""
    if not 0 <= nonce < 0x80:
        raise ValueError("small nonces only")
    rlp = b"\xd6\x94" + bytes.fromhex(to_checksum_address(deployer)[2:]) + (bytes((nonce,)) if nonce else b"\x80")
    return to_checksum_address(keccak(rlp)[12:])


HUB_MAILBOX = create_address(DEPLOYER, 0)
HUB = create_address(DEPLOYER, 1)
DEST_MAILBOX = create_address(DEPLOYER, 2)


def validators() -> list[str]:
    """Validator addresses, ascending (the order ``Mailbox.process`` wants signatures in)."""
    from eth_account import Account

    return sorted((Account.from_key(k).address for k in VALIDATOR_KEYS), key=lambda a: int(a, 16))


def sequencer() -> str:
    from eth_account import Account

    return Account.from_key(SEQUENCER_KEY).address


# ------------------------------------------------------------------ inputs


def generic_messages() -> list[tuple[str, MailboxMessage]]:
    """A few Mailbox messages outside any batch: empty body, a token-bridge mint, extremes."""
    bridge_a = address_to_bytes32("0x00000000000000000000000000000000000B41D6")
    bridge_b = address_to_bytes32("0x00000000000000000000000000000000000B41D7")
    mint_body = (7).to_bytes(32, "big") + (1_000_000).to_bytes(32, "big")  # abi.encode(uint64 7, uint256 1e6)
    return [
        ("empty-body", MailboxMessage(0, HUB_CHAIN_ID, address_to_bytes32(ALICE), DEST_DOMAIN, address_to_bytes32(BOB))),
        ("token-bridge-mint", MailboxMessage(3, DEST_DOMAIN, bridge_a, BNB_DOMAIN, bridge_b, mint_body)),
        ("extremes", MailboxMessage(2**32 - 1, 2**32 - 1, b"\xff" * 32, 1, b"\x01" * 32, bytes(range(256)))),
    ]


def batch_settlements() -> list[list[ChainSettlement]]:
    """Two batches over ``DOMAINS``. Batch 1: the hub chain pays the 18-decimal chain (one leg),
    a fee credit, a withdrawal, 2**128-sized deltas. Batch 2: one chain sends to two (legs
    ascending by domain) and a zero delta."""
    w1 = Withdrawal(keccak(b"withdrawal-1"), BOB, PAYEE, 250_000)
    w2 = Withdrawal(keccak(b"withdrawal-2"), CAROL, CAROL, 2**200)
    one = [
        ChainSettlement(
            BNB_DOMAIN, 1, deltas=(AccountDelta(BOB, 1_000_000),), withdrawals=(w1,),
            bridge_in=(BridgeTransfer(HUB_CHAIN_ID, 1_000_000),),
        ),
        ChainSettlement(
            HUB_CHAIN_ID, 1, deltas=(AccountDelta(ALICE, -1_500_000), AccountDelta(FEES, 500_000)),
            bridge_out=(BridgeTransfer(BNB_DOMAIN, 1_000_000),),
        ),
        ChainSettlement(
            DEST_DOMAIN, 1, deltas=(AccountDelta(CAROL, 2**128), AccountDelta(ALICE, -(2**128))), withdrawals=(w2,),
        ),
    ]
    two = [
        ChainSettlement(BNB_DOMAIN, 2, deltas=(AccountDelta(BOB, 3),), bridge_in=(BridgeTransfer(DEST_DOMAIN, 3),)),
        ChainSettlement(
            HUB_CHAIN_ID, 2, deltas=(AccountDelta(CAROL, 4),), bridge_in=(BridgeTransfer(DEST_DOMAIN, 4),)
        ),
        ChainSettlement(
            DEST_DOMAIN, 2, deltas=(AccountDelta(ALICE, -7), AccountDelta(FEES, 0)),
            bridge_out=(BridgeTransfer(BNB_DOMAIN, 3), BridgeTransfer(HUB_CHAIN_ID, 4)),
        ),
    ]
    return [one, two]


# ------------------------------------------------------------------ rendering


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _message_json(name: str, m: MailboxMessage) -> dict[str, Any]:
    return {
        "name": name,
        "version": m.version,
        "nonce": m.nonce,
        "origin": m.origin,
        "sender": _hex(m.sender),
        "destination": m.destination,
        "recipient": _hex(m.recipient),
        "body": _hex(m.body),
        "encoded": _hex(m.encode()),
        "id": _hex(m.id),
    }


def _settlement_json(s: ChainSettlement) -> dict[str, Any]:
    """Fields as parallel arrays (forge's JSON cheatcodes read arrays of one type), plus the body."""
    return {
        "domain": s.domain,
        "batchNumber": s.batch_number,
        "deltaAccounts": [d.account for d in s.deltas],
        "deltaAmounts": [str(d.amount) for d in s.deltas],
        "withdrawalIds": [_hex(w.withdrawal_id) for w in s.withdrawals],
        "withdrawalAccounts": [w.account for w in s.withdrawals],
        "withdrawalRecipients": [w.recipient for w in s.withdrawals],
        "withdrawalAmounts": [str(w.amount) for w in s.withdrawals],
        "bridgeOutDomains": [b.domain for b in s.bridge_out],
        "bridgeOutAmounts": [str(b.amount) for b in s.bridge_out],
        "bridgeInDomains": [b.domain for b in s.bridge_in],
        "bridgeInAmounts": [str(b.amount) for b in s.bridge_in],
        "body": _hex(encode_settlement(s)),
    }


def _delivery_json(m: MailboxMessage, keys: tuple[str, ...]) -> dict[str, Any]:
    digest = delivery_digest(m.id, DEST_DOMAIN, DEST_MAILBOX)
    sigs = sign_delivery(keys, m.id, DEST_DOMAIN, DEST_MAILBOX)
    return {
        "id": _hex(m.id),
        "digest": _hex(digest),
        "signatures": [_hex(s) for s in sigs],
        "signers": [recover(digest, s) for s in sigs],
    }


def build() -> dict[str, Any]:
    """Return the vector document."""
    batches = []
    deliveries = []
    prev = bytes(32)
    path_nonce = dict.fromkeys(DOMAINS, 0)
    for settlements in batch_settlements():
        n = settlements[0].batch_number
        check_batch(n, settlements, DOMAINS)
        header = BatchHeader(n, prev, keccak(f"state-{n}".encode()), keccak(f"journal-{n}".encode()),
                             settlements_hash(settlements))
        digest = batch_digest(header, HUB_CHAIN_ID, HUB)
        sig = sign_batch(SEQUENCER_KEY, header, HUB_CHAIN_ID, HUB)
        dispatched = []
        for s in settlements:
            m = MailboxMessage(path_nonce[s.domain], HUB_CHAIN_ID, address_to_bytes32(HUB), s.domain,
                               address_to_bytes32(VAULTS[s.domain]), encode_settlement(s))
            path_nonce[s.domain] += 1
            dispatched.append(_message_json(f"batch-{n}-to-{s.domain}", m))
            if s.domain == DEST_DOMAIN:
                # batch 1 with the threshold (first two validators), batch 2 with all three
                keys = VALIDATOR_KEYS[:THRESHOLD] if n == 1 else VALIDATOR_KEYS
                deliveries.append({"name": f"batch-{n}-to-{s.domain}", **_delivery_json(m, keys)})
        batches.append({
            "batchNumber": n,
            "prevBatchHash": _hex(header.prev_batch_hash),
            "stateRoot": _hex(header.state_root),
            "journalHash": _hex(header.journal_hash),
            "settlementsHash": _hex(header.settlements_hash),
            "batchHash": _hex(header.hash),
            "digest": _hex(digest),
            "signature": _hex(sig),
            "signer": recover(digest, sig),
            "settlements": [_settlement_json(s) for s in settlements],
            "messages": dispatched,
        })
        prev = header.hash
    return {
        "comment": "generated by `python -m tests.settlement.vectors` from bridges/messages.py; do not edit by hand. "
                   "Checked by tests/settlement/test_messages.py and contracts/test/settlement/SettlementVectors.t.sol.",
        "deployer": DEPLOYER,
        "batchType": BATCH_TYPE,
        "batchTypehash": _hex(BATCH_TYPEHASH),
        "deliveryType": DELIVERY_TYPE,
        "deliveryTypehash": _hex(DELIVERY_TYPEHASH),
        "hub": {
            "chainId": HUB_CHAIN_ID,
            "mailbox": HUB_MAILBOX,
            "address": HUB,
            "domainSeparator": _hex(hub_domain(HUB_CHAIN_ID, HUB).separator),
            "sequencer": sequencer(),
            "domains": list(DOMAINS),
            "vaults": [VAULTS[d] for d in DOMAINS],
        },
        "messages": [_message_json(name, m) for name, m in generic_messages()],
        "batches": batches,
        "delivery": {
            "chainId": DEST_DOMAIN,
            "mailbox": DEST_MAILBOX,
            "domainSeparator": _hex(mailbox_domain(DEST_DOMAIN, DEST_MAILBOX).separator),
            "validators": validators(),
            "threshold": THRESHOLD,
            "items": deliveries,
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    VECTORS_FILE.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_FILE.write_text(render())
    print(f"wrote {VECTORS_FILE}")

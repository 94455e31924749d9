"""bridges.messages: the shared vectors are current, the codec round-trips, and check_batch names
the same rule the SettlementHub reverts with (see contracts/test/settlement/SettlementHub.t.sol)."""

from __future__ import annotations

import json

import pytest
from eth_abi import encode as abi_encode
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.eip712 import keccak, recover
from bridges.messages import (
    HEADER_LENGTH,
    SETTLEMENT_ABI,
    AccountDelta,
    BatchHeader,
    BatchRuleError,
    BridgeTransfer,
    ChainSettlement,
    MailboxMessage,
    MessageCodecError,
    Withdrawal,
    address_to_bytes32,
    batch_digest,
    bridge_deps,
    bytes32_to_address,
    check_batch,
    decode_message,
    decode_settlement,
    delivery_digest,
    encode_settlement,
    message_id,
    native_scale,
    recover_delivery_signer,
    settlements_hash,
    sign_batch,
    sign_delivery,
    sort_signatures,
    to_native,
)
from tests.settlement import vectors as sv

VECTORS = json.loads(sv.VECTORS_FILE.read_text())
A, B, C = sv.DOMAINS  # 56, 31337, 42161
ALICE, BOB = sv.ALICE, sv.BOB


# ------------------------------------------------------------------ the vectors file


def test_vectors_file_matches_generator():
    assert sv.VECTORS_FILE.read_text() == sv.render(), "run: python -m tests.settlement.vectors"


def test_vectors_have_the_counts_the_forge_test_loops_over():
    # SettlementVectors.t.sol cannot count JSON arrays: it loops over these fixed sizes.
    assert len(VECTORS["messages"]) == 3
    assert len(VECTORS["batches"]) == 2
    assert all(len(b["settlements"]) == len(b["messages"]) == len(sv.DOMAINS) for b in VECTORS["batches"])
    assert len(VECTORS["delivery"]["items"]) == 2
    assert [m["destination"] for m in VECTORS["batches"][0]["messages"]][2] == sv.DEST_DOMAIN


def test_vectors_deployment_is_anvils_first_contracts():
    assert sv.HUB_MAILBOX == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert sv.HUB == "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    assert sv.DEST_MAILBOX == "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"


def test_vector_messages_decode_to_their_fields():
    for v in VECTORS["messages"] + [m for b in VECTORS["batches"] for m in b["messages"]]:
        m = decode_message(v["encoded"])
        assert (m.version, m.nonce, m.origin, m.destination) == (v["version"], v["nonce"], v["origin"], v["destination"])
        assert "0x" + m.sender.hex() == v["sender"] and "0x" + m.recipient.hex() == v["recipient"]
        assert "0x" + m.body.hex() == v["body"]
        assert "0x" + m.id.hex() == v["id"] == "0x" + keccak(bytes.fromhex(v["encoded"][2:])).hex()


def test_vector_batches_chain_and_are_signed_by_the_sequencer():
    prev = "0x" + "00" * 32
    for b in VECTORS["batches"]:
        assert b["prevBatchHash"] == prev
        assert recover(bytes.fromhex(b["digest"][2:]), b["signature"]) == VECTORS["hub"]["sequencer"] == b["signer"]
        bodies = [decode_settlement(bytes.fromhex(s["body"][2:])) for s in b["settlements"]]
        check_batch(b["batchNumber"], bodies, VECTORS["hub"]["domains"])
        assert "0x" + settlements_hash(bodies).hex() == b["settlementsHash"]
        for m, s in zip(b["messages"], b["settlements"]):
            assert m["body"] == s["body"]
        prev = b["batchHash"]


def test_vector_delivery_signatures_are_sorted_validators():
    d = VECTORS["delivery"]
    for item in d["items"]:
        digest = bytes.fromhex(item["digest"][2:])
        assert digest == delivery_digest(bytes.fromhex(item["id"][2:]), d["chainId"], d["mailbox"])
        signers = [recover(digest, s) for s in item["signatures"]]
        assert signers == item["signers"] == sorted(signers, key=lambda a: int(a, 16))
        assert set(signers) <= set(d["validators"]) and len(signers) >= d["threshold"]


# ------------------------------------------------------------------ codec


def _msg(**kw) -> MailboxMessage:
    base = dict(nonce=1, origin=A, sender=address_to_bytes32(ALICE), destination=B,
                recipient=address_to_bytes32(BOB), body=b"hi")
    base.update(kw)
    return MailboxMessage(**base)


def test_message_layout_is_packed_big_endian():
    m = _msg(nonce=0x01020304, origin=0x0A0B0C0D, destination=0x11121314)
    raw = m.encode()
    assert len(raw) == HEADER_LENGTH + 2
    assert raw[:9] == bytes([1, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D])
    assert raw[41:45] == bytes([0x11, 0x12, 0x13, 0x14])
    assert message_id(raw) == message_id(m) == keccak(raw)


@settings(max_examples=200, deadline=None)
@given(
    nonce=st.integers(0, 2**32 - 1), origin=st.integers(0, 2**32 - 1), destination=st.integers(0, 2**32 - 1),
    sender=st.binary(min_size=32, max_size=32), recipient=st.binary(min_size=32, max_size=32),
    body=st.binary(max_size=300),
)
def test_message_round_trips(nonce, origin, destination, sender, recipient, body):
    m = MailboxMessage(nonce, origin, sender, destination, recipient, body)
    assert decode_message(m.encode()) == m
    assert decode_message("0x" + m.encode().hex()) == m


def test_decode_message_refuses_short_input():
    with pytest.raises(MessageCodecError, match="77-byte header"):
        decode_message(bytes(76))
    assert decode_message(bytes(77)).body == b""


@pytest.mark.parametrize(
    "kw",
    [dict(nonce=2**32), dict(origin=-1), dict(destination=True), dict(sender=b"\x00" * 31), dict(recipient="0x12"),
     dict(body="text")],
)
def test_message_refuses_values_that_do_not_fit(kw):
    with pytest.raises(MessageCodecError):
        _msg(**kw)


def test_address_bytes32_round_trip():
    b = address_to_bytes32(BOB)
    assert b == bytes(12) + bytes.fromhex(BOB[2:]) and bytes32_to_address(b) == BOB
    with pytest.raises(MessageCodecError):
        address_to_bytes32("0x1234")


_addr = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
_settlement = st.builds(
    ChainSettlement,
    domain=st.integers(0, 2**32 - 1),
    batch_number=st.integers(0, 2**64 - 1),
    deltas=st.lists(st.builds(AccountDelta, _addr, st.integers(-(2**255), 2**255 - 1)), max_size=3),
    withdrawals=st.lists(
        st.builds(Withdrawal, st.binary(min_size=32, max_size=32), _addr, _addr, st.integers(0, 2**256 - 1)), max_size=2
    ),
    bridge_out=st.lists(st.builds(BridgeTransfer, st.integers(0, 2**32 - 1), st.integers(0, 2**256 - 1)), max_size=2),
    bridge_in=st.lists(st.builds(BridgeTransfer, st.integers(0, 2**32 - 1), st.integers(0, 2**256 - 1)), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(s=_settlement)
def test_settlement_round_trips(s):
    body = encode_settlement(s)
    assert decode_settlement(body) == s
    assert settlements_hash([s]) == keccak(abi_encode([SETTLEMENT_ABI + "[]"], [[s.as_abi()]]))


def test_settlement_refuses_garbage_and_out_of_range():
    with pytest.raises(MessageCodecError):
        decode_settlement(b"\x01\x02")
    with pytest.raises(MessageCodecError):
        AccountDelta(ALICE, 2**255)
    with pytest.raises(MessageCodecError):
        Withdrawal(bytes(32), ALICE, BOB, -1)
    with pytest.raises(MessageCodecError):
        ChainSettlement(2**32, 1)


def test_settlements_hash_is_order_sensitive():
    one, two = ChainSettlement(A, 1), ChainSettlement(B, 1)
    assert settlements_hash([one, two]) != settlements_hash([two, one])


# ------------------------------------------------------------------ signatures


def test_batch_header_hash_and_signature():
    h = BatchHeader(1, bytes(32), keccak(b"s"), keccak(b"j"), settlements_hash([ChainSettlement(A, 1)]))
    assert h.hash == keccak(sv.BATCH_TYPEHASH + (1).to_bytes(32, "big") + bytes(32) + keccak(b"s") + keccak(b"j")
                            + h.settlements_hash)
    sig = sign_batch(sv.SEQUENCER_KEY, h, sv.HUB_CHAIN_ID, sv.HUB)
    assert recover(batch_digest(h, sv.HUB_CHAIN_ID, sv.HUB), sig) == sv.sequencer()
    # bound to the hub's chain and address
    assert batch_digest(h, 1, sv.HUB) != batch_digest(h, sv.HUB_CHAIN_ID, sv.HUB)
    assert batch_digest(h, sv.HUB_CHAIN_ID, sv.DEST_MAILBOX) != batch_digest(h, sv.HUB_CHAIN_ID, sv.HUB)


def test_delivery_signatures_sorted_and_deduplicated():
    mid = _msg().id
    keys = list(reversed(sv.VALIDATOR_KEYS))
    sigs = sign_delivery(keys + keys[:1], mid, sv.DEST_DOMAIN, sv.DEST_MAILBOX)
    signers = [recover_delivery_signer(mid, sv.DEST_DOMAIN, sv.DEST_MAILBOX, s) for s in sigs]
    assert signers == sv.validators(), "ascending, each validator once"
    digest = delivery_digest(mid, sv.DEST_DOMAIN, sv.DEST_MAILBOX)
    assert sort_signatures(digest, reversed(sigs)) == sigs
    # the digest is bound to the destination Mailbox
    assert digest != delivery_digest(mid, sv.DEST_DOMAIN, sv.HUB_MAILBOX)
    assert digest != delivery_digest(mid, sv.HUB_CHAIN_ID, sv.DEST_MAILBOX)


# ------------------------------------------------------------------ units


def test_native_scale_is_exact_and_refuses_fewer_than_six_decimals():
    assert native_scale(6) == 1 and native_scale(18) == 10**12
    assert to_native(1_500_000, 18) == 1_500_000 * 10**12
    with pytest.raises(MessageCodecError, match="UnsupportedDecimals"):
        native_scale(5)


# ------------------------------------------------------------------ batch rules (names = hub errors)


def _batch(n: int = 1, **per_domain) -> list[ChainSettlement]:
    """One settlement per registered domain; keyword ``d56`` etc. overrides a domain's fields."""
    out = []
    for d in sv.DOMAINS:
        kw = per_domain.get(f"d{d}", {})
        out.append(ChainSettlement(kw.pop("domain", d), kw.pop("batch_number", n), **kw))
    return out


def _legs(*pairs: tuple[int, int]) -> tuple[BridgeTransfer, ...]:
    return tuple(BridgeTransfer(d, a) for d, a in pairs)


def _d(*pairs: tuple[str, int]) -> tuple[AccountDelta, ...]:
    return tuple(AccountDelta(a, x) for a, x in pairs)


def _rule(settlements: list[ChainSettlement], n: int = 1) -> str:
    with pytest.raises(BatchRuleError) as e:
        check_batch(n, settlements, sv.DOMAINS)
    return e.value.name


def test_check_batch_accepts_a_netted_cross_chain_batch():
    s = _batch(
        d31337=dict(deltas=_d((ALICE, -150)), bridge_out=_legs((A, 100), (C, 50))),
        d56=dict(deltas=_d((BOB, 100)), bridge_in=_legs((B, 100))),
        d42161=dict(deltas=_d((BOB, 50)), bridge_in=_legs((B, 50)),
                    withdrawals=(Withdrawal(keccak(b"w"), BOB, BOB, 50),)),
    )
    check_batch(1, s, list(reversed(sv.DOMAINS)))  # registered domains in any order
    assert bridge_deps(s) == {A: {B}, B: set(), C: {B}}


def test_check_batch_domain_coverage():
    full = _batch()
    assert _rule(full[:2]) == "DomainSetMismatch"
    assert _rule(full + [ChainSettlement(99999, 1)]) == "DomainSetMismatch"
    assert _rule(_batch(d31337=dict(domain=424242))) == "UnknownDomain"
    assert _rule([full[0], full[0], full[2]]) == "UnknownDomain"  # duplicate
    assert _rule([full[1], full[0], full[2]]) == "UnknownDomain"  # not ascending
    assert _rule(_batch(d42161=dict(batch_number=7))) == "BatchNumberMismatch"


@pytest.mark.parametrize(
    "w",
    [Withdrawal(bytes(32), ALICE, ALICE, 1), Withdrawal(keccak(b"w"), "0x" + "00" * 20, ALICE, 1),
     Withdrawal(keccak(b"w"), ALICE, "0x" + "00" * 20, 1), Withdrawal(keccak(b"w"), ALICE, ALICE, 0)],
)
def test_check_batch_invalid_withdrawal(w):
    assert _rule(_batch(d31337=dict(withdrawals=(w,)))) == "InvalidWithdrawal"


def test_check_batch_balance_rules():
    assert _rule(_batch(d31337=dict(deltas=_d((ALICE, -100), (BOB, 99))))) == "DeltasDoNotBalance"
    # each chain nets with its legs, nobody receives: Σ deltas != 0
    assert _rule(_batch(d56=dict(deltas=_d((ALICE, -100)), bridge_out=_legs((B, 100))))) == "Unbalanced"


def test_check_batch_bridge_rules():
    assert _rule(_batch(
        d56=dict(deltas=_d((ALICE, -100)), bridge_out=_legs((B, 100))),
        d42161=dict(deltas=_d((BOB, 100)), bridge_in=_legs((A, 100))),
    )) == "BridgeMismatch"  # 56 sends to 31337, 42161 claims it
    assert _rule(_batch(
        d56=dict(deltas=_d((ALICE, -100)), bridge_out=_legs((B, 100))),
        d31337=dict(bridge_in=_legs((A, 100)), bridge_out=_legs((C, 100))),
        d42161=dict(deltas=_d((BOB, 100)), bridge_in=_legs((B, 100))),
    )) == "BridgeCycle"
    assert _rule(_batch(d56=dict(deltas=_d((ALICE, -1)), bridge_out=_legs((A, 1))))) == "InvalidBridgeTransfers"
    assert _rule(_batch(d56=dict(deltas=_d((ALICE, -2)), bridge_out=_legs((C, 1), (B, 1))))) == "InvalidBridgeTransfers"
    assert _rule(_batch(d56=dict(bridge_in=_legs((B, 0))))) == "InvalidBridgeTransfers"


@settings(max_examples=100, deadline=None)
@given(amount=st.integers(1, 2**128), src=st.sampled_from(sv.DOMAINS), dst=st.sampled_from(sv.DOMAINS))
def test_check_batch_accepts_any_zero_sum_transfer(amount, src, dst):
    per: dict[str, dict] = {}
    if src == dst:
        per[f"d{src}"] = dict(deltas=_d((ALICE, -amount), (BOB, amount)))
    else:
        per[f"d{src}"] = dict(deltas=_d((ALICE, -amount)), bridge_out=_legs((dst, amount)))
        per[f"d{dst}"] = dict(deltas=_d((BOB, amount)), bridge_in=_legs((src, amount)))
    check_batch(1, _batch(**per), sv.DOMAINS)

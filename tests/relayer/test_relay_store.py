"""Relay store without chains: lease compare-and-set, typed retries, dead-letter and admin retry."""

from __future__ import annotations

import asyncio

from bridges.messages import MailboxMessage
from bridges.relay_store import DEAD, FAILED, PENDING, RelayMessage, RelayStore
from bridges.relayer import RETRY_RULES, Reason, Relayer, RelayerStats, classify_revert, retry_delay
from sqlmodel import Session


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def insert(store: RelayStore, nonce: int = 0) -> RelayMessage:
    m = MailboxMessage(nonce=nonce, origin=1, sender=bytes(31) + b"\x01", destination=2,
                       recipient=bytes(31) + b"\x02", body=b"hello")
    row = RelayMessage(id="0x" + m.id.hex(), origin=1, destination=2, nonce=nonce, sender="0x" + m.sender.hex(),
                       recipient="0x" + m.recipient.hex(), body=m.body, dispatch_block=5, dispatch_block_hash="0x00",
                       dispatch_tx="0x00", created_at=store.clock(), updated_at=store.clock(),
                       next_attempt_at=store.clock())
    mid = row.id
    with Session(store.engine) as s:
        s.add(row)
        s.commit()
    return store.get(mid)  # type: ignore[return-value]


def test_claim_is_compare_and_set_one_owner_wins(engine):
    store = RelayStore(engine, clock=Clock())
    store.create_tables()
    insert(store, 0)
    insert(store, 1)
    a = store.claim_next("a", 2, lease_s=10)
    b = store.claim_next("b", 2, lease_s=10)
    assert [r.nonce for r in a] == [0]  # only the lowest nonce of the path
    assert b == []  # a's lease holds; b may not take nonce 1 past it either (path order)
    store.clock.now += 11  # the lease expires: b takes over
    assert [r.nonce for r in store.claim_next("b", 2, lease_s=10)] == [0]
    assert not store.mark_retry(a[0].id, "a", "late", 1.0)  # a lost the lease: its write is refused


def test_capped_reason_dead_letters_and_admin_retry_revives(engine):
    clock = Clock()
    store = RelayStore(engine, clock=clock)
    store.create_tables()
    row = insert(store)
    relayer = Relayer.__new__(Relayer)  # only the scheduling part, no chains
    relayer.store, relayer.owner = store, "me"
    relayer.stats = RelayerStats()
    cap = RETRY_RULES[Reason.RECIPIENT_REVERT].cap
    assert cap is not None
    for i in range(cap + 1):
        clock.now += 1_000
        (claimed,) = store.claim_next("me", 2, lease_s=10)
        outcome = asyncio.run(relayer._schedule(claimed, Reason.RECIPIENT_REVERT, "InsufficientBalance"))
        assert outcome == ("retry" if i < cap else "dead")
        assert store.get(row.id).status == (FAILED if i < cap else DEAD)  # type: ignore[union-attr]
    assert store.get(row.id).retries == cap + 1  # type: ignore[union-attr]
    revived = store.retry(row.id)
    assert revived.status == PENDING and revived.retries == 0


def test_waiting_for_predecessor_never_counts_and_backoff_is_capped():
    assert RETRY_RULES[Reason.WAITING_PREDECESSOR].cap is None
    assert not RETRY_RULES[Reason.WAITING_PREDECESSOR].counts
    assert all(0 <= retry_delay(Reason.RPC_ERROR, n) <= 5.0 for n in range(1, 60))


def test_bridge_in_pending_is_a_fast_uncounted_wait_not_a_fault(engine):
    """A settlement waiting for its token-bridge mint (BridgeInPending) never dead-letters and
    is retried within 0.1-0.3 s; other recipient reverts keep the capped backoff."""
    assert classify_revert("BridgeInPending") is Reason.RECIPIENT_WAITING
    assert classify_revert("MessageOutOfOrder") is Reason.WAITING_PREDECESSOR
    assert classify_revert("InsufficientBalance") is Reason.RECIPIENT_REVERT
    rule = RETRY_RULES[Reason.RECIPIENT_WAITING]
    assert rule.cap is None and not rule.counts
    assert all(0.1 <= retry_delay(Reason.RECIPIENT_WAITING, n) <= 0.3 for n in range(1, 200))
    cap = RETRY_RULES[Reason.RECIPIENT_REVERT].cap
    assert cap is not None
    clock = Clock()
    store = RelayStore(engine, clock=clock)
    store.create_tables()
    row = insert(store)
    relayer = Relayer.__new__(Relayer)
    relayer.store, relayer.owner, relayer.stats = store, "me", RelayerStats()
    for _ in range(cap * 3):  # far past the recipient-revert cap
        (claimed,) = store.claim_next("me", 2, lease_s=10)
        assert asyncio.run(relayer._schedule(claimed, Reason.RECIPIENT_WAITING, "BridgeInPending")) == "retry"
        got = store.get(row.id)
        assert got is not None and got.status == FAILED and got.retries == 0
        assert got.next_attempt_at - clock.now <= 0.3
        clock.now = got.next_attempt_at


def test_pipelined_claim_follows_only_the_owners_sent_head(engine):
    store = RelayStore(engine, clock=Clock())
    store.create_tables()
    for n in range(4):
        insert(store, n)
    (head,) = store.claim_next("a", 2, lease_s=10, pipeline=2)
    assert head.nonce == 0
    assert store.claim_next("a", 2, lease_s=10, pipeline=2) == []  # the head is leased but not sent yet
    assert store.mark_submitted(head.id, "a", "0x" + "11" * 32, 7)
    assert store.claim_next("b", 2, lease_s=10, pipeline=2) == []  # never past a head someone else holds
    assert store.claim_next("a", 2, lease_s=10, pipeline=0) == []  # one at a time without pipelining
    (nxt,) = store.claim_next("a", 2, lease_s=10, pipeline=2)
    assert nxt.nonce == 1
    assert store.claim_next("a", 2, lease_s=10, pipeline=2) == []  # nonce 1 is leased, not sent
    assert store.mark_submitted(nxt.id, "a", "0x" + "22" * 32, 8)
    (third,) = store.claim_next("a", 2, lease_s=10, pipeline=2)
    assert third.nonce == 2
    assert store.mark_submitted(third.id, "a", "0x" + "33" * 32, 9)
    assert store.claim_next("a", 2, lease_s=10, pipeline=2) == []  # depth 2 past the head: nonce 3 waits
    store.clock.now += 11  # every lease expires: the head is claimable again, by anyone
    assert [r.nonce for r in store.claim_next("b", 2, lease_s=10, pipeline=2)] == [0]


def test_precomputed_view_calldata_matches_the_mailbox_abi():
    from eth_abi import encode

    from bridges.relayer import _DELIVERED, _INBOUND_NONCE, _mailbox_contract

    mid, sender = bytes(range(32)), bytes(31) + b"\x07"
    assert "0x" + (_DELIVERED + encode(["bytes32"], [mid])).hex() == _mailbox_contract().encode_abi(
        "delivered", args=[mid])
    assert "0x" + (_INBOUND_NONCE + encode(["uint32", "bytes32"], [61000, sender])).hex() == \
        _mailbox_contract().encode_abi("inboundNonce", args=[61000, sender])

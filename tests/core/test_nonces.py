"""Nonces: the acceptance rule, its boundaries, safe pruning, and at-most-once acceptance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core.nonces import UINT64_MAX, ClockWentBackwards, NonceStore, NonceVerdict as V

HOUR = 3_600_000
T0 = 1_800_000_000_000  # ms
E0 = T0 // 1000 + 60  # expires one minute after T0 (seconds)


def store(**kw) -> NonceStore:
    kw.setdefault("max_lifetime_ms", HOUR)
    return NonceStore(**kw)


def test_fresh_nonce_accepted_then_reuse_rejected():
    s = store()
    assert s.use("a", 7, E0, T0) is V.ACCEPTED
    assert s.use("a", 7, E0, T0 + 1) is V.NONCE_REUSED
    assert s.use("a", 7, E0 + 5, T0 + 1) is V.NONCE_REUSED  # same nonce, other expiry, still live


def test_same_nonce_other_key_accepted():
    s = store()
    assert s.use(("acct", "key1"), 7, E0, T0) is V.ACCEPTED
    assert s.use(("acct", "key2"), 7, E0, T0) is V.ACCEPTED


def test_any_order_of_nonces_accepted():
    s = store()
    for n in (5, 1, UINT64_MAX, 0, 3):
        assert s.use("a", n, E0, T0) is V.ACCEPTED


def test_expiry_boundary_first_ms_of_expiry_second_accepted_next_ms_expired():
    s = store()
    assert s.use("a", 1, E0, E0 * 1000) is V.ACCEPTED
    assert s.use("a", 2, E0, E0 * 1000 + 1) is V.EXPIRED


def test_expiry_window_boundary_accepted_beyond_rejected():
    s = store()
    assert s.use("a", 1, (T0 + HOUR) // 1000, T0) is V.ACCEPTED
    assert s.use("a", 2, (T0 + HOUR) // 1000 + 1, T0) is V.EXPIRY_TOO_FAR


@pytest.mark.parametrize("nonce", [-1, UINT64_MAX + 1, True, 1.0])
def test_nonce_out_of_range_rejected(nonce):
    assert store().use("a", nonce, E0, T0) is V.NONCE_OUT_OF_RANGE


@pytest.mark.parametrize("expiry", [-1, UINT64_MAX + 1, "1"])
def test_expiry_out_of_range_rejected(expiry):
    assert store().use("a", 1, expiry, T0) is V.EXPIRY_OUT_OF_RANGE


def test_too_many_live_nonces_rejected_until_pruned():
    s = store(max_live_per_key=3)
    for n in range(3):
        assert s.use("a", n, E0, T0) is V.ACCEPTED
    assert s.use("a", 99, E0, T0) is V.TOO_MANY_LIVE_NONCES
    assert s.use("b", 99, E0, T0) is V.ACCEPTED
    assert s.use("a", 99, E0 + 60, E0 * 1000 + 1) is V.ACCEPTED  # the first three were pruned


def test_prune_forgets_only_expired_entries():
    s = store()
    s.use("a", 1, E0, T0)
    s.use("a", 2, E0 + 10, T0)
    assert s.prune(E0 * 1000) == 0  # still valid at its expiry instant
    assert s.prune(E0 * 1000 + 1) == 1
    assert ("a", 1) not in s and ("a", 2) in s and len(s) == 1 and s.live_count("a") == 1


def test_replay_after_prune_rejected_as_expired():
    s = store()
    assert s.use("a", 1, E0, T0) is V.ACCEPTED
    later = E0 * 1000 + 1
    s.prune(later)
    assert ("a", 1) not in s
    assert s.use("a", 1, E0, later) is V.EXPIRED


def test_same_nonce_new_expiry_after_prune_accepted_as_new_message():
    s = store()
    s.use("a", 1, E0, T0)
    later = E0 * 1000 + 1
    assert s.use("a", 1, E0 + 120, later) is V.ACCEPTED  # different signed message: not a replay


def test_clock_going_backwards_raises():
    s = store()
    s.use("a", 1, E0, T0)
    with pytest.raises(ClockWentBackwards):
        s.use("a", 2, E0, T0 - 1)


def test_check_does_not_record():
    s = store()
    assert s.check("a", 1, E0, T0) is V.ACCEPTED
    assert s.use("a", 1, E0, T0) is V.ACCEPTED


def test_bad_store_parameters_raise():
    with pytest.raises(ValueError):
        NonceStore(max_lifetime_ms=0)
    with pytest.raises(ValueError):
        NonceStore(max_live_per_key=-1)


messages = st.lists(
    st.tuples(
        st.integers(0, 50_000),  # time advance (ms)
        st.sampled_from(["a", "b"]),
        st.integers(0, 4),  # nonce
        st.integers(-10, 200),  # expiry offset from now (s)
        st.booleans(),  # replay an earlier message instead
        st.integers(0, 10_000),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_each_signed_message_accepted_at_most_once_despite_pruning(stream):
    s = NonceStore(max_lifetime_ms=120_000, max_live_per_key=3)
    now = T0
    sent: list[tuple[str, int, int]] = []
    accepted: list[tuple[str, int, int]] = []
    for adv, key, nonce, off, replay, pick in stream:
        now += adv
        msg = sent[pick % len(sent)] if replay and sent else (key, nonce, now // 1000 + off)
        sent.append(msg)
        v = s.use(*msg, now)
        if v is V.ACCEPTED:
            assert msg not in accepted, "a signed message was accepted twice"
            accepted.append(msg)
            # and while it is valid, no other message with the same (key, nonce) gets in
        live = {(k, n) for k, n, e in accepted if e * 1000 >= now}
        assert all((k, n) in s for k, n in live)
        assert all(s.live_count(k) <= 3 for k in ("a", "b"))


def test_expiry_queue_pops_due_items_in_time_then_insertion_order():
    from aggregator.core.expiry import ExpiryQueue

    q = ExpiryQueue()
    for due, item in ((30, "c"), (10, "a"), (30, "d"), (10, "b"), (50, "e")):
        q.push(due, item)
    assert len(q) == 5 and q.next_due() == 10
    assert list(q.pop_due(10)) == []  # strictly before now
    assert list(q.pop_due(31)) == ["a", "b", "c", "d"]
    assert len(q) == 1 and q.due(51) and not q.due(50)
    assert list(q.pop_due(10**9)) == ["e"] and q.next_due() is None and len(q) == 0

"""Cancel all after (dead man's switch): a market maker's quotes go when it stops re-arming.

Rules (module doc of ``aggregator.core.sequencer``, "Cancel all after"): deadline =
``ts_ms + timeoutMs``; re-arming before it moves it; 0 disarms; the first Tick stamped
after the deadline cancels every order of the account and disarms the switch.
"""

from __future__ import annotations

import pytest

from aggregator import eip712
from aggregator.core import commands as C
from aggregator.core.events import CancelAllAfterSet, CancelAllAfterTriggered
from aggregator.core.orders import CancelReason, OrderCancelled
from aggregator.core.sequencer import Sequencer
from tests.sequencer.helpers import ALICE, BOB, CAROL, SESSION, USDC, Harness, funded, state_bytes

PERP = "ETH-PERP"
CALL = "ETH-2JAN26-3000-C"
BUY, SELL = 1, 2


def quoting() -> tuple[Harness, list[int]]:
    """Alice quotes both sides of the perp and an option; Bob rests an order too."""
    h = funded(ALICE, BOB)
    ids = [h.place(ALICE, PERP, BUY, 2_990 * USDC, 100).result["order_id"],
           h.place(ALICE, PERP, SELL, 3_010 * USDC, 100).result["order_id"],
           h.place(ALICE, CALL, SELL, 120 * USDC, 10).result["order_id"]]
    h.place(BOB, PERP, BUY, 2_980 * USDC, 100)
    return h, ids


def open_ids(h: Harness, account: str) -> set[int]:
    return {o["order_id"] for o in h.seq.open_orders(account)}


def test_switch_cancels_every_order_at_the_first_tick_after_its_deadline():
    h, ids = quoting()
    out = h.cancel_after(ALICE, 5_000)
    deadline = h.now + 5_000
    assert out.accepted and out.events == (CancelAllAfterSet(ALICE, 5_000, deadline),)
    assert out.result["deadline_ms"] == deadline == h.seq.account(ALICE)["cancel_all_after_ms"]
    assert h.seq.next_order_expiry_ms() == deadline  # the service ticks there
    h.now = deadline  # not after it yet
    assert h.tick().result["cancel_all_after"] == 0 and open_ids(h, ALICE) == set(ids)
    h.now = deadline + 1
    out = h.tick()
    assert out.result["cancel_all_after"] == 1
    cancelled = [e for e in out.events if type(e) is OrderCancelled]
    assert {e.order_id for e in cancelled} == set(ids)
    assert all(e.reason == CancelReason.CANCEL_ALL and e.account == ALICE for e in cancelled)
    assert CancelAllAfterTriggered(ALICE, deadline, 3) in out.events
    assert open_ids(h, ALICE) == set() and len(open_ids(h, BOB)) == 1  # only Alice's orders
    acct = h.seq.account(ALICE)
    assert acct["cancel_all_after_ms"] is None and acct["initial_margin"] == 0
    # fired once: later orders rest normally
    oid = h.place(ALICE, PERP, BUY, 2_990 * USDC, 100).result["order_id"]
    h.advance(60_000)
    assert h.tick().result["cancel_all_after"] == 0 and open_ids(h, ALICE) == {oid}


def test_rearming_moves_the_deadline_and_zero_disarms():
    h, ids = quoting()
    h.cancel_after(ALICE, 5_000)
    first = h.now + 5_000
    h.advance(4_000)
    assert h.cancel_after(ALICE, 5_000).result["deadline_ms"] == h.now + 5_000  # re-armed from now
    h.now = first + 1
    assert h.tick().result["cancel_all_after"] == 0 and open_ids(h, ALICE) == set(ids)
    out = h.cancel_after(ALICE, 0)
    assert out.result["deadline_ms"] is None and out.events == (CancelAllAfterSet(ALICE, 0, 0),)
    h.advance(600_000)  # well past both deadlines (the orders themselves live for an hour)
    assert h.tick().result["cancel_all_after"] == 0 and open_ids(h, ALICE) == set(ids)
    assert h.seq.account(ALICE)["cancel_all_after_ms"] is None


def test_a_session_key_may_arm_it_a_stranger_may_not_and_a_reject_changes_nothing():
    h, ids = quoting()
    assert h.grant(ALICE, SESSION).accepted
    assert h.cancel_after(ALICE, 2_000, signer=SESSION).accepted
    assert h.cancel_after(ALICE, 0).accepted
    used = h.nonce  # the nonce Alice just signed with
    before = state_bytes(h.seq)
    out = h.cancel_after(ALICE, 2_000, signer=CAROL)
    assert (out.accepted, out.code) == (False, "unauthorized_signer")
    assert state_bytes(h.seq) == before
    c = eip712.CancelAllAfter(account=ALICE, timeout_ms=2_000, nonce=used, expiry=h.now // 1000 + 60)
    out = h.apply(lambda s, t: C.CancelAllAfter(s, t, ALICE, c, b"\x07" * 65))
    assert (out.accepted, out.code) == (False, "nonce_reused") and state_bytes(h.seq) == before


@pytest.mark.parametrize("timeout", [1, 999, 86_400_001, 2**64 - 1])
def test_timeout_outside_one_second_to_one_day_is_refused_by_the_message_rules(timeout: int):
    with pytest.raises(eip712.MessageError, match="timeoutMs"):
        eip712.CancelAllAfter(account=ALICE, timeout_ms=timeout, nonce=1, expiry=1)
    for ok in (0, 1_000, 86_400_000):
        assert eip712.CancelAllAfter(account=ALICE, timeout_ms=ok, nonce=1, expiry=1).timeout_ms == ok


def test_journal_replay_and_snapshot_keep_the_armed_switch():
    h, ids = quoting()
    h.cancel_after(ALICE, 10_000)
    h.advance(2_000)
    h.cancel_after(BOB, 3_000)
    replayed = Sequencer(h.cfg)
    for cmd in h.log:
        replayed.apply(C.decode(C.encode(cmd)))
    assert state_bytes(replayed) == state_bytes(h.seq)
    restored = Sequencer.restore(h.cfg, h.seq.snapshot())
    for s in (h.seq, replayed, restored):  # each fires the same switches at the same Ticks
        s.apply(C.Tick(h.n + 1, h.now + 3_001))
        assert s.account(BOB)["open_orders"] == 0 and s.account(ALICE)["open_orders"] == 3
        s.apply(C.Tick(h.n + 2, h.now + 8_001))
        assert s.account(ALICE)["open_orders"] == 0
    assert h.seq.state_root() == replayed.state_root() == restored.state_root()

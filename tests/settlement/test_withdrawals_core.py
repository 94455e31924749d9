"""Withdraw in the pure core: every rejection leaves the state unchanged; acceptance reserves."""

from __future__ import annotations

import pytest

from aggregator.core import commands as C
from aggregator.core.withdrawals import pull_to
from tests.settlement.core_harness import ARB, BNB, HUB, OPT, USD, World, addr, state_bytes

ALICE, BOB, MALLORY = addr(0xA11CE), addr(0xB0B), addr(0xBAD)
SESSION = addr(0x5E55)


@pytest.fixture
def w() -> World:
    w = World()
    w.deposit(ALICE, 1_000 * USD, ARB)
    w.deposit(ALICE, 500 * USD, HUB)
    w.deposit(BOB, 10_000 * USD, BNB)
    w.price(2000)
    return w


def _rejected(w: World, code: str, make) -> None:  # noqa: ANN001
    before = state_bytes(w.seq)
    root = w.seq.state_root()
    out = w.apply(make)
    assert not out.accepted and out.code == code, out
    assert state_bytes(w.seq) == before
    assert w.seq.state_root() == root
    assert w.seq.withdrawals(ALICE) == []


def _wd(w: World, amount: int, chain: int, signer: str | None = None, **kw):  # noqa: ANN202
    msg = w.withdrawal_msg(ALICE, amount, chain, **kw)
    return lambda s, t: C.Withdraw(s, t, signer or ALICE, msg, b"\x01" * 65)


def test_withdraw_unknown_chain_rejected_unchanged(w):
    _rejected(w, "unknown_chain", _wd(w, 10 * USD, 99))


def test_withdraw_wrong_token_rejected_unchanged(w):
    _rejected(w, "unknown_token", _wd(w, 10 * USD, ARB, token=addr(0xDEAD)))


def test_withdraw_above_free_collateral_rejected_unchanged(w):
    _rejected(w, "insufficient_free_collateral", _wd(w, 1_500 * USD + 1, ARB))


def test_withdraw_open_order_margin_counts_rejected_unchanged(w):
    # a resting buy of 5 ETH at 2000 needs 10% IM = 1000 USD: only 500 is free
    assert w.place(ALICE, 1, 2000 * USD, 5000).accepted
    _rejected(w, "insufficient_free_collateral", _wd(w, 501 * USD, ARB))
    assert w.withdraw(ALICE, 499 * USD, ARB).accepted


def test_withdraw_position_margin_counts_rejected_unchanged(w):
    assert w.place(BOB, 2, 2000 * USD, 5000).accepted
    assert w.place(ALICE, 1, 2000 * USD, 5000, tif=2).accepted
    free = w.seq.account(ALICE)["free_collateral"]
    assert 0 < free < 500 * USD
    _rejected(w, "insufficient_free_collateral", _wd(w, free + 1, ARB))
    assert w.withdraw(ALICE, free, ARB).accepted


def test_withdraw_unknown_account_rejected_unchanged(w):
    msg = w.withdrawal_msg(MALLORY, 1, ARB)
    _rejected(w, "insufficient_free_collateral", lambda s, t: C.Withdraw(s, t, MALLORY, msg, b"\x01" * 65))


def test_withdraw_fractional_canonical_unit_rejected_unchanged(w):
    # BNB's token has 18 decimals: 10^12 native units per canonical unit
    _rejected(w, "invalid_amount", _wd(w, 0, BNB, native=10**12 + 1))


def test_withdraw_zero_recipient_rejected_unchanged(w):
    _rejected(w, "invalid_recipient", _wd(w, 10 * USD, ARB, recipient="0x" + "00" * 20))


def test_withdraw_nonce_reused_rejected_unchanged(w):
    assert w.withdraw(ALICE, 10 * USD, ARB, nonce=7).accepted
    before = state_bytes(w.seq)
    out = w.withdraw(ALICE, 11 * USD, ARB, nonce=7)
    assert (out.accepted, out.code) == (False, "nonce_reused")
    assert state_bytes(w.seq) == before
    assert len(w.seq.withdrawals(ALICE)) == 1


def test_withdraw_same_message_twice_rejected_unchanged(w):
    msg = w.withdrawal_msg(ALICE, 10 * USD, ARB)
    assert w.withdraw_msg(msg).accepted
    before = state_bytes(w.seq)
    out = w.withdraw_msg(msg)
    assert (out.accepted, out.code) == (False, "nonce_reused")
    assert state_bytes(w.seq) == before


def test_withdraw_expired_rejected_unchanged(w):
    _rejected(w, "expired", _wd(w, 10 * USD, ARB, expiry=w.now // 1000 - 1))


def test_withdraw_by_session_key_rejected_unchanged(w):
    from aggregator import eip712
    grant = eip712.SessionKey(account=ALICE, session_key=SESSION, valid_until=w.now // 1000 + 3600,
                              nonce=w.next_nonce(), expiry=w.now // 1000 + 3600)
    assert w.apply(lambda s, t: C.GrantSessionKey(s, t, ALICE, grant, b"\x01" * 65)).accepted
    o = w.withdrawal_msg(ALICE, 1, ARB)  # the live key may trade for ALICE, never withdraw
    _rejected(w, "unauthorized_signer", lambda s, t: C.Withdraw(s, t, SESSION, o, b"\x01" * 65))


def test_snapshot_restore_keeps_withdrawals_and_batches(w):
    from aggregator.core.sequencer import Sequencer
    out = w.withdraw(ALICE, 100 * USD, OPT)
    b = w.close()
    r = Sequencer.restore(w.cfg, w.seq.snapshot())
    assert r.last_batch() == b and r.withdrawal(out.result["withdrawal_id"])["status"] == "batched"
    assert r.pending_batch_preview().number == 2


def test_withdraw_signed_by_stranger_rejected_unchanged(w):
    _rejected(w, "unauthorized_signer", _wd(w, 10 * USD, ARB, signer=MALLORY))


def test_withdraw_halted_chain_rejected_unchanged_until_resumed(w):
    assert w.halt(ARB).accepted
    assert w.seq.withdrawals_halted() == {ARB: "reconciliation mismatch"}
    _rejected(w, "withdrawals_halted", _wd(w, 10 * USD, ARB))
    assert w.withdraw(ALICE, 10 * USD, HUB).accepted  # other chains keep paying
    assert w.halt(ARB, False).accepted
    assert w.withdraw(ALICE, 10 * USD, ARB).accepted


def test_halt_unknown_chain_rejected():
    w = World()
    out = w.halt(42)
    assert (out.accepted, out.code) == (False, "unknown_chain")


def test_withdraw_within_destination_balance_debits_it_only(w):
    out = w.withdraw(ALICE, 300 * USD, ARB)
    assert out.accepted, out
    acct = w.seq.account(ALICE)
    assert acct["balances"] == {str(HUB): 500 * USD, str(ARB): 700 * USD}
    r = w.seq.withdrawal(out.result["withdrawal_id"])
    assert r["status"] == "reserved" and r["amount"] == 300 * USD and r["moved_from"] == []
    assert w.seq.withdrawn == 300 * USD


def test_withdraw_on_other_chain_moves_largest_balances_first(w):
    out = w.withdraw(ALICE, 1_200 * USD, OPT)
    assert out.accepted, out
    # ARB (1000) is the larger balance, then HUB (500) gives the remaining 200
    assert out.result["moved_from"] == [[ARB, 1_000 * USD], [HUB, 200 * USD]]
    assert w.seq.account(ALICE)["balances"] == {str(HUB): 300 * USD, str(ARB): 0, str(OPT): 0}
    assert w.seq.total_balance() == w.seq.deposited - w.seq.withdrawn


def test_withdraw_id_is_struct_hash_of_message(w):
    from aggregator import eip712
    msg = w.withdrawal_msg(ALICE, 10 * USD, ARB)
    out = w.withdraw_msg(msg)
    assert out.result["withdrawal_id"] == "0x" + eip712.struct_hash(msg).hex()
    assert w.seq.withdrawals(ALICE)[0]["withdrawal_id"] == out.result["withdrawal_id"]


def test_withdraw_18_decimal_token_native_amount_journal_roundtrip(w):
    out = w.withdraw(ALICE, 1_000 * USD, BNB)  # native 10^21 > 2^64
    assert out.accepted and out.result["native_amount"] == 10**21 and out.result["amount"] == 1_000 * USD
    cmd = w.log[-1]
    assert C.decode(C.encode(cmd)) == cmd


def test_withdraw_lifecycle_reserved_batched_paid(w):
    out = w.withdraw(ALICE, 100 * USD, ARB)
    wid = out.result["withdrawal_id"]
    b = w.close()
    assert w.seq.withdrawal(wid)["status"] == "batched" and w.seq.withdrawal(wid)["batch_number"] == b.number
    w.relay()
    assert w.seq.withdrawal(wid)["status"] == "paid"
    assert w.vaults[ARB].balances[ALICE] == 900 * USD
    w.assert_chains_agree()


def test_pull_to_leaves_negative_destination_for_batch():
    assert pull_to({1: -50, 2: 100, 3: 30}, 1, 40) == ((2, 40),)
    assert pull_to({1: 10, 2: 5, 3: 5}, 4, 8) == ((1, 8),)
    assert pull_to({1: 10, 2: 5, 3: 5}, 1, 8) == ()
    assert pull_to({1: 0, 2: 5, 3: 5}, 1, 8) == ((2, 5), (3, 3))


def test_reserved_withdrawal_to_chain_halted_before_batch_fails_credited_back(w):
    total = w.seq.account(ALICE)["total_collateral"]
    out = w.withdraw(ALICE, 300 * USD, ARB)
    hub = w.withdraw(ALICE, 100 * USD, HUB)
    wid, hub_id = out.result["withdrawal_id"], hub.result["withdrawal_id"]
    assert w.halt(ARB, reason="vault holdings 5 below ledger 7").accepted
    b = w.close()
    failed = w.seq.withdrawal(wid)
    assert failed["status"] == "failed"
    assert failed["reason"] == f"withdrawals on chain {ARB} are halted: vault holdings 5 below ledger 7"
    assert failed["batch_number"] is None
    assert [p.withdrawal_id.hex() for p in b.withdrawals] == [hub_id[2:]]  # the other chain still pays
    assert w.seq.withdrawal(hub_id)["status"] == "batched"
    assert w.seq.account(ALICE)["total_collateral"] == total - 100 * USD  # only the batched one left the ledger
    assert w.seq.withdrawn == 100 * USD
    w.relay()
    w.assert_chains_agree()  # nothing was paid on ARB, and the ledger says so
    assert w.seq.withdrawal(wid)["status"] == "failed" and w.seq.withdrawal(hub_id)["status"] == "paid"
    assert w.halt(ARB, False).accepted  # the credited amount may be withdrawn again once resumed
    again = w.withdraw(ALICE, 300 * USD, ARB)
    assert again.accepted
    w.close()
    w.relay()
    w.assert_chains_agree()

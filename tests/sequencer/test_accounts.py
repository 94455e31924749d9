"""Deposits (exactly once per (chain_id, deposit_nonce)) and session keys (grant, revoke, expiry)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core.events import DepositCredited, SessionKeyGranted, SessionKeyRevoked
from tests.sequencer.helpers import ALICE, BOB, FEE, INS, SESSION, USDC, Harness, addr

PERP = "ETH-PERP"
BUY, SELL = 1, 2


def ready() -> Harness:
    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    return h


# ---------------------------------------------------------------- deposits


def test_deposit_credits_balance_on_its_chain_and_emits_event():
    h = ready()
    out = h.deposit(ALICE, 5 * USDC, chain_id=10, deposit_nonce=1)
    assert out.accepted and out.result["credited"] is True
    assert out.events == (DepositCredited(ALICE, 10, 1, 5 * USDC),)
    a = h.seq.account(ALICE)
    assert a["balances"] == {"10": 5 * USDC} and a["total_collateral"] == 5 * USDC
    assert a["primary_chain_id"] == 10


def test_repeated_deposit_nonce_is_accepted_no_op():
    h = ready()
    h.deposit(ALICE, 5 * USDC, chain_id=1, deposit_nonce=9)
    root = h.seq.state_root()
    again = h.deposit(ALICE, 5 * USDC, chain_id=1, deposit_nonce=9)
    other_acct = h.deposit(BOB, 7 * USDC, chain_id=1, deposit_nonce=9)  # same key, other payload: still a repeat
    for out in (again, other_acct):
        assert out.accepted and out.result == {**out.result, "credited": False, "duplicate": True}
        assert out.events == ()
    assert h.seq.state_root() == root and h.seq.deposited == 5 * USDC
    assert h.seq.account(BOB) is None


def test_same_deposit_nonce_on_another_chain_is_credited():
    h = ready()
    h.deposit(ALICE, 5 * USDC, chain_id=1, deposit_nonce=9)
    out = h.deposit(ALICE, 3 * USDC, chain_id=42161, deposit_nonce=9)
    assert out.result["credited"] is True
    assert h.seq.account(ALICE)["balances"] == {"1": 5 * USDC, "42161": 3 * USDC}
    assert h.bal(ALICE) == 8 * USDC


def test_trading_flows_book_on_primary_chain_of_first_deposit():
    h = ready()
    h.deposit(ALICE, 10_000 * USDC, chain_id=10, deposit_nonce=1)
    h.deposit(ALICE, 10_000 * USDC, chain_id=1, deposit_nonce=2)
    h.deposit(BOB, 10_000 * USDC, chain_id=1, deposit_nonce=3)
    h.place(BOB, PERP, SELL, 3_000 * USDC, 1000)
    fee = -(-3_000 * USDC * 5 // 10_000)
    assert h.place(ALICE, PERP, BUY, 3_000 * USDC, 1000).result["fee"] == fee
    assert h.seq.account(ALICE)["balances"] == {"1": 10_000 * USDC, "10": 10_000 * USDC - fee}
    assert h.seq.account(FEE)["balances"] == {"1": fee + -(-3_000 * USDC * 2 // 10_000)}


deposit_events = st.lists(st.tuples(st.sampled_from((1, 10, 42161)), st.integers(0, 6), st.integers(0, 3),
                                    st.integers(1, 10**12)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(deposit_events)
def test_deposits_credited_once_per_chain_and_nonce_property(events):
    accounts = [addr(0x100 + i) for i in range(4)]
    h = Harness()
    expected: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    for chain, dn, who, amount in events:
        out = h.deposit(accounts[who], amount, chain_id=chain, deposit_nonce=dn)
        assert out.accepted
        fresh = (chain, dn) not in seen
        assert out.result["credited"] is fresh
        if fresh:
            seen.add((chain, dn))
            expected[accounts[who]] = expected.get(accounts[who], 0) + amount
    assert {a: h.bal(a) for a in accounts if h.bal(a)} == expected
    assert h.seq.deposited == sum(expected.values()) == h.seq.total_balance()


def test_fee_and_insurance_accounts_exist_from_start_with_zero():
    h = Harness()
    assert h.seq.balances() == {FEE: 0, INS: 0}


# ---------------------------------------------------------------- session keys


def funded() -> Harness:
    h = ready()
    h.deposit(ALICE, 100_000 * USDC)
    h.deposit(BOB, 100_000 * USDC)
    return h


def test_session_key_can_place_amend_and_cancel_for_account():
    h = funded()
    g = h.grant(ALICE, SESSION, valid_s=60)
    assert g.events == (SessionKeyGranted(ALICE, SESSION, (h.now // 1000 + 60) * 1000),)
    assert h.seq.session_keys(ALICE) == {SESSION: (h.now // 1000 + 60) * 1000}
    oid = h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, signer=SESSION).result["order_id"]
    assert h.amend(ALICE, PERP, oid, price=2_901 * USDC, signer=SESSION).accepted
    assert h.cancel(ALICE, PERP, order_id=oid, signer=SESSION).accepted
    assert h.cancel_all(ALICE, signer=SESSION).accepted
    assert h.seq.open_orders(ALICE) == []


def test_session_key_valid_through_valid_until_then_unauthorized():
    h = funded()
    h.grant(ALICE, SESSION, valid_s=10)
    until = (h.now // 1000 + 10) * 1000
    h.now = until  # the last valid millisecond
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, signer=SESSION).accepted
    h.now = until + 1
    out = h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, signer=SESSION)
    assert out.code == "unauthorized_signer"
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100).accepted  # the account itself still can


def test_session_key_of_one_account_cannot_act_for_another():
    h = funded()
    h.grant(ALICE, SESSION)
    assert h.place(BOB, PERP, BUY, 2_900 * USDC, 100, signer=SESSION).code == "unauthorized_signer"


def test_revoke_by_key_itself_removes_it():
    h = funded()
    h.grant(ALICE, SESSION)
    out = h.revoke(ALICE, SESSION, signer=SESSION)
    assert out.accepted and out.result["revoked"] is True
    assert out.events == (SessionKeyRevoked(ALICE, SESSION),)
    assert h.seq.session_keys(ALICE) == {} and h.seq.account(ALICE)["session_keys"] == {}
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, signer=SESSION).code == "unauthorized_signer"


def test_revoke_of_unknown_key_is_accepted_without_effect():
    h = funded()
    root = h.seq.state_root()
    out = h.revoke(ALICE, SESSION)
    assert out.accepted and out.result["revoked"] is False and out.events == ()
    assert h.seq.state_root() == root and h.seq.session_keys(ALICE) == {}


def test_regrant_replaces_validity():
    h = funded()
    h.grant(ALICE, SESSION, valid_s=10)
    h.grant(ALICE, SESSION, valid_s=1000)
    h.advance(11_000)
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, signer=SESSION).accepted


def test_nonces_are_per_signer_so_account_and_key_may_share_a_nonce():
    h = funded()
    h.grant(ALICE, SESSION)
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, nonce=555).accepted
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, nonce=555, signer=SESSION).accepted
    assert h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, nonce=555, signer=SESSION).code == "nonce_reused"


def test_orders_survive_session_key_revocation():
    h = funded()
    h.grant(ALICE, SESSION)
    oid = h.place(ALICE, PERP, BUY, 2_900 * USDC, 100, signer=SESSION).result["order_id"]
    h.revoke(ALICE, SESSION)
    assert [o["order_id"] for o in h.seq.open_orders(ALICE)] == [oid]
    assert h.cancel(ALICE, PERP, order_id=oid, signer=SESSION).code == "unauthorized_signer"
    assert h.cancel(ALICE, PERP, order_id=oid).accepted

"""The ledger applies a vault's BatchApplied log exactly as the vault did, once, or refuses."""

from __future__ import annotations

import pytest

from aggregator.ledger import Ledger, LedgerError
from bridges.events import BatchAppliedEvent, DepositEvent, WithdrawalPaidEvent
from bridges.messages import AccountDelta, ChainSettlement, Withdrawal, encode_settlement
from bridges.watcher import Cursor
from tests.conftest import chain_settings

A = "0x00000000000000000000000000000000000000A1"
B = "0x00000000000000000000000000000000000000b2"
C = "0x00000000000000000000000000000000000000C3"  # never deposited: credited by settlement only
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
SETTINGS = chain_settings(("eth", 31337, 8545, 6), ("bnb", 31339, 8547, 18))
WID = "0x" + "77" * 32


def dep(chain_id: int, nonce: int, account: str, amount: int) -> DepositEvent:
    return DepositEvent(chain_id, account, TOKEN, amount, nonce, nonce, "0x" + f"{nonce:064x}", "0x" + "01" * 32, 0)


def applied(chain_id: int, number: int, debited: int, credited: int, withdrawn: int) -> BatchAppliedEvent:
    return BatchAppliedEvent(chain_id, number, debited, credited, 0, 0, withdrawn, 50 + number,
                             "0x" + f"{number:064x}", "0x" + "02" * 32, 1)


def native(ledger: Ledger, account: str, chain_id: int) -> int:
    view = ledger.account(account)
    return sum(b.native for b in view.balances if b.chain_id == chain_id) if view else 0


@pytest.fixture
def ledger(engine) -> Ledger:
    led = Ledger(engine, SETTINGS, tokens={31337: TOKEN, 31339: TOKEN})
    led.apply_deposits(31339, [dep(31339, 1, A, 100 * 10**18 + 5), dep(31339, 2, B, 10 * 10**18)], "v",
                       Cursor(10, "0x" + "aa" * 32))
    # batch 1 on bnb (18 decimals, scale 1e12): A pays 30 USDC, B gets 25, C gets 5; A withdraws 20
    body = ChainSettlement(31339, 1, deltas=(AccountDelta(A, -30 * 10**6), AccountDelta(B, 25 * 10**6),
                                             AccountDelta(C, 5 * 10**6)),
                           withdrawals=(Withdrawal(bytes.fromhex(WID[2:]), A, B, 20 * 10**6),))
    led.store_settlements(1, {31339: encode_settlement(body)})
    return led


def test_batch_applied_moves_balances_once_as_the_vault_did(ledger):
    s = 10**12
    ev = applied(31339, 1, 30 * 10**6 * s, 30 * 10**6 * s, 20 * 10**6 * s)
    paid = WithdrawalPaidEvent(31339, WID, A, B, 20 * 10**18, 51, "0x" + "01" * 32, "0x" + "03" * 32, 2)
    assert len(ledger.apply_vault_events(31339, [ev, paid], "v", Cursor(11, "0x" + "bb" * 32))) == 2
    assert native(ledger, A, 31339) == 50 * 10**18 + 5  # 100 - 30 - 20, the dust stays
    assert native(ledger, B, 31339) == 35 * 10**18
    assert native(ledger, C, 31339) == 5 * 10**18
    assert ledger.withdrawal_payment(WID).tx_hash == "0x" + "03" * 32
    assert ledger.apply_vault_events(31339, [ev, paid], "v", Cursor(12, "0x" + "cc" * 32)) == []  # re-scan
    assert native(ledger, A, 31339) == 50 * 10**18 + 5
    assert [b.batch_number for b in ledger.applied_batches(31339)] == [1]


def test_batch_whose_totals_differ_from_the_body_is_refused_and_changes_nothing(ledger):
    before = ledger.cursor(31339, "v")
    with pytest.raises(LedgerError, match="log totals"):
        ledger.apply_vault_events(31339, [applied(31339, 1, 1, 1, 0)], "v", Cursor(11, "0x" + "bb" * 32))
    assert native(ledger, A, 31339) == 100 * 10**18 + 5 and ledger.cursor(31339, "v") == before
    assert ledger.applied_batches(31339) == []


def test_batch_without_a_stored_body_is_refused(ledger):
    with pytest.raises(LedgerError, match="no body"):
        ledger.apply_vault_events(31339, [applied(31339, 2, 0, 0, 0)], "v", Cursor(11, "0x" + "bb" * 32))


def test_storing_another_body_for_a_stored_batch_is_refused(ledger):
    other = ChainSettlement(31339, 1, deltas=(AccountDelta(A, -1), AccountDelta(B, 1)))
    with pytest.raises(LedgerError, match="another body"):
        ledger.store_settlements(1, {31339: encode_settlement(other)})

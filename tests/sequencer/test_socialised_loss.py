"""Socialised loss: a negative insurance fund is refilled at ``CloseBatch`` (fees first, then
pro rata over positive balances), so one bankruptcy never stops settlement.

Expected amounts are computed here from the rule in ``Sequencer._socialise``'s docstring.
"""

from __future__ import annotations

from aggregator.core import commands as C
from aggregator.core.events import BatchClosed, LossSocialised
from tests.sequencer.helpers import ALICE, BOB, CAROL, DAVE, FEE, INS, USDC, Harness
from tests.sequencer.test_perps import fee, liq_setup

PERP = "ETH-PERP"
BUY, SELL = 1, 2


def close(h: Harness):  # noqa: ANN201
    return h.apply(lambda s, t: C.CloseBatch(s, t, bytes(32)))


def bankrupt() -> tuple[Harness, int]:
    """Carol (400 USDC, long 1 ETH at 3000) bankrupt at 2500; return the fund's hole."""
    h = liq_setup(400 * USDC)
    h.price("ETH-USD", 2_500)
    hole = 500 * USDC + fee(3_000 * USDC, 1000, 5) - 400 * USDC
    assert h.bal(INS) == -hole and h.bal(CAROL) == 0
    return h, hole


def test_close_batch_after_bankruptcy_refills_fund_from_fees_then_pro_rata():
    h, hole = bankrupt()
    h.deposit(ALICE, 30_000 * USDC)
    h.deposit(DAVE, 7 * USDC)
    fees = h.bal(FEE)
    assert 0 < fees < hole
    payers = {a: h.bal(a) for a in (ALICE, BOB, DAVE)}  # every positive account but the fee account
    base = sum(payers.values())
    rest = hole - fees
    cuts = {a: rest * v // base for a, v in payers.items()}
    for a in sorted(payers, key=lambda a: (-payers[a], a))[: rest - sum(cuts.values())]:
        cuts[a] += 1
    assert sum(cuts.values()) == rest
    total = h.seq.total_balance()
    out = close(h)
    assert out.accepted, out
    assert out.events[0] == LossSocialised(hole, fees, rest, 3)
    assert h.seq.insurance()["socialised"] == rest  # the fund's record counts what others paid
    assert type(out.events[-1]) is BatchClosed
    assert h.bal(INS) == 0 and h.bal(FEE) == 0
    for a, v in payers.items():
        assert h.bal(a) == v - cuts[a]
    assert h.seq.total_balance() == total == h.seq.deposited  # moved, not created
    assert close(h).events[0].__class__ is BatchClosed  # nothing left to socialise


def test_fees_alone_refill_a_small_deficit_nobody_else_pays():
    h, hole = bankrupt()
    h.deposit(ALICE, 1_000_000 * USDC)  # Alice and Bob trade enough for the fees to exceed the hole
    h.place(BOB, PERP, SELL, 2_500 * USDC, 200_000)
    assert h.place(ALICE, PERP, BUY, 2_500 * USDC, 200_000).result["filled"] == 200_000
    fees = h.bal(FEE)
    assert fees > hole
    alice, bob = h.bal(ALICE), h.bal(BOB)
    out = close(h)
    assert out.events[0] == LossSocialised(hole, hole, 0, 0)
    assert (h.bal(INS), h.bal(FEE), h.bal(ALICE), h.bal(BOB)) == (0, fees - hole, alice, bob)


def test_socialised_loss_replays_to_the_same_state():
    from tests.sequencer.helpers import state_bytes

    h, _ = bankrupt()
    h.deposit(ALICE, 30_000 * USDC)
    assert close(h).accepted
    fresh = Harness()
    for cmd in h.log:
        fresh.seq.apply(C.decode(C.encode(cmd)))
    assert state_bytes(fresh.seq) == state_bytes(h.seq)
    assert fresh.seq.state_root() == h.seq.state_root()

"""The liquidation sweep's cached bound (``Sequencer._sweep``) never hides an account below maintenance.

The sweep skips the walk over an account's exposures when its equity is at or above
``mm_cap`` plus the growth bound of every mark move since. Two properties, over seeded
random sessions with price jumps, funding, expiries and liquidations:

- after every command, each cached bound is at or above the exact maintenance
  requirement (the cache is never optimistic);
- after every price update and tick, no account holding a perp is below maintenance
  (the sweep liquidated every one that was), and the same sessions do liquidate.
"""

from __future__ import annotations

import pytest

from aggregator.core import commands as C
from aggregator.core.events import Liquidated

from .helpers import ALICE, BOB, USDC, Harness, config


def bound(seq, acct) -> int | None:  # noqa: ANN001
    """The sweep's upper bound of ``acct``'s maintenance requirement now, or None if not cached."""
    return seq._mm_bound(acct)


@pytest.mark.parametrize("seed", [6, 11, 23])
def test_cached_bound_is_never_below_maintenance_and_sweeps_miss_nobody(seed: int) -> None:
    h = Harness(config())
    seq = h.seq
    checked = liquidated = 0
    for cls, out in h.drive(seed, 700, step_ms=20_000):
        liquidated += sum(type(e) is Liquidated for e in out.events)
        for acct in seq._accounts.values():
            b = bound(seq, acct)
            if b is not None:
                assert b >= seq._maintenance(acct), (seed, out.seq, acct.address)
                checked += 1
        if cls in (C.PriceUpdate, C.Tick) and out.accepted and (cls is C.Tick or out.result.get("mark")):
            for acct in seq._accounts.values():
                if acct is seq._insurance or acct is seq._fee:
                    continue
                if any(ex.size and ex.market.is_perp for ex in acct.exposures.values()):
                    if cls is C.Tick or any(ex.size and ex.market.is_perp and ex.market.underlying
                                            == out.result["underlying"] for ex in acct.exposures.values()):
                        assert acct.total >= seq._maintenance(acct), (seed, out.seq, acct.address)
    assert checked > 1000  # the cache is in use, not always cold
    if seed == 6:
        assert liquidated  # seed 6 is known to liquidate (see test_conservation)


def test_bound_grows_with_mark_moves_and_resets_on_trade() -> None:
    """A cached account whose mark moved is judged by the bound; a fill that grows the position raises it."""
    h = Harness(config())
    h.price("ETH-USD", 3_000)
    h.deposit(ALICE, 100_000 * USDC)
    h.deposit(BOB, 100_000 * USDC)
    h.place(BOB, "ETH-PERP", 2, 3_000 * USDC, 1000)
    assert h.place(ALICE, "ETH-PERP", 1, 3_000 * USDC, 1000).result["filled"] == 1000
    seq = h.seq
    alice = seq._accounts[ALICE]
    assert alice.mm_cap is None  # not walked yet
    h.price("ETH-USD", 3_010)  # the sweep walks Alice once and caches the exact requirement
    assert alice.mm_cap == seq._maintenance(alice)
    h.price("ETH-USD", 3_200)  # far from maintenance: judged by the bound, no walk
    b = bound(seq, alice)
    assert b is not None and b >= seq._maintenance(alice) > alice.mm_cap
    cap = alice.mm_cap
    assert h.place(BOB, "ETH-PERP", 2, 3_200 * USDC, 1000).accepted
    assert h.place(ALICE, "ETH-PERP", 1, 3_200 * USDC, 1000).result["filled"] == 1000  # long 2 ETH now
    assert alice.mm_cap > cap and bound(seq, alice) >= seq._maintenance(alice)
    cap = alice.mm_cap
    assert h.place(BOB, "ETH-PERP", 1, 3_200 * USDC, 500).accepted
    assert h.place(ALICE, "ETH-PERP", 2, 3_200 * USDC, 500).result["filled"] == 500  # shrinking keeps the cap
    assert alice.mm_cap == cap and bound(seq, alice) >= seq._maintenance(alice)

"""The rules version of the core: which deterministic rules turn a journal into a state.

The journal (``aggregator.journal``) holds sequenced *inputs*; the state is what replaying
them through ``aggregator.core.sequencer.Sequencer`` gives. A journal is only meaningful
under the rules it was written with, so every journal segment records ``RULES_VERSION``
and a journal written under another version is refused instead of silently replaying to
a different state.

Rule: bump ``RULES_VERSION`` (by one) in the same change whenever a change to the core
makes the same journal replay to a different state: other outcomes (accepted / rejected,
reject codes, results, events), balances, positions, books, nonces, or state root (leaf
encoding or order included). A change that keeps all of them identical for every journal
(a speed-up, a refactor, a new command kind that old journals cannot contain) does not
bump it. When in doubt, bump: the cost is that older journals need the release that
wrote them (or a new journal directory).

Versions
    1  the rules when versions were introduced: instruments from the packaged
       ``instruments.toml`` defaults, price-time matching with good-til-time (resting
       orders expire at their signed expiry), nonces, margin, funding, liquidation and
       socialised loss, option expiry, withdrawals, and the current Merkle leaf encoding
       and order of the state root. Journals from before (segment magic ``OMNJRNL1``)
       carry no version and are refused.
    2  reduce-only caps at match time: a fill of a resting reduce-only order is capped at
       what still reduces its owner's position, counting the owner's orders filled
       earlier in the same request, and the rest of it is cancelled (``REDUCE_ONLY``);
       the FOK pre-check counts only what capped orders can fill. Under version 1 a taker
       sweeping an account's normal orders, then its reduce-only ones, could flip it.
       And a bankrupt account (still below zero after its perps are taken over, or
       after an option settlement) hands its options to the insurance fund at their
       marks before the fund covers it: no account is left below zero holding options
       (under version 1 it blocked ``CloseBatch`` with ``negative_equity``). And batches
       refill a liquidity account's drained chains from its other chains
       (``liquidity_rebalance_bps``, ``core.batch.rebalance_moves``). New commands, which
       no version-1 journal holds: ``CancelAllAfter``, ``SetMmp``.
       And ``PlaceTrigger`` (trigger orders: stop-loss / take-profit on perpetuals).
    3  the insurance fund unwinds every perp position it takes over in the same command:
       IOC orders in the book within ``liquidation_band_bps`` of the mark, then
       auto-deleveraging of the opposite side at the mark (``AutoDeleveraged``; ranked by
       profit ratio times leverage). Under version 2 the fund kept those positions and
       their variation, and a loss on them was socialised over every positive balance.
       And market maker protection counts the net delta of the window's maker fills
       (``MmpConfig`` gains ``deltaLimit``, so ``SetMmp`` records of version 2 do not decode).
"""

from __future__ import annotations

__all__ = ["RULES_VERSION"]

RULES_VERSION = 3

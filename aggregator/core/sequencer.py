"""The deterministic sequencer state machine: ledger, orders, margin, funding, liquidation, expiry.

``Sequencer.apply(cmd)`` is the only mutator. It takes one journalled ``Command``
(``aggregator.core.commands``) and returns an ``Outcome``; replaying the same commands on
a fresh ``Sequencer`` built from the same ``SequencerConfig`` gives the same outcomes and
the same ``state_root()``. Pure: no I/O, no clock (time is ``cmd.ts_ms``), no randomness,
no asyncio; iteration is over insertion-ordered dicts or sorted keys only.

Invariants (each one is checked by ``tests/sequencer``)
    - Conservation: every balance change goes through ``_move``, which sums the step's
      deltas; at the end of ``apply`` the sum must equal the external inflow of the step
      (the amount of a credited deposit, minus a reserved withdrawal, else 0), or
      ``ConservationError`` is raised. Fees go to the fee account, penalties and rounding
      remainders to the insurance fund, so sum(all balances) == sum(credited deposits) -
      sum(reserved withdrawals) always (``deposited - withdrawn``).
    - Integers only in the ledger. Floats enter the rules in two places, both from Black-76
      (``aggregator.core.pricing``, numpy): an option's mark when a bankrupt account's
      options are taken over (converted down to an integer amount), and an option fill's
      delta for the MMP delta limit (``round``ed to a size unit). Both are deterministic for a
      given machine and numpy build; a replay elsewhere could differ only if a result lands
      within the last bits of a rounding boundary. A fixed-point Black-76 would remove that.
    - A reject changes nothing: no balance, position, order, nonce or session changes
      (an order id may be consumed by a book-level FOK/post-only reject, which is not
      state). Every reject carries a stable ``RejectCode``.
    - Exactly once: a deposit is credited once per ``(chain_id, deposit_nonce)`` (a
      repeat is an accepted no-op); a signed message's nonce is consumed only when it is
      accepted, per ``(account, signer)`` with the replay rule of
      ``aggregator.core.nonces`` (window ``nonce_window_ms``).

Authorisation
    ``cmd.signer`` (recovered by the service) may act for ``account`` if it is the
    account itself or a live session key of it (``now <= validUntil * 1000``). Only the
    account may grant a session key; the account or the key itself may revoke it.

Ledger model (variation margin)
    Each account has a balance per chain; its collateral is their sum. Trading flows
    (premium, variation, fees, funding, penalties, settlement) are booked on the
    account's *primary chain*: the chain of its first deposit (``hub_chain_id`` for the
    fee and insurance accounts). The batcher later nets per-chain balances.
    Perps are settled to the mark continuously: a fill at price P credits the buyer
    ``(mark - P) * size`` and debits the seller the same; a new mark M' credits every
    holder ``size * (M' - M)``. Both are exact integers (marks and prices on the tick,
    sizes on the lot, tick*lot a multiple of 10^size_decimals) and zero-sum (positions net
    to zero). So a balance always *is* the account's perp equity; ``account()`` reports
    average entry and realised/unrealised PnL for information (unrealised is already in
    the balance).
    Options: the buyer pays the premium (price * size) to the seller at the fill; at
    expiry shorts pay intrinsic value to longs.
    Fees: ``ceil(notional * bps / 10^4)`` for maker and taker, to the fee account;
    notional is price * size (premium notional for options).

Margin (``aggregator.core.risk`` has the formulas)
    Equity = collateral (the balance sum). Initial requirement = sum over markets of the
    perp IM (position and open orders, the worse side) plus option reserves (open buys'
    premium, shorts fully collateralised: put strike, call max loss at a spot shock with
    a floor). An order is accepted if, fully filled at its limit, equity minus its taker
    fee and its immediate loss to the mark (perps) still covers the initial requirement
    with the order included, or if the order does not raise the requirement at all
    (risk-reducing orders are always allowed). Maintenance = perp MM on positions plus the
    short option requirement.

Liquidation
    After a mark change (for holders of that perp) and on every ``Tick`` (all perp
    holders), an account whose equity is below its maintenance requirement is
    liquidated: all its orders are cancelled, every perp position is taken over by the
    insurance fund at the mark (no price impact: variation is already settled to the
    mark), and a penalty ``ceil(|size| * mark * liquidation_penalty_bps / 10^4)``, capped at
    the remaining positive equity, is paid to the insurance fund. If the balance is still
    negative after that (bankrupt), the account's options (long or short, of listed
    instruments) go to the fund too, each at its mark (``_mark_of``: the long side is paid
    ``floor(size * mark)``, the short side pays ``ceil``), with the same penalty on the
    premium; an option settlement that leaves a holder negative with positions does the
    same. An account left with no position and a negative balance is paid back to zero
    by the insurance fund (``BankruptcyCovered``): so no account stays below zero, and
    ``CloseBatch`` is never blocked by one trader's bankruptcy. In the same command the
    fund closes every perp it took over (``_unwind``): IOC orders into the book no further
    than ``liquidation_band_bps`` from the mark, then auto-deleveraging at the mark of the
    opposite side's positions, most profitable and leveraged first (``AutoDeleveraged``),
    so the fund carries no perp from one command to the next; the options it took over
    run to expiry. The fund may go negative between batches (a bankruptcy, or an option
    it holds); ``CloseBatch`` first refills it from the fee account, then socialises the rest pro
    rata over every account with a positive balance (``LossSocialised``, see
    ``_socialise``), so one bankruptcy never stops settlement. Short options alone never
    trigger a liquidation (they are fully collateralised at trade).

Funding
    On the first ``Tick`` at or after each multiple of ``funding_interval_ms``, per perp:
    rate = clamp((ref - index) / index, +-funding_clamp_bps) with ref the book mid, else
    the last trade (no ref: no funding); longs pay shorts ``size * mark * rate``, payers
    rounding up, receivers down, the remainder to the insurance fund. Missed intervals
    are not paid twice: one payment per ``Tick`` that crosses a boundary.

Good-til-time
    A resting order lives until its signed ``expiry`` (Unix seconds): the first ``Tick``
    stamped after ``expiry * 1000`` expires it (``OrderExpired``, reason
    ``GOOD_TIL_TIME``) and releases its reserve. ``next_order_expiry_ms`` lets the service
    sequence that Tick before any later command, so an order never trades after the
    expiry its owner signed (the same instant after which its nonce could be forgotten).

Cancel all after (dead man's switch)
    ``CancelAllAfter`` (signed by the account or a live session key) arms the account's
    switch: deadline = ``ts_ms + timeoutMs``; another one before the deadline re-arms it
    from its own ``ts_ms``, ``timeoutMs`` 0 disarms it. The first ``Tick`` stamped after
    the deadline cancels every order of the account (``OrderCancelled`` with reason
    ``CANCEL_ALL``, then ``CancelAllAfterTriggered``) and disarms the switch; orders placed
    later rest normally. ``next_order_expiry_ms`` includes the deadlines, so, as for
    good-til-time, no order trades after its owner's deadline. A market maker re-arms it
    every few seconds: if its process, its connection or the gateway dies, its quotes go
    within ``timeoutMs``.

Market maker protection (MMP)
    ``SetMmp`` (a signed ``MmpConfig``, by the account or a live session key) sets, per
    (account, underlying): interval, limit, frozen time (interval 0 removes it). Every
    maker fill of one of the account's non-reduce-only *option* orders on that
    underlying adds its size to a rolling window (fills stamped within the last
    ``intervalMs``, the command's ``ts_ms`` being the fill time), and its delta: the
    Black-76 delta of the option at the mark's inputs (``_option_delta``), times the
    size, signed by the maker's side, rounded to a size unit (``round``, half to even).
    When the window's size sum passes ``qtyLimit`` or its net delta passes ``deltaLimit``
    either way (strictly; a limit of 0 is off), after the command's fills (so the whole
    sweep that tripped it counts): the account's non-reduce-only option orders on the underlying
    are cancelled (``CancelReason.MMP``), ``MmpTriggered`` is emitted, the window is
    emptied, and new non-reduce-only option orders there are refused (``mmp_frozen``)
    until ``ts_ms + frozenMs`` (``frozenMs`` 0: until the next ``SetMmp``). Perps are
    never frozen, so the maker can hedge at once. A new ``SetMmp`` resets the window and
    lifts a freeze.

Trigger orders (stop-loss / take-profit)
    ``PlaceTrigger`` (a signed ``TriggerOrder``, by the account or a live session key)
    places an untriggered order on an active *perpetual* (an option: ``invalid_trigger``;
    so is a post-only market one, which could never be placed). Checked at placement:
    signer, nonce, instrument, tick of the trigger and limit prices (``invalid_tick``),
    lot/min/max (``invalid_lot``), a client order id not live among the account's resting
    orders and triggers there, an account with a deposit, and at most
    ``max_open_orders`` untriggered triggers per account, counted apart from resting
    orders (``too_many_orders``). Everything else (reduce-only against the position,
    market status, margin, price band) is checked when it fires, as for any order. It
    takes its id from the order id counter, so ``Cancel`` by order id or client order id
    (a resting order first, then a trigger) names it; ``CancelAll``, the dead man's
    switch and a liquidation remove it too, and the first ``Tick`` after its signed
    ``expiry`` (``next_order_expiry_ms`` includes it); each removal emits
    ``TriggerCancelled`` with its reason. No margin is reserved and nothing is in the book
    while it is untriggered.
    Firing: after every accepted ``PriceUpdate`` that sets an underlying's mark (status
    ``ok``/``market-closed``, whether or not the value changed), after its variation
    margin and liquidation sweep (a liquidated account's triggers are gone), every trigger
    there with ``triggerAbove`` and mark >= ``triggerPrice``, or not ``triggerAbove`` and
    mark <= ``triggerPrice``, fires, in trigger id order (placement order). So one
    already crossed when placed fires at the next price update. Per underlying two heaps
    (above: min trigger price; below: max) find them, with lazy deletion of removed ones
    (rebuilt once dead entries outnumber the live triggers): an update that crosses none
    costs two heap peeks. Firing places the order exactly as ``PlaceOrder`` would (same
    ``_submit``: limit or market within the band, time in force, reduce-only, margin,
    self-trade prevention the default) without the signature and nonce checks (done at
    placement; the signer's session key is not re-checked): accepted, ``TriggerFired``
    then the order's events (its own new order id); refused, ``TriggerRejected`` with the
    reject code, and the trigger is gone with nothing else changed. A reduce-only one
    larger than the position left by then (net of the reduce-only orders resting on its
    side) is first cut to it, in whole lots, so a stop-loss still closes a position that
    was partly closed by hand; with nothing left to reduce it is refused
    (``reduce_only_would_increase``). The ``PriceUpdate``
    result counts ``triggers_fired`` (refused ones included) and ``triggers_rejected``.
    Fills of fired orders do not move the mark, so firing never cascades within an update.
    Reads: ``open_orders`` lists untriggered triggers (``type`` ``"trigger"``, status
    ``"untriggered"``), ``account``'s ``open_orders`` counts them, ``open_triggers`` alone.

Expiry and listing
    On ``Tick``: every option whose expiry is at or before ``ts_ms`` is closed (resting
    orders expire) and cash-settled at intrinsic value of the settlement price, rounded
    to the option tick. Settlement price: the latest index at or before expiry (by the
    report's ``publish_ts``); if there was none, the first later one (``fallback``); if
    there is no price at all the option waits, closed, until one arrives. This is the
    hook for the signed settlement TWAP (``oracles``): replace ``_settlement_price``.
    Then ``InstrumentRegistry.roll(ts_ms)`` lists the scheduled expiries (on the first
    Tick and whenever 08:00 UTC has passed since the last roll).

Market status
    A feed's latest status ``market-closed``, ``halted`` or ``stale`` closes its
    underlying to new risk: only reduce-only orders are accepted (``market_closed``).
    This applies to every asset class (a stale crypto feed takes no new risk either).
    The index (and the mark) move only on ``ok`` and ``market-closed`` reports.

Known limits
    liquidation does not use the book;
    marks for options are Black-76 with one configured vol per underlying (SVI later);
    a withdrawal halt refuses new withdrawals, and fails the reserved ones at the next
    ``CloseBatch`` (credited back), but cannot stop a batch already closed;
    an account below zero can only hold a position while an expired option waits for
    its settlement price (none has ever arrived for its underlying): ``CloseBatch``
    refuses to settle it (``negative_equity``) until then. ``CloseBatch`` reads only the accounts whose
    balances changed since the previous batch (``_batch_dirty``) and the state root
    rehashes only theirs; ``_socialise`` still scans every account, once per deficit.

Withdrawals (``aggregator.core.withdrawals`` has the life cycle)
    ``Withdraw`` carries a signed ``eip712.Withdrawal``. Only the account itself may sign
    it: a session key trades but can never move money out (``unauthorized_signer``).
    Checks, in order, each a reject that changes nothing: signer, nonce/expiry
    (``nonce_reused``, ``expired``, ``nonce_window``), destination a settlement chain
    (``unknown_chain``), the chain's token (``unknown_token``), amount > 0 and a whole
    canonical unit (``invalid_amount``), recipient non-zero (``invalid_recipient``),
    chain not halted (``withdrawals_halted``, set by the journalled
    ``SetWithdrawalHalt``), and free collateral: equity minus the amount must still cover
    the initial requirement including open orders (``insufficient_free_collateral``).
    Accepted: the shortfall on the destination chain is moved there from the account's
    other chains (largest balance first, ties by lower chain id), the amount is debited
    there, and the withdrawal is ``reserved`` until the next ``CloseBatch``. If that chain
    is halted by then, ``CloseBatch`` fails the withdrawal instead of batching it: the
    amount is credited back on that chain (an external inflow, like a deposit, for the
    conservation check) and ``WithdrawalFailed`` says why.

Batches (``aggregator.core.batch`` has the arithmetic and the netting definitions)
    The sequencer keeps two views of each (account, chain) settled balance in the vaults:
    *projected* (after every closed batch is applied; deltas are computed against it so
    batches may be in flight) and *confirmed* (after the batches the relayer reported
    with ``BatchSettled``). A credited deposit enters both, as the vault credited it
    already. ``CloseBatch`` covers each account's negative chain balances from its other
    chains, computes ``delta = ledger - projected + withdrawals paid``, the legs, and
    sets projected := ledger; reserved withdrawals become ``batched``. ``BatchSettled``
    (per chain, in order; a repeat is a no-op) adds that chain's part to the confirmed
    view and marks its withdrawals ``paid``. The settlement chains are
    ``config.settlement_chains``; when it is empty (tests, old configs) they are the hub
    plus every chain a deposit was credited on.
"""

from __future__ import annotations

import copy
import heapq
import math
import pickle
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any, NamedTuple

from aggregator import eip712
from aggregator.core import commands as C
from aggregator.core.accounts import Account, Exposure, Market, RestingOrder
from aggregator.core.batch import Batch, Netting, Payout, SettlementChain, build_batch
from aggregator.core.events import (
    AutoDeleveraged,
    BankruptcyCovered,
    CancelAllAfterSet,
    CancelAllAfterTriggered,
    MmpConfigured,
    MmpTriggered,
    TriggerCancelled,
    TriggerFired,
    TriggerPlaced,
    TriggerRejected,
    BatchClosed,
    ChainBatchSettled,
    DepositCredited,
    FundingPaid,
    InstrumentExpired,
    InstrumentOpened,
    Liquidated,
    LossSocialised,
    MarkUpdated,
    OptionSettled,
    SessionKeyGranted,
    SessionKeyRevoked,
    TradeSettled,
    WithdrawalFailed,
    WithdrawalPaid,
    WithdrawalReserved,
    WithdrawalsHalted,
)
from aggregator.core.instruments import (
    EXPIRY_HOUR_UTC,
    MS_PER_DAY,
    InstrumentListed,
    InstrumentRegistry,
    UnknownInstrument,
    book_for,
)
from aggregator.core.matching import (
    CancelReason,
    ExpireReason,
    OrderAmended,
    OrderCancelled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    RejectReason,
)
from aggregator.core.expiry import ExpiryQueue
from aggregator.core.marketdata import adl_quintile, adl_score, implied_vols, option_greeks
from aggregator.core.merkle import MerkleTree
from aggregator.core.merkle import verify as merkle_verify
from aggregator.core.nonces import NonceStore, NonceVerdict
from aggregator.core.risk import (
    BPS,
    RiskParams,
    fee,
    funding_payment,
    funding_rate_e8,
    YEAR_MS,
    index_to_quote,
    option_mark,
    round_to_tick,
)
from aggregator.core.withdrawals import BATCHED, FAILED, PAID, RESERVED, WithdrawalRecord, pull_to

__all__ = [
    "RejectCode",
    "SequencerConfig",
    "Outcome",
    "Sequencer",
    "ConservationError",
    "verify_proof",
]

_BUY, _SELL = 1, 2
# how an order ended, in Account.done records (Sequencer._drop)
# Account.done records: (order id, client order id, instrument, side, price, size, filled, status, ts_ms,
# done_ms, reduce_only, tif, filled value (sum of price * size, unscaled), order type (1 limit, 2 market,
# 3 trigger), the order a trigger placed (0: none))
_DONE_STATUS = ("filled", "cancelled", "expired", "triggered", "rejected")
_FILLED, _CANCELLED, _EXPIRED, _TRIGGERED, _REJECTED = 0, 1, 2, 3, 4
_DONE_CODE = {s: i for i, s in enumerate(_DONE_STATUS)}
_GTC, _IOC, _FOK, _POST = 1, 2, 3, 4
_CLOSED_STATUSES = frozenset(("market-closed", "halted", "stale"))
_MOVING_STATUSES = frozenset(("ok", "market-closed"))
_EXPIRY_OFFSET_MS = EXPIRY_HOUR_UTC * 3_600_000


class RejectCode(StrEnum):
    """Why a command was refused. Values are stable wire strings."""

    UNAUTHORIZED_SIGNER = "unauthorized_signer"
    NONCE_REUSED = "nonce_reused"
    EXPIRED = "expired"
    NONCE_WINDOW = "nonce_window"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    INVALID_TICK = "invalid_tick"
    INVALID_LOT = "invalid_lot"
    INSUFFICIENT_MARGIN = "insufficient_margin"
    REDUCE_ONLY_WOULD_INCREASE = "reduce_only_would_increase"
    FOK_NOT_FILLABLE = "fok_not_fillable"
    POST_ONLY_WOULD_CROSS = "post_only_would_cross"
    MARKET_CLOSED = "market_closed"
    ORDER_NOT_FOUND = "order_not_found"
    TOO_MANY_ORDERS = "too_many_orders"
    NO_PRICE = "no_price"
    # additions beyond the issue's list
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    INVALID_AMEND = "invalid_amend"  # no change, or new size at/below the filled size
    INVALID_AMOUNT = "invalid_amount"  # deposit amount <= 0 or malformed account
    # withdrawals and batches
    UNKNOWN_CHAIN = "unknown_chain"  # not a settlement chain
    UNKNOWN_TOKEN = "unknown_token"  # not the chain's settlement token
    INVALID_RECIPIENT = "invalid_recipient"  # zero address
    INSUFFICIENT_FREE_COLLATERAL = "insufficient_free_collateral"
    WITHDRAWALS_HALTED = "withdrawals_halted"
    NEGATIVE_EQUITY = "negative_equity"  # an account with a negative total cannot be settled
    INVALID_BATCH = "invalid_batch"  # malformed journal hash or batch number
    BATCH_OUT_OF_ORDER = "batch_out_of_order"
    UNKNOWN_BATCH = "unknown_batch"  # not closed yet
    MMP_FROZEN = "mmp_frozen"  # market maker protection tripped: option orders on the underlying refused for now
    INVALID_TRIGGER = "invalid_trigger"  # a trigger order on a non-perpetual, or one that could never be placed


_NONCE_CODES = {
    NonceVerdict.EXPIRED: RejectCode.EXPIRED,
    NonceVerdict.EXPIRY_TOO_FAR: RejectCode.NONCE_WINDOW,
    NonceVerdict.NONCE_REUSED: RejectCode.NONCE_REUSED,
    NonceVerdict.TOO_MANY_LIVE_NONCES: RejectCode.NONCE_WINDOW,
    NonceVerdict.NONCE_OUT_OF_RANGE: RejectCode.NONCE_WINDOW,
    NonceVerdict.EXPIRY_OUT_OF_RANGE: RejectCode.NONCE_WINDOW,
}
_NONCE_OK = NonceVerdict.ACCEPTED
_BOOK_CODES = {
    RejectReason.POST_ONLY_WOULD_TAKE: RejectCode.POST_ONLY_WOULD_CROSS,
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: RejectCode.DUPLICATE_CLIENT_ORDER_ID,
    RejectReason.INVALID_TICK: RejectCode.INVALID_TICK,
    RejectReason.INVALID_PRICE: RejectCode.INVALID_TICK,
    RejectReason.INVALID_LOT: RejectCode.INVALID_LOT,
    RejectReason.SIZE_BELOW_MIN: RejectCode.INVALID_LOT,
    RejectReason.SIZE_ABOVE_MAX: RejectCode.INVALID_LOT,
    RejectReason.INSTRUMENT_CLOSED: RejectCode.UNKNOWN_INSTRUMENT,
    RejectReason.UNKNOWN_ORDER: RejectCode.ORDER_NOT_FOUND,
    RejectReason.NOT_ORDER_OWNER: RejectCode.ORDER_NOT_FOUND,
    RejectReason.AMEND_NO_CHANGE: RejectCode.INVALID_AMEND,
    RejectReason.AMEND_SIZE_BELOW_FILLED: RejectCode.INVALID_AMEND,
}


class ConservationError(AssertionError):
    """A step's balance deltas did not sum to its external inflow: a ledger bug."""


class _Reject(Exception):
    """Internal: abort a command before any mutation."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SequencerConfig:
    """Everything the state machine needs besides the commands; see the module doc."""

    registry: InstrumentRegistry
    fee_account: str
    insurance_account: str
    hub_chain_id: int = 1
    maker_fee_bps: int = 2
    taker_fee_bps: int = 5
    risk: Mapping[str, RiskParams] = field(default_factory=dict)
    default_risk: RiskParams = RiskParams()
    funding_interval_ms: int = 3_600_000
    funding_clamp_bps: int = 50  # per interval
    liquidation_penalty_bps: int = 100
    # how far from the mark the insurance fund's unwind of a taken-over perp may trade in the
    # book (``_unwind``); the rest is auto-deleveraged at the mark
    liquidation_band_bps: int = 100
    market_band_bps: int = 500
    nonce_window_ms: int = 86_400_000
    max_live_nonces_per_key: int = 100_000
    max_open_orders: int = 200
    feeds: Mapping[str, str] | None = None  # feed name -> underlying; default "<SYM>-USD"
    trades_kept: int = 200
    fills_kept: int = 200
    orders_kept: int = 200  # per account: ended orders kept for order status reads (Sequencer.order)
    funding_kept: int = 720  # per perp: funding intervals kept for reads (30 days of hourly funding)
    # chains with a vault (``SettlementChain`` or a bare chain id: 6-decimal token, not checked)
    settlement_chains: tuple = ()
    # an account (an operator's or LPs') whose balances batches may move between chains instead
    # of bridging (``core.batch.buffer_swaps``); None: every cross-chain net is bridged
    liquidity_account: str | None = None
    # refill a chain of the liquidity account's once it holds less than this share (bps) of its
    # even part (``core.batch.rebalance_moves``); 0: never move it between chains
    liquidity_rebalance_bps: int = 5_000

    def __post_init__(self) -> None:
        chains = tuple(c if isinstance(c, SettlementChain) else SettlementChain(c) for c in self.settlement_chains)
        if len({c.chain_id for c in chains}) != len(chains):
            raise ValueError("settlement_chains lists a chain twice")
        if chains and self.hub_chain_id not in {c.chain_id for c in chains}:
            raise ValueError(f"the hub chain {self.hub_chain_id} must be a settlement chain")
        object.__setattr__(self, "settlement_chains", tuple(sorted(chains, key=lambda c: c.chain_id)))
        object.__setattr__(self, "fee_account", eip712.to_checksum_address(self.fee_account))
        object.__setattr__(self, "insurance_account", eip712.to_checksum_address(self.insurance_account))
        if self.liquidity_account is not None:
            object.__setattr__(self, "liquidity_account", eip712.to_checksum_address(self.liquidity_account))
        if self.fee_account == self.insurance_account:
            raise ValueError("fee and insurance accounts must differ")
        for n in ("maker_fee_bps", "taker_fee_bps", "funding_clamp_bps", "liquidation_penalty_bps",
                  "liquidity_rebalance_bps"):
            v = getattr(self, n)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= BPS:
                raise ValueError(f"{n} must be an int in [0, 10000], got {v!r}")
        if not 0 < self.market_band_bps < BPS:
            raise ValueError("market_band_bps must be in (0, 10000)")
        b = self.liquidation_band_bps
        if not isinstance(b, int) or isinstance(b, bool) or not 0 <= b < BPS:
            raise ValueError(f"liquidation_band_bps must be an int in [0, 10000), got {b!r}")
        for n in ("funding_interval_ms", "nonce_window_ms", "max_open_orders", "hub_chain_id", "orders_kept",
                  "funding_kept"):
            if getattr(self, n) <= 0:
                raise ValueError(f"{n} must be positive")

    def params(self, underlying: str) -> RiskParams:
        """Return the risk parameters of ``underlying``."""
        return self.risk.get(underlying, self.default_risk)

    def feed_map(self) -> dict[str, str]:
        """Return feed name -> underlying."""
        if self.feeds is not None:
            return dict(self.feeds)
        return {f"{u.symbol}-USD": u.symbol for u in self.registry.underlyings()}


class Outcome(NamedTuple):
    """What one command did: accepted or the reject code, events and a JSON-able result.

    A NamedTuple rather than a frozen dataclass: one is built per command, and a frozen
    dataclass's ``__init__`` (``object.__setattr__`` per field) cost ~1.5 us of a replay's
    ~30 us per order; a NamedTuple is built in ~0.3 us, and is just as immutable.
    """

    seq: int
    accepted: bool
    code: str | None
    message: str
    events: tuple
    result: dict


def verify_proof(root: bytes, account: str, balance: int, proof: list[bytes]) -> bool:
    """Return whether ``proof`` shows ``account`` had ``balance`` under ``root`` (see merkle)."""
    return merkle_verify(root, account, balance, proof)


def _nonce_key(account: str, signer: str) -> str | tuple[str, str]:
    """The nonce key of ``(account, signer)``: the account itself when it signs (a str hashes once, a
    tuple on every lookup), else the pair. The two kinds never collide (see ``aggregator.core.nonces``)."""
    return account if signer == account else (account, signer)


def _next_roll_after(now_ms: int) -> int:
    day = now_ms // MS_PER_DAY * MS_PER_DAY + _EXPIRY_OFFSET_MS
    return day if day > now_ms else day + MS_PER_DAY


class MmpState:
    """One account's market maker protection on one underlying's options (see the module doc)."""

    __slots__ = ("interval", "frozen_ms", "limit", "delta_limit", "fills", "qty", "delta", "frozen_until")

    def __init__(self, interval: int, frozen_ms: int, limit: int, delta_limit: int = 0) -> None:
        self.interval = interval
        self.frozen_ms = frozen_ms
        self.limit = limit  # 0: no quantity limit
        self.delta_limit = delta_limit  # 0: no delta limit
        self.fills: deque[tuple[int, int, int]] = deque()  # (ts_ms, size, delta) of maker fills in the interval
        self.qty = 0  # their size sum
        self.delta = 0  # their net delta (size units of the underlying)
        self.frozen_until = 0  # 0: not frozen; -1: until the next config; else ms

    def frozen(self, now_ms: int) -> bool:
        f = self.frozen_until
        return f < 0 or now_ms < f


class _FundOrder(NamedTuple):
    """The insurance fund's unwind order (``Sequencer._unwind``): what ``_submit`` reads of an ``eip712.Order``."""

    account: str
    instrument: str
    side: int
    price: int
    size: int
    order_type: int = 1
    time_in_force: int = 2  # IOC
    reduce_only: bool = True
    client_order_id: int = 0
    self_trade_prevention: int = 1
    expiry: int = 0
    nonce: int = 0


class Trigger:
    """One untriggered trigger order (see "Trigger orders" in the module doc).

    Its attributes carry the names of ``eip712.Order``'s, so ``Sequencer._submit`` places
    it when it fires exactly as it places a signed order (self-trade prevention: the
    default, cancel resting; the nonce was used at placement).
    """

    __slots__ = ("trigger_id", "account", "instrument", "side", "order_type", "time_in_force", "reduce_only",
                 "trigger_price", "trigger_above", "price", "size", "client_order_id", "expiry", "ts_ms")

    self_trade_prevention = 1
    nonce = 0

    def __init__(self, trigger_id: int, msg: eip712.TriggerOrder, ts_ms: int, account: str, instrument: str) -> None:
        self.trigger_id = trigger_id
        self.account = account  # the account's and the market's own strings: shared, not one copy per trigger
        self.instrument = instrument
        self.side = msg.side
        self.order_type = msg.order_type
        self.time_in_force = msg.time_in_force
        self.reduce_only = msg.reduce_only
        self.trigger_price = msg.trigger_price
        self.trigger_above = msg.trigger_above
        self.price = msg.price
        self.size = msg.size
        self.client_order_id = msg.client_order_id
        self.expiry = msg.expiry
        self.ts_ms = ts_ms

    def to_dict(self) -> dict:
        """The ``open_orders`` entry: an order's keys plus the trigger's (status ``untriggered``)."""
        return {"order_id": self.trigger_id, "client_order_id": self.client_order_id, "instrument": self.instrument,
                "side": "buy" if self.side == _BUY else "sell", "price": self.price, "size": self.size,
                "filled": 0, "remaining": self.size, "reduce_only": self.reduce_only,
                "time_in_force": self.time_in_force, "status": "untriggered", "ts_ms": self.ts_ms,
                "type": "trigger", "order_type": "market" if self.order_type == 2 else "limit",
                "trigger_price": self.trigger_price, "trigger_above": self.trigger_above,
                "expiry_ms": self.expiry * 1000}


class ReduceRoom:
    """The book's reduce-only hook for one market (``OrderBook.ro_room``, see aggregator.core.matching).

    ``room(address, side)`` is how much the account's orders on ``side`` may fill before
    its position in the market (as it stands before the current request's fills, which
    the sequencer books after the book returns) would flip. Plain data, so it pickles
    with the books in ``snapshot()``.
    """

    __slots__ = ("accounts", "market")

    def __init__(self, accounts: dict[str, Account], market: str) -> None:
        self.accounts = accounts
        self.market = market

    def __call__(self, address: str, side: int) -> int:
        acct = self.accounts.get(address)
        ex = acct.exposures.get(self.market) if acct is not None else None
        pos = ex.size if ex is not None else 0
        return max(pos, 0) if side == _SELL else max(-pos, 0)


class Sequencer:
    """The state machine. ``apply`` mutates; every other public method only reads."""

    def __init__(self, config: SequencerConfig) -> None:
        self._cfg = config
        self._registry: InstrumentRegistry = copy.deepcopy(config.registry)
        self._params: dict[str, RiskParams] = {u.symbol: config.params(u.symbol)
                                               for u in self._registry.underlyings()}
        self._feeds = config.feed_map()
        self._markets: dict[str, Market] = {}
        self._perp: dict[str, Market] = {}
        self._expiries: list[tuple[int, str]] = []  # heap of (expiry_ms, option name), active options
        self._unsettled: list[str] = []  # closed options awaiting a settlement price
        self._accounts: dict[str, Account] = {}
        self._canon: dict[str, str] = {}
        self._orders: dict[int, RestingOrder] = {}
        self._last_order_id = 0
        self._nonces = NonceStore(config.nonce_window_ms, config.max_live_nonces_per_key)
        self._sessions: dict[str, dict[str, int]] = {}
        self._deposits: set[tuple[int, int]] = set()
        self._deposited = 0
        self._index: dict[str, int] = {}
        self._mark: dict[str, int] = {}
        self._mark_ts: dict[str, int] = {}
        self._status: dict[str, str] = {}
        self._last_px: dict[str, tuple[int, int]] = {}  # underlying -> (publish ms, index)
        self._fixings: dict[tuple[str, int], tuple[int, bool]] = {}
        self._pending_fix: dict[str, list[int]] = {}  # underlying -> sorted unfixed expiries
        self._next_funding_ms: int | None = None
        self._next_roll_ms: int | None = None
        self._now_ms = 0
        self._seq = 0
        self._delta = 0
        self._external = 0
        self._tree = MerkleTree()  # incremental: leaves in account creation order (see merkle)
        self._touched: set[Account] = set()  # accounts whose total changed since the last root
        self._init_settlement()
        self._fee = self._ensure_account(config.fee_account, config.hub_chain_id)
        self._insurance = self._ensure_account(config.insurance_account, config.hub_chain_id)
        for inst in self._registry.active():
            self._open_market(inst, 0)
        self._handlers = self._make_handlers()

    def _make_handlers(self) -> dict[type, Any]:
        return {
            C.DepositCredit: self._deposit,
            C.PlaceOrder: self._place,
            C.CancelOrder: self._cancel,
            C.CancelAllOrders: self._cancel_all,
            C.CancelAllAfter: self._cancel_all_after,
            C.SetMmp: self._set_mmp,
            C.PlaceTrigger: self._place_trigger,
            C.AmendOrder: self._amend,
            C.GrantSessionKey: self._grant,
            C.RevokeSession: self._revoke,
            C.PriceUpdate: self._price,
            C.Tick: self._tick,
            C.Withdraw: self._withdraw,
            C.SetWithdrawalHalt: self._set_halt,
            C.CloseBatch: self._close_batch,
            C.BatchSettled: self._batch_settled,
        }

    def _init_settlement(self) -> None:
        """Create the withdrawal and batch state (also fills it in on an older snapshot)."""
        d = self.__dict__
        d.setdefault("_step_net", {})  # chain -> balance change of the current command
        d.setdefault("_gross", 0)  # obligations booked since the last batch
        d.setdefault("_withdrawn", 0)
        d.setdefault("_deposit_chains", set())
        d.setdefault("_projected", {})  # (account, chain) -> settled balance after every closed batch
        d.setdefault("_confirmed", {})  # (account, chain) -> settled balance after reported batches
        d.setdefault("_withdrawals", {})  # id -> WithdrawalRecord, in reservation order
        d.setdefault("_acct_withdrawals", {})  # account -> [id]
        d.setdefault("_reserved", [])  # ids awaiting the next batch
        d.setdefault("_halted", {})  # chain -> reason
        d.setdefault("_batch_number", 0)
        d.setdefault("_batches", {})  # number -> Batch, until every chain reported it
        d.setdefault("_last_batch", None)
        d.setdefault("_chain_batch", {})  # chain -> last batch its vault applied
        d.setdefault("_cumulative", Netting())
        d.setdefault("_call_cache", {})  # underlying -> (mark, shock px, floor px), see _short_unit
        d.setdefault("_ro_dirty", [])  # (account, market) whose position moved this command, see _enforce_reduce_only
        d.setdefault("_batch_dirty", {a: None for a in d.get("_accounts", ())})  # changed since the last batch
        d.setdefault("_gtd", ExpiryQueue())  # order ids of resting orders by signed expiry (stale ids skipped)
        d.setdefault("_drift", {})  # underlying -> sum of |mark change| so far, see _sweep
        d.setdefault("_dms", {})  # account -> deadline ms of its armed cancel-all-after switch
        d.setdefault("_dms_q", ExpiryQueue())  # (account, deadline) by deadline (re-armed ones skipped)
        d.setdefault("_lp_funding", {})  # chain -> deposits of the liquidity account there (rebalancing weights)
        d.setdefault("_mmp", {})  # (account, underlying) -> MmpState
        d.setdefault("_unwind_due", [])  # perps whose positions the fund took over this command, see _unwind
        d.setdefault("_ins_stats", {"penalties": 0, "liquidations": 0, "bankruptcies_covered": 0,
                                    "bankruptcy_total": 0, "auto_deleveraged": 0, "unwound_in_book": 0,
                                    "socialised": 0})  # the insurance fund's record (reads only)
        d.setdefault("_funding_hist", {})  # underlying -> deque of (ts_ms, rate_e8, mark) of each funding
        d.setdefault("_mmp_hit", [])  # (account, underlying) whose limit this command's fills passed
        # caches (in _NOT_STATE): option name -> (index, mark time, Black-76 delta), see _option_delta;
        # option name -> (index, mark time, mark), see _mark_of; perp name -> (seq, ADL quintiles), see _adl_rank
        d.setdefault("_delta_cache", {})
        d.setdefault("_mark_cache", {})
        d.setdefault("_adl_cache", {})
        d.setdefault("_triggers", {})  # trigger id -> Trigger, untriggered, in placement order
        d.setdefault("_acct_triggers", {})  # account -> {trigger id: Trigger}
        d.setdefault("_trig_up", {})  # underlying -> heap of (trigger price, id) of triggerAbove ones (lazy deletion)
        d.setdefault("_trig_down", {})  # underlying -> heap of (-trigger price, id) of the others (lazy deletion)
        d.setdefault("_trig_dead", 0)  # heap entries of triggers removed otherwise than by firing
        d.setdefault("_trig_q", ExpiryQueue())  # trigger ids by signed expiry (removed ones skipped)

    # ================================================================== the mutator

    def apply(self, cmd: C.Command) -> Outcome:
        """Apply one sequenced command and return its outcome (the only mutator)."""
        ts = cmd.ts_ms
        if ts < self._now_ms:
            raise ValueError(f"ts_ms went backwards: {ts} < {self._now_ms} (seq {cmd.seq})")
        self._now_ms = ts
        self._seq = cmd.seq
        self._delta = 0
        self._external = 0
        if self._step_net:  # left over by a command that raised
            self._step_net.clear()
        try:
            out = self._handlers[type(cmd)](cmd)
        except _Reject as r:
            if self._delta or self._step_net:
                raise ConservationError(f"seq {cmd.seq}: reject after a balance move") from None
            return Outcome(cmd.seq, False, r.code.value, r.message, (), {})
        if self._delta != self._external:
            raise ConservationError(f"seq {cmd.seq}: deltas sum to {self._delta}, inflow {self._external}")
        sn = self._step_net
        if sn:  # gross cross-chain obligation of this command (see aggregator.core.batch)
            if len(sn) > 1:
                self._gross += sum(v for v in sn.values() if v > 0)
            sn.clear()
        return out

    # ------------------------------------------------------------------ ledger

    def _move(self, acct: Account, amount: int) -> None:
        if amount:
            c = acct.primary_chain
            b = acct.balances
            b[c] = b.get(c, 0) + amount
            acct.total += amount
            self._delta += amount
            sn = self._step_net
            sn[c] = sn.get(c, 0) + amount
            self._touched.add(acct)
            self._batch_dirty[acct.address] = None

    def _shift(self, acct: Account, src: int, dst: int, amount: int) -> None:
        """Move ``amount`` of an account's balance from chain ``src`` to chain ``dst`` (total unchanged)."""
        b = acct.balances
        b[src] = b.get(src, 0) - amount
        b[dst] = b.get(dst, 0) + amount
        sn = self._step_net
        sn[src] = sn.get(src, 0) - amount
        sn[dst] = sn.get(dst, 0) + amount
        self._batch_dirty[acct.address] = None

    def _ensure_account(self, address: str, chain_id: int) -> Account:
        acct = self._accounts.get(address)
        if acct is None:
            acct = self._accounts[address] = Account(address, chain_id, self._cfg.fills_kept, self._cfg.orders_kept)
            acct.balances[chain_id] = 0
            self._tree.set(address, 0)  # leaves in creation order: appended now, never later
            self._batch_dirty[address] = None
        return acct

    def _canonical(self, address: str) -> str:
        a = self._canon.get(address)
        if a is None:
            try:
                a = eip712.to_checksum_address(address)
            except eip712.MessageError as e:
                raise _Reject(RejectCode.INVALID_AMOUNT, str(e)) from None
            if len(self._canon) < 1_000_000:
                self._canon[address] = a
        return a

    # ------------------------------------------------------------------ deposits

    def _deposit(self, cmd: C.DepositCredit) -> Outcome:
        if not isinstance(cmd.amount, int) or cmd.amount <= 0:
            raise _Reject(RejectCode.INVALID_AMOUNT, f"deposit amount must be positive, got {cmd.amount}")
        addr = self._canonical(cmd.account)
        chains = self._cfg.settlement_chains
        if chains and cmd.chain_id not in {c.chain_id for c in chains}:
            raise _Reject(RejectCode.UNKNOWN_CHAIN, f"chain {cmd.chain_id} is not a settlement chain")
        key = (cmd.chain_id, cmd.deposit_nonce)
        if key in self._deposits:
            return Outcome(cmd.seq, True, None, "duplicate deposit ignored", (),
                           {"credited": False, "duplicate": True, "account": addr})
        self._deposits.add(key)
        acct = self._ensure_account(addr, cmd.chain_id)
        b = acct.balances
        b[cmd.chain_id] = b.get(cmd.chain_id, 0) + cmd.amount
        acct.total += cmd.amount
        self._delta += cmd.amount
        self._external += cmd.amount
        self._deposited += cmd.amount
        self._touched.add(acct)
        self._batch_dirty[addr] = None
        vk = (addr, cmd.chain_id)  # the vault credited the settled balance already
        self._projected[vk] = self._projected.get(vk, 0) + cmd.amount
        self._confirmed[vk] = self._confirmed.get(vk, 0) + cmd.amount
        self._deposit_chains.add(cmd.chain_id)
        if addr == self._cfg.liquidity_account:  # how the operator split it: rebalancing keeps that split
            self._lp_funding[cmd.chain_id] = self._lp_funding.get(cmd.chain_id, 0) + cmd.amount
        ev = DepositCredited(addr, cmd.chain_id, cmd.deposit_nonce, cmd.amount)
        return Outcome(cmd.seq, True, None, "", (ev,),
                       {"credited": True, "duplicate": False, "account": addr, "chain_id": cmd.chain_id,
                        "amount": cmd.amount, "balance": b[cmd.chain_id], "total": acct.total})

    # ------------------------------------------------------------------ authorisation

    def _auth(self, account: str, signer: str) -> None:
        if signer == account:
            return
        keys = self._sessions.get(account)
        if keys is not None:
            until = keys.get(signer)
            if until is not None and self._now_ms <= until:
                return
        raise _Reject(RejectCode.UNAUTHORIZED_SIGNER, f"{signer} may not act for {account}")

    def _authorize(self, account: str, signer: str, nonce: int, expiry: int) -> str | tuple[str, str]:
        """The prologue of a signed command other than an order (``_place`` inlines it): the signer may act
        for ``account`` and the nonce is usable; return the nonce key (recorded only once accepted)."""
        if signer != account:
            self._auth(account, signer)
        key = _nonce_key(account, signer)
        self._nonce_check(key, nonce, expiry)
        return key

    def _nonce_check(self, key: tuple[str, str], nonce: int, expiry: int) -> None:
        v = self._nonces.check(key, nonce, expiry, self._now_ms)
        if v is not NonceVerdict.ACCEPTED:
            raise _Reject(_NONCE_CODES[v], f"nonce {nonce} expiry {expiry}: {v.value}")

    def _nonce_use(self, key: tuple[str, str], nonce: int, expiry: int) -> None:
        """Record a nonce that ``_nonce_check`` accepted earlier in this same command."""
        self._nonces.record(key, nonce, expiry, self._now_ms)

    def _grant(self, cmd: C.GrantSessionKey) -> Outcome:
        g = cmd.grant
        if cmd.signer != g.account:
            raise _Reject(RejectCode.UNAUTHORIZED_SIGNER, "only the account itself may grant a session key")
        key = _nonce_key(g.account, cmd.signer)
        self._nonce_check(key, g.nonce, g.expiry)
        until = g.valid_until * 1000
        if until < self._now_ms:
            raise _Reject(RejectCode.EXPIRED, f"session key validUntil {g.valid_until} is in the past")
        self._nonce_use(key, g.nonce, g.expiry)
        self._sessions.setdefault(g.account, {})[g.session_key] = until
        ev = SessionKeyGranted(g.account, g.session_key, until)
        return Outcome(cmd.seq, True, None, "", (ev,),
                       {"account": g.account, "session_key": g.session_key, "valid_until_ms": until})

    def _revoke(self, cmd: C.RevokeSession) -> Outcome:
        r = cmd.revoke
        if cmd.signer != r.account and cmd.signer != r.session_key:
            raise _Reject(RejectCode.UNAUTHORIZED_SIGNER, "only the account or the key itself may revoke it")
        key = _nonce_key(r.account, cmd.signer)
        self._nonce_check(key, r.nonce, r.expiry)
        self._nonce_use(key, r.nonce, r.expiry)
        keys = self._sessions.get(r.account)
        revoked = keys is not None and keys.pop(r.session_key, None) is not None
        if keys is not None and not keys:
            del self._sessions[r.account]
        evs = (SessionKeyRevoked(r.account, r.session_key),) if revoked else ()
        return Outcome(cmd.seq, True, None, "", evs,
                       {"account": r.account, "session_key": r.session_key, "revoked": revoked})

    # ------------------------------------------------------------------ margin

    def _req(self, m: Market, size: int, buy_qty: int, sell_qty: int, buy_value: int) -> int:
        """Initial requirement of one market's exposure (position plus open orders)."""
        if m.is_perp:
            q = size + buy_qty
            if q < 0:
                q = -q
            q2 = size - sell_qty
            if q2 < 0:
                q2 = -q2
            if q2 > q:
                q = q2
            if not q:
                return 0
            return -(-q * self._mark[m.underlying] * m.im_bps // (m.scale * BPS))
        r = -(-buy_value // m.scale) if buy_value else 0
        short = sell_qty - size
        if short > 0:
            r += -(-self._short_unit(m) * short // m.scale)
        return r

    def _initial(self, acct: Account) -> int:
        """Initial requirement of the whole account: ``_req`` of every exposure (inlined: the hot path)."""
        total = 0
        mark = self._mark
        for ex in acct.exposures.values():
            m = ex.market
            size = ex.size
            if m.is_perp:
                q = size + ex.buy_qty
                if q < 0:
                    q = -q
                q2 = size - ex.sell_qty
                if q2 < 0:
                    q2 = -q2
                if q2 > q:
                    q = q2
                if q:
                    total += -(-q * mark[m.underlying] * m.im_bps // (m.scale * BPS))
                continue
            bv = ex.buy_value
            if bv:
                total += -(-bv // m.scale)
            short = ex.sell_qty - size
            if short > 0:
                total += -(-self._short_unit(m) * short // m.scale)
        return total

    def _maintenance(self, acct: Account) -> int:
        """Maintenance requirement: ``perp_maintenance`` per perp position plus short options."""
        total = 0
        mark = self._mark
        for ex in acct.exposures.values():
            s = ex.size
            if not s:
                continue
            m = ex.market
            if m.is_perp:
                if s < 0:
                    s = -s
                total += -(-s * mark[m.underlying] * m.mm_bps // (m.scale * BPS))
            elif s < 0:
                total += -(-self._short_unit(m) * -s // m.scale)
        return total

    def _short_unit(self, m: Market) -> int:
        """Return ``risk.short_option_unit`` of option ``m`` at the current mark (collateral per whole underlying).

        A put needs its strike. For a call, the mark-dependent parts ``(ceil(mark * (1 +
        shock)), ceil(mark * floor))`` are cached per (underlying, mark) and shared by every
        strike: the unit is ``max(shock_px - strike, floor_px)``.
        """
        if not m.is_call:
            return m.strike
        und = m.underlying
        mark = self._mark[und]
        c = self._call_cache.get(und)
        if c is None or c[0] != mark:
            p = m.risk
            c = self._call_cache[und] = (mark, -(-mark * (BPS + p.call_shock_bps) // BPS),
                                         -(-mark * p.call_floor_bps // BPS))
        unit = c[1] - m.strike
        return unit if unit > c[2] else c[2]

    def _check_margin(self, acct: Account, m: Market, side: int, price: int, size: int,
                      removed: RestingOrder | None = None) -> None:
        """Reject unless the account can carry the order fully filled (see module doc)."""
        ex = acct.exposures.get(m.name)
        if ex is None:
            s = b = sq = bv = 0
        else:
            s, b, sq, bv = ex.size, ex.buy_qty, ex.sell_qty, ex.buy_value
        before = self._req(m, s, b, sq, bv)
        if removed is not None:  # an amend replaces this order's reserve
            if removed.side == _BUY:
                b -= removed.remaining
                bv -= removed.price * removed.remaining
            else:
                sq -= removed.remaining
        if side == _BUY:
            after = self._req(m, s, b + size, sq, bv + price * size)
        else:
            after = self._req(m, s, b, sq + size, bv)
        if after <= before:
            return
        im = self._initial(acct) - before + after
        cost = fee(price * size // m.scale, self._cfg.taker_fee_bps)
        if m.is_perp:
            mark = self._mark[m.underlying]
            adverse = price - mark if side == _BUY else mark - price
            if adverse > 0:
                cost += adverse * size // m.scale
        if acct.total - cost < im:
            raise _Reject(RejectCode.INSUFFICIENT_MARGIN,
                          f"needs initial margin {im} + costs {cost}, collateral {acct.total}")

    # ------------------------------------------------------------------ order reserves

    def _reserve(self, r: RestingOrder) -> None:
        ex = r.account.exposure(r.market)
        if r.side == _BUY:
            ex.buy_qty += r.remaining
            ex.buy_value += r.price * r.remaining
        else:
            ex.sell_qty += r.remaining

    def _unreserve(self, r: RestingOrder) -> None:
        acct = r.account
        ex = acct.exposures[r.market.name]
        if r.side == _BUY:
            ex.buy_qty -= r.remaining
            ex.buy_value -= r.price * r.remaining
        else:
            ex.sell_qty -= r.remaining
        if ex.empty():
            del acct.exposures[r.market.name]

    def _drop(self, order_id: int, status: int = _CANCELLED) -> RestingOrder:
        """Remove a resting order (its reserve too) and record it as ended: ``status`` an index of
        ``_DONE_STATUS`` (ints, not strings: a restored snapshot's records share nothing with new ones)."""
        r = self._orders.pop(order_id)
        acct = r.account
        del acct.orders[order_id]
        if r.reduce_only:
            acct.ro_orders -= 1
        self._unreserve(r)
        self._ended(r, status)
        return r

    def _ended(self, r: RestingOrder, status: int) -> None:
        """Record resting order ``r`` (a limit order: only those rest) as ended with ``status``."""
        r.account.done.append((r.order_id, r.client_order_id, r.market.name, r.side, r.price, r.size,
                               r.size - r.remaining, status, r.ts_ms, self._now_ms, r.reduce_only, r.tif, r.value,
                               1, 0))

    # ------------------------------------------------------------------ orders

    def _market_for(self, name: str) -> Market:
        m = self._markets.get(name)
        if m is None or not m.active:
            raise _Reject(RejectCode.UNKNOWN_INSTRUMENT, f"instrument {name!r} is not listed or not active")
        return m

    def _place(self, cmd: C.PlaceOrder) -> Outcome:
        o = cmd.order
        addr = o.account
        signer = cmd.signer
        if signer != addr:
            self._auth(addr, signer)
        nkey = addr if signer == addr else (addr, signer)  # _nonce_key inlined
        v = self._nonces.check(nkey, o.nonce, o.expiry, self._now_ms)  # _nonce_check inlined
        if v is not _NONCE_OK:
            raise _Reject(_NONCE_CODES[v], f"nonce {o.nonce} expiry {o.expiry}: {v.value}")
        return self._submit(o, nkey, cmd.seq)

    def _submit(self, o: eip712.Order | Trigger, nkey: str | tuple[str, str] | None, seq: int) -> Outcome:
        """Place order ``o`` (checks, matching, fills, resting): ``_place`` after the signature checks, or a
        trigger firing (``nkey`` None: no nonce to record). ``_Reject`` before any change."""
        addr = o.account
        m = self._markets.get(o.instrument)
        if m is None or not m.active:
            raise _Reject(RejectCode.UNKNOWN_INSTRUMENT, f"instrument {o.instrument!r} is not listed or not active")
        is_market = o.order_type == 2
        tick = m.tick
        if not is_market and o.price % tick:
            raise _Reject(RejectCode.INVALID_TICK, f"price {o.price} is not a multiple of the tick {tick}")
        size = o.size
        if size % m.lot or size < m.min_size or size > m.max_size:
            raise _Reject(RejectCode.INVALID_LOT,
                          f"size {size}: lot {m.lot}, min {m.min_size}, max {m.max_size}")
        und = m.underlying
        reduce_only = o.reduce_only
        if not reduce_only and self._status.get(und) in _CLOSED_STATUSES:
            raise _Reject(RejectCode.MARKET_CLOSED, f"{und} is {self._status[und]}: reduce-only orders only")
        if not reduce_only and self._mmp and not m.is_perp:
            st = self._mmp.get((addr, und))
            if st is not None and st.frozen(self._now_ms):
                until = "the next MmpConfig" if st.frozen_until < 0 else f"{st.frozen_until} ms"
                raise _Reject(RejectCode.MMP_FROZEN, f"market maker protection on {und} options tripped: "
                                                     f"only reduce-only orders until {until}")
        acct = self._accounts.get(addr)
        side = o.side
        buy = side == _BUY
        if reduce_only:
            ex = acct.exposures.get(m.name) if acct is not None else None
            pos = ex.size if ex is not None else 0
            resting = self._ro_resting(acct, m, side) if acct is not None and acct.ro_orders else 0
            if pos == 0 or (pos > 0) == buy or size + resting > abs(pos):
                raise _Reject(RejectCode.REDUCE_ONLY_WOULD_INCREASE,
                              f"position {pos}, order side {side} size {size}, reduce-only resting {resting}")
        tif = o.time_in_force
        mark = self._mark.get(und)
        book = m.book
        if is_market:
            if tif == _POST:
                raise _Reject(RejectCode.POST_ONLY_WOULD_CROSS, "a market order always takes")
            if tif == _GTC:
                tif = _IOC
            ref = mark if m.is_perp else (book.best_ask() if buy else book.best_bid())
            if ref is None:
                raise _Reject(RejectCode.NO_PRICE, f"no reference price for a market order on {m.name}")
            band = self._cfg.market_band_bps
            if buy:
                price = ref * (BPS + band) // BPS // tick * tick
                if o.price:
                    price = min(price, o.price // tick * tick)
            else:
                price = -(-(ref * (BPS - band)) // BPS)
                price = max(tick, -(-price // tick) * tick)
                if o.price:
                    price = max(price, -(-o.price // tick) * tick)
            if price <= 0:
                raise _Reject(RejectCode.NO_PRICE, "the protected price is below one tick")
        else:
            price = o.price
        if mark is None and not reduce_only:
            raise _Reject(RejectCode.NO_PRICE, f"no index price for {und} yet")
        rests = tif == _GTC or tif == _POST
        if rests and acct is not None and len(acct.orders) >= self._cfg.max_open_orders:
            raise _Reject(RejectCode.TOO_MANY_ORDERS, f"{len(acct.orders)} open orders (max {self._cfg.max_open_orders})")
        if tif == _POST:
            opp = book.best_ask() if buy else book.best_bid()
            if opp is not None and (price >= opp if buy else price <= opp):
                raise _Reject(RejectCode.POST_ONLY_WOULD_CROSS, f"price {price} crosses {opp}")
        coid = o.client_order_id
        if coid and book.order_by_client_id(addr, coid) is not None:
            raise _Reject(RejectCode.DUPLICATE_CLIENT_ORDER_ID, f"client order id {coid} is resting")
        if not reduce_only:
            if acct is None:
                raise _Reject(RejectCode.INSUFFICIENT_MARGIN, f"{addr} has no collateral")
            self._check_margin(acct, m, side, price, size)
        oid = self._last_order_id + 1
        self._last_order_id = oid
        events = book.submit(oid, addr, side, price, size, tif, coid, o.self_trade_prevention, reduce_only)
        first = events[0]
        if type(first) is OrderRejected:
            code = _BOOK_CODES.get(first.reason, RejectCode.INVALID_LOT)
            raise _Reject(code, f"book refused the order: {first.reason.value}")
        if tif == _FOK and len(events) == 2 and type(events[1]) is OrderExpired:
            raise _Reject(RejectCode.FOK_NOT_FILLABLE, f"FOK size {size} cannot fill at {price}")
        # ------------------------------------------------ accepted: effects from here on
        if nkey is not None:
            self._nonces.record(nkey, o.nonce, o.expiry, self._now_ms)
        assert acct is not None
        out_events: list = list(events)
        fills: list = []
        filled = value = 0
        ended = None
        fee_total = tcash = fees = 0
        for e in events:
            t = type(e)
            if t is OrderFilled:
                tf, tc, fs = self._fill(e, m, acct, out_events)
                tcash += tc
                fees += fs
                filled += e.size
                value += e.price * e.size
                fee_total += tf
                fills.append({"price": e.price, "size": e.size, "fee": tf, "maker_order_id": e.maker_order_id})
            elif t is OrderCancelled:
                if e.order_id == oid:
                    ended = "cancelled"
                else:
                    self._drop(e.order_id)
            elif t is OrderExpired:
                ended = "expired"
        if fills:
            self._book_taker(acct, tcash, fees)
        remaining = size - filled
        if remaining and ended is None:
            exp_ms = o.expiry * 1000
            r = RestingOrder(oid, coid, acct, m, side, price, size, remaining, reduce_only, tif, self._now_ms, exp_ms)
            r.value = value
            self._gtd.push(exp_ms, oid)
            self._orders[oid] = r
            acct.orders[oid] = r
            if reduce_only:
                acct.ro_orders += 1
            self._reserve(r)
            status = "open" if not filled else "partially_filled"
        else:
            status = "filled" if not remaining else ended
            acct.done.append((oid, coid, m.name, side, price, size, filled, _DONE_CODE[status], self._now_ms,
                              self._now_ms, reduce_only, tif, value, o.order_type, 0))
        if self._ro_dirty:
            self._enforce_reduce_only(out_events)
        if self._mmp_hit:
            self._mmp_trip(out_events)
        return Outcome(seq, True, None, "", tuple(out_events),
                       {"order_id": oid, "client_order_id": coid, "instrument": m.name, "status": status,
                        "price": price, "size": size, "filled": filled, "remaining": remaining if ended is None else 0,
                        "fee": fee_total, "fills": fills})

    def _ro_resting(self, acct: Account, m: Market, side: int) -> int:
        """Return the remaining size of ``acct``'s resting reduce-only orders on ``side`` of ``m``."""
        return sum(r.remaining for r in acct.orders.values() if r.reduce_only and r.market is m and r.side == side)

    def _enforce_reduce_only(self, events: list) -> None:
        """Keep resting reduce-only orders within the positions this command's fills left.

        For each (account, market) whose position moved and that rests reduce-only orders
        there: orders on the side that would now increase the position (or with no
        position left) are cancelled; on the reducing side, in time priority, each keeps
        at most what the position still allows and is shrunk (``amend`` down keeps its
        priority) or cancelled (``CancelReason.REDUCE_ONLY``). Together with the entry rule
        (a new reduce-only order plus those resting on its side never exceed the
        position), a later fill of a reduce-only order never increases a position.
        """
        dirty, self._ro_dirty = self._ro_dirty, []
        seen: set = set()
        for acct, m in dirty:
            key = (acct.address, m.name)
            if key in seen or not acct.ro_orders:
                continue
            seen.add(key)
            ex = acct.exposures.get(m.name)
            pos = ex.size if ex is not None else 0
            allow = abs(pos)
            for r in [r for r in acct.orders.values() if r.reduce_only and r.market is m]:
                reduces = pos != 0 and (pos > 0) != (r.side == _BUY)
                keep = min(r.remaining, allow) if reduces else 0
                allow -= keep
                if keep == r.remaining:
                    continue
                book = m.book
                if keep:
                    evs = book.amend(r.order_id, acct.address, None, r.size - r.remaining + keep)
                    if type(evs[0]) is OrderAmended:
                        self._unreserve(r)
                        r.size, r.remaining = evs[0].size, evs[0].remaining
                        self._reserve(r)
                        events.extend(evs)
                        continue
                for e in book.cancel(r.order_id):
                    events.append(OrderCancelled(e.instrument, e.order_id, e.client_order_id, e.account,
                                                 e.remaining, CancelReason.REDUCE_ONLY))
                self._drop(r.order_id)

    def _fill(self, e: OrderFilled, m: Market, taker: Account, out_events: list) -> tuple[int, int, int]:
        """Settle one fill: reserves, the maker's cash and fee, positions.

        Return ``(taker fee, taker's cash move, fee account's move)``: the caller books the
        last two once per command (``_book_taker``), not once per fill; nothing in between
        reads those two balances, so the sums are the same.
        """
        mk = self._orders[e.maker_order_id]
        maker = mk.account
        q = e.size
        p = e.price
        scale = m.scale
        mex = maker.exposures[m.name]
        if mk.side == _BUY:
            mex.buy_qty -= q
            mex.buy_value -= p * q
        else:
            mex.sell_qty -= q
        mk.remaining = e.maker_remaining
        mk.value += p * q
        if not e.maker_remaining:
            del self._orders[mk.order_id]
            del maker.orders[mk.order_id]
            if mk.reduce_only:
                maker.ro_orders -= 1
            self._ended(mk, _FILLED)
        if self._mmp and not m.is_perp and not mk.reduce_only:
            key = (maker.address, m.underlying)
            st = self._mmp.get(key)
            if st is not None and not st.frozen(self._now_ms):
                self._mmp_fill(st, key, q, m, mk.side == _BUY)
        notional = p * q // scale
        cfg = self._cfg
        mfee = -(-notional * cfg.maker_fee_bps // BPS)
        tfee = -(-notional * cfg.taker_fee_bps // BPS)
        if e.taker_side == _BUY:
            buyer, seller = taker, maker
        else:
            buyer, seller = maker, taker
        if m.is_perp:
            cash = (self._mark[m.underlying] - p) * q // scale
        else:
            cash = -notional
        tcash = cash if buyer is taker else -cash  # one move per party: the same sums as five
        amt = -tcash - mfee  # the maker's move (_move inlined)
        if amt:
            c = maker.primary_chain
            maker.balances[c] += amt  # the primary chain's entry exists from creation
            maker.total += amt
            self._delta += amt
            sn = self._step_net
            sn[c] = sn.get(c, 0) + amt
            self._touched.add(maker)
            self._batch_dirty[maker.address] = None
        name = m.name
        bex = buyer.exposures.get(name)
        if bex is None:
            bex = buyer.exposures[name] = Exposure(m)
        before = bex.size
        bex.trade(q, p)
        if buyer.mm_cap is not None and (before < 0 or m.is_perp):  # see _sweep
            self._mm_grow(buyer, m, before, bex.size)
        sex = seller.exposures.get(name)
        if sex is None:
            sex = seller.exposures[name] = Exposure(m)
        before = sex.size
        sex.trade(-q, p)
        if seller.mm_cap is not None:
            self._mm_grow(seller, m, before, sex.size)
        if buyer.ro_orders or seller.ro_orders:
            self._ro_dirty.append((buyer, m))
            self._ro_dirty.append((seller, m))
        holders = m.holders
        if bex.size:
            holders[buyer] = bex
        else:
            holders.pop(buyer, None)
            if not (bex.buy_qty or bex.sell_qty):
                del buyer.exposures[name]
        if sex.size:
            holders[seller] = sex
        else:
            holders.pop(seller, None)
            if not (sex.buy_qty or sex.sell_qty):
                del seller.exposures[name]
        m.last_price = p
        m.day.add(self._now_ms, p, q, notional)
        rec = (self._seq, self._now_ms, name, p, q, e.taker_side, e.maker_order_id, e.taker_order_id)
        m.trades.append(rec)
        maker.fills.append(rec + (False, mfee))
        taker.fills.append(rec + (True, tfee))
        out_events.append(TradeSettled(name, e.maker_order_id, e.taker_order_id, maker.address, taker.address,
                                       e.taker_side, p, q, mfee, tfee, cash, -cash))
        return tfee, tcash - tfee, mfee + tfee

    def _book_taker(self, taker: Account, cash: int, fees: int) -> None:
        """Book what ``_fill`` left to the caller: the taker's cash and the fee account's fees."""
        self._move(taker, cash)
        self._move(self._fee, fees)

    def _find_order(self, addr: str, m: Market, order_id: int, coid: int) -> RestingOrder:
        if order_id:
            r = self._orders.get(order_id)
        else:
            v = m.book.order_by_client_id(addr, coid)
            r = None if v is None else self._orders.get(v.order_id)
        if r is None or r.account.address != addr or r.market is not m:
            raise _Reject(RejectCode.ORDER_NOT_FOUND, f"no resting order {order_id or coid} of {addr} in {m.name}")
        return r

    def _cancel(self, cmd: C.CancelOrder) -> Outcome:
        c = cmd.cancel
        addr = c.account
        nkey = self._authorize(addr, cmd.signer, c.nonce, c.expiry)
        m = self._markets.get(c.instrument)
        if m is None:
            raise _Reject(RejectCode.UNKNOWN_INSTRUMENT, f"instrument {c.instrument!r} is not listed")
        try:
            r = self._find_order(addr, m, c.order_id, c.client_order_id)
        except _Reject:
            t = self._find_trigger(addr, m.name, c.order_id, c.client_order_id) if self._triggers else None
            if t is None:
                raise
            self._nonce_use(nkey, c.nonce, c.expiry)
            self._remove_trigger(t)
            return Outcome(cmd.seq, True, None, "",
                           (TriggerCancelled(addr, m.name, t.trigger_id, t.client_order_id, "USER"),),
                           {"order_id": t.trigger_id, "client_order_id": t.client_order_id, "instrument": m.name,
                            "status": "cancelled", "filled": 0, "remaining": 0, "cancelled_size": t.size,
                            "type": "trigger"})
        self._nonce_use(nkey, c.nonce, c.expiry)
        events = m.book.cancel(r.order_id)
        remaining = r.remaining
        self._drop(r.order_id)
        return Outcome(cmd.seq, True, None, "", tuple(events),
                       {"order_id": r.order_id, "client_order_id": r.client_order_id, "instrument": m.name,
                        "status": "cancelled", "filled": r.size - remaining, "remaining": 0,
                        "cancelled_size": remaining})

    def _cancel_all(self, cmd: C.CancelAllOrders) -> Outcome:
        c = cmd.cancel_all
        addr = c.account
        nkey = self._authorize(addr, cmd.signer, c.nonce, c.expiry)
        if c.instrument and c.instrument not in self._markets:
            raise _Reject(RejectCode.UNKNOWN_INSTRUMENT, f"instrument {c.instrument!r} is not listed")
        self._nonce_use(nkey, c.nonce, c.expiry)
        acct = self._accounts.get(addr)
        events: list = []
        if acct is not None:
            events = self._cancel_account_orders(acct, c.instrument or None)
        ids = [e.order_id for e in events]
        if addr in self._acct_triggers:
            ids += self._cancel_triggers(addr, c.instrument or None, "CANCEL_ALL", events)
        return Outcome(cmd.seq, True, None, "", tuple(events), {"cancelled": ids, "count": len(ids)})

    def _cancel_all_after(self, cmd: C.CancelAllAfter) -> Outcome:
        c = cmd.cancel_after
        addr = c.account
        nkey = self._authorize(addr, cmd.signer, c.nonce, c.expiry)
        self._nonce_use(nkey, c.nonce, c.expiry)
        deadline = 0
        if c.timeout_ms:
            deadline = self._now_ms + c.timeout_ms
            self._dms[addr] = deadline
            self._dms_q.push(deadline, (addr, deadline))
        else:
            self._dms.pop(addr, None)
        return Outcome(cmd.seq, True, None, "", (CancelAllAfterSet(addr, c.timeout_ms, deadline),),
                       {"account": addr, "timeout_ms": c.timeout_ms, "deadline_ms": deadline or None})

    def _set_mmp(self, cmd: C.SetMmp) -> Outcome:
        c = cmd.mmp
        addr = c.account
        nkey = self._authorize(addr, cmd.signer, c.nonce, c.expiry)
        if c.underlying not in self._params:
            raise _Reject(RejectCode.UNKNOWN_INSTRUMENT, f"no underlying {c.underlying!r} is listed")
        self._nonce_use(nkey, c.nonce, c.expiry)
        key = (addr, c.underlying)
        if c.interval_ms:
            self._mmp[key] = MmpState(c.interval_ms, c.frozen_ms, c.qty_limit, c.delta_limit)
        else:
            self._mmp.pop(key, None)
        return Outcome(cmd.seq, True, None, "",
                       (MmpConfigured(addr, c.underlying, c.interval_ms, c.frozen_ms, c.qty_limit,
                                      c.delta_limit),),
                       {"account": addr, "underlying": c.underlying, "enabled": bool(c.interval_ms),
                        "interval_ms": c.interval_ms, "frozen_ms": c.frozen_ms, "qty_limit": c.qty_limit,
                        "delta_limit": c.delta_limit})

    def _option_delta(self, m: Market) -> float:
        """Return option ``m``'s Black-76 delta at the mark's inputs, cached per (index, mark time)."""
        und = m.underlying
        idx, ts = self._index.get(und), self._mark_ts.get(und, self._now_ms)
        cache = self._delta_cache
        hit = cache.get(m.name)
        if hit is not None and hit[0] == idx and hit[1] == ts:
            return hit[2]
        if idx is None:
            d = 0.0
        else:
            g = option_greeks([idx], [m.strike], [self._option_years(m)], [self._params[und].option_vol],
                              [m.is_call])
            d = float(g["delta"][0])
        cache[m.name] = (idx, ts, d)
        return d

    def _mmp_fill(self, st: MmpState, key: tuple[str, str], q: int, m: Market, maker_buys: bool) -> None:
        """Count a maker fill of ``q`` of option ``m`` in ``st``'s rolling interval; note ``key`` if a limit
        is passed."""
        now = self._now_ms
        fills = st.fills
        d = round(self._option_delta(m) * q) if st.delta_limit else 0
        if not maker_buys:
            d = -d
        fills.append((now, q, d))
        st.qty += q
        st.delta += d
        start = now - st.interval
        while fills[0][0] <= start:
            _, oq, od = fills.popleft()
            st.qty -= oq
            st.delta -= od
        if ((st.limit and st.qty > st.limit) or (st.delta_limit and abs(st.delta) > st.delta_limit)) \
                and key not in self._mmp_hit:
            self._mmp_hit.append(key)

    def _mmp_trip(self, events: list) -> None:
        """Trip every protection this command's fills passed: cancel the account's option orders there, freeze."""
        hits, self._mmp_hit = self._mmp_hit, []
        now = self._now_ms
        for addr, und in hits:
            st = self._mmp[(addr, und)]
            acct = self._accounts[addr]
            n = 0
            for r in [r for r in acct.orders.values()
                      if r.market.underlying == und and not r.market.is_perp and not r.reduce_only]:
                for e in r.market.book.cancel(r.order_id):
                    events.append(OrderCancelled(e.instrument, e.order_id, e.client_order_id, e.account,
                                                 e.remaining, CancelReason.MMP))
                self._drop(r.order_id)
                n += 1
            st.frozen_until = now + st.frozen_ms if st.frozen_ms else -1
            events.append(MmpTriggered(addr, und, st.qty, n, max(st.frozen_until, 0), st.delta))
            st.fills.clear()
            st.qty = st.delta = 0

    def _fire_dms(self, now: int, events: list) -> int:
        """Cancel every order of each account whose switch's deadline is before ``now`` (not re-armed since)."""
        dms, n = self._dms, 0
        for addr, deadline in self._dms_q.pop_due(now):
            if dms.get(addr) != deadline:  # re-armed or disarmed since
                continue
            del dms[addr]
            acct = self._accounts.get(addr)
            evs = self._cancel_account_orders(acct, None) if acct is not None else []
            if addr in self._acct_triggers:
                self._cancel_triggers(addr, None, "CANCEL_ALL", evs)
            events.extend(evs)
            events.append(CancelAllAfterTriggered(addr, deadline, len(evs)))
            n += 1
        return n

    def _cancel_account_orders(self, acct: Account, instrument: str | None) -> list:
        names = sorted({r.market.name for r in acct.orders.values()
                        if instrument is None or r.market.name == instrument})
        events: list = []
        for name in names:
            evs = self._markets[name].book.cancel_all(acct.address)
            for e in evs:
                self._drop(e.order_id)
            events.extend(evs)
        return events

    # ------------------------------------------------------------------ trigger orders

    def _place_trigger(self, cmd: C.PlaceTrigger) -> Outcome:
        t = cmd.trigger
        addr = t.account
        nkey = self._authorize(addr, cmd.signer, t.nonce, t.expiry)
        m = self._market_for(t.instrument)
        if not m.is_perp:
            raise _Reject(RejectCode.INVALID_TRIGGER, f"trigger orders are for perpetuals only, not {m.name}")
        tick = m.tick
        if t.trigger_price % tick:
            raise _Reject(RejectCode.INVALID_TICK, f"trigger price {t.trigger_price} is not a multiple of the tick {tick}")
        if t.order_type != 2 and t.price % tick:
            raise _Reject(RejectCode.INVALID_TICK, f"price {t.price} is not a multiple of the tick {tick}")
        size = t.size
        if size % m.lot or size < m.min_size or size > m.max_size:
            raise _Reject(RejectCode.INVALID_LOT, f"size {size}: lot {m.lot}, min {m.min_size}, max {m.max_size}")
        if t.order_type == 2 and t.time_in_force == _POST:
            raise _Reject(RejectCode.INVALID_TRIGGER, "a market trigger order always takes: it cannot be post-only")
        mine = self._acct_triggers.get(addr)
        limit = self._cfg.max_open_orders
        if mine is not None and len(mine) >= limit:
            raise _Reject(RejectCode.TOO_MANY_ORDERS, f"{len(mine)} untriggered trigger orders (max {limit})")
        coid = t.client_order_id
        if coid and (m.book.order_by_client_id(addr, coid) is not None
                     or self._find_trigger(addr, m.name, 0, coid) is not None):
            raise _Reject(RejectCode.DUPLICATE_CLIENT_ORDER_ID, f"client order id {coid} is live")
        acct = self._accounts.get(addr)
        if acct is None:
            raise _Reject(RejectCode.INSUFFICIENT_MARGIN, f"{addr} has no collateral")
        # ------------------------------------------------ accepted: effects from here on
        self._nonce_use(nkey, t.nonce, t.expiry)
        tid = self._last_order_id + 1
        self._last_order_id = tid
        tr = Trigger(tid, t, self._now_ms, acct.address, m.name)
        self._triggers[tid] = tr
        self._acct_triggers.setdefault(acct.address, {})[tid] = tr
        und = m.underlying
        if tr.trigger_above:
            heapq.heappush(self._trig_up.setdefault(und, []), (tr.trigger_price, tid))
        else:
            heapq.heappush(self._trig_down.setdefault(und, []), (-tr.trigger_price, tid))
        self._trig_q.push(tr.expiry * 1000, tid)
        ev = TriggerPlaced(addr, m.name, tid, coid, t.side, t.trigger_price, t.trigger_above, size)
        return Outcome(cmd.seq, True, None, "", (ev,), tr.to_dict() | {"trigger_id": tid})

    def _find_trigger(self, addr: str, instrument: str, trigger_id: int, coid: int) -> Trigger | None:
        """Return the account's untriggered trigger on ``instrument`` by id (or client order id if id is 0)."""
        mine = self._acct_triggers.get(addr)
        if not mine:
            return None
        if trigger_id:
            t = mine.get(trigger_id)
            return t if t is not None and t.instrument == instrument else None
        for t in mine.values():
            if t.client_order_id == coid and t.instrument == instrument:
                return t
        return None

    def _remove_trigger(self, t: Trigger, fired: bool = False, status: int = _CANCELLED) -> None:
        """Forget an untriggered trigger. Its heap entry stays (lazy deletion) unless it fired (popped already);
        the heaps are rebuilt once such dead entries outnumber the live triggers. Unless it fired (the
        caller records that, with the order it placed), it is recorded as ended with ``status``."""
        del self._triggers[t.trigger_id]
        mine = self._acct_triggers[t.account]
        del mine[t.trigger_id]
        if not mine:
            del self._acct_triggers[t.account]
        if fired:
            return
        self._record_trigger(t, status, 0)
        self._trig_dead += 1
        if self._trig_dead > 64 and self._trig_dead > len(self._triggers):
            live = self._triggers
            for heaps in (self._trig_up, self._trig_down):
                for und in list(heaps):
                    h = [e for e in heaps[und] if e[1] in live]
                    if h:
                        heapq.heapify(h)
                        heaps[und] = h
                    else:
                        del heaps[und]
            self._trig_dead = 0

    def _record_trigger(self, t: Trigger, status: int, placed: int) -> None:
        acct = self._accounts.get(t.account)
        if acct is not None:
            acct.done.append((t.trigger_id, t.client_order_id, t.instrument, t.side, t.price, t.size, 0, status,
                              t.ts_ms, self._now_ms, t.reduce_only, t.time_in_force, 0, 3, placed))

    def _cancel_triggers(self, addr: str, instrument: str | None, reason: str, events: list) -> list[int]:
        """Remove the account's untriggered triggers (of one instrument, or all), by id; return their ids."""
        mine = self._acct_triggers.get(addr)
        ids = []
        for tid in sorted(mine or ()):
            t = mine[tid]
            if instrument is not None and t.instrument != instrument:
                continue
            self._remove_trigger(t)
            events.append(TriggerCancelled(addr, t.instrument, tid, t.client_order_id, reason))
            ids.append(tid)
        return ids

    def _fire_triggers(self, und: str, mark: int, events: list) -> tuple[int, int]:
        """Fire every trigger of ``und`` the mark has reached, by trigger id; return (fired, refused).

        Each is placed by ``_submit`` as its order; one the order checks refuse emits
        ``TriggerRejected`` and is gone (nothing else changes: ``_submit`` rejects before any change).
        """
        live = self._triggers
        due = []
        h = self._trig_up.get(und)
        while h and h[0][0] <= mark:
            tid = heapq.heappop(h)[1]
            if tid in live:
                due.append(tid)
        h = self._trig_down.get(und)
        while h and -h[0][0] >= mark:
            tid = heapq.heappop(h)[1]
            if tid in live:
                due.append(tid)
        due.sort()
        refused = 0
        seq = self._seq
        for tid in due:
            t = live[tid]
            self._remove_trigger(t, fired=True)
            if t.reduce_only:
                self._cap_reduce_only(t)
            try:
                out = self._submit(t, None, seq)
            except _Reject as r:
                events.append(TriggerRejected(t.account, tid, r.code.value, r.message))
                self._record_trigger(t, _REJECTED, 0)
                refused += 1
                continue
            self._record_trigger(t, _TRIGGERED, out.result["order_id"])
            events.append(TriggerFired(t.account, tid, out.result["order_id"]))
            events.extend(out.events)
        return len(due), refused

    def _cap_reduce_only(self, t: Trigger) -> None:
        """Cut a firing reduce-only trigger to what its position then allows (whole lots, at least the
        minimum size), net of the reduce-only orders resting on its side; leave it whole otherwise (the
        order rule then refuses it: nothing to reduce)."""
        m = self._markets.get(t.instrument)
        acct = self._accounts.get(t.account)
        if m is None or acct is None:
            return
        resting = self._ro_resting(acct, m, t.side) if acct.ro_orders else 0
        room = (m.book.ro_room(t.account, t.side) - resting) // m.lot * m.lot  # the book's own reduce-only room
        if m.min_size <= room < t.size:
            t.size = room

    def _expire_triggers(self, now: int, events: list) -> int:
        """Remove every untriggered trigger whose signed expiry is before ``now`` (as good-til-time)."""
        live, n = self._triggers, 0
        for tid in self._trig_q.pop_due(now):
            t = live.get(tid)
            if t is None:  # fired or cancelled since
                continue
            self._remove_trigger(t, status=_EXPIRED)
            events.append(TriggerCancelled(t.account, t.instrument, tid, t.client_order_id, "GOOD_TIL_TIME"))
            n += 1
        return n

    def _amend(self, cmd: C.AmendOrder) -> Outcome:
        a = cmd.amend
        addr = a.account
        nkey = self._authorize(addr, cmd.signer, a.nonce, a.expiry)
        m = self._market_for(a.instrument)
        r = self._find_order(addr, m, a.order_id, a.client_order_id)
        new_price = a.price or r.price
        new_size = a.size or r.size
        if new_price % m.tick:
            raise _Reject(RejectCode.INVALID_TICK, f"price {new_price} is not a multiple of the tick {m.tick}")
        if new_size % m.lot or new_size < m.min_size or new_size > m.max_size:
            raise _Reject(RejectCode.INVALID_LOT, f"size {new_size}: lot {m.lot}, min {m.min_size}, max {m.max_size}")
        filled = r.size - r.remaining
        if (new_price == r.price and new_size == r.size) or new_size <= filled:
            raise _Reject(RejectCode.INVALID_AMEND, f"amend to price {new_price} size {new_size} (filled {filled})")
        new_remaining = new_size - filled
        buy = r.side == _BUY
        book = m.book
        if r.tif == _POST:
            opp = book.best_ask() if buy else book.best_bid()
            if opp is not None and (new_price >= opp if buy else new_price <= opp):
                raise _Reject(RejectCode.POST_ONLY_WOULD_CROSS, f"price {new_price} crosses {opp}")
        acct = r.account
        grows = new_remaining > r.remaining or (new_price > r.price if buy else new_price < r.price)
        if r.reduce_only:
            ex = acct.exposures.get(m.name)
            pos = ex.size if ex is not None else 0
            others = self._ro_resting(acct, m, r.side) - r.remaining
            if pos == 0 or (pos > 0) == buy or new_remaining + others > abs(pos):  # same rule as at entry
                raise _Reject(RejectCode.REDUCE_ONLY_WOULD_INCREASE, f"position {pos}, new remaining {new_remaining}")
        elif grows:
            if self._status.get(m.underlying) in _CLOSED_STATUSES:
                raise _Reject(RejectCode.MARKET_CLOSED, f"{m.underlying} is closed: reduce-only orders only")
            self._check_margin(acct, m, r.side, new_price, new_remaining, removed=r)
        self._nonce_use(nkey, a.nonce, a.expiry)
        self._unreserve(r)
        events = book.amend(r.order_id, addr, a.price or None, a.size or None)
        out_events: list = list(events)
        first = events[0]
        assert type(first) is OrderAmended, first
        r.price, r.size, r.remaining = first.price, first.size, first.remaining
        ended = False
        fills = []
        tcash = fees = 0
        for e in events[1:]:
            t = type(e)
            if t is OrderFilled:
                tf, tc, fs = self._fill(e, m, acct, out_events)
                tcash += tc
                fees += fs
                r.remaining = e.taker_remaining
                r.value += e.price * e.size
                fills.append({"price": e.price, "size": e.size, "fee": tf, "maker_order_id": e.maker_order_id})
            elif t is OrderCancelled:
                if e.order_id == r.order_id:
                    ended = True
                else:
                    self._drop(e.order_id)
        if fills:
            self._book_taker(acct, tcash, fees)
        if r.remaining and not ended:
            self._reserve(r)
            status = "open" if r.size == r.remaining else "partially_filled"
        else:
            del self._orders[r.order_id]
            del acct.orders[r.order_id]
            if r.reduce_only:
                acct.ro_orders -= 1
            status = "cancelled" if ended else "filled"
            self._ended(r, _CANCELLED if ended else _FILLED)
        if self._ro_dirty:
            self._enforce_reduce_only(out_events)
        if self._mmp_hit:
            self._mmp_trip(out_events)
        return Outcome(cmd.seq, True, None, "", tuple(out_events),
                       {"order_id": r.order_id, "client_order_id": r.client_order_id, "instrument": m.name,
                        "status": status, "price": r.price, "size": r.size, "filled": r.size - r.remaining,
                        "remaining": r.remaining if not ended else 0, "fills": fills})

    # ------------------------------------------------------------------ prices

    def _price(self, cmd: C.PriceUpdate) -> Outcome:
        und = self._feeds.get(cmd.feed)
        if und is None:
            return Outcome(cmd.seq, True, None, f"feed {cmd.feed!r} is not used", (), {"ignored": True})
        self._status[und] = cmd.status
        events: list = []
        if cmd.status not in _MOVING_STATUSES or cmd.price <= 0:
            return Outcome(cmd.seq, True, None, "", (),
                           {"underlying": und, "status": cmd.status, "mark": self._mark.get(und)})
        q = index_to_quote(cmd.price, self._registry.quote_decimals)
        publish_ms = cmd.publish_ts * 1000
        pend = self._pending_fix.get(und)
        if pend:
            last = self._last_px.get(und)
            while pend and pend[0] < publish_ms:
                e = pend.pop(0)
                if last is not None and last[0] <= e:
                    self._fixings[(und, e)] = (last[1], False)
                else:  # no price at or before expiry: the first later one
                    self._fixings[(und, e)] = (index_to_quote(cmd.price, self._registry.quote_decimals), True)
        self._last_px[und] = (publish_ms, q)
        self._index[und] = q
        perp = self._perp.get(und)
        tick = perp.tick if perp is not None else self._option_tick(und)
        new = round_to_tick(q, tick)
        old = self._mark.get(und)
        self._mark[und] = new
        self._mark_ts[und] = self._now_ms
        n = 0
        liquidated = adl = 0
        if old is not None and new != old:
            self._drift[und] = self._drift.get(und, 0) + abs(new - old)
        if perp is not None and perp.holders:
            if old is not None and new != old:
                d = new - old
                sc = perp.scale
                # _move inlined: one variation move per holder is most of a price update
                # and _sweep's bound test too, while the account is in cache: only the accounts
                # that fail it (suspects, in holder order) are swept after every move is made
                delta = 0
                sn, touched, dirty = self._step_net, self._touched, self._batch_dirty
                drift = self._drift
                suspects = []
                for acct, ex in perp.holders.items():
                    amt = ex.size * d // sc
                    if amt:
                        c = acct.primary_chain
                        acct.balances[c] += amt  # the primary chain's entry exists from creation
                        acct.total += amt
                        delta += amt
                        sn[c] = sn.get(c, 0) + amt
                        touched.add(acct)
                        dirty[acct.address] = None
                    cap = acct.mm_cap  # _mm_bound inlined
                    if cap is not None:
                        for u, d0, sens, den, slack in acct.mm_sens:
                            dd = drift.get(u, 0) - d0
                            if dd:
                                cap += -(-sens * dd // den) + slack
                        if acct.total >= cap:
                            continue
                    suspects.append(acct)
                self._delta += delta
                n = len(perp.holders)
            else:
                suspects = list(perp.holders)
            events.append(MarkUpdated(und, q, new, cmd.status, n))
            liquidated = self._sweep(suspects, events)
            if self._unwind_due:
                adl = self._unwind(events)
        else:
            events.append(MarkUpdated(und, q, new, cmd.status, 0))
        fired = refused = 0
        if self._triggers:
            up, down = self._trig_up.get(und), self._trig_down.get(und)
            if (up and up[0][0] <= new) or (down and -down[0][0] >= new):
                fired, refused = self._fire_triggers(und, new, events)
        return Outcome(cmd.seq, True, None, "", tuple(events),
                       {"underlying": und, "status": cmd.status, "index": q, "mark": new,
                        "liquidations": liquidated, "auto_deleveraged": adl, "triggers_fired": fired,
                        "triggers_rejected": refused})

    def _option_tick(self, und: str) -> int:
        spec = self._registry.config(und).option
        return spec.tick_size if spec is not None else 1

    # ------------------------------------------------------------------ liquidation

    def _sweep(self, accounts: list[Account], events: list) -> int:
        """Liquidate every account of ``accounts`` with a perp position whose equity is below maintenance.

        Most accounts are far from maintenance, so the exact requirement (a walk over every
        exposure) is not recomputed for each on every price: ``Account.mm_cap`` keeps the
        exact requirement from the last walk (None: not walked yet, or a liquidation or
        settlement changed its positions since; a fill that grows a position adds to it,
        see ``_mm_grow``), and ``mm_sens`` how fast it can grow per underlying. The requirement is Lipschitz in the
        mark: a perp's ``ceil(|s| * M * mm_bps / (scale * BPS))`` moves by at most
        ``|s| * |dM| * mm_bps / (scale * BPS) + 1``, a short call's ``ceil(unit * q / scale)``
        (unit = ``max(ceil(M * (BPS + shock) / BPS) - K, ceil(M * floor / BPS))``) by at most
        ``q * |dM| * (BPS + shock) / (BPS * scale) + q / scale + 2``, a short put's not at all.
        With ``_drift[u]`` the sum of every ``|dM|`` of ``u`` so far (so at least the distance
        between the mark then and now), ``mm_cap`` plus those bounds is an upper bound of the
        requirement now: equity at or above it is safe without the walk. Otherwise the walk
        decides, exactly as before, and refreshes the cache. Same liquidations, same order.
        """
        n = 0
        ins = self._insurance
        fee_acct = self._fee
        bound = self._mm_bound
        for acct in accounts:
            if acct is ins or acct is fee_acct:
                continue
            cap = bound(acct)
            if cap is not None and acct.total >= cap:
                continue
            if acct.total < self._mm_refresh(acct) and any(
                    ex.size and ex.market.is_perp for ex in acct.exposures.values()):
                self._liquidate(acct, events)
                n += 1
        return n

    def _mm_bound(self, acct: Account) -> int | None:
        """Return ``_sweep``'s upper bound of ``acct``'s maintenance requirement now, None if not cached.

        (``_price`` inlines the same loop in its pass over the holders.)
        """
        cap = acct.mm_cap
        if cap is None:
            return None
        drift = self._drift
        for und, d0, sens, den, slack in acct.mm_sens:
            dd = drift.get(und, 0) - d0
            if dd:
                cap += -(-sens * dd // den) + slack
        return cap

    def _mm_grow(self, acct: Account, m: Market, before: int, after: int) -> None:
        """Keep ``acct``'s cached bound (``_sweep``) an upper bound after its position in ``m`` went ``before`` -> ``after``.

        A position that grew adds at most its own requirement at the mark now, plus one for
        rounding, to the cap, and its growth rate to ``mm_sens``: the added part is then
        bounded by both its value now and its drift since the cap was taken, an over-estimate
        and so safe. A position that shrank leaves the bound as it was (also an over-estimate);
        the next exact walk, when equity falls below the bound, tightens it.
        """
        if m.is_perp:
            grow = (after if after > 0 else -after) - (before if before > 0 else -before)
            if grow <= 0:
                return
            add = -(-grow * self._mark[m.underlying] * m.mm_bps // (m.scale * BPS)) + 1
            k, slack = grow * m.mm_bps, 1
        else:
            grow = (-after if after < 0 else 0) - (-before if before < 0 else 0)
            if grow <= 0:
                return
            add = -(-self._short_unit(m) * grow // m.scale) + 1
            if not m.is_call:
                acct.mm_cap += add
                return
            k, slack = grow * (BPS + m.risk.call_shock_bps), -(-grow // m.scale) + 2
        acct.mm_cap += add
        und = m.underlying
        for e in acct.mm_sens:
            if e[0] == und:
                e[2] += k
                e[4] += slack
                return
        acct.mm_sens.append([und, self._drift.get(und, 0), k, m.scale * BPS, slack])

    def _mm_refresh(self, acct: Account) -> int:
        """Return ``_maintenance(acct)``, caching it with its growth bounds for ``_sweep``."""
        mm = self._maintenance(acct)
        per: dict[str, list[int]] = {}
        for ex in acct.exposures.values():
            s = ex.size
            m = ex.market
            if m.is_perp:
                if not s:
                    continue
                k, slack = (s if s > 0 else -s) * m.mm_bps, 1
            elif s < 0 and m.is_call:
                k, slack = -s * (BPS + m.risk.call_shock_bps), -(s // m.scale) + 2  # ceil(q / scale) + 2
            else:
                continue
            v = per.get(m.underlying)
            if v is None:
                per[m.underlying] = [k, slack, m.scale * BPS]
            else:
                v[0] += k
                v[1] += slack
        drift = self._drift
        acct.mm_sens = [[u, drift.get(u, 0), k, den, slack] for u, (k, slack, den) in per.items()]
        acct.mm_cap = mm
        return mm

    def _liquidate(self, acct: Account, events: list) -> None:
        """Cancel the account's orders and hand its perps, then if still bankrupt its options, to the fund."""
        events.extend(self._cancel_account_orders(acct, None))
        if acct.address in self._acct_triggers:
            self._cancel_triggers(acct.address, None, "LIQUIDATION", events)
        exposures = acct.exposures
        for name in sorted(exposures):
            ex = exposures[name]
            if ex.market.is_perp and ex.size:
                self._take_over(acct, ex, self._mark[ex.market.underlying], events)
        if acct.total < 0:
            for name in sorted(exposures):
                ex = exposures.get(name)
                if ex is None or not ex.size or ex.market.is_perp or not ex.market.active:
                    continue
                mark = self._mark_of(ex.market)
                if mark is not None:
                    self._take_over(acct, ex, mark, events)
        acct.liquidations += 1
        self._cover(acct, events)

    def _take_over(self, acct: Account, ex: Exposure, price: int, events: list) -> None:
        """Move ``acct``'s position ``ex`` to the insurance fund at ``price``, with the liquidation penalty.

        A perp changes hands at its mark with no cash (variation is settled to the mark);
        an option's premium moves: ``size * price // scale`` to the account (a short pays
        the ceiling), the opposite to the fund.
        """
        ins = self._insurance
        m = ex.market
        name = m.name
        s = ex.size
        ex.trade(-s, price)
        iex = ins.exposure(m)
        iex.trade(s, price)
        acct.mm_cap = ins.mm_cap = None
        if m.is_perp and m not in self._unwind_due:
            self._unwind_due.append(m)
        m.holders.pop(acct, None)
        if iex.size:
            m.holders[ins] = iex
        else:
            m.holders.pop(ins, None)
            if iex.empty():
                del ins.exposures[name]
        if ex.empty():
            del acct.exposures[name]
        if not m.is_perp:
            cash = s * price // m.scale
            self._move(acct, cash)
            self._move(ins, -cash)
        penalty = -(-abs(s) * price * self._cfg.liquidation_penalty_bps // (m.scale * BPS))
        penalty = min(penalty, max(acct.total, 0))
        self._move(acct, -penalty)
        self._move(ins, penalty)
        st = self._ins_stats
        st["penalties"] += penalty
        st["liquidations"] += 1
        events.append(Liquidated(acct.address, name, s, price, penalty))

    def _cover(self, acct: Account, events: list) -> None:
        """Bring a bankrupt account without positions back to zero from the insurance fund."""
        if acct.total < 0 and not any(ex.size for ex in acct.exposures.values()):
            amt = -acct.total
            self._move(self._insurance, -amt)
            self._move(acct, amt)
            self._ins_stats["bankruptcies_covered"] += 1
            self._ins_stats["bankruptcy_total"] += amt
            events.append(BankruptcyCovered(acct.address, amt))

    def _unwind(self, events: list) -> int:
        """Close the perp positions the insurance fund took over this command; return how many ADLs.

        Per perp (in the order they were taken over): the fund's net position (opposite
        liquidations net out for free) is sent to the book as IOC orders, at most
        ``max_size`` each, limited to ``liquidation_band_bps`` from the mark (the fund's loss
        there is at most the band's width). What the book does not take is
        auto-deleveraged at the mark: the opposite side's positions, ranked by profit ratio
        (unrealised PnL over entry value) times leverage (notional at the mark over equity),
        or divided by it for a loss, highest first, ties by address, are reduced until the fund
        is flat. That always ends flat: positions in a perp sum to zero, so the others hold at
        least the fund's size on the opposite side. A deleveraged trader trades at the mark,
        where variation already settled them, so no cash moves; resting reduce-only orders
        are re-capped afterwards. So the fund never carries a perp's market risk from one
        command to the next; it keeps the penalties, pays the bankruptcies and the unwind's
        slippage within the band (which the penalty covers only when the account had that much
        equity left: a bankrupt account pays none).
        """
        due, self._unwind_due = self._unwind_due, []
        ins = self._insurance
        band = self._cfg.liquidation_band_bps
        n = 0
        for m in due:
            name = m.name
            mark = self._mark[m.underlying]
            tick = m.tick
            while True:  # into the book: reduce-only IOC orders, placed as a signed one would be
                iex = ins.exposures.get(name)
                s = iex.size if iex is not None else 0
                qty = min(abs(s), m.max_size) if m.max_size else abs(s)
                qty -= qty % m.lot
                if qty < m.min_size:
                    break
                if s > 0:
                    side, price = _SELL, max(tick, -(-(mark * (BPS - band)) // BPS // tick) * tick)
                else:
                    side, price = _BUY, mark * (BPS + band) // BPS // tick * tick
                try:
                    out = self._submit(_FundOrder(ins.address, name, side, price, qty), None, self._seq)
                except _Reject:  # nothing changed (e.g. the band is below one tick)
                    break
                events.extend(out.events)
                self._ins_stats["unwound_in_book"] += out.result["filled"]
                if out.result["filled"] < qty:
                    break
            iex = ins.exposures.get(name)
            rest = iex.size if iex is not None else 0
            if not rest:
                continue
            queue = []
            for acct, ex in m.holders.items():
                size = ex.size
                if acct is ins or acct is self._fee or (size > 0) == (rest > 0):
                    continue
                queue.append((-adl_score(size, ex.cost, mark, m.scale, acct.total), acct.address, acct, ex))
            queue.sort(key=lambda q: (q[0], q[1]))
            for rank, (_, _, acct, ex) in enumerate(queue, 1):
                x = min(abs(ex.size), abs(rest))
                d = x if ex.size < 0 else -x
                ex.trade(d, mark)
                iex.trade(-d, mark)
                rest -= d
                if not ex.size:
                    del m.holders[acct]
                    if ex.empty():
                        del acct.exposures[name]
                if acct.ro_orders:
                    self._ro_dirty.append((acct, m))
                events.append(AutoDeleveraged(acct.address, name, d, mark, rank))
                self._ins_stats["auto_deleveraged"] += 1
                n += 1
                if not rest:
                    break
            if rest:  # positions sum to zero: unreachable unless the ledger is broken
                raise ConservationError(f"{name}: the fund is left with {rest} after deleveraging everyone")
            m.holders.pop(ins, None)
            del ins.exposures[name]
        if self._ro_dirty:
            self._enforce_reduce_only(events)
        return n

    # ------------------------------------------------------------------ timer

    def _expire_orders(self, now: int, events: list) -> int:
        """Expire every resting order whose signed expiry is before ``now`` (good-til-time)."""
        orders, n = self._orders, 0
        for oid in self._gtd.pop_due(now):
            r = orders.get(oid)
            if r is None:  # filled or cancelled since
                continue
            for e in r.market.book.cancel(oid):
                events.append(OrderExpired(e.instrument, e.order_id, e.client_order_id, e.account, e.remaining,
                                           ExpireReason.GOOD_TIL_TIME))
            self._drop(oid, _EXPIRED)
            n += 1
        return n

    def next_order_expiry_ms(self) -> int | None:
        """Return the earliest time (ms) an order must leave the book, or None: a ``Tick`` after it removes it.

        That is the earliest signed expiry of a resting order or an untriggered trigger
        order, or deadline of an armed cancel-all-after switch. The service sequences a ``Tick`` before any command
        stamped later, so an order never trades after its expiry or its owner's switch
        deadline (the queues may name an order already gone or a switch re-armed since:
        that only makes the Tick come early).
        """
        due = self._gtd.next_due()  # called before every sequenced command: no allocation
        for t in (self._dms_q.next_due(), self._trig_q.next_due()):
            if t is not None and (due is None or t < due):
                due = t
        return due

    def _tick(self, cmd: C.Tick) -> Outcome:
        now = self._now_ms
        events: list = []
        gtd = self._expire_orders(now, events)
        trig = self._expire_triggers(now, events) if self._trig_q.due(now) else 0
        dms = self._fire_dms(now, events)
        expired = []
        heap = self._expiries
        while heap and heap[0][0] <= now:
            _, name = heapq.heappop(heap)
            m = self._markets[name]
            if not m.active:
                continue
            for e in m.book.close():
                self._drop(e.order_id, _EXPIRED)
                events.append(e)
            m.active = False
            events.append(InstrumentExpired(name, now))
            expired.append(name)
            self._unsettled.append(name)
        if expired:
            self._registry.delist_expired(now)
        settled = []
        for name in list(self._unsettled):
            if self._settle(self._markets[name], events):
                self._unsettled.remove(name)
                settled.append(name)
        listed = 0
        if self._next_roll_ms is None or now >= self._next_roll_ms:
            for ev in self._registry.roll(now):
                if type(ev) is InstrumentListed:
                    self._open_market(ev.instrument, now)
                    events.append(InstrumentOpened(ev.instrument.name, now))
                    listed += 1
            self._next_roll_ms = _next_roll_after(now)
        iv = self._cfg.funding_interval_ms
        funded = []
        if self._next_funding_ms is None:
            self._next_funding_ms = (now // iv + 1) * iv
        elif now >= self._next_funding_ms:
            funded = self._funding(events)
            self._next_funding_ms = (now // iv + 1) * iv
        holders: dict[Account, None] = {}
        for und in sorted(self._perp):
            for a in self._perp[und].holders:
                holders[a] = None
        liquidated = self._sweep(list(holders), events)
        adl = self._unwind(events) if self._unwind_due else 0
        return Outcome(cmd.seq, True, None, "", tuple(events),
                       {"expired": expired, "settled": settled, "listed": listed, "funding": funded,
                        "liquidations": liquidated, "auto_deleveraged": adl, "orders_expired": gtd,
                        "cancel_all_after": dms,
                        "triggers_expired": trig})

    def _open_market(self, inst, now: int) -> Market:  # noqa: ANN001
        m = Market(inst, book_for(inst), self._cfg.trades_kept, self._params[inst.underlying.symbol])
        m.book.ro_room = ReduceRoom(self._accounts, m.name)
        self._markets[m.name] = m
        if m.is_perp:
            self._perp[m.underlying] = m
        else:
            heapq.heappush(self._expiries, (m.expiry_ms, m.name))
            pend = self._pending_fix.setdefault(m.underlying, [])
            if m.expiry_ms not in pend and (m.underlying, m.expiry_ms) not in self._fixings:
                pend.append(m.expiry_ms)
                pend.sort()
        return m

    def _settlement_price(self, m: Market) -> tuple[int, bool] | None:
        """Return (price, fallback) for an expired option; the hook for the settlement TWAP."""
        fx = self._fixings.get((m.underlying, m.expiry_ms))
        if fx is not None:
            return fx
        last = self._last_px.get(m.underlying)
        if last is None:
            return None
        return last[1], last[0] > m.expiry_ms

    def _settle(self, m: Market, events: list) -> bool:
        sp = self._settlement_price(m)
        if sp is None:
            return False
        price, fallback = sp
        s_px = round_to_tick(price, m.tick)
        intrinsic = max(s_px - m.strike, 0) if m.is_call else max(m.strike - s_px, 0)
        paid = received = 0
        holders = list(m.holders.items())
        for acct, ex in holders:
            s = ex.size
            if s > 0:
                amt = s * intrinsic // m.scale
                self._move(acct, amt)
                received += amt
            else:
                amt = -(-(-s) * intrinsic // m.scale)
                self._move(acct, -amt)
                paid += amt
            ex.trade(-s, intrinsic)
            acct.mm_cap = None
            if ex.empty():
                del acct.exposures[m.name]
        m.holders.clear()
        self._move(self._insurance, paid - received)
        m.settled = True
        events.append(OptionSettled(m.name, s_px, intrinsic, len(holders), received, paid - received, fallback))
        for acct, _ in holders:
            if acct.total < 0 and any(ex.size for ex in acct.exposures.values()):
                self._liquidate(acct, events)  # bankrupt by the settlement: its other positions go too
            else:
                self._cover(acct, events)
        return True

    def _funding(self, events: list) -> list[dict]:
        out = []
        clamp_e8 = self._cfg.funding_clamp_bps * 10_000
        for und in sorted(self._perp):
            m = self._perp[und]
            idx = self._index.get(und)
            if idx is None or not m.holders:
                continue
            bid, ask = m.book.best_bid(), m.book.best_ask()
            ref = (bid + ask) // 2 if bid is not None and ask is not None else m.last_price
            if ref is None:
                continue
            rate = funding_rate_e8(ref, idx, clamp_e8)
            mark = self._mark[und]
            hist = self._funding_hist.get(und)
            if hist is None:
                hist = self._funding_hist[und] = deque(maxlen=self._cfg.funding_kept)
            hist.append((self._now_ms, rate, mark))
            if not rate:
                continue
            paid = received = 0
            for acct, ex in m.holders.items():
                pay = funding_payment(ex.size, mark, rate, m.scale)
                self._move(acct, -pay)
                ex.funding += pay
                if pay > 0:
                    paid += pay
                else:
                    received -= pay
            self._move(self._insurance, paid - received)
            events.append(FundingPaid(m.name, rate, mark, paid, received, paid - received))
            out.append({"instrument": m.name, "rate_e8": rate, "mark": mark, "paid": paid, "received": received})
        return out

    # ------------------------------------------------------------------ withdrawals and batches

    def _chain_ids(self) -> tuple[int, ...]:
        """Return the settlement chains, ascending (see the module doc)."""
        chains = self._cfg.settlement_chains
        if chains:
            return tuple(c.chain_id for c in chains)
        return tuple(sorted(self._deposit_chains | {self._cfg.hub_chain_id}))

    def _chain_spec(self, chain_id: int) -> SettlementChain | None:
        chains = self._cfg.settlement_chains
        if chains:
            for c in chains:
                if c.chain_id == chain_id:
                    return c
            return None
        return SettlementChain(chain_id) if chain_id in self._chain_ids() else None

    def _withdraw(self, cmd: C.Withdraw) -> Outcome:
        w = cmd.withdrawal
        addr = w.account
        if cmd.signer != addr:
            raise _Reject(RejectCode.UNAUTHORIZED_SIGNER,
                          f"a withdrawal must be signed by {addr} itself (session keys cannot withdraw)")
        nkey = _nonce_key(addr, cmd.signer)
        self._nonce_check(nkey, w.nonce, w.expiry)
        dest = w.destination_chain_id
        spec = self._chain_spec(dest)
        if spec is None:
            raise _Reject(RejectCode.UNKNOWN_CHAIN, f"chain {dest} is not a settlement chain")
        if spec.token is not None and w.token != spec.token:
            raise _Reject(RejectCode.UNKNOWN_TOKEN, f"token {w.token} is not the settlement token of chain {dest}")
        native = w.amount
        scale = spec.scale
        if not isinstance(native, int) or isinstance(native, bool) or native <= 0 or native % scale:
            raise _Reject(RejectCode.INVALID_AMOUNT,
                          f"amount {native} must be a positive multiple of {scale} (one canonical unit)")
        amount = native // scale
        if int(w.recipient, 16) == 0:
            raise _Reject(RejectCode.INVALID_RECIPIENT, "the recipient must not be the zero address")
        if dest in self._halted:
            raise _Reject(RejectCode.WITHDRAWALS_HALTED, f"withdrawals on chain {dest} are halted: {self._halted[dest]}")
        wid = eip712.struct_hash(w)
        if wid in self._withdrawals:
            raise _Reject(RejectCode.NONCE_REUSED, f"withdrawal 0x{wid.hex()} was already accepted")
        acct = self._accounts.get(addr)
        if acct is None:
            raise _Reject(RejectCode.INSUFFICIENT_FREE_COLLATERAL, f"{addr} has no collateral")
        im = self._initial(acct)
        if acct.total - amount < im:
            raise _Reject(RejectCode.INSUFFICIENT_FREE_COLLATERAL,
                          f"free collateral {acct.total - im} (equity {acct.total}, initial margin {im}) < {amount}")
        # ------------------------------------------------ accepted: effects from here on
        self._nonce_use(nkey, w.nonce, w.expiry)
        moves = pull_to(acct.balances, dest, amount)
        for src, amt in moves:
            self._shift(acct, src, dest, amt)
        b = acct.balances
        b[dest] = b.get(dest, 0) - amount
        acct.total -= amount
        self._delta -= amount
        self._external -= amount
        self._withdrawn += amount
        self._touched.add(acct)
        self._batch_dirty[addr] = None
        rec = WithdrawalRecord(wid, addr, w.recipient, dest, w.token, amount, native, w.nonce, cmd.seq, cmd.ts_ms,
                               moves)
        self._withdrawals[wid] = rec
        self._acct_withdrawals.setdefault(addr, []).append(wid)
        self._reserved.append(wid)
        ev = WithdrawalReserved(wid, addr, dest, w.recipient, amount, moves)
        return Outcome(cmd.seq, True, None, "", (ev,), rec.to_dict())

    def _set_halt(self, cmd: C.SetWithdrawalHalt) -> Outcome:
        c = cmd.chain_id
        if self._chain_spec(c) is None:
            raise _Reject(RejectCode.UNKNOWN_CHAIN, f"chain {c} is not a settlement chain")
        if cmd.halted:
            self._halted[c] = cmd.reason
        else:
            self._halted.pop(c, None)
        return Outcome(cmd.seq, True, None, "", (WithdrawalsHalted(c, bool(cmd.halted), cmd.reason),),
                       {"chain_id": c, "halted": bool(cmd.halted), "reason": cmd.reason})

    def _plan(self, seq: int, ts_ms: int, journal_hash: bytes):  # noqa: ANN202 - BatchPlan
        """Build the next batch from the current state without changing it (``_Reject`` if impossible)."""
        accounts = self._accounts
        dirty = self._batch_dirty  # an unchanged account was settled non-negative by the last batch
        for addr in dirty:
            a = accounts[addr]
            if a.total < 0:
                raise _Reject(RejectCode.NEGATIVE_EQUITY,
                              f"account {a.address} has a negative total {a.total}: it cannot be settled")
        ws = self._withdrawals
        payouts = [Payout(r.withdrawal_id, r.account, r.recipient, r.chain_id, r.amount)
                   for r in (ws[i] for i in self._reserved)]
        try:
            return build_batch(number=self._batch_number + 1, seq=seq, ts_ms=ts_ms, chains=self._chain_ids(),
                               balances={a: accounts[a].balances for a in dirty}, known=accounts,
                               liquidity=self._liquidity(), rebalance_bps=self._cfg.liquidity_rebalance_bps,
                               liquidity_weights=self._lp_funding,
                               settled=self._projected, payouts=payouts, gross=self._gross,
                               cumulative=self._cumulative, state_root=self.state_root(), journal_hash=journal_hash)
        except ValueError as e:
            raise _Reject(RejectCode.UNKNOWN_CHAIN, str(e)) from None

    def _liquidity(self) -> tuple[str, dict[int, int]] | None:
        """Return (account, balances) of the configured liquidity account once it holds anything."""
        la = self._cfg.liquidity_account
        acct = self._accounts.get(la) if la is not None else None
        return None if acct is None else (la, acct.balances)

    def _fail_halted(self) -> list:
        """Fail every reserved withdrawal to a halted chain: credit it back; return the events."""
        halted = self._halted
        if not halted or not self._reserved:
            return []
        ws = self._withdrawals
        keep, events = [], []
        for wid in self._reserved:
            r = ws[wid]
            c = r.chain_id
            if c not in halted:
                keep.append(wid)
                continue
            acct = self._accounts[r.account]
            acct.balances[c] = acct.balances.get(c, 0) + r.amount
            acct.total += r.amount
            self._touched.add(acct)
            self._batch_dirty[acct.address] = None
            self._delta += r.amount
            self._external += r.amount
            self._withdrawn -= r.amount
            r.status = FAILED
            r.reason = f"withdrawals on chain {c} are halted: {halted[c]}"
            events.append(WithdrawalFailed(wid, r.account, c, r.amount, r.reason))
        if events:
            self._reserved = keep
        return events

    def _socialise(self) -> tuple[list, list]:
        """Refill a negative insurance fund before a batch; return (events, moves to undo).

        Fees pay first (the exchange's revenue backstops its fund), then every other
        account with a positive balance pays ``floor(rest * balance / sum)``, the units
        left by flooring going one each to the largest balances (ties: lower address).
        No share exceeds a balance; if all positive balances cannot cover the deficit the
        fund stays negative and the batch is refused (``negative_equity``).
        """
        ins, fee_acct = self._insurance, self._fee
        deficit = -ins.total
        if deficit <= 0:
            return [], []
        moves: list[tuple[Account, int]] = []
        from_fees = min(deficit, max(fee_acct.total, 0))
        if from_fees:
            moves += [(fee_acct, -from_fees), (ins, from_fees)]
        rest = deficit - from_fees
        payers: list[Account] = []
        if rest:
            payers = sorted((a for a in self._accounts.values() if a.total > 0 and a is not ins and a is not fee_acct),
                            key=lambda a: a.address)
            base = sum(a.total for a in payers)
            rest = min(rest, base)
            cuts = {a.address: rest * a.total // base for a in payers} if rest else {}
            left = rest - sum(cuts.values())
            for a in sorted(payers, key=lambda a: (-a.total, a.address))[:left]:
                cuts[a.address] += 1
            payers = [a for a in payers if cuts.get(a.address)]
            for a in payers:
                moves += [(a, -cuts[a.address]), (ins, cuts[a.address])]
        for acct, amt in moves:
            self._move(acct, amt)
        return [LossSocialised(deficit, from_fees, rest, len(payers))], moves

    def _unmove(self, moves: list) -> None:
        """Reverse ``_move``s of this command (a reject changes nothing)."""
        for acct, amt in reversed(moves):
            self._move(acct, -amt)
        sn = self._step_net
        for c in [c for c, v in sn.items() if not v]:
            del sn[c]

    def _unfail(self, events: list, reserved: list) -> None:
        """Undo ``_fail_halted`` (the batch was refused after it ran: a reject changes nothing)."""
        for e in events:
            acct = self._accounts[e.account]
            acct.balances[e.chain_id] -= e.amount
            acct.total -= e.amount
            self._touched.add(acct)
            self._delta -= e.amount
            self._external -= e.amount
            self._withdrawn += e.amount
            r = self._withdrawals[e.withdrawal_id]
            r.status, r.reason = RESERVED, ""
        self._reserved = reserved

    def _close_batch(self, cmd: C.CloseBatch) -> Outcome:
        jh = cmd.journal_hash
        if not isinstance(jh, bytes) or len(jh) != 32:
            raise _Reject(RejectCode.INVALID_BATCH, "journal_hash must be 32 bytes")
        reserved, dirty = self._reserved, dict(self._batch_dirty)
        socialised, moves = self._socialise()
        failed = self._fail_halted()
        try:
            plan = self._plan(cmd.seq, cmd.ts_ms, jh)
        except _Reject:
            self._unfail(failed, reserved)
            self._unmove(moves)
            self._batch_dirty = dirty
            raise
        self._batch_dirty = {}
        for e in socialised:
            self._ins_stats["socialised"] += e.socialised
        # ------------------------------------------------ effects (totals, hence the state root, unchanged)
        batch = plan.batch
        n = batch.number
        for addr, bals in plan.targets.items():
            self._accounts[addr].balances.update(bals)
        proj = self._projected
        for part in batch.chains:
            c = part.chain_id
            for addr, d in part.deltas:
                k = (addr, c)
                proj[k] = proj.get(k, 0) + d
            for w in part.withdrawals:
                k = (w.account, c)
                proj[k] -= w.amount
        ws = self._withdrawals
        for wid in self._reserved:
            r = ws[wid]
            r.status = BATCHED
            r.batch_number = n
        self._reserved = []
        self._gross = 0
        self._cumulative = batch.cumulative
        self._batch_number = n
        self._batches[n] = batch
        self._last_batch = batch
        net = batch.netting
        ev = BatchClosed(n, len(batch.chains), len(batch.withdrawals), net.bridged, net.gross)
        return Outcome(cmd.seq, True, None, "", (*socialised, *failed, ev),
                       {"batch_number": n, "withdrawals": len(batch.withdrawals), "legs": len(batch.legs),
                        "failed_withdrawals": len(failed),
                        "netting": net.to_dict(), "cumulative": batch.cumulative.to_dict()})

    def _batch_settled(self, cmd: C.BatchSettled) -> Outcome:
        c = cmd.chain_id
        n = cmd.batch_number
        if not isinstance(n, int) or n < 1:
            raise _Reject(RejectCode.INVALID_BATCH, f"batch number {n} must be >= 1")
        last = self._chain_batch.get(c, 0)
        if n <= last:
            return Outcome(cmd.seq, True, None, "duplicate batch report ignored", (),
                           {"chain_id": c, "batch_number": n, "duplicate": True})
        if n != last + 1:
            raise _Reject(RejectCode.BATCH_OUT_OF_ORDER, f"chain {c} applied batch {last}; {n} cannot be next")
        batch = self._batches.get(n)
        if batch is None:
            raise _Reject(RejectCode.UNKNOWN_BATCH, f"batch {n} has not been closed")
        try:
            part = batch.chain(c)
        except KeyError:
            raise _Reject(RejectCode.UNKNOWN_CHAIN, f"chain {c} is not in batch {n}") from None
        conf = self._confirmed
        for addr, d in part.deltas:
            k = (addr, c)
            conf[k] = conf.get(k, 0) + d
        events: list = [ChainBatchSettled(c, n)]
        for w in part.withdrawals:
            conf[(w.account, c)] -= w.amount
            self._withdrawals[w.withdrawal_id].status = PAID
            events.append(WithdrawalPaid(w.withdrawal_id, c, n))
        self._chain_batch[c] = n
        if all(self._chain_batch.get(d, 0) >= n for d in batch.domains):
            del self._batches[n]
        return Outcome(cmd.seq, True, None, "", tuple(events),
                       {"chain_id": c, "batch_number": n, "duplicate": False, "withdrawals_paid": len(part.withdrawals)})

    # ================================================================== reads

    @property
    def now_ms(self) -> int:
        """Return the time of the last applied command."""
        return self._now_ms

    @property
    def last_seq(self) -> int:
        """Return the seq of the last applied command."""
        return self._seq

    @property
    def config(self) -> SequencerConfig:
        return self._cfg

    def total_balance(self) -> int:
        """Return the sum of every account's collateral (== total deposited, by conservation)."""
        return sum(a.total for a in self._accounts.values())

    @property
    def deposited(self) -> int:
        """Return the sum of credited deposits."""
        return self._deposited

    def balances(self) -> dict[str, int]:
        """Return address -> collateral for every account (sorted by address)."""
        return {a: self._accounts[a].total for a in sorted(self._accounts)}

    def _merkle(self) -> MerkleTree:
        touched = self._touched
        if touched:
            tree = self._tree
            for a in touched:
                tree.set(a.address, a.total)
            touched.clear()
        return self._tree

    def state_root(self) -> bytes:
        """Return the 32-byte Merkle root over account balances (leaf rule in ``merkle``)."""
        return self._merkle().root

    def proof(self, account: str) -> list[bytes]:
        """Return the Merkle proof of ``account``'s balance; KeyError if unknown."""
        return self._merkle().proof(self._canonical_read(account))

    def _canonical_read(self, address: str) -> str:
        try:
            return self._canonical(address)
        except _Reject:
            raise KeyError(address) from None

    def markets(self) -> list[dict]:
        """Return the active markets with marks, best prices and open interest."""
        return [self._market_view(self._markets[name]) for name in sorted(self._markets) if self._markets[name].active]

    def _market_view(self, m: Market) -> dict:
        und = m.underlying
        inst = m.instrument
        d = {"instrument": m.name, "kind": "perpetual" if m.is_perp else "option", "underlying": und,
             "tick_size": m.tick, "lot_size": m.lot, "min_size": m.min_size,
             "max_size": inst.spec.max_size, "size_decimals": inst.underlying.size_decimals,
             "expiry_ms": m.expiry_ms, "strike": m.strike or None,
             "option_type": inst.option_type.value if inst.option_type is not None else None,
             "index": self._index.get(und), "mark": self._mark_of(m), "status": self._status.get(und, "ok"),
             "best_bid": m.book.best_bid(), "best_ask": m.book.best_ask(), "last_price": m.last_price,
             "open_interest": sum(ex.size for ex in m.holders.values() if ex.size > 0)}
        if m.is_perp:
            hist = self._funding_hist.get(und)
            d["funding_rate_e8"] = hist[-1][1] if hist else 0  # the last one charged
            d["next_funding_ms"] = self._next_funding_ms
        return d

    def ticker(self, instrument: str) -> dict:
        """Return one market's ticker: ``markets()``'s view, best sizes, 24-hour statistics and, for an
        option, its Greeks and implied vols (``aggregator.core.marketdata``); ``UnknownInstrument``."""
        out = self.tickers([instrument])
        if not out:
            raise UnknownInstrument(f"instrument {instrument!r} is not listed")
        return out[0]

    def candles(self, instrument: str, minutes: int = 1, limit: int = 1440) -> list[list[int]]:
        """Return ``[open ms, open, high, low, close, volume]`` candles of the last 24 hours, oldest first
        (``DayStats.candles``); ``UnknownInstrument``."""
        m = self._markets.get(instrument)
        if m is None:
            raise UnknownInstrument(f"instrument {instrument!r} is not listed")
        return m.day.candles(self._now_ms, minutes, limit)

    def funding_history(self, instrument: str, limit: int = 100) -> list[dict]:
        """Return a perp's last funding intervals, oldest first (rate in 1e-8 per interval, mark);
        ``UnknownInstrument`` if not a listed perp."""
        m = self._markets.get(instrument)
        if m is None or not m.is_perp:
            raise UnknownInstrument(f"{instrument!r} is not a listed perpetual")
        hist = list(self._funding_hist.get(m.underlying, ()))
        return [{"ts_ms": t, "rate_e8": r, "mark": mk} for t, r, mk in (hist[-limit:] if limit > 0 else [])]

    def tickers(self, instruments: list[str] | None = None) -> list[dict]:
        """Return the ticker (``ticker``) of each active market of ``instruments`` (default: all, by
        name), skipping the others. The options' Greeks and implied vols are one vectorised
        computation for all of them (342 options: a few ms, not one solve per option)."""
        names = instruments if instruments is not None else sorted(self._markets)
        out, opts = [], []
        fund_clamp = self._cfg.funding_clamp_bps * 10_000
        for name in names:
            m = self._markets.get(name)
            if m is None or not m.active:
                continue
            d = self._market_view(m)
            d["ts_ms"] = self._now_ms
            bids, asks = m.book.depth(1)
            d["best_bid_size"] = bids[0][1] if bids else None
            d["best_ask_size"] = asks[0][1] if asks else None
            d["day"] = m.day.window(self._now_ms)
            if m.is_perp:
                d["funding_interval_ms"] = self._cfg.funding_interval_ms
                bid, ask, idx = d["best_bid"], d["best_ask"], d["index"]
                ref = (bid + ask) // 2 if bid is not None and ask is not None else m.last_price
                # what _funding would charge if the interval ended now (same reference, same clamp)
                d["predicted_funding_rate_e8"] = funding_rate_e8(ref, idx, fund_clamp) if ref is not None and idx else 0
            else:
                d.update(greeks=None, mark_iv=self._params[m.underlying].option_vol, bid_iv=None, ask_iv=None)
                if self._index.get(m.underlying) is not None:
                    opts.append((m, d))
            out.append(d)
        if opts:
            idx = [self._index[m.underlying] for m, _ in opts]
            k = [m.strike for m, _ in opts]
            t = [self._option_years(m) for m, _ in opts]
            calls = [m.is_call for m, _ in opts]
            g = option_greeks(idx, k, t, [d["mark_iv"] for _, d in opts], calls)
            bid_iv = implied_vols([d["best_bid"] for _, d in opts], idx, k, t, calls)
            ask_iv = implied_vols([d["best_ask"] for _, d in opts], idx, k, t, calls)
            for i, (_, d) in enumerate(opts):
                d["greeks"] = {name: float(v[i]) for name, v in g.items()}
                d["bid_iv"], d["ask_iv"] = bid_iv[i], ask_iv[i]
        return out

    def _option_years(self, m: Market) -> float:
        return max(m.expiry_ms - self._mark_ts.get(m.underlying, self._now_ms), 0) / YEAR_MS

    def insurance(self) -> dict:
        """Return the insurance fund: balance, the options it holds (its perps are unwound in the command
        that took them over), and its record since genesis: liquidations and the penalties they paid,
        bankruptcies covered and their total, perp size unwound in the book, auto-deleveragings, and
        what was socialised over other accounts after fees (internal units)."""
        ins = self._insurance
        view = self.account(ins.address) or {}
        return {"account": ins.address, "balance": ins.total, "positions": view.get("positions", []),
                **self._ins_stats}

    def _adl_rank(self, acct: Account, ex: Exposure) -> int | None:
        """Return the quintile (5: deleveraged first) of a perp position in its side's ADL queue.

        The queues of a market are computed once per sequence number (``_adl_cache``, not state):
        the account views pushed after one command share them.
        """
        m = ex.market
        mark = self._mark.get(m.underlying)
        if mark is None or not ex.size:
            return None
        cache = self._adl_cache
        hit = cache.get(m.name)
        if hit is None or hit[0] != self._seq:
            ins, fee_acct = self._insurance, self._fee
            ranks: dict[str, int] = {}
            for long in (True, False):
                side = sorted((-adl_score(e.size, e.cost, mark, m.scale, a.total), a.address)
                              for a, e in m.holders.items()
                              if (e.size > 0) == long and a is not ins and a is not fee_acct)
                ranks.update((addr, adl_quintile(i, len(side))) for i, (_, addr) in enumerate(side))
            hit = cache[m.name] = (self._seq, ranks)
        return hit[1].get(acct.address)

    def _liquidation_prices(self, acct: Account, mm: int) -> dict[str, int]:
        """Return, per underlying the account holds a perp on, the first mark (on the perp's tick grid)
        at which the sweep would liquidate it if only that mark moved: just past the mark ``P`` where
        equity meets the maintenance requirement (below ``P`` when net long, above when net short).
        An estimate: the other marks, and every short option's requirement, are held where they are
        now; the perps' variation and requirement are linear in the mark, so for perps alone it is
        exact up to the requirement's rounding. Absent: no positive ``P`` (that underlying alone
        cannot liquidate the account). ``mm``: the account's maintenance requirement now."""
        per: dict[str, list] = {}
        for ex in acct.exposures.values():
            if ex.size and ex.market.is_perp:
                m = ex.market
                d = per.setdefault(m.underlying, [Fraction(0), Fraction(0), 0])
                d[0] += Fraction(ex.size, m.scale)  # equity per unit of mark
                d[1] += Fraction(abs(ex.size) * m.mm_bps, m.scale * BPS)  # requirement per unit of mark
                d[2] += -(-abs(ex.size) * self._mark[m.underlying] * m.mm_bps // (m.scale * BPS))  # as now
        out = {}
        for und, (delta, slope, now_req) in sorted(per.items()):
            den = delta - slope
            if not den:
                continue
            mark = self._mark[und]
            p = (mm - now_req - acct.total + delta * mark) / den
            if p <= 0:
                continue
            tick = self._perp[und].tick
            k = math.ceil(p / tick) - 1 if delta > 0 else math.floor(p / tick) + 1
            if k > 0:
                out[und] = k * tick
        return out

    def _account_greeks(self, acct: Account) -> dict:
        """Return per underlying the account's delta (in the underlying), gamma, vega and theta (USDC).

        One vectorised Black-76 call over the account's option positions (the same inputs as their marks).
        """
        out: dict[str, dict] = {}
        opts = []
        for name in sorted(acct.exposures):
            ex = acct.exposures[name]
            if not ex.size:
                continue
            m = ex.market
            g = out.setdefault(m.underlying, {"delta": 0.0, "gamma": 0.0, "vega": 0.0, "theta": 0.0})
            if m.is_perp:
                g["delta"] += ex.size / m.scale
            elif self._index.get(m.underlying) is not None:
                opts.append((m, ex.size / m.scale))
        if opts:
            und = [m.underlying for m, _ in opts]
            gs = option_greeks([self._index[u] for u in und], [m.strike for m, _ in opts],
                               [self._option_years(m) for m, _ in opts],
                               [self._params[u].option_vol for u in und], [m.is_call for m, _ in opts])
            for i, (u, (_, qty)) in enumerate(zip(und, opts)):
                g = out[u]
                for k in g:
                    g[k] += qty * float(gs[k][i])
        return out

    def _mark_of(self, m: Market) -> int | None:
        und = m.underlying
        if m.is_perp:
            return self._mark.get(und)
        idx = self._index.get(und)
        if idx is None or m.expiry_ms is None:
            return None
        ts = self._mark_ts.get(und, self._now_ms)
        cache = self._mark_cache
        hit = cache.get(m.name)
        if hit is not None and hit[0] == idx and hit[1] == ts:
            return hit[2]
        mark = option_mark(idx, m.strike, m.expiry_ms, ts, m.is_call, self._params[und].option_vol)
        cache[m.name] = (idx, ts, mark)
        return mark

    def book(self, instrument: str, depth: int = 10) -> dict:
        """Return up to ``depth`` price levels per side; ``UnknownInstrument`` if not listed."""
        m = self._markets.get(instrument)
        if m is None:
            raise UnknownInstrument(f"instrument {instrument!r} is not listed")
        bids, asks = m.book.depth(depth)
        return {"instrument": instrument, "seq": self._seq, "ts_ms": self._now_ms,
                "bids": [[p, q] for p, q in bids], "asks": [[p, q] for p, q in asks]}

    @staticmethod
    def _trade_dict(rec: tuple) -> dict:
        seq, ts, name, p, q, side, mid, tid = rec[:8]
        return {"seq": seq, "ts_ms": ts, "instrument": name, "price": p, "size": q,
                "taker_side": "buy" if side == _BUY else "sell", "maker_order_id": mid, "taker_order_id": tid}

    def trades(self, instrument: str, limit: int = 100) -> list[dict]:
        """Return the instrument's most recent trades, newest first."""
        m = self._markets.get(instrument)
        if m is None:
            raise UnknownInstrument(f"instrument {instrument!r} is not listed")
        recs = list(m.trades)[-limit:] if limit > 0 else []
        return [self._trade_dict(r) for r in reversed(recs)]

    def fills(self, address: str, limit: int = 100) -> list[dict]:
        """Return the account's most recent fills, newest first."""
        acct = self._accounts.get(self._canonical_read(address))
        if acct is None:
            return []
        recs = list(acct.fills)[-limit:] if limit > 0 else []
        out = []
        for r in reversed(recs):
            d = self._trade_dict(r)
            is_taker = r[8]
            d["liquidity"] = "taker" if is_taker else "maker"
            mine_buy = (r[5] == _BUY) == is_taker
            d["side"] = "buy" if mine_buy else "sell"
            d["order_id"] = r[7] if is_taker else r[6]
            d["fee"] = r[9]
            out.append(d)
        return out

    def resting_orders(self) -> Iterator[tuple[str, int, int, int, int]]:
        """Yield ``(instrument, order_id, side, price, remaining)`` of every resting order, by order id."""
        for oid, r in self._orders.items():
            yield r.market.name, oid, r.side, r.price, r.remaining

    def open_orders(self, address: str, instrument: str | None = None) -> list[dict]:
        """Return the account's resting orders and untriggered trigger orders (by order id).

        A trigger order's entry has the keys of a resting order's (``price`` 0 for a market
        one, ``filled`` 0, ``remaining`` its size) plus ``type`` ``"trigger"``, ``order_type``,
        ``trigger_price``, ``trigger_above``, ``expiry_ms``; its status is ``"untriggered"``.
        """
        acct = self._accounts.get(self._canonical_read(address))
        if acct is None:
            return []
        out = []
        trig = self._acct_triggers.get(acct.address, {})
        for oid in sorted([*acct.orders, *trig]):
            t = trig.get(oid)
            if t is not None:
                if instrument is None or t.instrument == instrument:
                    out.append(t.to_dict())
                continue
            r = acct.orders[oid]
            if instrument is None or r.market.name == instrument:
                out.append(self._open_dict(r))
        return out

    @staticmethod
    def _open_dict(r: RestingOrder) -> dict:
        """The ``open_orders`` entry of resting order ``r``."""
        return {"order_id": r.order_id, "client_order_id": r.client_order_id, "instrument": r.market.name,
                "side": "buy" if r.side == _BUY else "sell", "price": r.price, "size": r.size,
                "filled": r.size - r.remaining, "remaining": r.remaining, "reduce_only": r.reduce_only,
                "time_in_force": r.tif, "filled_value": r.value,
                "average_price": r.value // (r.size - r.remaining) if r.value else None,
                "status": "open" if r.size == r.remaining else "partially_filled", "ts_ms": r.ts_ms}

    @staticmethod
    def _done_dict(rec: tuple) -> dict:
        oid, coid, name, side, price, size, filled, status, ts, done_ms, ro, tif, value, otype, placed = rec
        return {"order_id": oid, "client_order_id": coid, "instrument": name, "side": "buy" if side == _BUY else "sell",
                "price": price, "size": size, "filled": filled, "remaining": 0, "reduce_only": ro,
                "time_in_force": tif, "status": _DONE_STATUS[status], "ts_ms": ts, "done_ms": done_ms,
                "filled_value": value, "average_price": value // filled if filled else None,
                "order_type": ("limit", "market", "trigger")[otype - 1], "triggered_order_id": placed or None}

    def order(self, address: str, order_id: int = 0, client_order_id: int = 0) -> dict | None:
        """Return one of the account's orders by id (or client order id, the latest with it): resting (as
        ``open_orders``), untriggered trigger, or ended among the last ``orders_kept`` (``status``
        ``filled``, ``cancelled`` or ``expired``, with ``done_ms``); None if unknown or forgotten."""
        acct = self._accounts.get(self._canonical_read(address))
        if acct is None or not (order_id or client_order_id):
            return None
        if order_id:
            r = acct.orders.get(order_id)
            if r is not None:
                return self._open_dict(r)
            t = self._acct_triggers.get(acct.address, {}).get(order_id)
            if t is not None:
                return t.to_dict()
            match = [r for r in acct.done if r[0] == order_id]
        else:
            live = [o for o in self.open_orders(acct.address) if o["client_order_id"] == client_order_id]
            if live:
                return live[-1]
            match = [r for r in acct.done if r[1] == client_order_id]
        return self._done_dict(match[-1]) if match else None

    def closed_orders(self, address: str, instrument: str | None = None, limit: int = 100) -> list[dict]:
        """Return the account's ended orders, newest first (at most the last ``orders_kept``)."""
        acct = self._accounts.get(self._canonical_read(address))
        if acct is None or limit <= 0:
            return []
        out = []
        for r in reversed(acct.done):
            if instrument is None or r[2] == instrument:
                out.append(self._done_dict(r))
                if len(out) == limit:
                    break
        return out

    def account(self, address: str) -> dict | None:
        """Return balances, positions, margin and free collateral of an account, or None."""
        acct = self._accounts.get(self._canonical_read(address))
        if acct is None:
            return None
        positions = []
        im = self._initial(acct)
        mm = self._maintenance(acct)
        liq = self._liquidation_prices(acct, mm)
        for name in sorted(acct.exposures):
            ex = acct.exposures[name]
            if not ex.size:
                continue
            m = ex.market
            mark = self._mark_of(m)
            entry = ex.avg_entry()
            unreal = None if mark is None else (ex.size * mark - (ex.cost if ex.size > 0 else -ex.cost)) // m.scale
            positions.append({"instrument": name, "size": ex.size, "avg_entry": entry, "mark": mark,
                              "unrealised_pnl": unreal, "realised_pnl": ex.realised_raw // m.scale,
                              "funding_paid": ex.funding, "kind": "perpetual" if m.is_perp else "option",
                              "pnl_in_balance": m.is_perp,
                              "adl_rank": self._adl_rank(acct, ex) if m.is_perp else None,
                              "liquidation_price": liq.get(m.underlying) if m.is_perp else None})
        return {"address": acct.address, "balances": {str(c): v for c, v in sorted(acct.balances.items())},
                "primary_chain_id": acct.primary_chain, "total_collateral": acct.total, "equity": acct.total,
                "positions": positions, "initial_margin": im, "maintenance_margin": mm,
                "free_collateral": acct.total - im,
                "open_orders": len(acct.orders) + len(self._acct_triggers.get(acct.address, ())),
                "open_triggers": len(self._acct_triggers.get(acct.address, ())),
                "liquidations": acct.liquidations, "cancel_all_after_ms": self._dms.get(acct.address),
                "greeks": self._account_greeks(acct),
                "mmp": {und: {"interval_ms": st.interval, "frozen_ms": st.frozen_ms, "qty_limit": st.limit,
                              "qty_in_interval": st.qty, "delta_limit": st.delta_limit,
                              "delta_in_interval": st.delta, "frozen": st.frozen(self._now_ms),
                              "frozen_until_ms": st.frozen_until if st.frozen_until > 0 else None}
                        for (a, und), st in sorted(self._mmp.items()) if a == acct.address},
                "session_keys": dict(sorted(self._sessions.get(acct.address, {}).items()))}

    def session_keys(self, address: str) -> dict[str, int]:
        """Return session key -> valid-until (ms) of an account (expired ones included)."""
        return dict(self._sessions.get(address, {}))

    # ------------------------------------------------------------------ withdrawal and batch reads

    @property
    def withdrawn(self) -> int:
        """Return the sum of reserved withdrawals (canonical units): balances == deposited - withdrawn."""
        return self._withdrawn

    def settlement_chains(self) -> tuple[int, ...]:
        """Return the chains every batch covers (the hub's registered domains), ascending."""
        return self._chain_ids()

    def withdrawal_chains(self) -> list[dict]:
        """Return the chains a ``Withdrawal`` may name: id, settlement token (None: not checked), decimals, halt."""
        out = []
        for c in self._chain_ids():
            spec = self._chain_spec(c)
            assert spec is not None
            out.append({"chain_id": c, "token": spec.token, "token_decimals": spec.decimals,
                        "withdrawals_halted": c in self._halted, "halt_reason": self._halted.get(c)})
        return out

    def withdrawal(self, withdrawal_id: bytes | str) -> dict | None:
        """Return one withdrawal (status ``reserved``/``batched``/``paid``/``failed``), or None."""
        if isinstance(withdrawal_id, str):
            try:
                withdrawal_id = bytes.fromhex(withdrawal_id.removeprefix("0x"))
            except ValueError:
                return None
        r = self._withdrawals.get(withdrawal_id)
        return None if r is None else r.to_dict()

    def withdrawals(self, account: str, status: str | None = None) -> list[dict]:
        """Return the account's withdrawals, oldest first (optionally one status only)."""
        ids = self._acct_withdrawals.get(self._canonical_read(account), ())
        out = [self._withdrawals[i].to_dict() for i in ids]
        return out if status is None else [d for d in out if d["status"] == status]

    def withdrawals_halted(self) -> dict[int, str]:
        """Return chain -> reason for every chain whose withdrawals are halted."""
        return dict(sorted(self._halted.items()))

    def pending_batch_preview(self, journal_hash: bytes = bytes(32)) -> Batch:
        """Return the batch a ``CloseBatch`` now would close (number, deltas, legs, netting), changing nothing.

        Raise ``ValueError`` with the reject code if it could not be closed.
        """
        try:
            return self._plan(self._seq, self._now_ms, journal_hash).batch
        except _Reject as r:
            raise ValueError(f"{r.code.value}: {r.message}") from None

    def last_batch(self) -> Batch | None:
        """Return the most recently closed batch, or None."""
        return self._last_batch

    def batch(self, number: int) -> Batch | None:
        """Return a closed batch some chain has not reported applied yet (or the last one), or None."""
        b = self._batches.get(number)
        if b is None and self._last_batch is not None and self._last_batch.number == number:
            return self._last_batch
        return b

    def last_settled_batch(self, chain_id: int) -> int:
        """Return the number of the last batch the vault of ``chain_id`` reported applied (0: none)."""
        return self._chain_batch.get(chain_id, 0)

    def settled_balances(self, chain_id: int, confirmed: bool = True) -> dict[str, int]:
        """Return account -> settled balance on ``chain_id`` (non-zero only, by address).

        ``confirmed``: as of the batches the vault reported applied (plus credited deposits),
        which reconciliation compares with the vault; else projected after every closed batch.
        """
        view = self._confirmed if confirmed else self._projected
        return {a: v for (a, c), v in sorted(view.items()) if c == chain_id and v}

    def netting(self) -> dict:
        """Return the cumulative netting report and the obligations booked since the last batch."""
        cum = self._cumulative
        return {"batches": self._batch_number, **cum.to_dict(), "pending_gross": self._gross}

    # ================================================================== snapshot

    # caches, not state: _adl_cache (reads only), _delta_cache and _mark_cache (functions of the index and
    # the mark's time)
    _NOT_STATE = ("_cfg", "_handlers", "_tree", "_touched", "_adl_cache", "_delta_cache", "_mark_cache")

    def snapshot(self) -> bytes:
        """Return the whole state as bytes (pickle: trusted storage only, like the journal)."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._NOT_STATE}
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def restore(cls, config: SequencerConfig, data: bytes) -> Sequencer:
        """Rebuild a sequencer from ``snapshot()`` bytes and the same config."""
        self = cls.__new__(cls)
        self.__dict__.update(pickle.loads(data))  # noqa: S301 - our own snapshot
        self._cfg = config
        self._tree = MerkleTree((a.address, a.total) for a in self._accounts.values())
        self._touched = set()
        self._init_settlement()
        self._handlers = self._make_handlers()
        return self

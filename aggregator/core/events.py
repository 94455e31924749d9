"""Events of the sequencer's ledger and risk steps (immutable ``NamedTuple``s).

They complement the matching core's order events (``aggregator.core.orders``) in
``Outcome.events``, in the order things happened. Amounts are integers in ledger internal
units (1e-6 USDC), prices in quote units, sizes in size units; ``account`` fields are
checksum addresses.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "DepositCredited",
    "TradeSettled",
    "MarkUpdated",
    "FundingPaid",
    "Liquidated",
    "BankruptcyCovered",
    "AutoDeleveraged",
    "LossSocialised",
    "OptionSettled",
    "InstrumentOpened",
    "InstrumentExpired",
    "SessionKeyGranted",
    "SessionKeyRevoked",
    "WithdrawalReserved",
    "WithdrawalsHalted",
    "BatchClosed",
    "ChainBatchSettled",
    "WithdrawalFailed",
    "WithdrawalPaid",
    "CancelAllAfterSet",
    "CancelAllAfterTriggered",
    "MmpConfigured",
    "MmpTriggered",
    "TriggerPlaced",
    "TriggerCancelled",
    "TriggerFired",
    "TriggerRejected",
]


class DepositCredited(NamedTuple):
    account: str
    chain_id: int
    deposit_nonce: int
    amount: int


class TradeSettled(NamedTuple):
    """Ledger side of one fill: premium (options) or variation (perps) and both fees."""

    instrument: str
    maker_order_id: int
    taker_order_id: int
    maker: str
    taker: str
    taker_side: int
    price: int
    size: int
    maker_fee: int
    taker_fee: int
    buyer_cash: int  # buyer's balance change before fees (premium paid, or variation to mark)
    seller_cash: int


class MarkUpdated(NamedTuple):
    underlying: str
    index: int
    mark: int
    status: str
    variation_holders: int


class FundingPaid(NamedTuple):
    instrument: str
    rate_e8: int
    mark: int
    paid: int  # total paid by payers
    received: int  # total received by receivers
    to_insurance: int  # rounding remainder


class Liquidated(NamedTuple):
    account: str
    instrument: str
    size: int  # position size taken over by the insurance fund (signed, the account's side)
    price: int
    penalty: int


class AutoDeleveraged(NamedTuple):
    """Part of a position closed against the insurance fund at the mark (what the book did not take)."""

    account: str
    instrument: str
    size: int  # the change of the account's position (signed: + a short was reduced, - a long)
    price: int  # the mark
    rank: int  # 1 = first in the queue (the most profitable, most leveraged)


class BankruptcyCovered(NamedTuple):
    account: str
    amount: int  # paid by the insurance fund to bring the balance back to zero


class LossSocialised(NamedTuple):
    """The insurance fund was below zero at a ``CloseBatch``: fees, then a pro-rata haircut, refilled it."""

    deficit: int  # the fund's negative balance before
    from_fees: int  # taken from the fee account first
    socialised: int  # taken pro rata from every other account with a positive balance
    accounts: int  # how many accounts paid a share


class OptionSettled(NamedTuple):
    instrument: str
    settlement_price: int
    intrinsic: int
    holders: int
    paid_to_longs: int
    to_insurance: int
    fallback: bool  # no price at or before expiry: the first later price was used


class InstrumentOpened(NamedTuple):
    instrument: str
    ts_ms: int


class InstrumentExpired(NamedTuple):
    instrument: str
    ts_ms: int


class SessionKeyGranted(NamedTuple):
    account: str
    session_key: str
    valid_until_ms: int


class SessionKeyRevoked(NamedTuple):
    account: str
    session_key: str


class WithdrawalReserved(NamedTuple):
    """A withdrawal was accepted: ``amount`` (canonical) left the ledger, to be paid on ``chain_id``."""

    withdrawal_id: bytes
    account: str
    chain_id: int
    recipient: str
    amount: int
    moved: tuple  # ((from chain, amount), ...) moved to chain_id first


class WithdrawalsHalted(NamedTuple):
    """Withdrawals to ``chain_id`` were stopped (``halted``) or resumed."""

    chain_id: int
    halted: bool
    reason: str


class BatchClosed(NamedTuple):
    batch_number: int
    chains: int
    withdrawals: int
    bridged: int  # sum of the bridge legs
    gross: int  # gross cross-chain obligations netted by this batch


class ChainBatchSettled(NamedTuple):
    """The vault of ``chain_id`` applied batch ``batch_number`` (relayer report)."""

    chain_id: int
    batch_number: int


class WithdrawalFailed(NamedTuple):
    """A reserved withdrawal was not batched (its chain is halted): ``amount`` is back in the ledger."""

    withdrawal_id: bytes
    account: str
    chain_id: int
    amount: int
    reason: str


class WithdrawalPaid(NamedTuple):
    withdrawal_id: bytes
    chain_id: int
    batch_number: int


class CancelAllAfterSet(NamedTuple):
    """The account's dead man's switch was armed (``deadline_ms`` > 0) or disarmed (0)."""

    account: str
    timeout_ms: int
    deadline_ms: int


class CancelAllAfterTriggered(NamedTuple):
    """The switch was not re-armed before ``deadline_ms``: every order of the account was cancelled."""

    account: str
    deadline_ms: int
    cancelled: int


class MmpConfigured(NamedTuple):
    """Market maker protection for the account's options on ``underlying`` (interval 0: off)."""

    account: str
    underlying: str
    interval_ms: int
    frozen_ms: int
    qty_limit: int
    delta_limit: int = 0


class MmpTriggered(NamedTuple):
    """Maker fills passed the limit: option orders on ``underlying`` cancelled, new ones refused until
    ``frozen_until_ms`` (0: until the next MmpConfig)."""

    account: str
    underlying: str
    qty_in_interval: int
    cancelled: int
    frozen_until_ms: int
    delta_in_interval: int = 0  # net delta of the window's fills (size units of the underlying)


class TriggerPlaced(NamedTuple):
    """A trigger order is live (untriggered): it fires once the mark is at or beyond ``trigger_price``."""

    account: str
    instrument: str
    trigger_id: int
    client_order_id: int
    side: int
    trigger_price: int
    trigger_above: bool
    size: int


class TriggerCancelled(NamedTuple):
    """An untriggered trigger order was removed. ``reason``: ``USER`` (a Cancel), ``CANCEL_ALL`` (a
    CancelAll or the dead man's switch), ``LIQUIDATION`` or ``GOOD_TIL_TIME`` (its signed expiry)."""

    account: str
    instrument: str
    trigger_id: int
    client_order_id: int
    reason: str


class TriggerFired(NamedTuple):
    """The mark crossed the trigger price and the order was placed as ``order_id``; its events follow."""

    account: str
    trigger_id: int
    order_id: int


class TriggerRejected(NamedTuple):
    """The mark crossed the trigger price but the order checks refused it (``code``: a reject code); it is gone."""

    account: str
    trigger_id: int
    code: str
    message: str

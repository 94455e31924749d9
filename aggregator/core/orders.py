"""Order vocabulary of the matching core: enums, reason codes, immutable events.

The enum values are the uint8 codes signed in EIP-712 messages (``aggregator.eip712``);
0 is never a valid code, so a forgotten field cannot silently mean something. Reason
codes are ``StrEnum`` members whose values are stable wire strings. Events are
``NamedTuple`` subclasses: immutable, hashable, comparable, cheap to build (the matcher
builds them with ``tuple.__new__``), and they never hold a reference to book internals.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import IntEnum, StrEnum
from typing import NamedTuple

__all__ = [
    "Side",
    "OrderType",
    "TimeInForce",
    "SelfTradePrevention",
    "RejectReason",
    "CancelReason",
    "ExpireReason",
    "OrderAccepted",
    "OrderRejected",
    "OrderFilled",
    "OrderCancelled",
    "OrderAmended",
    "OrderExpired",
    "CancelRejected",
    "AmendRejected",
    "Event",
    "OrderView",
]


class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3
    POST_ONLY = 4


class SelfTradePrevention(IntEnum):
    CANCEL_RESTING = 1
    CANCEL_TAKING = 2
    CANCEL_BOTH = 3


class RejectReason(StrEnum):
    """Why a request was refused. The values are stable wire codes."""

    ORDER_ID_NOT_INCREASING = "ORDER_ID_NOT_INCREASING"
    UNKNOWN_INSTRUMENT = "UNKNOWN_INSTRUMENT"
    INSTRUMENT_CLOSED = "INSTRUMENT_CLOSED"
    INVALID_SIDE = "INVALID_SIDE"
    INVALID_TIME_IN_FORCE = "INVALID_TIME_IN_FORCE"
    INVALID_STP = "INVALID_STP"
    INVALID_PRICE = "INVALID_PRICE"
    INVALID_TICK = "INVALID_TICK"
    INVALID_SIZE = "INVALID_SIZE"
    INVALID_LOT = "INVALID_LOT"
    SIZE_BELOW_MIN = "SIZE_BELOW_MIN"
    SIZE_ABOVE_MAX = "SIZE_ABOVE_MAX"
    INVALID_BAND = "INVALID_BAND"
    NO_REFERENCE_PRICE = "NO_REFERENCE_PRICE"
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    NOT_ORDER_OWNER = "NOT_ORDER_OWNER"
    AMEND_NO_CHANGE = "AMEND_NO_CHANGE"
    AMEND_SIZE_BELOW_FILLED = "AMEND_SIZE_BELOW_FILLED"


class CancelReason(StrEnum):
    USER = "USER"
    SELF_TRADE_PREVENTION = "SELF_TRADE_PREVENTION"
    CANCEL_ALL = "CANCEL_ALL"
    REDUCE_ONLY = "REDUCE_ONLY"  # the position it would reduce shrank or closed
    MMP = "MMP"  # its owner's market maker protection tripped (aggregator.core.sequencer)


class ExpireReason(StrEnum):
    IOC_REMAINDER = "IOC_REMAINDER"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    INSTRUMENT_CLOSED = "INSTRUMENT_CLOSED"
    GOOD_TIL_TIME = "GOOD_TIL_TIME"  # the signed order's expiry passed while it rested


# -------------------------------------------------------------------------- events


class OrderAccepted(NamedTuple):
    """The order passed validation and entered matching (``price`` is the limit used)."""

    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    side: int
    order_type: int
    price: int
    size: int
    time_in_force: int
    stp: int
    reduce_only: bool


class OrderRejected(NamedTuple):
    """The order was refused before matching; nothing changed."""

    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    reason: RejectReason


class OrderFilled(NamedTuple):
    """One execution between a resting maker and an incoming taker, at the maker's price."""

    instrument: str
    maker_order_id: int
    taker_order_id: int
    maker_account: Hashable
    taker_account: Hashable
    maker_client_order_id: int
    taker_client_order_id: int
    taker_side: int
    price: int
    size: int
    maker_remaining: int
    taker_remaining: int


class OrderCancelled(NamedTuple):
    """The order left the book (or, for a taker, stopped matching); ``remaining`` died."""

    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    remaining: int
    reason: CancelReason


class OrderAmended(NamedTuple):
    """Price and/or total size changed; ``remaining`` is the new open quantity."""

    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    price: int
    size: int
    remaining: int
    priority_kept: bool


class OrderExpired(NamedTuple):
    """The order's time in force (or the instrument's end) ended it; ``remaining`` died."""

    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    remaining: int
    reason: ExpireReason


class CancelRejected(NamedTuple):
    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    reason: RejectReason


class AmendRejected(NamedTuple):
    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    reason: RejectReason


Event = (
    OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCancelled
    | OrderAmended
    | OrderExpired
    | CancelRejected
    | AmendRejected
)


class OrderView(NamedTuple):
    """A read-only snapshot of a resting order; ``priority`` orders arrivals in a book."""

    instrument: str
    order_id: int
    client_order_id: int
    account: Hashable
    side: int
    price: int
    size: int
    remaining: int
    time_in_force: int
    stp: int
    reduce_only: bool
    priority: int

"""Client errors: a ccxt-style tree, one class per stable API error code.

The tree splits in two, as ``ccxt/base/errors.py`` does:

    OmniclearError
    ├── ExchangeError                 the venue refused: do not retry the same request
    │   ├── AuthenticationError       bad_signature, unauthorized (WebSocket login)
    │   │   └── PermissionDenied      unauthorized_signer
    │   ├── BadRequest                invalid_request, bad_request, not_found, ...
    │   │   ├── BadSymbol             unknown_instrument (and symbols the client does not know)
    │   │   ├── InvalidAddress        invalid_address, invalid_recipient
    │   │   ├── InvalidNonce          nonce_reused, expired, nonce_window
    │   │   └── InvalidOrder          invalid_tick, invalid_lot, invalid_amend, ...
    │   │       ├── OrderNotFound             order_not_found
    │   │       ├── DuplicateOrderId          duplicate_client_order_id
    │   │       ├── OrderImmediatelyFillable  post_only_would_cross
    │   │       ├── OrderNotFillable          fok_not_fillable
    │   │       └── MarketClosed              market_closed, no_price
    │   ├── InsufficientFunds         insufficient_margin, insufficient_free_collateral, negative_equity
    │   ├── OperationRejected         withdrawals_halted, unknown_chain, unknown_token, batch codes
    │   └── BadResponse               the venue answered something that is not the API's JSON
    └── NetworkError                  transient: retry (idempotent reads, or re-sign a new nonce)
        ├── RateLimitExceeded         rate_limited
        ├── RequestTimeout            the request timed out (it may or may not have been executed)
        └── ExchangeNotAvailable      unavailable, connection refused / reset, HTTP 5xx

Two deliberate placements: ``InvalidNonce`` is a ``BadRequest`` (ccxt files it under
``NetworkError``), because resending the same signed bytes can never succeed: the caller
must sign a new message. ``RateLimitExceeded`` is a ``NetworkError`` as in ccxt (where it
sits under ``DDoSProtection``): waiting and resending the same request is correct.

``ERROR_CLASSES`` maps every stable code to exactly one class; ``error_for`` builds the
exception for an error body and falls back on the HTTP status for codes it does not know.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "OmniclearError",
    "ExchangeError",
    "AuthenticationError",
    "PermissionDenied",
    "BadRequest",
    "BadSymbol",
    "InvalidAddress",
    "InvalidNonce",
    "InvalidOrder",
    "OrderNotFound",
    "DuplicateOrderId",
    "OrderImmediatelyFillable",
    "OrderNotFillable",
    "MarketClosed",
    "InsufficientFunds",
    "OperationRejected",
    "BadResponse",
    "NetworkError",
    "RateLimitExceeded",
    "RequestTimeout",
    "ExchangeNotAvailable",
    "ERROR_CLASSES",
    "error_for",
]


class OmniclearError(Exception):
    """Root of every error the client raises.

    ``code`` is the API's stable error code (None for client-side errors), ``status`` the
    HTTP status (None when no response was received), ``seq`` the journal sequence number
    when the venue sequenced and then rejected the request.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 seq: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.seq = seq
        self.body = body


class ExchangeError(OmniclearError):
    """The venue refused the request; sending it again unchanged gives the same answer."""


class AuthenticationError(ExchangeError):
    """The signature or the WebSocket login is not valid."""


class PermissionDenied(AuthenticationError):
    """The signer is valid but may not act for the account (not the account nor its session key)."""


class BadRequest(ExchangeError):
    """The request is malformed or names something that does not exist."""


class BadSymbol(BadRequest):
    """The instrument is not listed."""


class InvalidAddress(BadRequest):
    """An address is malformed or not acceptable."""


class InvalidNonce(BadRequest):
    """The nonce was used already, or the expiry is past or beyond the venue's window."""


class InvalidOrder(BadRequest):
    """The order (or amend) breaks an instrument or order rule; also raised before sending."""


class OrderNotFound(InvalidOrder):
    """No open order of the account has that id."""


class DuplicateOrderId(InvalidOrder):
    """The client order id is already used by an open order of the account."""


class OrderImmediatelyFillable(InvalidOrder):
    """A post-only order would have crossed the book."""


class OrderNotFillable(InvalidOrder):
    """A fill-or-kill order could not be filled entirely."""


class MarketClosed(InvalidOrder):
    """The market is closed or has no price: only reduce-only orders (or none) are accepted."""


class InsufficientFunds(ExchangeError):
    """The account's margin or free collateral does not cover the request."""


class OperationRejected(ExchangeError):
    """The venue refused an operation for a reason outside the order rules."""


class BadResponse(ExchangeError):
    """The venue's answer is not the API's JSON (a proxy page, a truncated body)."""


class NetworkError(OmniclearError):
    """A transient failure: the request may be retried (a signed one only with a new nonce)."""


class RateLimitExceeded(NetworkError):
    """The account's or the client IP's token bucket is empty: wait and retry."""


class RequestTimeout(NetworkError):
    """No answer in time: the request may or may not have been executed."""


class ExchangeNotAvailable(NetworkError):
    """The venue is down, stopping, or unreachable."""


ERROR_CLASSES: dict[str, type[OmniclearError]] = {
    # authentication
    "bad_signature": AuthenticationError,
    "unauthorized": AuthenticationError,
    "unauthorized_signer": PermissionDenied,
    # malformed requests
    "invalid_request": BadRequest,
    "bad_request": BadRequest,
    "invalid_amount": BadRequest,
    "not_found": BadRequest,
    "method_not_allowed": BadRequest,
    "payload_too_large": BadRequest,
    "unsupported_media_type": BadRequest,
    "http_error": BadRequest,
    "unknown_instrument": BadSymbol,
    "invalid_address": InvalidAddress,
    "invalid_recipient": InvalidAddress,
    "nonce_reused": InvalidNonce,
    "expired": InvalidNonce,
    "nonce_window": InvalidNonce,
    # order rules
    "invalid_tick": InvalidOrder,
    "invalid_lot": InvalidOrder,
    "invalid_amend": InvalidOrder,
    "reduce_only_would_increase": InvalidOrder,
    "too_many_orders": InvalidOrder,
    "mmp_frozen": InvalidOrder,
    "invalid_trigger": InvalidOrder,
    "order_not_found": OrderNotFound,
    "duplicate_client_order_id": DuplicateOrderId,
    "post_only_would_cross": OrderImmediatelyFillable,
    "fok_not_fillable": OrderNotFillable,
    "market_closed": MarketClosed,
    "no_price": MarketClosed,
    # funds
    "insufficient_margin": InsufficientFunds,
    "insufficient_free_collateral": InsufficientFunds,
    "negative_equity": InsufficientFunds,
    # other refusals
    "unknown_chain": OperationRejected,
    "unknown_token": OperationRejected,
    "withdrawals_halted": OperationRejected,
    "invalid_batch": OperationRejected,
    "batch_out_of_order": OperationRejected,
    "unknown_batch": OperationRejected,
    "rejected": OperationRejected,
    "internal": ExchangeError,
    # transient
    "rate_limited": RateLimitExceeded,
    "unavailable": ExchangeNotAvailable,
}


def _class_for_status(status: int | None) -> type[OmniclearError]:
    if status is None:
        return ExchangeError
    if status == 429:
        return RateLimitExceeded
    if status in (502, 503, 504):
        return ExchangeNotAvailable
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return BadRequest
    return ExchangeError if status >= 500 or status == 422 else BadRequest


def error_for(error: Any, status: int | None = None) -> OmniclearError:
    """Return the exception for an API error object ``{"code", "message"[, "seq"]}``."""
    if not isinstance(error, dict):
        return BadResponse(f"unexpected error body: {str(error)[:200]!r}", status=status, body=error)
    code = error.get("code")
    message = str(error.get("message") or code or "error")
    cls = ERROR_CLASSES.get(code) if isinstance(code, str) else None
    if cls is None:
        cls = _class_for_status(status)
    seq = error.get("seq")
    return cls(f"{code}: {message}", code=code if isinstance(code, str) else None, status=status,
               seq=seq if isinstance(seq, int) else None, body=error)

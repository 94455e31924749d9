"""One exception tree for the chain layer, split the way a caller must react.

- ``TransientChainError``: the call may succeed if repeated (connection refused, timeout,
  HTTP 429/5xx, a node that has not seen a block yet). Idempotent calls are retried.
- ``RejectedChainError``: repeating the same call gives the same answer (a revert, an
  invalid parameter, a bad signature). Never retried.
- ``NonceTooLow``: a rejection that the nonce manager answers by resyncing.
- ``ReorgDetected``: a block the watcher had processed is no longer canonical.

Errors from web3/aiohttp are translated at the boundary with ``raise ... from e``.
"""

from __future__ import annotations


class ChainError(Exception):
    """Root of every error raised by ``bridges``."""

    def __init__(self, message: str, *, chain: str | None = None) -> None:
        self.chain = chain
        super().__init__(f"[{chain}] {message}" if chain else message)


class TransientChainError(ChainError):
    """The node could not answer now; an idempotent call may be repeated."""


class RejectedChainError(ChainError):
    """The node answered and said no; repeating the call changes nothing."""


class NonceTooLow(RejectedChainError):
    """A transaction used a nonce the chain has already consumed."""


class ReorgDetected(ChainError):
    """A processed block's hash no longer matches the canonical chain."""

    def __init__(self, message: str, *, chain: str | None = None, block_number: int = 0) -> None:
        self.block_number = block_number
        super().__init__(message, chain=chain)

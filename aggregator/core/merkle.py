"""Merkle tree over account balances, for the state root and a later escape hatch.

Leaf (OpenZeppelin ``StandardMerkleTree`` style, double-hashed so a leaf can never be
confused with an inner node)::

    leaf = keccak256(bytes.concat(keccak256(abi.encode(address account, int256 balance))))

``balance`` is the account's total collateral in ledger internal units (1e-6 USDC, the
sum of its per-chain balances; it can be negative only for a bankrupt account awaiting
the insurance fund). Leaves are sorted by their bytes (ascending); the tree is built
bottom-up, each inner node ``keccak256(min(a, b) || max(a, b))`` (commutative, as
``MerkleProof.verify`` of OpenZeppelin 5 computes it), and a node without a sibling on
its level is carried up unchanged. The root of an empty tree is 32 zero bytes.

A proof is the list of sibling hashes from the leaf up; ``verify`` recomputes the root
from ``(account, balance, proof)``. Pure: keccak only, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from aggregator.eip712 import keccak

__all__ = ["EMPTY_ROOT", "leaf_hash", "MerkleTree", "verify"]

EMPTY_ROOT = bytes(32)
_INT256_MIN = -(2**255)
_INT256_MAX = 2**255 - 1


def leaf_hash(account: str, balance: int) -> bytes:
    """Return the leaf of ``(account, balance)``: keccak(keccak(abi.encode(address, int256)))."""
    if not _INT256_MIN <= balance <= _INT256_MAX:
        raise ValueError(f"balance {balance} does not fit int256")
    enc = bytes(12) + bytes.fromhex(account[2:]) + balance.to_bytes(32, "big", signed=True)
    return keccak(keccak(enc))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """A tree over ``(account, balance)`` pairs; build once, then ``root`` and ``proof``."""

    __slots__ = ("_levels", "_index")

    def __init__(self, items: Iterable[tuple[str, int]]) -> None:
        pairs = [(leaf_hash(a, b), a) for a, b in items]
        pairs.sort()
        leaves = [h for h, _ in pairs]
        self._index = {a: i for i, (_, a) in enumerate(pairs)}
        levels = [leaves]
        while len(levels[-1]) > 1:
            cur = levels[-1]
            nxt = [_pair(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
            if len(cur) % 2:
                nxt.append(cur[-1])
            levels.append(nxt)
        self._levels = levels

    @property
    def root(self) -> bytes:
        """Return the 32-byte root (zero bytes when empty)."""
        top = self._levels[-1]
        return top[0] if top else EMPTY_ROOT

    def proof(self, account: str) -> list[bytes]:
        """Return the sibling hashes from ``account``'s leaf to the root; KeyError if absent."""
        i = self._index[account]
        out = []
        for level in self._levels[:-1]:
            j = i ^ 1
            if j < len(level):
                out.append(level[j])
            i //= 2
        return out


def verify(root: bytes, account: str, balance: int, proof: Iterable[bytes]) -> bool:
    """Return whether ``proof`` proves ``(account, balance)`` under ``root``."""
    h = leaf_hash(account, balance)
    for sib in proof:
        h = _pair(h, sib)
    return h == root

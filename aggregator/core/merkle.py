"""Merkle tree over account balances, for the state root and a later escape hatch.

Leaf (OpenZeppelin ``StandardMerkleTree`` style, double-hashed so a leaf can never be
confused with an inner node)::

    leaf = keccak256(bytes.concat(keccak256(abi.encode(address account, int256 balance))))

``balance`` is the account's total collateral in ledger internal units (1e-6 USDC, the
sum of its per-chain balances; it can be negative only for a bankrupt account awaiting
the insurance fund). Leaves stand in the order the accounts were added (the sequencer
adds an account when it first sees it, so the order is part of the journal's replay);
the tree is built bottom-up, each inner node ``keccak256(min(a, b) || max(a, b))``
(commutative, as ``MerkleProof.verify`` of OpenZeppelin 5 computes it, so a proof needs
no positions), and a node without a sibling on its level is carried up unchanged. The
root of an empty tree is 32 zero bytes.

Incremental: ``set`` changes or appends one leaf and marks it; the next ``root`` or
``proof`` recomputes only the marked leaves' paths, so a batch that touched ``d`` of
``n`` accounts costs ``O(d log n)`` hashes, not a rebuild of ``2n`` (the root is the same
as a fresh tree over the same leaves: a test checks it). Positions never move: leaves
are not sorted (a balance change would reorder them) and accounts are never removed.

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
    """A tree over ``(account, balance)`` pairs in insertion order; ``set`` updates it incrementally."""

    __slots__ = ("_levels", "_index", "_dirty")

    def __init__(self, items: Iterable[tuple[str, int]] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._index: dict[str, int] = {}
        self._dirty: set[int] = set()
        for a, b in items:
            self.set(a, b)

    def set(self, account: str, balance: int) -> None:
        """Set ``account``'s balance (appending a new leaf for a new account)."""
        h = leaf_hash(account, balance)
        leaves = self._levels[0]
        i = self._index.get(account)
        if i is None:
            i = self._index[account] = len(leaves)
            leaves.append(h)
        elif leaves[i] == h:
            return
        else:
            leaves[i] = h
        self._dirty.add(i)

    def __len__(self) -> int:
        return len(self._levels[0])

    def _update(self) -> None:
        dirty = self._dirty
        if not dirty:
            return
        levels = self._levels
        k = 0
        while len(levels[k]) > 1:
            cur = levels[k]
            if k + 1 == len(levels):
                levels.append([])
            nxt = levels[k + 1]
            n = (len(cur) + 1) // 2
            if len(nxt) < n:
                nxt.extend([b""] * (n - len(nxt)))
            parents = {i >> 1 for i in dirty}
            for p in parents:
                left = 2 * p
                nxt[p] = _pair(cur[left], cur[left + 1]) if left + 1 < len(cur) else cur[left]
            dirty = parents
            k += 1
        self._dirty.clear()

    @property
    def root(self) -> bytes:
        """Return the 32-byte root (zero bytes when empty)."""
        self._update()
        top = self._levels[-1]
        return top[0] if top else EMPTY_ROOT

    def proof(self, account: str) -> list[bytes]:
        """Return the sibling hashes from ``account``'s leaf to the root; KeyError if absent."""
        self._update()
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

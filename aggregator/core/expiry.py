"""``ExpiryQueue``: items due at a time, popped in time order once the clock passes it.

Items are bucketed by their due time (ms) and the heap holds each distinct time once, so
many items due at the same time (nonces of messages signed with ``expiry = now + N s``,
orders good until the same second) cost one heap push and pop between them, not one each.
Deterministic: buckets keep insertion order and due times pop ascending; nothing reads a
clock (the caller passes ``now_ms``). Pure: no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterator

__all__ = ["ExpiryQueue"]


class ExpiryQueue:
    """Items with a due time; ``pop_due(now)`` yields those due strictly before ``now``."""

    __slots__ = ("_buckets", "_heap", "_len")

    def __init__(self) -> None:
        self._buckets: dict[int, list[Hashable]] = {}
        self._heap: list[int] = []  # the distinct due times of _buckets
        self._len = 0

    def push(self, due_ms: int, item: Hashable) -> None:
        """Add ``item``, due at ``due_ms``."""
        b = self._buckets.get(due_ms)
        if b is None:
            self._buckets[due_ms] = [item]
            heapq.heappush(self._heap, due_ms)
        else:
            b.append(item)
        self._len += 1

    def due(self, now_ms: int) -> bool:
        """Return whether an item is due strictly before ``now_ms``."""
        return bool(self._heap) and self._heap[0] < now_ms

    def pop_due(self, now_ms: int) -> Iterator[Hashable]:
        """Remove and yield every item due strictly before ``now_ms``, earliest time first."""
        heap, buckets = self._heap, self._buckets
        while heap and heap[0] < now_ms:
            items = buckets.pop(heapq.heappop(heap))
            self._len -= len(items)
            yield from items

    def next_due(self) -> int | None:
        """Return the earliest due time, or None when empty."""
        return self._heap[0] if self._heap else None

    def __len__(self) -> int:
        return self._len

"""The benchmark's random workload as a test: invariants hold and replay is exact."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import bench_matching  # noqa: E402

from aggregator.core.matching import OrderBook  # noqa: E402


def _digest(ops) -> tuple[str, OrderBook]:
    book = bench_matching.new_book()
    h = hashlib.sha256()
    bench_matching._drive(book, ops, lambda evs: h.update(repr(evs).encode()))
    return h.hexdigest(), book


def test_benchmark_workload_keeps_invariants_and_replays_identically():
    ops = bench_matching.workload(20_000, seed=11)
    d1, b1 = _digest(ops)
    d2, b2 = _digest(ops)
    b1.check_invariants()
    assert d1 == d2
    assert b1.depth(1000) == b2.depth(1000)


def test_running_the_book_makes_no_cyclic_garbage():
    # resting records point at their level and the level's deque at them; a level that is
    # dropped must let go of the dead records still queued in it, or every dropped level
    # would wait for the cyclic GC (which a sequencer tunes down)
    import gc

    ops = bench_matching.workload(20_000, seed=5)
    book = bench_matching.new_book()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        bench_matching._drive(book, ops, len)
        garbage = gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    assert len(book) > 1000  # a large book stayed alive: its own cycles are not garbage
    assert garbage == 0

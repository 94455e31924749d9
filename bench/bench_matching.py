"""Benchmark the matching core: ops/s on a seeded random 200,000-operation workload.

    python bench/bench_matching.py [--ops 200000] [--seed 7] [--repeat 3] [--engine] [--baseline REV|FILE]

The workload is generated before timing (seeded ``random.Random``): a mid price that
random-walks, limit orders that rest around it (GTC and post-only), crossing orders
(GTC, IOC, some FOK) that take one or more levels, band-protected market orders, cancels
of recent orders by id (some already filled: they count, as rejected cancels), a few
cancels by client order id and amends, from 200 accounts (so self-trade prevention
fires). One operation = one request to the book. Single thread, single core; the figure
is the best of ``--repeat`` runs over fresh books. The load average is printed before and
after: on a shared machine other processes' load lowers the figure.

``--baseline`` also times another implementation of the book (a ``matching.py`` file, or
``aggregator/core/matching.py`` at a git revision) on the same workload in the same
process, alternating runs with the current one, and prints the ratio of the best times;
it first says whether both produce the same events.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib.util
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.core.matching import MatchingEngine, OrderBook  # noqa: E402

BUY, SELL = 1, 2
GTC, IOC, FOK, POST_ONLY = 1, 2, 3, 4


def workload(n: int, seed: int) -> list[tuple]:
    """Return ``n`` operations as tuples: (kind, args...)."""
    rng = random.Random(seed)
    mid = 100_000
    ops: list[tuple] = []
    next_id = 0
    recent: list[int] = []
    for _ in range(n):
        if rng.random() < 0.02:
            mid += rng.choice((-1, 1))
        r = rng.random()
        account = f"acct{rng.randrange(200)}"
        if r < 0.30 and recent:  # cancel a recent order by id
            oid = recent[-1 - min(len(recent) - 1, int(rng.expovariate(1 / 40)))]
            ops.append(("cancel", oid))
            continue
        if r < 0.32 and recent:  # amend a recent order: size down (keeps priority) or price move
            oid = recent[-1 - min(len(recent) - 1, int(rng.expovariate(1 / 40)))]
            if rng.random() < 0.5:
                ops.append(("amend", oid, None, rng.randint(1, 5)))
            else:
                ops.append(("amend_px", oid, rng.randint(1, 20)))
            continue
        next_id += 1
        side = BUY if rng.random() < 0.5 else SELL
        size = rng.randint(1, 10)
        coid = next_id if rng.random() < 0.1 else 0
        if r < 0.80:  # passive: rests away from mid
            off = rng.randint(1, 50)
            price = mid - off if side == BUY else mid + off
            tif = POST_ONLY if rng.random() < 0.1 else GTC
            ops.append(("limit", next_id, account, side, price, size, tif, coid))
            recent.append(next_id)
        elif r < 0.97:  # crossing: through mid by a few ticks
            off = rng.randint(0, 8)
            price = mid + off if side == BUY else mid - off
            x = rng.random()
            tif = GTC if x < 0.5 else (IOC if x < 0.9 else FOK)
            ops.append(("limit", next_id, account, side, price, rng.randint(1, 30), tif, coid))
            if tif == GTC:
                recent.append(next_id)
        else:  # market with a 50 bps band
            ops.append(("market", next_id, account, side, rng.randint(1, 20)))
        if len(recent) > 5000:
            del recent[:1000]
    return ops


def _drive(target, ops: list[tuple], sink) -> None:
    """Apply ``ops`` to a book or engine; ``sink`` receives each returned event list."""
    if isinstance(target, MatchingEngine):
        _drive_engine(target, ops, sink)
        return
    book = target
    submit, cancel, amend, market = book.submit, book.cancel, book.amend, book.submit_market
    order = book.order
    for op in ops:
        k = op[0]
        if k == "limit":
            sink(submit(op[1], op[2], op[3], op[4], op[5], op[6], op[7]))
        elif k == "cancel":
            sink(cancel(op[1]))
        elif k == "market":
            sink(market(op[1], op[2], op[3], op[4], 50))
        elif k == "amend":
            sink(amend(op[1], None, None, op[3]))
        else:  # move the price toward the other side by op[2] ticks (may cross)
            o = order(op[1])
            sink(amend(op[1], None, (o.price + (op[2] if o.side == SELL else -op[2])) if o else 1, None))


def _drive_engine(eng: MatchingEngine, ops: list[tuple], sink) -> None:
    inst = "ETH-PERP"
    submit, cancel, amend, market = eng.submit, eng.cancel, eng.amend, eng.submit_market
    order = eng.book(inst).order
    for op in ops:
        k = op[0]
        if k == "limit":
            sink(submit(inst, op[1], op[2], op[3], op[4], op[5], op[6], op[7]))
        elif k == "cancel":
            sink(cancel(inst, op[1]))
        elif k == "market":
            sink(market(inst, op[1], op[2], op[3], op[4], 50))
        elif k == "amend":
            sink(amend(inst, op[1], None, None, op[3]))
        else:
            o = order(op[1])
            sink(amend(inst, op[1], None, (o.price + (op[2] if o.side == SELL else -op[2])) if o else 1, None))


def new_book(cls: type = OrderBook) -> OrderBook:
    return cls("ETH-PERP", tick_size=1, lot_size=1)


def load_baseline(spec: str):
    """Return the OrderBook class of a matching.py file, or of aggregator/core/matching.py at a git revision."""
    repo = Path(__file__).resolve().parent.parent
    if os.path.isfile(spec):
        source, name = Path(spec).read_text(), spec
    else:
        source = subprocess.run(["git", "show", f"{spec}:aggregator/core/matching.py"], cwd=repo, check=True,
                                capture_output=True, text=True).stdout
        name = f"{spec}:aggregator/core/matching.py"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("baseline_matching", loader=None))
    exec(compile(source, name, "exec"), module.__dict__)
    return module.OrderBook, name


def digest(ops: list[tuple], cls: type) -> str:
    h = hashlib.sha256()
    book = new_book(cls)
    _drive(book, ops, lambda evs: h.update(repr(evs).encode()))
    h.update(repr((book.depth(1 << 30), book.open_orders())).encode())
    return h.hexdigest()


def timed(ops: list[tuple], engine: bool, cls: type = OrderBook) -> float:
    """Return the seconds taken; events are handed to a sink and dropped, as the sequencer would."""
    if engine:
        target = MatchingEngine()
        target.add_book(new_book())
    else:
        target = new_book(cls)
    gc.collect()
    t0 = time.perf_counter()
    _drive(target, ops, len)
    return time.perf_counter() - t0


def event_counts(ops: list[tuple]) -> Counter:
    counts: Counter = Counter()
    book = new_book()
    _drive(book, ops, lambda evs: counts.update(type(e).__name__ for e in evs))
    book.check_invariants()
    counts["(resting at end)"] = len(book)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine", action="store_true", help="also time through MatchingEngine routing")
    ap.add_argument("--baseline", metavar="REV|FILE",
                    help="also time this implementation (git revision or matching.py file), alternating runs")
    a = ap.parse_args()
    load = "load average %.2f %.2f %.2f" % os.getloadavg()
    ops = workload(a.ops, a.seed)
    kinds = Counter(op[0] for op in ops)
    print(f"python {sys.version.split()[0]}  {load}  workload: {len(ops)} ops, seed {a.seed}: {dict(kinds)}")
    print(f"events: {dict(sorted(event_counts(ops).items()))}")
    base = None
    if a.baseline:
        base, base_name = load_baseline(a.baseline)
        same = digest(ops, base) == digest(ops, OrderBook)
        print(f"baseline {base_name}: {'same events and final book' if same else 'DIFFERENT events or final book'}")
    runs = [("OrderBook", False, OrderBook)]
    if base is not None:
        runs.append(("baseline", False, base))
    if a.engine:
        runs.append(("MatchingEngine", True, OrderBook))
    n = len(ops)
    for label, tune in (("gc default", False), ("gc frozen+tuned", True)):
        if tune:  # what a long-running sequencer does after start-up
            gc.freeze()
            old = gc.get_threshold()
            gc.set_threshold(100_000, 50, 100)
        best = {name: float("inf") for name, _, _ in runs}
        for _ in range(a.repeat):  # the implementations take turns, so load changes hit them alike
            for name, engine, cls in runs:
                best[name] = min(best[name], timed(ops, engine, cls))
        if tune:
            gc.set_threshold(*old)
            gc.unfreeze()
        for name, dt in best.items():
            print(f"{name:<15}{label:<17}{n / dt:>11,.0f} ops/s  ({dt * 1e3:6.1f} ms, {dt / n * 1e6:.2f} us/op)")
        if base is not None:
            print(f"{'':<15}{label:<17}OrderBook / baseline: {best['baseline'] / best['OrderBook']:.2f}x ops/s")
    print("load average %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()

"""Journal replay throughput of the sequencer: decode + apply on a fresh ``Sequencer``.

Builds a seeded random session (deposits, limit/IOC/FOK/post-only/market orders on perps and
options, cancels, cancel-alls, amends, session keys, price updates, ticks with funding,
liquidations and an option expiry), driving a live sequencer while generating so that
cancels and amends name real resting orders. The session is encoded with
``commands.encode`` (signatures are dummy bytes: replay does not re-verify them), then
decoded and applied on a fresh sequencer under the timer. Prints commands/s and the state
root, which must equal the generating sequencer's root (determinism).

Also prints decode alone (msgpack -> command objects) to show where the time goes, and
the machine load (the 2 cores are shared).

Usage: python bench/bench_replay.py [--commands 200000] [--accounts 300] [--seed 7] [--repeat 3] [--breakdown]
       [--service [--checkpoint-tail 10000]] [--mix stress|quoting]

``--service`` also writes the session to a journal on disk and times a service restart
(``SequencerService.start``: read, crc, decode, apply, book mirror), the figure a crash costs.
With ``--checkpoint-tail T`` (default 10,000; 0: skip) it also takes a checkpoint
(``aggregator.checkpoint``) of the state after command N - T in a service restarted on the
first N - T commands, and prints the fork pause in the parent, the child's write time and
the file size; then it appends the last T commands and times a restart from that
checkpoint (restore + tail replay) against the full replay of the same N commands.

``--breakdown`` times every command once more, by type (and accepted/rejected), and prints the
average microseconds and the share of the replay time of each: where the time goes.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import eip712  # noqa: E402
from aggregator.core import commands as C  # noqa: E402
from aggregator.core.events import TradeSettled  # noqa: E402
from aggregator.core.instruments import InstrumentRegistry  # noqa: E402
from aggregator.core.risk import RiskParams  # noqa: E402
from aggregator.core.sequencer import Sequencer, SequencerConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_767_247_200_000  # 2026-01-01T06:00:00Z: the 08:00 daily expires during the session
SIG = b"\x07" * 65
FEEDS = {"ETH": ("ETH-USD", 3000.0), "BTC": ("BTC-USD", 90000.0)}


def addr(i: int) -> str:
    return eip712.to_checksum_address("0x" + f"{0xBEEF0000 + i:040x}")


def make_config() -> SequencerConfig:
    reg = InstrumentRegistry.from_toml((ROOT / "aggregator" / "instruments.toml").read_text())
    return SequencerConfig(registry=reg, fee_account=addr(10**6), insurance_account=addr(10**6 + 1),
                           default_risk=RiskParams(im_bps=1000, mm_bps=500), max_open_orders=100)


# upper bounds of the draw for: price update, tick, deposit, cancel, cancel-all, amend (else place);
# and the chance that a placed perp order crosses the mid
MIXES = {
    # the heavy default: most commands are new orders, about two in three of them trade
    "stress": ((0.005, 0.006, 0.02, 0.25, 0.27, 0.31), 0.15),
    # a market maker's flow: quotes amended and cancelled far more often than they trade
    "quoting": ((0.005, 0.006, 0.01, 0.40, 0.41, 0.70), 0.02),
}


def generate(n: int, n_accounts: int, seed: int, mix_name: str = "stress") -> tuple[list[C.Command], bytes, Counter]:
    """Return (commands, final state root, mix) of a seeded session, validated live."""
    (p_price, p_tick, p_dep, p_cancel, p_call, p_amend), p_cross = MIXES[mix_name]
    rng = random.Random(seed)
    cfg = make_config()
    live = Sequencer(cfg)
    accts = [addr(i) for i in range(n_accounts)]
    keys = {a: addr(50_000 + i) for i, a in enumerate(accts[: n_accounts // 10])}
    px = {u: p for u, (_, p) in FEEDS.items()}
    cmds: list[C.Command] = []
    mix: Counter = Counter()
    nonce = [0]
    ts = T0
    seq = 0
    dep_nonce = 0
    options: list[str] = []

    def push(cmd: C.Command) -> None:
        cmds.append(cmd)
        out = live.apply(cmd)
        mix[type(cmd).__name__ + ("" if out.accepted else ":" + str(out.code))] += 1
        mix["(fills)"] += sum(type(e) is TradeSettled for e in out.events)

    def nxt() -> int:
        nonce[0] += 1
        return nonce[0]

    def signer_for(a: str) -> str:
        k = keys.get(a)
        return k if k is not None and rng.random() < 0.5 else a

    # opening: ticks list the option expiries, prices, sessions, deposits
    seq += 1
    push(C.Tick(seq, ts))
    options = [m["instrument"] for m in live.markets() if m["kind"] == "option" and m["underlying"] == "ETH"]
    options.sort(key=lambda name: live.markets and name)
    for u, (feed, p) in FEEDS.items():
        seq += 1
        push(C.PriceUpdate(seq, ts, feed, int(p * 1e8), 0, ts // 1000, "ok"))
    for a, k in keys.items():
        seq += 1
        g = eip712.SessionKey(account=a, session_key=k, valid_until=ts // 1000 + 86_400, nonce=nxt(),
                              expiry=ts // 1000 + 3600)
        push(C.GrantSessionKey(seq, ts, a, g, SIG))
    for a in accts:
        seq += 1
        dep_nonce += 1
        push(C.DepositCredit(seq, ts, rng.choice((1, 10, 42161)), dep_nonce, a, rng.randrange(2_000, 50_000) * 10**6))

    near_options = [o for o in options if "-3000-" in o or "-3200-" in o or "-2800-" in o][:12]
    while seq < n:
        seq += 1
        ts += 50
        r = rng.random()
        a = rng.choice(accts)
        exp = ts // 1000 + 600
        if r < p_price:  # price update
            u = rng.choice(("ETH", "BTC"))
            px[u] *= 1 + rng.gauss(0, 0.002)
            push(C.PriceUpdate(seq, ts, FEEDS[u][0], int(px[u] * 1e8), 0, ts // 1000, "ok"))
        elif r < p_tick:
            push(C.Tick(seq, ts))
        elif r < p_dep:
            dep_nonce += 1
            push(C.DepositCredit(seq, ts, rng.choice((1, 10, 42161)), dep_nonce, a, rng.randrange(100, 5_000) * 10**6))
        elif r < p_cancel:  # cancel a resting order
            oo = live.open_orders(a)
            if not oo:
                seq -= 1
                continue
            o = rng.choice(oo)
            c = eip712.Cancel(account=a, instrument=o["instrument"], order_id=o["order_id"], client_order_id=0,
                              nonce=nxt(), expiry=exp)
            push(C.CancelOrder(seq, ts, signer_for(a), c, SIG))
        elif r < p_call:
            c = eip712.CancelAll(account=a, instrument="", nonce=nxt(), expiry=exp)
            push(C.CancelAllOrders(seq, ts, signer_for(a), c, SIG))
        elif r < p_amend:  # amend
            oo = live.open_orders(a)
            if not oo:
                seq -= 1
                continue
            o = rng.choice(oo)
            m = next(x for x in live.markets() if x["instrument"] == o["instrument"]) if o["instrument"].endswith(
                "-C") or o["instrument"].endswith("-P") else None
            tick = m["tick_size"] if m else (10_000 if o["instrument"] == "ETH-PERP" else 100_000)
            newp = max(tick, o["price"] + rng.choice((-2, -1, 1, 2)) * tick)
            am = eip712.Amend(account=a, instrument=o["instrument"], order_id=o["order_id"], client_order_id=0,
                              price=newp, size=0, nonce=nxt(), expiry=exp)
            push(C.AmendOrder(seq, ts, signer_for(a), am, SIG))
        else:  # place
            side = rng.choice((1, 2))
            if rng.random() < 0.9 or not near_options:
                u = "ETH" if rng.random() < 0.7 else "BTC"
                inst = f"{u}-PERP"
                tick = 10_000 if u == "ETH" else 100_000
                mid = int(px[u] * 1e6)
                off = int(rng.expovariate(1 / 8) * tick) * (1 if side == 2 else -1)
                cross = rng.random() < p_cross
                price = max(tick, (mid - off if cross else mid + off) // tick * tick)
                size = rng.choice((1, 2, 5, 10, 20, 50, 100))
            else:
                inst = rng.choice(near_options)
                tick = 100_000
                price = rng.randrange(20, 400) * tick
                size = rng.choice((10, 20, 50, 100))
            q = rng.random()
            tif, otype = (1, 1)
            if q < 0.08:
                tif = 2
            elif q < 0.11:
                tif = 3
            elif q < 0.16:
                tif = 4
            elif q < 0.20 and inst.endswith("PERP"):
                otype, tif, price = 2, 2, 0
            ro = rng.random() < 0.03
            o = eip712.Order(account=a, instrument=inst, side=side, order_type=otype, time_in_force=tif,
                             self_trade_prevention=1, reduce_only=ro, price=price, size=size,
                             client_order_id=0, nonce=nxt(), expiry=exp)
            push(C.PlaceOrder(seq, ts, signer_for(a), o, SIG))
        if seq % 20_000 == 0:
            ts += 0  # room for progress output
    for _ in range(2):  # end with the expiry passed and settled
        ts += 3 * 3_600_000
        seq += 1
        push(C.Tick(seq, ts))
    return cmds, live.state_root(), mix


def breakdown(cfg: SequencerConfig, cmds: list[C.Command]) -> None:
    """Apply ``cmds`` on a fresh sequencer timing each one; print the cost per command type."""
    seqr = Sequencer(cfg)
    spent: Counter = Counter()
    count: Counter = Counter()
    clock = time.perf_counter
    gc.collect()
    gc.freeze()
    for cmd in cmds:
        t = clock()
        out = seqr.apply(cmd)
        dt = clock() - t
        k = type(cmd).__name__ + ("" if out.accepted else " (rejected)")
        spent[k] += dt
        count[k] += 1
    gc.unfreeze()
    total = sum(spent.values())
    print(f"breakdown (one timed pass, {len(cmds) / total:,.0f} commands/s with the timer):")
    for k, v in spent.most_common():
        print(f"  {k:32s} {count[k]:8,d}  {v / count[k] * 1e6:8.1f} us  {v / total:6.1%}")


def service_restart(cfg: SequencerConfig, blobs: list[bytes], root: bytes, tail: int = 0) -> None:
    """Write the session to a journal on disk, then time what a restart does: ``SequencerService.start``.

    On top of the core replay: reading the segments (crc per record), decoding, and the
    service's own state (deposit index, the book mirror). With ``tail``: the checkpoint
    figures (see the module doc).
    """
    import asyncio
    import tempfile

    from aggregator.journal import Journal
    from aggregator.sequencer_service import SequencerService

    def service(directory: str, checkpoints: bool) -> SequencerService:
        kw = {} if checkpoints else {"checkpoint_dir": os.path.join(directory, "no-checkpoints")}
        return SequencerService(lambda: Sequencer(cfg), eip712.Domain(1, addr(7)), directory, tick_interval_s=None,
                                verify_threads=1, sequencer_config=cfg, checkpoint_every=0, **kw)

    async def append(directory: str, part: list[bytes]) -> None:
        j = Journal.open(directory, fsync=False)
        for b in part:
            j.append_nowait(C.decode(b))
        await j.flush()
        await j.close()

    async def timed_start(svc: SequencerService) -> float:
        gc.collect()
        gc.freeze()
        t = time.perf_counter()
        await svc.start()
        dt = time.perf_counter() - t
        gc.unfreeze()
        return dt

    async def run(directory: str) -> None:
        head = len(blobs) - tail if 0 < tail < len(blobs) else len(blobs)
        await append(directory, blobs[:head])
        if head < len(blobs):
            # a checkpoint at N - tail, taken by a service holding that state (restarted on the first N - tail)
            svc = service(directory, checkpoints=True)  # none yet: a full replay of the first N - tail
            await svc.start()
            stats = svc.checkpoint_now()
            assert stats is not None
            while svc.checkpoint_writer.busy:
                await asyncio.sleep(0.01)
            await svc.stop()
            assert stats.outcome == "written", stats
            rss = _rss_mb()
            print(f"checkpoint at seq {stats.seq:,}: {stats.bytes / 1e6:.1f} MB; fork pause in the parent "
                  f"{stats.fork_pause_s * 1e3:.1f} ms (parent RSS {rss:,.0f} MB); child: snapshot + state root + "
                  f"pickle {stats.build_s * 1e3:.0f} ms, write + fsync {(stats.write_s - stats.build_s) * 1e3:.0f} ms, "
                  f"total {stats.write_s * 1e3:.0f} ms")
            await append(directory, blobs[head:])
        svc = service(directory, checkpoints=False)
        dt = await timed_start(svc)
        try:
            assert svc.state_root() == root, "the restarted service diverged from the generating run"
            print(f"service restart: {svc.replayed:,} commands in {dt:.2f}s: {svc.replayed / dt:,.0f} commands/s "
                  "(journal read + crc + decode + apply + book mirror)")
        finally:
            await svc.stop()
        if head < len(blobs):
            svc = service(directory, checkpoints=True)
            dt2 = await timed_start(svc)
            try:
                assert svc.restored_from == head and svc.replayed == len(blobs) - head
                assert svc.state_root() == root, "the restart from the checkpoint diverged from the generating run"
                print(f"restart from the checkpoint: restore seq {head:,} + replay {svc.replayed:,} commands in "
                      f"{dt2:.2f}s ({dt / dt2:.1f}x faster than the full replay; same state root)")
            finally:
                await svc.stop()

    with tempfile.TemporaryDirectory(prefix="omniclear-replay-") as d:
        asyncio.run(run(d))


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=200_000)
    ap.add_argument("--accounts", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--breakdown", action="store_true", help="time each command type")
    ap.add_argument("--mix", choices=sorted(MIXES), default="stress",
                    help="stress (default: mostly new orders, 2 in 3 trade) or quoting (mostly amends and cancels)")
    ap.add_argument("--service", action="store_true",
                    help="also time a service restart: the session as a journal on disk, SequencerService.start()")
    ap.add_argument("--checkpoint-tail", type=int, default=10_000, metavar="T",
                    help="with --service: checkpoint at N - T (write time, fork pause, size) and time a restart "
                         "from it (default 10,000; 0: no checkpoint)")
    args = ap.parse_args()
    t = time.perf_counter()
    cmds, root, mix = generate(args.commands, args.accounts, args.seed, args.mix)
    gen_s = time.perf_counter() - t
    blobs = [C.encode(c) for c in cmds]
    size = sum(map(len, blobs))
    print(f"session: {len(cmds):,} commands, {size / 1e6:.1f} MB encoded, generated+validated in {gen_s:.1f}s")
    for k, v in sorted(mix.items(), key=lambda kv: -kv[1]):
        print(f"  {k:45s} {v:8,d}")
    cfg = make_config()
    decode = C.decode
    gc.collect()
    t = time.perf_counter()
    for b in blobs:
        decode(b)
    dt = time.perf_counter() - t
    print(f"decode only: {len(blobs) / dt:,.0f} commands/s ({dt:.2f}s)")
    best = None
    for _ in range(args.repeat):
        seqr = Sequencer(cfg)
        decode, apply = C.decode, seqr.apply
        gc.collect()
        gc.freeze()
        t = time.perf_counter()
        for b in blobs:
            apply(decode(b))
        dt = time.perf_counter() - t
        gc.unfreeze()
        assert seqr.state_root() == root, "replay diverged from the generating run"
        assert seqr.total_balance() == seqr.deposited
        best = dt if best is None else min(best, dt)
        print(f"replay: {len(blobs) / dt:,.0f} commands/s ({dt:.2f}s)")
    rate = len(blobs) / best
    print(f"best: {rate:,.0f} commands/s  state root 0x{root.hex()}  target >= 200,000: "
          f"{'met' if rate >= 200_000 else 'MISSED'}")
    if args.service:
        service_restart(cfg, blobs, root, args.checkpoint_tail)
    if args.breakdown:
        breakdown(cfg, [C.decode(b) for b in blobs])
    print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

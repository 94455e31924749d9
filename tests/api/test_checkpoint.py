"""Checkpoints (``aggregator.checkpoint``): a restart restores the newest valid one and replays the tail.

What is checked (each test was seen to fail on a mutant of the code it guards, see the
notes in each):

- (a) a random session with checkpoints every k commands: the restart from the newest
  checkpoint equals a full replay of the same journal and the live state (state root,
  balances, accounts, open and resting orders, book mirror, deposit index, ...) and
  both behave the same afterwards;
- (b) a corrupt checkpoint (one flipped byte) is ignored for the older one, then for a
  full replay, with the same state, and nothing on disk changes;
- (c) a checkpoint beyond the journal's last durable seq is ignored (loader), and the
  writer renames a checkpoint into place only once the journal is durable up to it;
- (d) a checkpoint of another rules version or another SequencerConfig is ignored; a
  journal of another rules version still raises ``JournalVersionMismatch``;
- (e) ``kill -9`` of the standalone service while a checkpoint is being written (and
  right after one was): no acknowledged command is lost, the restart uses the
  checkpoint and equals a full replay;
- (f) the event loop keeps acknowledging commands while a checkpoint is written;
- (g) ``Journal.replay(from_seq)`` neither opens earlier segments nor decodes the
  records before ``from_seq``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import random
import shutil
import socket
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from aggregator import checkpoint as ckpt
from aggregator.core import commands as C
from aggregator.core import version as core_version
from aggregator.core.sequencer import Sequencer
from aggregator.eip712 import to_checksum_address
from aggregator.journal import Journal, JournalVersionMismatch
from aggregator.sequencer_service import (DEFAULT_FEE_ACCOUNT, DEFAULT_INSURANCE_ACCOUNT, SequencerService,
                                          default_sequencer_config, default_sequencer_factory)

from ..sequencer.session import session
from .helpers import DOMAIN, Clock, Trader
from .test_kill9 import Ack, ServiceProcess, get, plan, prewrite, stream

SESSION = 1_400


def make(journal: Path, clock: Clock, *, every: int = 0, config=None, **kw) -> SequencerService:  # noqa: ANN001
    cfg = config or default_sequencer_config(DOMAIN.chain_id)
    return SequencerService(default_sequencer_factory(cfg), DOMAIN, str(journal), clock_ms=clock,
                            tick_interval_s=None, checkpoint_every=every, **kw)


async def drive(svc: SequencerService, clock: Clock, seed: int, n: int = SESSION, wait_writers: bool = False) -> None:
    """Sequence a random session (durable every few commands, so checkpoint writers come and go).

    ``wait_writers``: at those durable points, also wait for a running checkpoint writer, so
    a checkpoint is written every ``checkpoint_every`` commands however slow the machine is
    (the tests that count checkpoints); otherwise writers run concurrently with sequencing."""
    rng = random.Random(seed)
    i = 0
    for cls, args, ts in session(seed, n, lambda: svc.sequencer, step_ms=2_000, closing=False):
        clock.now_ms = max(clock.now_ms, ts)
        svc.sequence_nowait(cls, *args)
        i += 1
        if i % rng.randrange(5, 40) == 0:
            await svc.durable(svc.last_seq)
            await asyncio.sleep(0)
            if wait_writers:
                await settle(svc)
    await svc.durable(svc.last_seq)


async def settle(svc: SequencerService, timeout: float = 30.0) -> None:
    """Wait until no checkpoint writer runs."""
    deadline = time.monotonic() + timeout
    while svc.checkpoint_writer.busy:
        assert time.monotonic() < deadline, "checkpoint writer did not finish"
        await asyncio.sleep(0.01)


def state(svc: SequencerService, book_seq: bool = True) -> dict:
    """Everything a restart must rebuild (``book_seq``: the mirror's seqs restart at the journal's last)."""
    s = svc.sequencer
    accounts = sorted(s.balances())
    out = {
        "root": s.state_root(), "balances": s.balances(), "accounts": {a: s.account(a) for a in accounts},
        "open": {a: s.open_orders(a) for a in accounts}, "fills": {a: s.fills(a, 1000) for a in accounts},
        "sessions": {a: s.session_keys(a) for a in accounts}, "resting": list(s.resting_orders()),
        "markets": s.markets(), "now": s.now_ms, "next_expiry": s.next_order_expiry_ms(),
        "deposited": s.deposited, "batch": s.pending_batch_preview(), "netting": s.netting(),
        "book_orders": svc.book.orders, "book_levels": svc.book.levels, "deposits": svc.deposit_keys(),
        "last_seq": svc.last_seq,
    }
    if book_seq:
        out["book_snapshots"] = {i: svc.book.snapshot(i, 1000) for i in sorted(svc.book.levels)}
    return out


async def restart(journal: Path, clock: Clock, *, checkpoints: bool = True, config=None,  # noqa: ANN001
                  ) -> tuple[dict, SequencerService]:
    """Start a service on ``journal`` (``checkpoints=False``: an empty checkpoint dir, a full replay)."""
    kw = {} if checkpoints else {"checkpoint_dir": str(journal.parent / "no-checkpoints")}
    svc = make(journal, clock, config=config, **kw)
    await svc.start()
    return state(svc), svc


async def session_with_checkpoints(tmp_path: Path, seed: int, every: int, tail: int = 60,
                                   ) -> tuple[Path, Clock, dict, list]:
    """A session with checkpoints every ``every`` commands, then ``tail`` more by a service without any
    (restarted from the newest), so the journal goes on past the newest checkpoint."""
    journal = tmp_path / "journal"
    clock = Clock()
    svc = make(journal, clock, every=every)
    await svc.start()
    await drive(svc, clock, seed, wait_writers=True)
    await settle(svc)
    history = list(svc.checkpoint_writer.history)
    await svc.stop()
    svc = make(journal, clock, every=0)
    await svc.start()
    assert svc.restored_from == history[-1].seq
    await drive(svc, clock, seed + 1000, tail)
    live = state(svc, book_seq=False)
    await svc.stop()
    assert svc.last_seq >= history[-1].seq + tail
    return journal, clock, live, history


def same_snapshot(x: bytes, y: bytes) -> bool:
    """Whether two ``Sequencer.snapshot()``s hold the same state: every attribute pickles the same, but a
    set only has to be equal (its iteration order depends on its insertion history, not on the state)."""
    sx, sy = pickle.loads(x), pickle.loads(y)
    assert sx.keys() == sy.keys()
    for k in sx:
        if pickle.dumps(sx[k]) != pickle.dumps(sy[k]) and not (isinstance(sx[k], set) and sx[k] == sy[k]):
            raise AssertionError(f"snapshots differ in {k}")
    return True


def files(journal: Path) -> list[int]:
    return [n for n, _ in ckpt.list_checkpoints(ckpt.checkpoint_dir(journal))]


def disk(journal: Path) -> dict[str, bytes]:
    return {str(p.relative_to(journal)): p.read_bytes() for p in sorted(journal.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------- (a)


@pytest.mark.parametrize("seed,every", [(1, 150), (2, 400)])
async def test_restart_from_checkpoint_equals_full_replay(tmp_path, seed, every):
    # mutants seen failing: tail not replayed; deposits index not restored from the checkpoint
    journal, clock, live, history = await session_with_checkpoints(tmp_path, seed, every)
    written = [h for h in history if h.outcome == "written"]
    assert len(written) >= 3, history
    assert all(h.fork_pause_s < 0.5 for h in written)
    on_disk = files(journal)
    assert on_disk == [written[-1].seq, written[-2].seq]  # the newest two, older ones pruned
    assert not [p for p in ckpt.checkpoint_dir(journal).iterdir() if ".tmp." in p.name]

    # two copies of the journal: one restarts from its checkpoints, the other (without them) replays in full
    shutil.copytree(journal, tmp_path / "a" / "journal")
    shutil.copytree(journal, tmp_path / "b" / "journal", ignore=shutil.ignore_patterns(ckpt.DIRNAME))
    from_ckpt, a = await restart(tmp_path / "a" / "journal", clock)
    full, b = await restart(tmp_path / "b" / "journal", clock)
    try:
        assert a.restored_from == on_disk[0] > 0 and a.checkpoint_rejected == []
        assert a.replayed == a.last_seq - on_disk[0] and 60 <= a.replayed < every + 120
        assert b.restored_from == 0 and b.replayed == b.last_seq == live["last_seq"]
        assert from_ckpt == full
        assert {k: v for k, v in from_ckpt.items() if k != "book_snapshots"} == live
        assert same_snapshot(a.sequencer.snapshot(), b.sequencer.snapshot())
        # indistinguishable afterwards too: the same commands give the same outcomes and state
        for key in a.deposit_keys()[:3]:  # repeats: idempotent in both
            assert await a.submit_deposit(*key, DEFAULT_FEE_ACCOUNT, 5) is None
            assert await b.submit_deposit(*key, DEFAULT_FEE_ACCOUNT, 5) is None
        clock.advance(7_200_000)
        for cls, args, ts in session(seed + 100, 200, lambda: a.sequencer, start_ms=clock.now_ms, closing=False):
            clock.now_ms = max(clock.now_ms, ts)
            assert a.sequence_nowait(cls, *args) == b.sequence_nowait(cls, *args)
        await a.durable(a.last_seq)
        await b.durable(b.last_seq)
        assert state(a) == state(b)
    finally:
        await a.stop()
        await b.stop()


# ---------------------------------------------------------------------------------- (b)


def flip(path: Path, where: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    i = ckpt.HEADER.size + int((len(data) - ckpt.HEADER.size) * where)
    data[i] ^= 0x40
    path.write_bytes(bytes(data))


async def test_corrupt_checkpoint_falls_back_to_older_then_full_replay(tmp_path, caplog):
    # mutant seen failing: the checksum check skipped (the flipped snapshot then fails to unpickle: ignored,
    # but for another reason than the checksum)
    journal, clock, live, _ = await session_with_checkpoints(tmp_path, 3, 200)
    newest, older = files(journal)
    full, b = await restart(journal, clock, checkpoints=False)
    await b.stop()

    flip(ckpt.checkpoint_dir(journal) / f"{newest:020d}.ckpt")
    before = disk(journal)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aggregator.sequencer_service"):
        got, a = await restart(journal, clock)
    await a.stop()
    assert a.restored_from == older and a.replayed == a.last_seq - older
    assert [r for _, r in a.checkpoint_rejected] == ["checksum mismatch (sha256 over the file)"]
    lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(lines) == 1 and f"{newest:020d}.ckpt" in lines[0] and "checksum" in lines[0]
    assert got == full
    assert disk(journal) == before  # a failed load changes nothing on disk

    flip(ckpt.checkpoint_dir(journal) / f"{older:020d}.ckpt", 0.01)
    got, a = await restart(journal, clock)
    await a.stop()
    assert a.restored_from == 0 and a.replayed == a.last_seq
    assert [r for _, r in a.checkpoint_rejected] == ["checksum mismatch (sha256 over the file)"] * 2
    assert got == full
    assert {k: v for k, v in got.items() if k != "book_snapshots"} == live


async def test_truncated_or_garbage_checkpoint_is_ignored(tmp_path):
    journal, clock, _, _ = await session_with_checkpoints(tmp_path, 4, 300)
    newest, older = files(journal)
    d = ckpt.checkpoint_dir(journal)
    p = d / f"{newest:020d}.ckpt"
    p.write_bytes(p.read_bytes()[:-10])
    (d / f"{newest + 5:020d}.ckpt").write_bytes(b"not a checkpoint")
    _, a = await restart(journal, clock)
    await a.stop()
    assert a.restored_from == older
    reasons = [r for _, r in a.checkpoint_rejected]
    assert reasons[0].startswith("short header") and reasons[1].startswith("size ")


# ---------------------------------------------------------------------------------- (c)


async def test_checkpoint_beyond_the_journal_is_ignored(tmp_path):
    # mutant seen failing: the loader's ``seq > max_seq`` check removed (the checkpoint is then only caught
    # later, for another reason: "the journal holds no command")
    journal, clock, _, _ = await session_with_checkpoints(tmp_path, 5, 250)
    newest, older = files(journal)
    # the journal as a crash before the fsync of the commands after ``older + 10`` would have left it
    cut = tmp_path / "cut" / "journal"
    src = Journal.open(journal)
    dst = Journal.open(cut, fsync=False)
    for c in src.replay():
        if c.seq > older + 10:
            break
        dst.append_nowait(c)
    src.close_sync()
    await dst.flush()
    await dst.close()
    shutil.copytree(ckpt.checkpoint_dir(journal), ckpt.checkpoint_dir(cut))
    got, a = await restart(cut, clock)
    await a.stop()
    assert a.last_seq == older + 10 < newest
    assert a.restored_from == older and a.replayed == 10
    assert a.checkpoint_rejected == [(f"{newest:020d}.ckpt", f"seq {newest} is beyond the journal's last durable "
                                                             f"seq {older + 10}")]
    full, b = await restart(cut, clock, checkpoints=False)
    await b.stop()
    assert got == full


async def test_checkpoint_of_another_journal_is_ignored(tmp_path):
    journal, clock, _, _ = await session_with_checkpoints(tmp_path / "one", 6, 300)
    other, _, _, _ = await session_with_checkpoints(tmp_path / "two", 7, 300)
    shutil.rmtree(ckpt.checkpoint_dir(other))
    shutil.copytree(ckpt.checkpoint_dir(journal), ckpt.checkpoint_dir(other))
    got, a = await restart(other, clock)
    await a.stop()
    assert a.restored_from == 0
    assert len(a.checkpoint_rejected) == 2
    assert all("not the one recorded" in r or "holds no command" in r or "state root" in r
               for _, r in a.checkpoint_rejected), a.checkpoint_rejected
    full, b = await restart(other, clock, checkpoints=False)
    await b.stop()
    assert got == full


async def test_writer_renames_only_once_the_journal_is_durable(tmp_path):
    """The writer side of the durability rule, through the service: the journal's fsync is held back."""
    # mutant seen failing: the child renames without waiting for the parent's release
    journal = tmp_path / "journal"
    clock = Clock()
    svc = make(journal, clock, every=100)
    await svc.start()
    try:
        await drive(svc, clock, 8, 60)
        await settle(svc)
        assert files(journal) == []
        gate = threading.Event()
        write = svc.journal._write

        def held(data: bytes, first_seq: int) -> None:
            gate.wait(30)
            write(data, first_seq)

        svc.journal._write = held  # the next group commit waits for the gate
        while svc.last_seq < 100:
            clock.advance(10)
            svc.sequence_nowait(C.Tick)
        n = svc.last_seq
        await asyncio.sleep(0)  # the writer forks at the end of the loop iteration
        assert svc.checkpoint_writer.busy and svc.checkpoint_writer.current.seq == n
        assert svc.journal.durable_seq < n
        d = ckpt.checkpoint_dir(journal)
        deadline = time.monotonic() + 20
        while not any(".tmp." in p.name for p in d.iterdir()):  # the child wrote its file ...
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        assert files(journal) == []  # ... but does not put it in place while the journal is not durable
        gate.set()
        await svc.durable(n)
        await settle(svc)
        assert files(journal) == [n]
        assert svc.checkpoint_writer.history[-1].outcome == "written"
        assert not any(".tmp." in p.name for p in d.iterdir())
    finally:
        gate.set()
        await svc.stop()


async def test_writer_discards_when_never_released(tmp_path):
    """``CheckpointWriter`` alone: end of file instead of the release makes the child delete its file."""
    d = tmp_path / "checkpoints"
    w = ckpt.CheckpointWriter(d)
    parts = ckpt.encode(seq=9, state_root=b"r" * 32, config="x", last_ts_ms=1, last_command=b"c", service={},
                        snapshot=b"s" * 1000)
    stats = w.begin(9, lambda: parts, asyncio.get_running_loop())
    deadline = time.monotonic() + 20
    while not list(d.iterdir()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert [p.name for p in d.iterdir()] == [f"{9:020d}.ckpt.tmp.{w.pid}"]
    w.abandon()
    while w.busy:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert stats.outcome == "discarded" and list(d.iterdir()) == []
    stats = w.begin(9, lambda: parts, asyncio.get_running_loop())
    w.release()
    while w.busy:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert stats.outcome == "written" and stats.bytes == sum(map(len, parts))
    assert [p.name for p in d.iterdir()] == [f"{9:020d}.ckpt"]
    assert b"".join(parts) == (d / f"{9:020d}.ckpt").read_bytes()


# ---------------------------------------------------------------------------------- (d)


async def test_other_rules_version_or_config_is_ignored(tmp_path, monkeypatch):
    # mutants seen failing: the rules-version check skipped; the config fingerprint check skipped
    journal, clock, _, _ = await session_with_checkpoints(tmp_path, 9, 300)
    newest, older = files(journal)
    d = ckpt.checkpoint_dir(journal)
    cfg = default_sequencer_config(DOMAIN.chain_id)
    fp = ckpt.config_fingerprint(cfg)
    assert fp == ckpt.config_fingerprint(default_sequencer_config(DOMAIN.chain_id))  # by value, not identity
    # the newest rewritten, with a valid checksum, as a build of the next rules version would have written it
    c = ckpt.read(d / f"{newest:020d}.ckpt", config=fp, max_seq=newest)
    m = c.meta
    parts = ckpt.encode(seq=newest, state_root=m["state_root"], config=m["config"], last_ts_ms=m["last_ts_ms"],
                        last_command=m["last_command"], service=m["service"], snapshot=c.snapshot,
                        rules_version=core_version.RULES_VERSION + 1)
    (d / f"{newest:020d}.ckpt").write_bytes(b"".join(parts))
    got, a = await restart(journal, clock)
    await a.stop()
    assert a.restored_from == older
    assert a.checkpoint_rejected == [(f"{newest:020d}.ckpt", f"written under rules version "
                                      f"{core_version.RULES_VERSION + 1}, this build is {core_version.RULES_VERSION}")]
    full, b = await restart(journal, clock, checkpoints=False)
    await b.stop()
    assert got == full

    # another configuration (one fee changed): every checkpoint is ignored, the journal replays in full
    other = default_sequencer_config(DOMAIN.chain_id, maker_fee_bps=3)
    assert ckpt.config_fingerprint(other) != fp
    got, a = await restart(journal, clock, config=other)
    await a.stop()
    assert a.restored_from == 0 and a.replayed == a.last_seq
    assert [r for _, r in a.checkpoint_rejected] == [
        f"written under rules version {core_version.RULES_VERSION + 1}, this build is {core_version.RULES_VERSION}",
        "written under another sequencer configuration (fingerprint differs)"]
    full, b = await restart(journal, clock, checkpoints=False, config=other)
    await b.stop()
    assert got == full

    # a build of another rules version: the journal itself is refused, checkpoints or not
    monkeypatch.setattr(core_version, "RULES_VERSION", core_version.RULES_VERSION + 1)
    svc = make(journal, clock)
    with pytest.raises(JournalVersionMismatch):
        await svc.start()


# ---------------------------------------------------------------------------------- (f)


async def test_event_loop_keeps_acknowledging_while_a_checkpoint_is_written(tmp_path):
    # mutant seen failing: the parent waits for the child (os.waitpid right after the fork)
    journal = tmp_path / "journal"
    clock = Clock()
    svc = make(journal, clock, every=200)
    svc.checkpoint_writer.child_delay_s = 1.0  # the child holds 1 s before putting its file in place
    await svc.start()
    try:
        await drive(svc, clock, 10, 180)
        while not svc.checkpoint_writer.busy:
            clock.advance(10)
            await svc.tick()
        stats = svc.checkpoint_writer.current
        acked, gaps = 0, []
        t = time.perf_counter()
        while stats.outcome == "running":
            clock.advance(10)
            await svc.tick()  # sequenced, fsynced and acknowledged while the child writes
            now = time.perf_counter()
            gaps.append(now - t)
            t = now
            acked += 1
        assert stats.outcome == "written" and stats.total_s >= 1.0
        assert acked >= 20, acked
        assert stats.fork_pause_s < 0.1 * stats.total_s
        assert sorted(gaps)[len(gaps) // 2] < 0.1  # the median ack took far less than the write
    finally:
        await svc.stop()


# ---------------------------------------------------------------------------------- (g)


async def test_replay_from_seq_skips_segments_and_decodes_only_the_tail(tmp_path, monkeypatch):
    # mutants seen failing: every record of the start segment decoded (then filtered); crc-checked
    import aggregator.journal as jmod

    j = Journal.open(tmp_path / "j", segment_bytes=2_000, fsync=False)
    for i in range(1, 401):
        j.append_nowait(C.Tick(i, 1_000 + i))
        if i % 7 == 0:
            await j.flush()
    await j.close()
    j = Journal.open(tmp_path / "j", segment_bytes=2_000, fsync=False)
    segs = j.segments()
    assert len(segs) >= 4
    everything = list(j.replay())
    decoded, read, crcs = [], [], []
    decode, read_segment, crc32 = jmod._commands.decode, jmod.read_segment, jmod.zlib.crc32
    monkeypatch.setattr(jmod._commands, "decode", lambda b: decoded.append(1) or decode(b))
    monkeypatch.setattr(jmod, "read_segment", lambda p, v=None, k=0: read.append(p) or read_segment(p, v, k))
    monkeypatch.setattr(jmod.zlib, "crc32", lambda b: crcs.append(1) or crc32(b))
    for from_seq in (1, 2, 150, 399, 400, 401, 1_000):
        decoded.clear()
        read.clear()
        crcs.clear()
        got = list(j.replay(from_seq))
        assert got == [c for c in everything if c.seq >= from_seq]
        assert len(decoded) == len(got) == len(crcs)
        first = max(int(p.name[:20]) for p in segs if int(p.name[:20]) <= max(from_seq, 1))
        assert [int(p.name[:20]) for p in read] == [int(p.name[:20]) for p in segs if int(p.name[:20]) >= first]
    j.close_sync()


# ---------------------------------------------------------------------------------- (e)


class CheckpointingService(ServiceProcess):
    """The standalone service with checkpoints every ``every`` commands (the writer held ``delay`` s)."""

    def __init__(self, journal: Path, log: Path, every: int, delay: float, tick: float) -> None:
        super().__init__(journal, log, tick,
                         extra=("--verify-processes", "0", "--checkpoint-every", str(every), "--log-level", "INFO"),
                         env={**os.environ, "OMNICLEAR_CHECKPOINT_TEST_DELAY_S": str(delay)})
        self.every, self.delay = every, delay


@pytest.fixture
def ckpt_services(tmp_path):
    started: list[CheckpointingService] = []

    def make_service(journal: Path, every: int, delay: float = 0.0, tick: float = 0.0) -> CheckpointingService:
        s = CheckpointingService(journal, tmp_path / f"service-{len(started)}.log", every, delay, tick)
        started.append(s)
        return s

    try:
        yield make_service
    finally:
        for s in started:
            s.stop()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _served(url: str, everyone: list[Trader]) -> tuple[dict, dict]:
    async with aiohttp.ClientSession() as http:
        opened = {t.address: sorted(o["order_id"] for o in
                                    (await get(http, f"{url}/v1/orders?account={t.address}"))["orders"])
                  for t in everyone}
        balances = {}
        for a in [t.address for t in everyone] + [to_checksum_address(DEFAULT_FEE_ACCOUNT),
                                                   to_checksum_address(DEFAULT_INSURANCE_ACCOUNT)]:
            balances[a] = int((await get(http, f"{url}/v1/accounts/{a}/margin"))["total_collateral"])
    return opened, balances


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["during", "after"])
async def test_kill9_while_or_after_checkpoint_write(tmp_path, ckpt_services, moment):
    # mutants seen failing: the child discards its file even when released (no checkpoint to restart from);
    # the child keeps the inherited descriptors (the killed service's port stays taken while it writes)
    rng = random.Random(11 if moment == "during" else 12)
    journal = tmp_path / "journal"
    d = ckpt.checkpoint_dir(journal)
    traders = [Trader.make(300 + i) for i in range(6)]
    taker = Trader.make(399)
    everyone = traders + [taker]
    now_ms = time.time_ns() // 1_000_000
    prewritten = await prewrite(journal, everyone, now_ms - 1_000)
    orders: dict[str, list] = {}
    for _ in range(4):  # four rounds of pre-signed orders: the kill lands while they still flow
        for k, v in plan(rng, traders, taker, now_ms // 1000).items():
            orders.setdefault(k, []).extend(v)

    # ticks every 20 ms keep commands (and so checkpoints) coming after the order streams end
    first = ckpt_services(journal, every=40, delay=0.5 if moment == "during" else 0.0, tick=0.02)
    assert first.start()["last_seq"] == prewritten
    acks: list[Ack] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(stream(first.url, orders[t.address], acks, random.Random(k), stop))
             for k, t in enumerate(everyone)]
    deadline = time.monotonic() + 60
    tmp_pid = None
    if moment == "during":  # kill while a child holds its written-but-not-renamed file (one was written before)
        while tmp_pid is None:
            assert time.monotonic() < deadline and not all(t.done() for t in tasks), "no checkpoint started"
            done = ckpt.list_checkpoints(d)
            tmp = [p for p in d.iterdir() if ".tmp." in p.name] if done else []
            if tmp and int(tmp[0].name[:20]) > done[0][0]:  # a newer one than those in place: just written
                tmp_pid = int(tmp[0].name.rsplit(".", 1)[1])
            else:
                await asyncio.sleep(0.002)
    else:  # kill right after a checkpoint was put in place
        while not (d.exists() and ckpt.list_checkpoints(d)):
            assert time.monotonic() < deadline and not all(t.done() for t in tasks), "no checkpoint written"
            await asyncio.sleep(0.001)
    assert not all(t.done() for t in tasks), "the kill must land mid-stream"
    first.kill9()
    if tmp_pid is not None:
        # the orphaned writer still runs, but holds none of the service's descriptors: the port is free
        assert _alive(tmp_pid)
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", first.port))
        probe.listen()
        probe.close()
    stop.set()
    await asyncio.gather(*tasks)
    assert len(acks) < sum(map(len, orders.values())), "the kill must land mid-stream"
    if tmp_pid is not None:  # the orphaned writer finishes (renames: it was released) or discards, then ends
        deadline = time.monotonic() + 30
        while _alive(tmp_pid):
            assert time.monotonic() < deadline, "the orphaned checkpoint writer did not end"
            await asyncio.sleep(0.05)
    assert not [p for p in d.iterdir() if ".tmp." in p.name]
    found = ckpt.list_checkpoints(d)
    assert found

    second = ckpt_services(journal, every=0)
    banner = second.start()
    max_acked = max(a.seq for a in acks)
    assert banner["last_seq"] >= max_acked
    assert banner["checkpoint"] == found[0][0] > 0 and found[0][0] <= banner["last_seq"]
    assert banner["replayed"] == banner["last_seq"] - banner["checkpoint"]
    from_ckpt = await _served(second.url, everyone)
    second.stop()

    # every acknowledged command is in the journal at its seq
    j = Journal.open(journal)
    cmds = {c.seq: c for c in j.replay()}
    j.close_sync()
    for a in acks:
        c = cmds[a.seq]
        assert type(c) is C.PlaceOrder and (c.order.account, c.order.nonce) == (a.account, a.nonce), a

    # the same state as a full replay: by the service without checkpoints, and in process
    d.rename(journal / "checkpoints.off")
    third = ckpt_services(journal, every=0)
    banner3 = third.start()
    assert banner3["checkpoint"] == 0 and banner3["replayed"] == banner["last_seq"]
    full = await _served(third.url, everyone)
    third.stop()
    assert from_ckpt == full
    replay = Sequencer(default_sequencer_config(31337))
    for seq in sorted(cmds):
        out = replay.apply(cmds[seq])
        for a in acks:
            if a.seq == seq:
                assert out.code == a.code, a
    assert from_ckpt[1] == replay.balances()
    assert from_ckpt[0] == {t.address: sorted(o["order_id"] for o in replay.open_orders(t.address))
                            for t in everyone}

"""Determinism end to end: a long session through the service's journal, replayed in a fresh process.

A seeded session of a few thousand commands (deposits, orders of every type and TIF on
perps and options, cancels, amends, session keys, prices, ticks across funding
boundaries and an option expiry) is driven through a ``SequencerService`` whose journal
is on disk (small segments, so replay crosses files). A *fresh Python process* then
opens the journal, replays it into a new ``Sequencer`` built from the same default
config, and prints the state root and a digest of every outcome; both must equal what
the live service computed. A second fresh process stops at an intermediate seq and must
reach the root the live service had right after that seq.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from aggregator import eip712
from aggregator.core.events import FundingPaid, OptionSettled, TradeSettled
from aggregator.sequencer_service import SequencerService, default_sequencer_config, default_sequencer_factory
from tests.sequencer.session import START_MS, session

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
DOMAIN = eip712.Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")

REPLAY_SCRIPT = r"""
import hashlib, json, sys
from aggregator.journal import Journal
from aggregator.core.sequencer import Sequencer
from aggregator.sequencer_service import default_sequencer_config

journal_dir, stop = sys.argv[1], int(sys.argv[2])
seq = Sequencer(default_sequencer_config(31337))
digest = hashlib.sha256()
n = 0
for cmd in Journal.open(journal_dir).replay():
    if stop and cmd.seq > stop:
        break
    out = seq.apply(cmd)
    digest.update(repr((out.seq, out.accepted, out.code, out.result, out.events)).encode())
    n += 1
print(json.dumps({"replayed": n, "last_seq": seq.last_seq, "root": seq.state_root().hex(),
                  "outcomes": digest.hexdigest(), "deposited": seq.deposited, "total": seq.total_balance()}))
"""


class Clock:
    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def replay_in_fresh_process(journal: Path, stop: int = 0) -> dict:
    proc = subprocess.run([str(PYTHON), "-c", REPLAY_SCRIPT, str(journal), str(stop)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


async def test_long_session_journal_replays_to_same_root_in_fresh_process(tmp_path):
    journal = tmp_path / "journal"
    clock = Clock(START_MS)
    svc = SequencerService(default_sequencer_factory(default_sequencer_config(31337)), DOMAIN, str(journal),
                           clock_ms=clock, tick_interval_s=None, segment_bytes=64 << 10)
    await svc.start()
    digest = hashlib.sha256()
    events: dict[type, int] = {}

    def count(published: list) -> None:  # every durable command in seq order, the service's own Ticks too
        for p in published:
            out = p.outcome
            digest.update(repr((out.seq, out.accepted, out.code, out.result, out.events)).encode())
            for e in out.events:
                events[type(e)] = events.get(type(e), 0) + 1

    svc.subscribe(count)
    mid_seq, mid_root = 1_700, None
    try:
        fut = None
        for i, (cls, args, ts) in enumerate(session(11, 3_200, lambda: svc.sequencer, step_ms=5_000)):
            clock.now_ms = ts
            out, fut = svc.sequence(cls, *args)
            if mid_root is None and out.seq >= mid_seq:  # (a Tick the service sequenced may take a seq)
                mid_seq, mid_root = out.seq, svc.state_root()
            if i % 50 == 0:
                await fut  # group commits, as under load
        await fut
        last_seq, root = svc.last_seq, svc.state_root()
        deposited = svc.sequencer.deposited
        assert svc.journal.durable_seq == last_seq
    finally:
        await svc.stop()
    assert last_seq > 3_000 and mid_root is not None
    assert len(list(journal.glob("*.seg"))) > 3  # replay crosses segment files
    # the session covered what replay must reproduce
    assert events.get(TradeSettled, 0) > 300 and events.get(FundingPaid, 0) >= 2
    assert events.get(OptionSettled, 0) >= 1

    full = replay_in_fresh_process(journal)
    assert full["replayed"] == full["last_seq"] == last_seq
    assert full["root"] == root.hex()
    assert full["outcomes"] == digest.hexdigest()  # every outcome, not only the root
    assert full["deposited"] == full["total"] == deposited

    part = replay_in_fresh_process(journal, stop=mid_seq)
    assert part["last_seq"] == mid_seq
    assert part["root"] == mid_root.hex() != root.hex()

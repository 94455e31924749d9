"""A restart rebuilds the order-book mirror from the replayed books, not from every replayed event.

The mirror it loads must equal the one the events would have built (levels and orders),
and its book sequence numbers must restart above any it served before the crash, so a
client holding an old one sees a gap and takes a new snapshot.
"""

from __future__ import annotations

import asyncio

from aggregator.core.sequencer import Sequencer
from aggregator.journal import Journal
from aggregator.sequencer_service import BookMirror, default_sequencer_config

from ..sequencer.session import session
from .helpers import DOMAIN, Clock, make_service


def test_restart_loads_the_mirror_the_events_would_have_built(tmp_path) -> None:
    live = Sequencer(default_sequencer_config(DOMAIN.chain_id))
    by_events = BookMirror()
    cmds = []
    last_seq_served: dict[str, int] = {}
    n = 0
    for cls, args, ts in session(5, 1_500, lambda: live, step_ms=2_000, closing=False):
        n += 1
        cmd = cls(n, ts, *args)
        cmds.append(cmd)
        out = live.apply(cmd)
        for inst, (seq, _, _) in by_events.apply_events(out.events).items():
            last_seq_served[inst] = seq
    assert sum(len(b) + len(a) for b, a in by_events.levels.values()) > 20  # books with depth on both sides

    async def run() -> None:
        j = Journal.open(tmp_path / "journal", fsync=False)
        for c in cmds:
            j.append_nowait(c)
        await j.flush()
        await j.close()
        clock = Clock(cmds[-1].ts_ms + 1)
        svc = make_service(tmp_path / "journal", clock)
        await svc.start()
        try:
            assert svc.replayed == len(cmds)
            assert svc.state_root() == live.state_root()
            assert svc.book.orders == by_events.orders
            assert svc.book.levels.keys() <= by_events.levels.keys()
            for inst, (bids, asks) in by_events.levels.items():
                got = svc.book.levels.get(inst, ({}, {}))
                assert got == (bids, asks), inst
                seq, b, a = svc.book.snapshot(inst, 1000)
                assert seq > last_seq_served.get(inst, 0)  # above anything served before the restart
                assert b == sorted(bids.items(), reverse=True) and a == sorted(asks.items())
        finally:
            await svc.stop()

    asyncio.run(run())

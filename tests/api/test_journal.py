"""Journal: durability, torn tails, crc damage, rotation, reopen continues the sequence, rules version."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from aggregator.core import version
from aggregator.core.commands import DepositCredit, Tick, encode
from aggregator.core.version import RULES_VERSION
from aggregator.journal import (HEADER, MAGIC, MAGIC_V1, SEGMENT_HEADER, Journal, JournalCorrupt, JournalError,
                                JournalVersionMismatch)

ROOT = Path(__file__).resolve().parents[2]

ACCT = "0x00000000000000000000000000000000000000aA"


def cmd(seq: int):
    if seq % 3 == 0:
        return DepositCredit(seq, 1000 + seq, 31337, seq, "0x" + "11" * 20, seq * 1_000_000)
    return Tick(seq, 1000 + seq)


async def fill(j: Journal, n: int, start: int | None = None) -> list[int]:
    s = j.last_seq + 1 if start is None else start
    futs = [j.append(cmd(i)) for i in range(s, s + n)]
    return list(await asyncio.gather(*futs))


async def test_append_resolves_when_durable_and_replays_in_order(tmp_path):
    j = Journal.open(tmp_path)
    seqs = await fill(j, 100)
    assert seqs == list(range(1, 101))
    assert j.durable_seq == 100
    assert j.flushes < 100  # group commit: many appends per fsync
    await j.close()
    j2 = Journal.open(tmp_path)
    got = list(j2.replay())
    assert [c.seq for c in got] == list(range(1, 101))
    assert got == [cmd(i) for i in range(1, 101)]
    assert [c.seq for c in j2.replay(from_seq=42)] == list(range(42, 101))
    await j2.close()


async def test_reopen_continues_the_sequence_and_timestamp(tmp_path):
    j = Journal.open(tmp_path)
    await fill(j, 10)
    await j.close()
    j = Journal.open(tmp_path)
    assert (j.last_seq, j.last_ts_ms) == (10, 1010)
    with pytest.raises(JournalError):
        j.append(cmd(12))  # gap refused
    await fill(j, 5)
    await j.close()
    j = Journal.open(tmp_path)
    assert [c.seq for c in j.replay()] == list(range(1, 16))
    await j.close()


@pytest.mark.parametrize("cut", [1, 3, 7, 9, 12])
async def test_torn_write_is_truncated_and_earlier_records_survive(tmp_path, cut):
    j = Journal.open(tmp_path)
    await fill(j, 20)
    await j.close()
    seg = j.segments()[-1]
    size = seg.stat().st_size
    # simulate a kill -9 mid-write: a partial record appended after the last good one
    partial = HEADER.pack(50, 0) + b"\x93" * 40
    with open(seg, "ab") as f:
        f.write(partial[:cut])
    j = Journal.open(tmp_path)
    assert j.truncated is not None
    assert seg.stat().st_size == size
    assert j.last_seq == 20
    assert [c.seq for c in j.replay()] == list(range(1, 21))
    await fill(j, 3)
    await j.close()
    j = Journal.open(tmp_path)
    assert [c.seq for c in j.replay()] == list(range(1, 24))
    await j.close()


async def test_corrupt_crc_in_tail_stops_replay_there(tmp_path):
    j = Journal.open(tmp_path)
    await fill(j, 10)
    await j.close()
    seg = j.segments()[-1]
    data = bytearray(seg.read_bytes())
    # flip one byte in the payload of the last record
    data[-2] ^= 0xFF
    seg.write_bytes(bytes(data))
    j = Journal.open(tmp_path)
    assert "crc" in (j.truncated or "")
    assert j.last_seq == 9
    assert [c.seq for c in j.replay()] == list(range(1, 10))
    await fill(j, 1)  # seq 10 again, now intact
    await j.close()
    assert [c.seq for c in Journal.open(tmp_path).replay()] == list(range(1, 11))


async def test_torn_record_in_last_segment_truncated_mid_file(tmp_path):
    j = Journal.open(tmp_path)
    await fill(j, 10)
    await j.close()
    seg = j.segments()[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) - 5])  # the last record lost its last 5 bytes
    j = Journal.open(tmp_path)
    assert j.last_seq == 9
    await j.close()


async def test_rotation_makes_segments_and_replay_crosses_them(tmp_path):
    j = Journal.open(tmp_path, segment_bytes=400)
    for _ in range(10):
        await fill(j, 7)
    await j.close()
    segs = j.segments()
    assert len(segs) > 3
    for p in segs:
        assert p.read_bytes()[:8] == MAGIC
    j = Journal.open(tmp_path, segment_bytes=400)
    assert j.last_seq == 70
    assert [c.seq for c in j.replay()] == list(range(1, 71))
    assert [c.seq for c in j.replay(from_seq=50)] == list(range(50, 71))
    # segment names are the first seq they hold
    firsts = [int(p.name.split(".")[0]) for p in segs]
    starts = [next(iter(Journal.open(tmp_path).replay(f))).seq for f in firsts]
    assert starts == firsts
    await j.close()


async def test_damage_in_sealed_segment_is_an_error_not_silence(tmp_path):
    j = Journal.open(tmp_path, segment_bytes=300)
    for _ in range(6):
        await fill(j, 5)
    await j.close()
    first = j.segments()[0]
    data = bytearray(first.read_bytes())
    data[SEGMENT_HEADER.size + HEADER.size + 1] ^= 0xFF  # a payload byte of the first record
    first.write_bytes(bytes(data))
    j = Journal.open(tmp_path, segment_bytes=300)
    with pytest.raises(JournalCorrupt):
        list(j.replay())
    await j.close()


async def test_empty_and_garbage_segment_header(tmp_path):
    j = Journal.open(tmp_path)
    assert j.last_seq == 0 and list(j.replay()) == []
    await j.close()
    seg = j.segments()[0]
    seg.write_bytes(b"OMN")  # torn magic
    j = Journal.open(tmp_path)
    assert j.last_seq == 0
    await fill(j, 2)
    await j.close()
    assert [c.seq for c in Journal.open(tmp_path).replay()] == [1, 2]


async def test_failed_write_fails_pending_and_later_appends(tmp_path):
    j = Journal.open(tmp_path)
    await fill(j, 2)

    def boom(data, first):
        raise OSError(28, "No space left on device")

    j._write = boom  # type: ignore[method-assign]
    fut = j.append(cmd(3))
    with pytest.raises(JournalError):
        await fut
    assert j.failed
    with pytest.raises(JournalError):
        j.append(cmd(4))
    await j.close()


def test_record_format_is_length_crc_payload(tmp_path):
    async def go():
        j = Journal.open(tmp_path)
        await fill(j, 1)
        await j.close()
        return j.segments()[0].read_bytes()

    data = asyncio.run(go())
    assert data[:12] == b"OMNJRNL2" + RULES_VERSION.to_bytes(4, "little") == SEGMENT_HEADER.pack(MAGIC, RULES_VERSION)
    length, crc = HEADER.unpack_from(data, 12)
    payload = data[12 + HEADER.size:]
    assert len(payload) == length and zlib.crc32(payload) == crc
    assert os.path.getsize(tmp_path / "00000000000000000001.seg") == len(data)


async def test_group_commit_hook_and_durable_waiters(tmp_path):
    j = Journal.open(tmp_path)
    seen: list[tuple[int, int]] = []  # (durable_seq passed to the hook, durable_seq when called)
    j.on_durable = lambda seq: seen.append((seq, j.durable_seq))
    for i in range(1, 51):
        j.append_nowait(cmd(i))
    late = j.durable(50)
    early = j.durable(10)  # waiters may come in any seq order
    assert not late.done() and not early.done()
    assert await early == 10 and await late == 50
    assert j.flushes == 1  # one loop iteration of appends: one write, one fdatasync
    assert seen == [(50, 50)]
    assert (await j.durable(3)) == 3  # already durable: resolved at once
    await fill(j, 5)
    assert seen[-1][0] == 55 and all(a == b for a, b in seen)
    await j.close()
    assert [c.seq for c in Journal.open(tmp_path).replay()] == list(range(1, 56))


async def test_failed_write_fails_durable_waiters(tmp_path):
    j = Journal.open(tmp_path)
    await fill(j, 2)
    j._write = lambda data, first: (_ for _ in ()).throw(OSError(5, "I/O error"))  # type: ignore[method-assign]
    j.append_nowait(cmd(3))
    w = j.durable(3)
    with pytest.raises(JournalError):
        await w
    with pytest.raises(JournalError):
        await j.durable(3)  # asked after the failure
    with pytest.raises(JournalError):
        j.append_nowait(cmd(4))
    await j.close()


# ------------------------------------------------------------------ rules version


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


async def fill_groups(j: Journal, n: int) -> None:
    """Append ``n`` commands in groups of 5 (a segment rotates between groups)."""
    for _ in range(n // 5):
        await fill(j, 5)


async def write_under(directory: Path, rules_version: int, monkeypatch, n: int = 30, **kw) -> None:
    """A journal written by a build whose RULES_VERSION is ``rules_version``."""
    with monkeypatch.context() as m:
        m.setattr(version, "RULES_VERSION", rules_version)
        j = Journal.open(directory, **kw)
        await fill_groups(j, n)
        await j.close()


def v1_segment(path: Path, seqs: range, tail: bytes = b"") -> None:
    """A segment as the OMNJRNL1 journal wrote it: magic, then records, no rules version."""
    data = bytearray(MAGIC_V1)
    for i in seqs:
        payload = encode(cmd(i))
        data += HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    path.write_bytes(bytes(data) + tail)


async def test_new_journal_records_the_rules_version_and_replays(tmp_path):
    d = tmp_path / "new" / "journal"  # not there yet: created with the running build's version
    j = Journal.open(d, segment_bytes=300)
    assert j.rules_version == RULES_VERSION and list(j.replay()) == []
    await fill_groups(j, 40)
    await j.close()
    segs = j.segments()
    assert len(segs) > 2
    assert all(p.read_bytes()[: SEGMENT_HEADER.size] == SEGMENT_HEADER.pack(MAGIC, RULES_VERSION) for p in segs)
    j = Journal.open(d, segment_bytes=300)
    assert j.last_seq == 40 and [c.seq for c in j.replay()] == list(range(1, 41))
    await fill(j, 2)
    await j.close()
    assert [c.seq for c in Journal.open(d).replay()] == list(range(1, 43))


@pytest.mark.parametrize("written, running", [(RULES_VERSION + 1, RULES_VERSION),  # a newer release's journal
                                              (RULES_VERSION, RULES_VERSION + 1)])  # the rules changed since
async def test_journal_of_another_rules_version_is_refused_and_left_untouched(tmp_path, monkeypatch, written,
                                                                              running):
    await write_under(tmp_path, written, monkeypatch, segment_bytes=300)
    monkeypatch.setattr(version, "RULES_VERSION", running)
    # what recovery would otherwise repair: a torn tail, and an empty trailing segment
    with open(Journal(tmp_path, 300, False).segments()[-1], "ab") as f:
        f.write(HEADER.pack(50, 0)[:5])
    (tmp_path / "00000000000000000099.seg").write_bytes(SEGMENT_HEADER.pack(MAGIC, written))
    before = snapshot(tmp_path)
    with pytest.raises(JournalVersionMismatch) as e:
        Journal.open(tmp_path, segment_bytes=300)
    assert (e.value.found, e.value.expected) == (written, running)
    msg = str(e.value)
    assert f"rules version {written}" in msg and f"rules version {running}" in msg and str(tmp_path) in msg
    assert "release that wrote it" in msg and "new journal directory" in msg and "\n" not in msg
    assert isinstance(e.value, JournalError)
    assert snapshot(tmp_path) == before  # nothing truncated, rewritten or deleted
    # the build that wrote it still opens it (and repairs the tail then)
    with monkeypatch.context() as m:
        m.setattr(version, "RULES_VERSION", written)
        j = Journal.open(tmp_path, segment_bytes=300)
        assert [c.seq for c in j.replay()] == list(range(1, 31))
        await j.close()


async def test_mixed_rules_versions_in_one_journal_are_refused(tmp_path, monkeypatch):
    j = Journal.open(tmp_path, segment_bytes=300)
    await fill_groups(j, 40)
    await j.close()
    middle = j.segments()[1]
    data = bytearray(middle.read_bytes())
    data[: SEGMENT_HEADER.size] = SEGMENT_HEADER.pack(MAGIC, RULES_VERSION + 7)  # a segment from another build
    middle.write_bytes(bytes(data))
    before = snapshot(tmp_path)
    with pytest.raises(JournalVersionMismatch, match=middle.name):
        Journal.open(tmp_path, segment_bytes=300)
    assert snapshot(tmp_path) == before


async def test_replay_refuses_a_segment_of_another_version_added_later(tmp_path):
    j = Journal.open(tmp_path)
    await fill(j, 5)
    await j.close()
    (tmp_path / "00000000000000000006.seg").write_bytes(SEGMENT_HEADER.pack(MAGIC, RULES_VERSION + 1))
    before = snapshot(tmp_path)
    with pytest.raises(JournalVersionMismatch):
        list(j.replay())
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("tail", [b"", HEADER.pack(50, 0)[:3]])
def test_old_omnjrnl1_journal_is_refused_with_a_clear_message(tmp_path, tail):
    v1_segment(tmp_path / "00000000000000000001.seg", range(1, 11))
    v1_segment(tmp_path / "00000000000000000011.seg", range(11, 15), tail)
    before = snapshot(tmp_path)
    with pytest.raises(JournalVersionMismatch) as e:
        Journal.open(tmp_path)
    msg = str(e.value)
    assert e.value.found == 0 and "OMNJRNL1" in msg and "unknown" in msg and f"rules version {RULES_VERSION}" in msg
    assert "new journal directory" in msg
    assert snapshot(tmp_path) == before


def test_empty_old_omnjrnl1_journal_is_refused_too(tmp_path):
    (tmp_path / "00000000000000000001.seg").write_bytes(MAGIC_V1)
    with pytest.raises(JournalVersionMismatch, match="OMNJRNL1"):
        Journal.open(tmp_path)
    assert (tmp_path / "00000000000000000001.seg").read_bytes() == MAGIC_V1


@pytest.mark.parametrize("cut", [0, 5, 8, 10])
async def test_torn_header_of_a_new_segment_gets_the_running_version(tmp_path, cut):
    j = Journal.open(tmp_path, segment_bytes=300)
    await fill_groups(j, 20)
    await j.close()
    last_seq = j.last_seq
    header = SEGMENT_HEADER.pack(MAGIC, RULES_VERSION)
    # kill -9 while creating the next segment: its header is torn
    (tmp_path / f"{last_seq + 1:020d}.seg").write_bytes(header[:cut])
    j = Journal.open(tmp_path, segment_bytes=300)
    assert j.last_seq == last_seq
    await fill(j, 3)
    await j.close()
    assert [c.seq for c in Journal.open(tmp_path).replay()] == list(range(1, last_seq + 4))
    assert all(p.read_bytes()[: SEGMENT_HEADER.size] == header for p in j.segments())


@pytest.mark.parametrize("cut", [0, 5, 10])
async def test_torn_header_of_the_only_segment_gets_the_running_version(tmp_path, cut):
    seg = tmp_path / "00000000000000000001.seg"
    seg.write_bytes(SEGMENT_HEADER.pack(MAGIC, RULES_VERSION)[:cut])
    j = Journal.open(tmp_path)
    assert j.last_seq == 0
    await fill(j, 2)
    await j.close()
    assert seg.read_bytes()[: SEGMENT_HEADER.size] == SEGMENT_HEADER.pack(MAGIC, RULES_VERSION)
    assert [c.seq for c in Journal.open(tmp_path).replay()] == [1, 2]


def test_bad_header_in_a_sealed_segment_is_corruption(tmp_path, monkeypatch):
    asyncio.run(write_under(tmp_path, RULES_VERSION, monkeypatch, segment_bytes=300))
    segs = sorted(tmp_path.iterdir())
    assert len(segs) > 1
    first = segs[0]
    first.write_bytes(b"GARBAGE!" + first.read_bytes()[8:])
    with pytest.raises(JournalCorrupt, match="sealed"):
        Journal.open(tmp_path, segment_bytes=300)


def one_line_error(rc: int, err: str, *needles: str) -> str:
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_cli_serve_refuses_a_journal_of_another_version_in_one_line(tmp_path, capsys, db_url):
    from aggregator.cli import main
    from bridges.anvil import free_port
    from tests.relayer.test_relayer_cli import fake_deployment

    state = tmp_path / "state"
    fake_deployment(state)
    journal = tmp_path / "journal"
    journal.mkdir()
    v1_segment(journal / "00000000000000000001.seg", range(1, 4))
    before = snapshot(journal)
    rc = main(["serve", "--state-dir", str(state), "--journal", str(journal), "--db", db_url,
               "--port", str(free_port()), "--verify-processes", "0"])
    _, err = capsys.readouterr()
    line = one_line_error(rc, err, "aggregator: error: journal", str(journal), "OMNJRNL1",
                          f"rules version {RULES_VERSION}", "new journal directory")
    assert line.startswith("aggregator: error: ")
    assert snapshot(journal) == before


def test_sequencer_service_main_refuses_a_journal_of_another_version_in_one_line(tmp_path):
    from bridges.anvil import free_port

    v1_segment(tmp_path / "00000000000000000001.seg", range(1, 4))
    p = subprocess.run([sys.executable, "-m", "aggregator.sequencer_service", "--journal", str(tmp_path),
                        "--port", str(free_port()), "--verify-processes", "0", "--tick-interval", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = one_line_error(p.returncode, p.stderr, "error: journal", "OMNJRNL1", "new journal directory")
    assert line.startswith("python -m aggregator.sequencer_service: error: ")

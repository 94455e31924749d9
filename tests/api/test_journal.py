"""Journal: durability, torn tails, crc damage, rotation, reopen continues the sequence."""

from __future__ import annotations

import asyncio
import os
import zlib

import pytest

from aggregator.core.commands import DepositCredit, Tick
from aggregator.journal import HEADER, MAGIC, Journal, JournalCorrupt, JournalError

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
    data[len(MAGIC) + HEADER.size + 1] ^= 0xFF
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
    assert data[:8] == MAGIC
    length, crc = HEADER.unpack_from(data, 8)
    payload = data[8 + HEADER.size:]
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

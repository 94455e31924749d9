"""Append-only, durable command journal: one writer, group commit, segment files.

Layout
    A journal is a directory of segment files ``<first seq, 20 digits>.seg``. A segment
    starts with a 12-byte header and then holds records back to back::

        header:  8 bytes  magic ``OMNJRNL2``
                 u32 little-endian  rules version (``aggregator.core.version.RULES_VERSION``)
        record:  u32 little-endian  payload length (> 0)
                 u32 little-endian  crc32(payload)
                 payload            aggregator.core.commands.encode(cmd)  (msgpack)

    Sequence numbers are contiguous: record *i+1* carries ``seq`` one more than record
    *i*, across segments. A new segment is started (named by the first ``seq`` it will
    hold) once the current one passes ``segment_bytes``; the old one is fsynced before.

Rules version
    A journal holds inputs; the state is what the core's rules make of them, so a journal
    replays only under the rules it was written with. Every segment header records the
    rules version of the build that created it (a new journal gets the running build's).
    ``Journal.open`` reads the header of every segment before touching anything and
    raises ``JournalVersionMismatch`` (nothing on disk changed) if one differs from the
    running build's ``RULES_VERSION``; segments of the older format (magic ``OMNJRNL1``,
    no version) count as "version unknown" and are refused the same way. A journal thus
    opens only if all its segments agree with the build, and every later segment is
    written by that build, so one journal cannot mix versions; a segment copied in from
    elsewhere is caught at open (or by ``replay``).
    The version lives in each segment header rather than in a metadata file beside them:
    a segment is self-describing wherever it is copied, there is no second file whose
    loss or disagreement with the data would need its own recovery rules, and the header
    is already written (and its torn writes repaired) where a segment is created. The
    check costs one 12-byte read per segment at open.

Durability (group commit)
    ``append(cmd)`` encodes the command, puts the bytes in the pending buffer in call order
    and returns a future that resolves (to the command's ``seq``) once the bytes are
    written *and fsynced* (``append_nowait`` + ``durable(seq)``: one future for many
    records). At the end of the loop iteration the whole pending buffer goes to a
    dedicated writer thread, which writes it and fdatasyncs once, then reports back with
    one loop callback (``on_durable(seq)``, then the futures); appends arriving
    meanwhile form the next group, handed over as soon as the previous one is back. Many
    appends, one fsync: throughput survives durability, and latency is one write + fsync
    plus the wait for the group in flight.

Crash safety
    Records are only ever appended; nothing written is rewritten. A ``kill -9`` (or power
    loss) can leave the last segment with a torn tail: a partial header, a partial
    payload, or bytes whose crc does not match. Opening the journal scans the last
    segment, keeps every complete record whose crc matches, and truncates the file at the
    first bad record, so the tail is cut and every earlier (fsynced, hence acknowledged)
    record survives. A bad record inside a *sealed* (non-last) segment is not a torn write
    but damage, and raises ``JournalCorrupt`` instead of silently dropping data.

Recovery
    ``Journal.open`` returns the journal positioned after the last good record, with
    ``last_seq`` and ``last_ts_ms`` recovered (0 / 0 when empty); ``replay(from_seq)``
    yields every command with ``seq >= from_seq`` in order. It opens no segment before
    the one holding ``from_seq`` (segment names are first seqs) and steps over the
    records before ``from_seq`` in that one by their length alone (no crc, no decode;
    the first record decoded must carry the seq its position implies): a restart from a
    checkpoint (``aggregator.checkpoint``) reads only the journal's tail. (The last
    segment's records were all crc-checked by ``open``.)

Failure
    If a write or fsync fails the journal is *failed*: every pending and later append
    raises ``JournalError``. The caller must stop (state applied in memory may no longer
    match the journal); restarting replays what is durable.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import queue
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from aggregator.core import commands as _commands
from aggregator.core import version as _version

log = logging.getLogger(__name__)

__all__ = ["Journal", "JournalError", "JournalCorrupt", "JournalVersionMismatch", "MAGIC", "MAGIC_V1",
           "SEGMENT_HEADER", "HEADER", "UNKNOWN_VERSION", "read_segment"]

MAGIC = b"OMNJRNL2"
MAGIC_V1 = b"OMNJRNL1"  # segments from before the rules version: refused
SEGMENT_HEADER = struct.Struct("<8sI")  # magic, rules version
UNKNOWN_VERSION = 0  # the version of an OMNJRNL1 segment (RULES_VERSION starts at 1)
HEADER = struct.Struct("<II")  # record header: length, crc32
_HEADER_PACK = HEADER.pack
MAX_RECORD = 16 << 20
DEFAULT_SEGMENT_BYTES = 64 << 20
_SUFFIX = ".seg"


class JournalError(RuntimeError):
    """The journal cannot accept or persist a record."""


class JournalCorrupt(JournalError):
    """A sealed segment holds a bad record, or sequence numbers are not contiguous."""


class JournalVersionMismatch(JournalError):
    """The journal was written under other core rules than this build's ``RULES_VERSION``."""

    def __init__(self, where: str, found: int, expected: int) -> None:
        self.where, self.found, self.expected = where, found, expected
        written = ("an unknown core rules version (OMNJRNL1 format, from before rules versions)"
                   if found == UNKNOWN_VERSION else f"core rules version {found}")
        super().__init__(f"journal {where} was written under {written}, but this build replays rules version "
                         f"{expected}: replay it with the release that wrote it, or start a new journal directory")


def _header_version(head: bytes) -> int | None:
    """The rules version in a segment's first bytes (``UNKNOWN_VERSION`` for OMNJRNL1); None if torn or bad."""
    if head[: len(MAGIC_V1)] == MAGIC_V1:
        return UNKNOWN_VERSION
    if len(head) >= SEGMENT_HEADER.size and head[: len(MAGIC)] == MAGIC:
        return SEGMENT_HEADER.unpack_from(head)[1]
    return None


def _segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{_SUFFIX}"


def _segments(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(_SUFFIX) and p.name[:-len(_SUFFIX)].isdigit())


def read_segment(path: Path, rules_version: int | None = None, skip: int = 0) -> tuple[list[bytes], int, str | None]:
    """Return ``(payloads, good_length, problem)`` of one segment file.

    ``good_length`` is the byte offset just after the last good record (0 if the header
    is torn or bad); ``problem`` describes why reading stopped before the end of the file
    (``None`` if it did not). A header with another rules version than ``rules_version``
    (default: the running build's) raises ``JournalVersionMismatch``. ``skip``: the first
    ``skip`` records are stepped over by their length alone (no crc, not returned: a
    replay from a checkpoint), so ``payloads`` starts with record ``skip``.
    """
    data = path.read_bytes()
    version = _header_version(data[: SEGMENT_HEADER.size])
    if version is None:
        return [], 0, "short or missing segment header" if len(data) < SEGMENT_HEADER.size else "bad segment magic"
    expected = _version.RULES_VERSION if rules_version is None else rules_version
    if version != expected:
        raise JournalVersionMismatch(f"{path.parent} (segment {path.name})", version, expected)
    pos, end, out = SEGMENT_HEADER.size, len(data), []
    hs = HEADER.size
    unpack = HEADER.unpack_from
    while skip and pos < end:
        if end - pos < hs:
            return out, pos, f"torn record header at offset {pos}"
        length = unpack(data, pos)[0]
        if length == 0 or length > MAX_RECORD or end - pos - hs < length:
            return out, pos, f"bad or torn record (length {length}) at offset {pos}"
        pos += hs + length
        skip -= 1
    while pos < end:
        if end - pos < hs:
            return out, pos, f"torn record header at offset {pos}"
        length, crc = HEADER.unpack_from(data, pos)
        if length == 0 or length > MAX_RECORD:
            return out, pos, f"bad record length {length} at offset {pos}"
        if end - pos - hs < length:
            return out, pos, f"torn record payload at offset {pos}"
        payload = data[pos + hs: pos + hs + length]
        if zlib.crc32(payload) != crc:
            return out, pos, f"crc mismatch at offset {pos}"
        out.append(payload)
        pos += hs + length
    return out, pos, None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """The command journal of one sequencer (single writer: one ``Journal`` per directory)."""

    def __init__(self, directory: Path, segment_bytes: int, fsync: bool) -> None:
        self.directory = directory
        self.rules_version = _version.RULES_VERSION  # written into every segment header, required of every read
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.last_seq = 0  # last seq handed to append (durable or pending)
        self.last_ts_ms = 0
        self.durable_seq = 0  # last seq known to be on disk
        self.truncated: str | None = None  # what the tail repair cut, if anything
        self._file = None
        self._file_size = 0
        self._pending = bytearray()
        self._pending_first_seq = 0
        self._waiters: list[tuple[int, asyncio.Future]] = []  # (seq, future), ascending seq
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._writing = False  # a group is with the writer thread
        self._kicked = False  # a _start_write is scheduled
        self._failed: BaseException | None = None
        self._closed = False
        self.on_durable: Callable[[int], None] | None = None  # called with durable_seq after each group
        self.flushes = 0  # number of group commits (for benchmarks)

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: str | os.PathLike, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES,
             fsync: bool = True) -> Journal:
        """Open (creating if needed) the journal in ``directory`` and repair a torn tail.

        Raises ``JournalVersionMismatch``, before anything on disk changes, if a segment
        was written under another rules version than this build's.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        j = cls(d, segment_bytes, fsync)
        j._recover()
        return j

    def _check_versions(self, segs: list[Path]) -> None:
        """Refuse a journal with a segment of another rules version (reads only the headers)."""
        for i, p in enumerate(segs):
            with open(p, "rb") as f:
                head = f.read(SEGMENT_HEADER.size)
            version = _header_version(head)
            if version is None:
                if i == len(segs) - 1:
                    continue  # a torn header: the last segment holds no record yet; recovery rewrites it
                raise JournalCorrupt(f"{p.name}: bad segment header in a sealed segment")
            if version != self.rules_version:
                raise JournalVersionMismatch(f"{self.directory} (segment {p.name})", version, self.rules_version)

    def _header(self) -> bytes:
        return SEGMENT_HEADER.pack(MAGIC, self.rules_version)

    def _recover(self) -> None:
        segs = _segments(self.directory)
        self._check_versions(segs)  # before any repair below touches the disk
        # the last non-empty segment holds the last record; empty trailing ones are dropped
        while segs:
            last = segs[-1]
            payloads, good, problem = read_segment(last, self.rules_version)
            if problem is not None:
                log.warning("journal %s: %s; truncating %d bytes", last, problem, last.stat().st_size - good)
                self.truncated = f"{last.name}: {problem}"
                if good == 0:
                    # not even a valid header: rewrite the header so the file is a valid empty segment
                    with open(last, "wb") as f:
                        f.write(self._header())
                        f.flush()
                        os.fsync(f.fileno())
                    good = SEGMENT_HEADER.size
                else:
                    with open(last, "r+b") as f:
                        f.truncate(good)
                        f.flush()
                        os.fsync(f.fileno())
            if payloads:
                cmd = _commands.decode(payloads[-1])
                self.last_seq = self.durable_seq = cmd.seq
                self.last_ts_ms = cmd.ts_ms
                first = _commands.decode(payloads[0]).seq
                if int(last.name[: -len(_SUFFIX)]) != first:
                    raise JournalCorrupt(f"{last.name} starts with seq {first}")
                break
            if len(segs) == 1:
                # only an empty segment: its name says which seq comes next
                self.last_seq = self.durable_seq = int(last.name[: -len(_SUFFIX)]) - 1
                break
            last.unlink()
            segs.pop()
        if segs:
            path = segs[-1]
            self._file = open(path, "ab")
            self._file_size = path.stat().st_size
        else:
            self._new_segment(1)

    def _new_segment(self, first_seq: int) -> None:
        path = self.directory / _segment_name(first_seq)
        f = open(path, "ab")
        if f.tell() == 0:
            f.write(self._header())
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        if self.fsync:
            _fsync_dir(self.directory)
        self._file = f
        self._file_size = f.tell()

    # ----------------------------------------------------------------- reading

    def replay(self, from_seq: int = 0) -> Iterator[_commands.Command]:
        """Yield the journalled commands with ``seq >= from_seq``, in order.

        Stops cleanly at a torn or corrupt tail of the last segment (and truncates it);
        raises ``JournalCorrupt`` for damage in a sealed segment or a sequence gap.
        """
        segs = _segments(self.directory)
        # skip whole segments that end before from_seq
        start = 0
        for i, p in enumerate(segs):
            if int(p.name[: -len(_SUFFIX)]) <= from_seq:
                start = i
        expect: int | None = None
        for i in range(start, len(segs)):
            p = segs[i]
            skip = 0
            if expect is None:
                # records are contiguous from the seq in the segment's name: the ones before from_seq are
                # stepped over (length only: no crc, no decode); the first decoded one must carry the expected seq
                first = int(p.name[: -len(_SUFFIX)])
                if from_seq > first:
                    skip = from_seq - first
            payloads, good, problem = read_segment(p, self.rules_version, skip)
            if problem is not None:
                if i != len(segs) - 1:
                    raise JournalCorrupt(f"{p.name}: {problem} in a sealed segment")
                if self._file is None and good and not skip:  # a read-only replay nobody has open: repair
                    with open(p, "r+b") as f:
                        f.truncate(good)
            if skip:
                expect = first + skip
            for payload in payloads:
                cmd = _commands.decode(payload)
                if expect is not None and cmd.seq != expect:
                    raise JournalCorrupt(f"{p.name}: seq {cmd.seq} follows {expect - 1}")
                expect = cmd.seq + 1
                if cmd.seq >= from_seq:
                    yield cmd

    # ----------------------------------------------------------------- writing

    def append(self, cmd: _commands.Command) -> asyncio.Future:
        """Queue ``cmd``; return a future resolving to its ``seq`` once it is durable.

        Must be called from the event loop thread, in ``seq`` order (``seq`` is exactly
        ``last_seq + 1``; ``ts_ms`` never below ``last_ts_ms``).
        """
        self.append_nowait(cmd)
        return self.durable(cmd.seq)

    def append_nowait(self, cmd: _commands.Command) -> None:
        """``append`` without a future: ``durable(seq)`` or ``on_durable`` tell when it is on disk."""
        if self._failed is not None:
            raise JournalError(f"journal failed: {self._failed}") from self._failed
        if self._closed:
            raise JournalError("journal is closed")
        if cmd.seq != self.last_seq + 1:
            raise JournalError(f"append seq {cmd.seq}, expected {self.last_seq + 1}")
        if cmd.ts_ms < self.last_ts_ms:
            raise JournalError(f"append ts_ms {cmd.ts_ms} < last {self.last_ts_ms}")
        payload = _commands.encode(cmd)
        if len(payload) > MAX_RECORD:
            raise JournalError(f"record of {len(payload)} bytes exceeds {MAX_RECORD}")
        if self._loop is None:
            self._start_writer()
        pending = self._pending
        if not pending:
            self._pending_first_seq = cmd.seq
        pending += _HEADER_PACK(len(payload), zlib.crc32(payload))
        pending += payload
        self.last_seq = cmd.seq
        self.last_ts_ms = cmd.ts_ms
        if not self._writing and not self._kicked:
            self._kicked = True
            self._loop.call_soon(self._start_write)  # appends of this loop iteration join the group

    def durable(self, seq: int) -> asyncio.Future:
        """Return a future resolving to ``seq`` once every record up to ``seq`` is durable."""
        loop = self._loop or asyncio.get_running_loop()
        fut = loop.create_future()
        if self._failed is not None:
            fut.set_exception(JournalError(f"journal failed: {self._failed}"))
        elif seq <= self.durable_seq:
            fut.set_result(seq)
        elif not self._waiters or self._waiters[-1][0] <= seq:
            self._waiters.append((seq, fut))
        else:
            bisect.insort(self._waiters, (seq, fut), key=lambda w: w[0])
        return fut

    def _start_writer(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = threading.Thread(target=self._write_loop, name="journal-io", daemon=True)
        self._writer.start()

    def _start_write(self) -> None:
        """Hand the pending group to the writer thread (one write and one fdatasync)."""
        self._kicked = False
        if self._writing or not self._pending or self._failed is not None:
            return
        data, first = bytes(self._pending), self._pending_first_seq
        self._pending = bytearray()
        self._writing = True
        self._jobs.put((data, first, self.last_seq))

    def _write_loop(self) -> None:
        """Writer thread: write + fdatasync each group, report back with one loop callback."""
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            data, first, last = job
            err: BaseException | None = None
            try:
                self._write(data, first)
            except BaseException as e:  # noqa: BLE001 - a failed write fails the journal
                err = e
            try:
                self._loop.call_soon_threadsafe(self._written, first, last, err)
            except RuntimeError:  # the loop is closed
                return

    def _written(self, first: int, last: int, err: BaseException | None) -> None:
        self._writing = False
        if err is not None:
            self._failed = err
            log.critical("journal write failed at seq %d..%d: %r", first, last, err)
            exc = JournalError(f"journal write failed: {err!r}")
            waiters, self._waiters = self._waiters, []
            for _, f in waiters:
                if not f.done():
                    f.set_exception(exc)
            return
        self.durable_seq = last
        self.flushes += 1
        if self.on_durable is not None:
            try:
                self.on_durable(last)
            except Exception:  # noqa: BLE001 - a hook never breaks the journal
                log.exception("journal on_durable hook failed")
        w = self._waiters
        i = 0
        while i < len(w) and w[i][0] <= last:
            f = w[i][1]
            if not f.done():
                f.set_result(w[i][0])
            i += 1
        if i:
            del w[:i]
        if self._pending:
            self._start_write()

    def _write(self, data: bytes, first_seq: int) -> None:
        if self._file_size >= self.segment_bytes and self._file_size > SEGMENT_HEADER.size:
            self._seal()
            self._new_segment(first_seq)
        f = self._file
        f.write(data)
        f.flush()
        if self.fsync:
            os.fdatasync(f.fileno())
        self._file_size += len(data)

    def _seal(self) -> None:
        f = self._file
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        f.close()

    async def flush(self) -> None:
        """Wait until everything appended so far is durable."""
        if self.durable_seq < self.last_seq or self._failed is not None:
            await self.durable(self.last_seq)

    async def close(self) -> None:
        """Flush what is pending, stop the writer thread and close the file."""
        if self._closed:
            return
        try:
            if self._failed is None:
                await self.flush()
        finally:
            self._closed = True
            if self._writer is not None:
                self._jobs.put(None)
                await asyncio.to_thread(self._writer.join)
                self._writer = None
            if self._file is not None:
                f, self._file = self._file, None
                await asyncio.to_thread(self._close_file, f)

    def _close_file(self, f) -> None:
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        f.close()

    def close_sync(self) -> None:
        """Close without an event loop (nothing may be pending)."""
        if self._waiters or self.durable_seq < self.last_seq:
            raise JournalError("close_sync with pending appends")
        self._closed = True
        if self._writer is not None:
            self._jobs.put(None)
            self._writer.join()
            self._writer = None
        if self._file is not None:
            self._close_file(self._file)
            self._file = None

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def segments(self) -> list[Path]:
        """Return the segment files, oldest first."""
        return _segments(self.directory)

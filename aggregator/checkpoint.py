"""Checkpoints of the sequencer service: a restart loads the newest valid one and replays the journal tail.

Why
    A restart used to replay the whole journal (~35k commands/s: minutes for 10M
    commands). A checkpoint is the whole state after command ``N``; a restart restores it
    and replays only the records with ``seq > N``. The journal stays complete (it is the
    audit log and the truth: a checkpoint is a cache of it and is never required).

Where
    ``<journal dir>/checkpoints/<N, 20 digits>.ckpt`` (inside the journal directory, so
    the two move, copy and back up together; ``Journal`` only looks at ``*.seg`` files).
    The newest ``KEEP`` (2) are kept, older ones are deleted by the writer after a new
    one is in place. A file being written is ``<N>.ckpt.tmp.<pid>``; the loader never
    looks at those, the next writer deletes leftovers of a dead one.

File format (all integers little-endian)
    header (68 bytes)::

        8 bytes  magic ``OMNCKPT1``
        u32      rules version (``aggregator.core.version.RULES_VERSION`` of the writer)
        u64      N: the seq of the last command the state includes
        u64      meta_len
        u64      snap_len
        32 bytes sha256(header bytes 0..36 || meta || snap)

    then ``meta`` (``meta_len`` bytes, a pickled dict) and ``snap`` (``snap_len`` bytes,
    ``Sequencer.snapshot()``). ``meta`` holds: ``seq`` and ``rules_version`` (again, must
    equal the header's), ``config`` (``config_fingerprint`` of the ``SequencerConfig``),
    ``state_root`` (``Sequencer.state_root()`` at N), ``last_ts_ms`` and ``last_command``
    (``commands.encode`` of command N, as the journal holds it), and ``service``: the
    service-level state a replay rebuilds besides the Sequencer (the deposit index
    ``(chain_id, deposit_nonce) -> seq`` in seq order, and the deposit accounts, which a
    replay teaches the fast Order build). The order-book mirror is not stored: a restart
    rebuilds it from the restored books exactly as after a full replay.

Invariants
    - A checkpoint never includes a command that is not durable in the journal. The
      writer (a forked child, see ``CheckpointWriter``) writes and fsyncs the temporary
      file, then waits for the parent's word that the journal is durable up to N; only
      then does it rename the file into place (and fsync the directory). If the parent
      dies or gives up first, the child deletes the temporary file. The loader checks
      it again: a checkpoint with N above the journal's last (durable, after tail
      repair) seq is ignored.
    - A checkpoint belongs to its journal: command N of the journal must equal the
      recorded ``last_command`` (a checkpoint copied beside another journal is ignored).
    - Atomic: temporary file, fsync, rename, fsync of the directory. A reader sees a
      whole file or none.
    - Rules and configuration: a checkpoint written under another ``RULES_VERSION`` or
      another ``SequencerConfig`` (instruments, risk, fees, ...: ``config_fingerprint``)
      is ignored; the journal then replays in full, which itself refuses a journal of
      another rules version (``JournalVersionMismatch``), as without checkpoints.

Trust
    Like the journal, checkpoint files are our own trusted storage: ``meta`` and the
    snapshot are pickles, unpickled only after the sha256 over the whole file matched
    (the checksum catches damage, it is not a defence against someone who can write the
    directory: such a person can write the journal too).

Failure handling
    - Loading (``load_newest``): candidates newest first; a file that cannot be read,
      is short, has a bad magic, another rules version, N above the journal, a checksum
      mismatch, another config fingerprint, a snapshot that fails to restore, a
      restored ``state_root`` that differs from the recorded one, or a journal record N
      that differs from the recorded command is *ignored* with one warning line saying
      why, and the next older one is tried; with none left the journal replays in full.
      Loading never changes anything on disk.
    - Writing: any error in the child (disk full, ...) ends the child with a non-zero
      status and no checkpoint (its temporary file removed when possible); the parent
      logs one warning and tries again ``checkpoint_every`` commands later. A crash of
      either process at any point leaves at most a temporary file, never a partial or
      undurable checkpoint. The service never waits for a writer except in ``stop()``
      (bounded by the child's write time).
"""

from __future__ import annotations

import dataclasses
import enum
import gc
import hashlib
import json
import logging
import os
import pickle
import signal
import socket
import struct
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aggregator.core import version as _version
from aggregator.journal import _fsync_dir

log = logging.getLogger(__name__)

__all__ = ["MAGIC", "HEADER", "KEEP", "DEFAULT_CHECKPOINT_EVERY", "CheckpointInvalid", "Checkpoint",
           "CheckpointStats", "CheckpointWriter", "checkpoint_dir", "config_fingerprint", "encode", "read",
           "list_checkpoints"]

MAGIC = b"OMNCKPT1"
HEADER = struct.Struct("<8sIQQQ32s")  # magic, rules version, seq, meta_len, snap_len, sha256
_SIGNED = 8 + 4 + 8 + 8 + 8  # header bytes covered by the digest (everything before it)
KEEP = 2
DEFAULT_CHECKPOINT_EVERY = 100_000
_SUFFIX = ".ckpt"
DIRNAME = "checkpoints"
# exit statuses of the writer child
_EXIT_WRITTEN, _EXIT_FAILED, _EXIT_DISCARDED = 0, 1, 3


class CheckpointInvalid(Exception):
    """A checkpoint file cannot be used; ``str(e)`` says why (one line)."""


def checkpoint_dir(journal_dir: str | os.PathLike) -> Path:
    """Return where the checkpoints of the journal in ``journal_dir`` live."""
    return Path(journal_dir) / DIRNAME


def _name(seq: int) -> str:
    return f"{seq:020d}{_SUFFIX}"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Return ``(N, path)`` of every checkpoint file in ``directory``, newest (highest N) first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for n in names:
        stem = n[: -len(_SUFFIX)]
        if n.endswith(_SUFFIX) and len(stem) == 20 and stem.isdigit():
            out.append((int(stem), directory / n))
    out.sort(reverse=True)
    return out


# ------------------------------------------------------------------ config fingerprint


def _canonical(o: Any, depth: int = 0) -> Any:
    """A nested tuple that describes ``o`` by value, independent of hash seeds and object ids."""
    if depth > 40:
        raise ValueError("configuration nested too deeply to fingerprint")
    d = depth + 1
    if o is None or isinstance(o, (bool, int, str, bytes)):
        return (type(o).__name__, o)
    if isinstance(o, float):
        return ("float", repr(o))
    if isinstance(o, enum.Enum):
        return ("enum", type(o).__qualname__, _canonical(o.value, d))
    if isinstance(o, Mapping):
        items = [(_canonical(k, d), _canonical(v, d)) for k, v in o.items()]
        return ("map", tuple(sorted(items, key=repr)))
    if isinstance(o, (set, frozenset)):
        return ("set", tuple(sorted((_canonical(x, d) for x in o), key=repr)))
    if isinstance(o, (list, tuple)):
        return (type(o).__name__, tuple(_canonical(x, d) for x in o))
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return ("obj", type(o).__qualname__,
                tuple((f.name, _canonical(getattr(o, f.name), d)) for f in dataclasses.fields(o)))
    attrs: dict[str, Any] = {}
    for cls in type(o).__mro__:
        for s in getattr(cls, "__slots__", ()):
            if s not in ("__dict__", "__weakref__") and hasattr(o, s):
                attrs[s] = getattr(o, s)
    attrs.update(getattr(o, "__dict__", {}))
    if not attrs:
        raise ValueError(f"cannot fingerprint a {type(o).__qualname__}")
    return ("obj", type(o).__qualname__, tuple((k, _canonical(v, d)) for k, v in sorted(attrs.items())))


def config_fingerprint(config: Any) -> str:
    """Return the sha256 (hex) of ``config`` described by value (a ``SequencerConfig``)."""
    return hashlib.sha256(repr(_canonical(config)).encode()).hexdigest()


# ------------------------------------------------------------------ encode / read


def encode(*, seq: int, state_root: bytes, config: str, last_ts_ms: int, last_command: bytes,
           service: dict[str, Any], snapshot: bytes, rules_version: int | None = None) -> list[bytes]:
    """Return the file's bytes as ``[header, meta, snapshot]`` (written back to back)."""
    rv = _version.RULES_VERSION if rules_version is None else rules_version
    meta = pickle.dumps({"seq": seq, "rules_version": rv, "config": config, "state_root": state_root,
                         "last_ts_ms": last_ts_ms, "last_command": last_command, "service": service},
                        protocol=pickle.HIGHEST_PROTOCOL)
    signed = struct.pack("<8sIQQQ", MAGIC, rv, seq, len(meta), len(snapshot))
    h = hashlib.sha256(signed)
    h.update(meta)
    h.update(snapshot)
    return [signed + h.digest(), meta, snapshot]


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint file that passed the file-level checks (magic, version, seq bound, checksum, config)."""

    path: Path
    seq: int
    meta: dict[str, Any]
    snapshot: bytes
    size: int


def read(path: Path, *, config: str, max_seq: int) -> Checkpoint:
    """Read and check one checkpoint file; raise ``CheckpointInvalid`` (reason) if it cannot be used.

    ``config``: the running ``config_fingerprint``; ``max_seq``: the journal's last durable seq.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                raise CheckpointInvalid(f"short header ({len(head)} bytes)")
            magic, rv, seq, meta_len, snap_len, digest = HEADER.unpack(head)
            if magic != MAGIC:
                raise CheckpointInvalid(f"bad magic {magic!r}")
            if rv != _version.RULES_VERSION:
                raise CheckpointInvalid(f"written under rules version {rv}, this build is {_version.RULES_VERSION}")
            stem = path.name[: -len(_SUFFIX)]
            if stem.isdigit() and int(stem) != seq:
                raise CheckpointInvalid(f"header says seq {seq}, file name says {int(stem)}")
            if seq > max_seq:
                raise CheckpointInvalid(f"seq {seq} is beyond the journal's last durable seq {max_seq}")
            size = os.fstat(f.fileno()).st_size
            if size != HEADER.size + meta_len + snap_len:
                raise CheckpointInvalid(f"size {size} != {HEADER.size + meta_len + snap_len} (truncated or padded)")
            meta_b = f.read(meta_len)
            snap = f.read(snap_len)
    except OSError as e:
        raise CheckpointInvalid(f"cannot read: {e}") from None
    h = hashlib.sha256(head[:_SIGNED])
    h.update(meta_b)
    h.update(snap)
    if h.digest() != digest:
        raise CheckpointInvalid("checksum mismatch (sha256 over the file)")
    try:
        meta = pickle.loads(meta_b)  # noqa: S301 - our own file, checksum verified
    except Exception as e:  # noqa: BLE001
        raise CheckpointInvalid(f"bad meta: {e!r}") from None
    if not isinstance(meta, dict) or meta.get("seq") != seq or meta.get("rules_version") != rv:
        raise CheckpointInvalid("meta disagrees with the header")
    if meta.get("config") != config:
        raise CheckpointInvalid("written under another sequencer configuration (fingerprint differs)")
    return Checkpoint(path, seq, meta, snap, size)


# ------------------------------------------------------------------ writer


@dataclasses.dataclass
class CheckpointStats:
    """One checkpoint attempt, as the parent saw it (times in seconds)."""

    seq: int
    fork_pause_s: float  # the parent's time inside os.fork (the only pause of the event loop)
    started: float = 0.0  # time.monotonic() at the fork
    outcome: str = "running"  # written | discarded (journal never durable up to seq) | failed: ...
    build_s: float = 0.0  # child: snapshot + state root + pickling
    write_s: float = 0.0  # child: build + write + fsync of the temporary file (what the parent did not wait for)
    durable_wait_s: float = 0.0  # child: waiting for the journal to be durable up to seq
    total_s: float = 0.0  # fork to reaped, as the parent saw it
    bytes: int = 0
    path: str | None = None


class CheckpointWriter:
    """Writes checkpoints in a forked child, one at a time, without blocking the event loop.

    ``begin(seq, build)`` forks. The child restores the default SIGTERM/SIGINT/SIGHUP
    actions (the service's asyncio handlers would swallow them), closes every inherited
    descriptor but its socket to the parent (so the listening socket, the journal file
    and the parent's end of the socket are never held by it: the parent's death is an
    end of file), calls ``build()`` (returns ``encode(...)``'s parts from the child's copy of the
    state), writes and fsyncs ``<N>.ckpt.tmp.<pid>``, then waits for one byte from the
    parent: ``release()`` sends it once the journal is durable up to N; end of file
    (the parent died, or ``abandon()``) makes the child delete its file. Released, it
    renames the file into place, fsyncs the directory, deletes older checkpoints beyond
    ``keep`` and leftover temporary files, reports its timings on the socket and ends
    with ``os._exit`` (never returning into asyncio or atexit handlers). A parent thread
    reads the report and reaps the child (``os.waitpid`` on that pid only), then calls
    ``on_done(stats)`` on the event loop.
    """

    def __init__(self, directory: Path, *, keep: int = KEEP, child_delay_s: float = 0.0) -> None:
        self.directory = Path(directory)
        self.keep = keep
        self.child_delay_s = child_delay_s  # tests: the child sleeps this long before waiting to be released
        self.current: CheckpointStats | None = None
        self.history: list[CheckpointStats] = []  # the last few finished attempts
        self.on_done: Callable[[CheckpointStats], None] | None = None
        self._sock: socket.socket | None = None
        self._pid = 0
        self._released = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.current is not None

    @property
    def pid(self) -> int:
        return self._pid

    def begin(self, seq: int, build: Callable[[], list[bytes]], loop: Any) -> CheckpointStats:
        """Fork a child that writes the checkpoint of ``seq``; return its stats (filled in when done)."""
        if self.current is not None:
            raise RuntimeError("a checkpoint writer is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        parent, child = socket.socketpair()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
            t = time.perf_counter()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child (measured through its report)
                code = _EXIT_FAILED
                try:
                    code = self._child(child.fileno(), seq, build)
                finally:
                    os._exit(code)
            pause = time.perf_counter() - t
        child.close()
        stats = CheckpointStats(seq, pause, time.monotonic())
        self.current, self._sock, self._pid, self._released = stats, parent, pid, False
        self._thread = threading.Thread(target=self._reap, args=(pid, parent, stats, loop), name="checkpoint-reaper",
                                        daemon=True)
        self._thread.start()
        return stats

    def release(self) -> None:
        """Tell the child the journal is durable up to its seq: it may put the checkpoint in place."""
        if self._sock is not None and not self._released:
            self._released = True
            try:
                self._sock.send(b"G")
            except OSError:
                pass  # the child is gone: the reaper reports it

    def abandon(self) -> None:
        """Tell the child to discard its file (the journal will not become durable up to its seq)."""
        if self._sock is not None and not self._released:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current child (if any) has been reaped (call from a thread, or at shutdown)."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    # ----------------------------------------------------------- parent side

    def _reap(self, pid: int, sock: socket.socket, stats: CheckpointStats, loop: Any) -> None:
        chunks = []
        while True:
            try:
                b = sock.recv(65536)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            code = None
        try:
            report = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            report = {}
        stats.build_s = report.get("build_s", 0.0)
        stats.write_s = report.get("write_s", 0.0)
        stats.durable_wait_s = report.get("durable_wait_s", 0.0)
        stats.bytes = report.get("bytes", 0)
        stats.path = report.get("path")
        if code == _EXIT_WRITTEN:
            stats.outcome = "written"
        elif code == _EXIT_DISCARDED:
            stats.outcome = "discarded"
        else:
            stats.outcome = f"failed: exit status {code}: {report.get('error', 'no report')}"
        stats.total_s = time.monotonic() - stats.started
        try:
            loop.call_soon_threadsafe(self._finished, stats)
        except RuntimeError:  # the loop is closed: finish here
            self._finished(stats)

    def _finished(self, stats: CheckpointStats) -> None:
        if self.current is not stats:
            return
        if self._sock is not None:
            self._sock.close()
        self.current, self._sock, self._pid, self._thread = None, None, 0, None
        self.history = (self.history + [stats])[-20:]
        if stats.outcome == "written":
            log.info("checkpoint at seq %d written: %d bytes, fork pause %.1f ms, child write %.2f s",
                     stats.seq, stats.bytes, stats.fork_pause_s * 1e3, stats.write_s)
        elif stats.outcome == "discarded":
            log.warning("checkpoint at seq %d discarded: the journal did not become durable up to it", stats.seq)
        else:
            log.warning("checkpoint at seq %d not written: %s", stats.seq, stats.outcome)
        if self.on_done is not None:
            self.on_done(stats)

    # ------------------------------------------------------------ child side

    def _child(self, fd: int, seq: int, build: Callable[[], list[bytes]]) -> int:  # pragma: no cover - child
        """Runs in the forked child; returns its exit status. No logging (a lock may be held by a dead thread)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # not the service's (asyncio) handlers
            signal.signal(sig, signal.SIG_DFL)
        try:
            signal.set_wakeup_fd(-1)
        except ValueError:
            pass
        os.closerange(3, fd)
        os.closerange(fd + 1, 1 << 20)
        gc.disable()
        sock = socket.socket(fileno=fd)
        report: dict[str, Any] = {}
        tmp = self.directory / f"{_name(seq)}.tmp.{os.getpid()}"
        try:
            t0 = time.perf_counter()
            parts = build()
            report["build_s"] = time.perf_counter() - t0
            with open(tmp, "wb") as f:
                for p in parts:
                    f.write(p)
                f.flush()
                os.fsync(f.fileno())
            report["write_s"] = time.perf_counter() - t0
            report["bytes"] = sum(map(len, parts))
            del parts
            if self.child_delay_s:
                time.sleep(self.child_delay_s)
            t1 = time.perf_counter()
            go = sock.recv(1)
            report["durable_wait_s"] = time.perf_counter() - t1
            if go != b"G":  # the parent died or gave up: the journal may never hold seq
                tmp.unlink(missing_ok=True)
                _send(sock, report)
                return _EXIT_DISCARDED
            final = self.directory / _name(seq)
            os.rename(tmp, final)
            _fsync_dir(self.directory)
            report["path"] = str(final)
            self._prune(seq)
            _send(sock, report)
            return _EXIT_WRITTEN
        except BaseException as e:  # noqa: BLE001
            report["error"] = repr(e)[:500]
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            _send(sock, report)
            return _EXIT_FAILED

    def _prune(self, seq: int) -> None:  # pragma: no cover - child
        """Delete checkpoints beyond the newest ``keep`` and temporary files of dead writers."""
        for _, p in list_checkpoints(self.directory)[self.keep:]:
            p.unlink(missing_ok=True)
        mine = f".tmp.{os.getpid()}"
        for n in os.listdir(self.directory):
            if ".ckpt.tmp." in n and not n.endswith(mine):
                (self.directory / n).unlink(missing_ok=True)
        _fsync_dir(self.directory)


def _send(sock: socket.socket, report: dict[str, Any]) -> None:  # pragma: no cover - child
    try:
        sock.sendall(json.dumps(report).encode())
    except OSError:
        pass

"""The sequencer service: stateless checks, one writer, journal, acknowledgements, feeds.

Flow of a signed request (REST or WebSocket, see ``aggregator.api.trading``)
    1. *Stateless checks* (nothing is sequenced or journalled if they fail, HTTP 400):
       the JSON body is decoded by msgspec into a typed wire struct
       (``invalid_request`` on any shape, type or range problem, including integers that
       do not fit the journal's 64 bits); the EIP-712 message is built (field rules of
       ``aggregator.eip712``); the signature is normalised and the signer recovered
       (``bad_signature``). Recovery runs in worker processes (``ProcessVerifier``, the
       standalone default) or threads (``Verifier``, the library default): requests that
       arrive together are verified in chunks, one future per request (a batch is one
       request), so the loop thread only hands chunks over and reads signers back.
    2. *Sequencing* (synchronous, on the event loop thread, so it is the single writer):
       ``seq = last + 1`` and ``ts_ms = max(last ts, clock())`` (the clock is injected;
       time never goes backwards), ``Sequencer.apply(cmd)`` (the only mutator, pure and
       deterministic), then ``Journal.append_nowait(cmd)``. Every sequenced command is
       journalled, accepted or rejected, so replay sees exactly the same inputs. If a
       resting order's signed expiry is before ``ts_ms``, a ``Tick`` is sequenced first
       (it expires the order: good-til-time), so no order trades after its expiry.
    3. *Durability, then acknowledgement*: the caller awaits ``durable(seq)`` (a batch:
       the seq of its last command). When a group commit is back from the journal's
       writer thread, the group's commands are published to subscribers (``seq`` order,
       once per group) and only then do the callers' futures resolve and the
       outcomes go out (the API's 2xx).

Invariants
    - Nothing acknowledged is lost: an ack is sent only after the command's record is
      fsynced; replaying the journal into a fresh ``Sequencer`` on start rebuilds the
      state, so ``state_root()`` after a restart equals the one before.
    - Determinism: the core sees only journalled inputs; the wall clock enters only
      through ``ts_ms`` inside the command.
    - Market data shows only durable state: the order-book mirror (``BookMirror``) that
      serves book snapshots and deltas is updated from events at publication time, so a
      snapshot's ``seq`` and the deltas' ``seq`` are on the same per-instrument counter and
      never include a command that could still be lost.
    - If ``apply`` raises (a core bug) or the journal fails, the service stops accepting
      (``unavailable``, 503): memory may no longer match the journal; a restart replays.

Checkpoints (``aggregator.checkpoint`` has the format and every failure rule)
    Every ``checkpoint_every`` commands (default 100,000; 0: never; sequencing only
    compares ``seq`` with the next due one) a forked child writes the whole state after
    command N (the Sequencer's ``snapshot()`` and ``state_root()``, the deposit index) to
    ``<journal>/checkpoints/``; the loop pays only the ``fork`` (a few ms) and the child
    puts the file in place only once the journal is durable up to N (``_on_durable``
    releases it). ``start()`` restores the newest valid checkpoint, checks its state root
    and that the journal's command N is the recorded one, and replays only the records
    after N; any unusable checkpoint is logged and skipped (older one, else a full
    replay). The result is the state a full replay gives (``tests/api/test_checkpoint.py``).
    The journal is never truncated. ``checkpoint_now()`` takes one on demand.

Integrator hooks: ``submit_deposit`` (idempotent per ``(chain_id, deposit_nonce)``),
``submit_price``, ``subscribe``. Run standalone with
``python -m aggregator.sequencer_service --journal DIR --port N [--checkpoint-every N]``.

Performance notes (``bench/bench_order_entry.py``; CPU per order measured single-threaded)
    - ``jsonable`` (every ack body): exact scalar types return at once and NamedTuple
      events go through a converter generated per class: 51 -> 8 us per outcome, same
      JSON bytes (checked on a 30,000-command mixed session).
    - ``Verifier``: own worker threads on a ``SimpleQueue`` and one
      ``call_soon_threadsafe`` per chunk instead of ``run_in_executor``: the loop thread's
      CPU per verification drops by ~30-40 % (single requests 120-150 -> 77-89 us, chunks
      of 50 7.5 -> 5 us per order, on the shared 2-core machine).
    - Verification hot path (``_Keccak``, ``_make_digest``, ``_Recoverer``): keccak on
      pycryptodome's native library with one state per thread, the EIP-712 digest with it
      and secp256k1 recovery through coincurve's C functions with per-thread buffers:
      ``_verify_chunk`` 84 -> 64 us CPU per order, most of it GIL-free; REST batch
      2,289 -> 2,846 orders/s, service CPU 254 -> 212 us/order (load ~3-4.7 from others).
    - ``build_message`` of an Order (loop thread): ``_fast_order`` fills the slots directly
      when the account string and the instrument were seen valid before, after the cheap
      checks of ``Order.__post_init__``; everything else takes the constructor (same
      errors). parse_batch 38-41 -> 7 us per order (identical messages, A/B in one process);
      service CPU REST batch 212 -> 192, WS batch 234 -> 208, WS singles 304 -> 220 us/order
      (load 5.7-7.6 from others: orders/s not comparable, recoveries/s fell to 5k).
    - GC: the former gen0 threshold of 50,000 made each young collection a 16-60 ms
      pause (several per throughput run, measured with gc callbacks in the service): the
      ack p99. ``tune_gc``: young-only collections every 2,000 allocations (~0.2 ms).
    - ``ProcessVerifier``: with recovery on threads, in-process batch path (no HTTP)
      4-5k orders/s at the same loop-thread CPU (55-65 us/order) as ~10k with recovery
      stubbed out: the workers' GIL-held glue and hand-offs, not the loop's CPU, were the
      limit. Worker processes, back to back (load ~3.2 from others): REST batch 6,265 ->
      9,875, WS batch 5,129 -> 9,448, WS singles 6,083 -> 7,266 orders/s; service CPU per
      order (workers included) unchanged, 135-145 us. A round of <= 2 messages while no
      chunk is out is verified on the loop thread (a lone order: no wake-up of a worker).
    - Fewer futures and callbacks per order: one verification future per request (a
      batch is one), the journal's ``append_nowait`` + one ``durable(seq)`` future per
      request, one loop callback per group commit from a dedicated writer thread (no
      ``run_in_executor``, no flusher task), ``Published.accounts`` only when asked,
      WebSocket frames sent as the encoded bytes, accounts known from deposits skip the
      EIP-55 check of a trader's first order.
    - All of the above against the service and journal of 77d6643 on the same core,
      alternating runs (``--orders 10000 --repeat 1 --latency-seconds 3``, load 1.8-2.2
      from others, recoveries/s ceiling 16-19k on 1 thread): REST batch 5,174 / 5,585 ->
      7,647 / 6,834 orders/s, WS batch 6,022 / 5,366 -> 9,173 / 7,832, WS singles 4,081 /
      4,753 -> 5,995 / 7,189; service CPU per order (workers included) REST 204 / 166 ->
      139 / 144 us, WS batch 186 / 172 -> 119 / 109, WS singles 276 / 216 -> 182 / 144.
      In a run with a quiet moment (ceiling 33k recoveries/s on 2 threads): REST batch
      10,847, WS batch 11,606, WS singles 10,421 orders/s (105-130 us/order).
    - Ack latency at 1,000/s is set by the host, not by a pause of the service: with
      load 2-3 from others WS p99 ranged 2.7-11 ms and REST 5-47 ms in both builds (three
      alternating pairs: no build was better). Inside the service (REST, timed per stage):
      verification p50 0.1-0.4 ms, sequencing 0.04 ms, waiting for durability p50
      0.4-2.2 ms while write + fdatasync itself took p50 0.22-0.29 ms: the helper threads
      (journal writer) and worker processes wait for a core and for the GIL behind a loop
      thread that the scheduler preempted. The ``Tick`` costs the loop 2-4 ms of CPU every
      second with ~2,000 funded accounts (the core's liquidation sweep over every holder).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import logging
import math
import operator
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import coincurve
import msgspec

from aggregator import checkpoint as _ckpt
from aggregator import eip712
from aggregator.core import commands as C
from aggregator.journal import Journal, JournalError

log = logging.getLogger(__name__)

__all__ = [
    "RequestError",
    "ServiceUnavailable",
    "SignedKind",
    "KINDS",
    "parse_signed",
    "parse_batch",
    "SequencerService",
    "BookMirror",
    "Published",
    "jsonable",
    "wall_clock_ms",
]

UINT64 = 1 << 64
UINT256 = 1 << 256
MAX_BATCH = 50


class RequestError(Exception):
    """A request failed a stateless check: ``code`` is ``invalid_request`` or ``bad_signature``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ServiceUnavailable(RuntimeError):
    """The service is not running, or stopped accepting after a fatal error."""


def wall_clock_ms() -> int:
    """Return Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------ wire formats
# One msgspec struct per EIP-712 message, keyed by the Solidity field names a wallet
# signs; unsigned integers may be JSON numbers or decimal strings (uint256 overflows JS).

_PY = {"address": str, "string": str, "bool": bool}


def _wire_struct(cls: type) -> type[msgspec.Struct]:
    fields = [(attr, _PY.get(typ, int | str)) for _sol, attr, typ in cls.FIELDS]
    return msgspec.defstruct(f"{cls.PRIMARY_TYPE}Wire", fields, rename={a: s for s, a, _ in cls.FIELDS},
                             forbid_unknown_fields=True)


@dataclasses.dataclass(frozen=True)
class SignedKind:
    """One kind of signed request: its JSON field, EIP-712 class and command class."""

    name: str  # "order", "cancel", ...
    field: str  # JSON field holding the message
    message: type
    command: type
    wire: type[msgspec.Struct]
    request: type[msgspec.Struct]
    uints: tuple[tuple[str, str, int], ...]  # (solidity name, attribute, exclusive bound) of uint fields
    attrs: tuple[str, ...]


def _kind(name: str, field: str, message: type, command: type, wide: tuple[str, ...] = ()) -> SignedKind:
    """``wide``: uint256 fields the journal stores at full width (a withdrawal's native amount)."""
    wire = _wire_struct(message)
    req = msgspec.defstruct(f"{message.PRIMARY_TYPE}Request", [(field, wire), ("signature", str)],
                            forbid_unknown_fields=True)
    uints = tuple((s, a, UINT256 if a in wide else UINT64) for s, a, t in message.FIELDS if t.startswith("uint"))
    return SignedKind(name, field, message, command, wire, req, uints, tuple(a for _, a, _ in message.FIELDS))


KINDS: dict[str, SignedKind] = {k.name: k for k in (
    _kind("order", "order", eip712.Order, C.PlaceOrder),
    _kind("cancel", "cancel", eip712.Cancel, C.CancelOrder),
    _kind("cancel_all", "cancelAll", eip712.CancelAll, C.CancelAllOrders),
    _kind("cancel_all_after", "cancelAllAfter", eip712.CancelAllAfter, C.CancelAllAfter),
    _kind("mmp", "mmp", eip712.MmpConfig, C.SetMmp),
    _kind("trigger", "trigger", eip712.TriggerOrder, C.PlaceTrigger),
    _kind("amend", "amend", eip712.Amend, C.AmendOrder),
    _kind("session_key", "sessionKey", eip712.SessionKey, C.GrantSessionKey),
    _kind("revoke_session_key", "revoke", eip712.RevokeSessionKey, C.RevokeSession),
    _kind("withdrawal", "withdrawal", eip712.Withdrawal, C.Withdraw, wide=("amount",)),
)}
_BY_COMMAND = {k.command: k for k in KINDS.values()}

_OrderBatch = msgspec.defstruct("OrderBatch", [("orders", list[KINDS["order"].request])],
                                forbid_unknown_fields=True)
_DECODERS = {k.name: msgspec.json.Decoder(k.request) for k in KINDS.values()}
_BATCH_DECODER = msgspec.json.Decoder(_OrderBatch)


def build_message(kind: SignedKind, wire: Any) -> Any:
    """Build and validate the EIP-712 message from its wire struct; ``RequestError`` otherwise."""
    kw = {a: getattr(wire, a) for a in kind.attrs}
    for sol, a, bound in kind.uints:
        v = kw[a]
        if type(v) is str:
            if not v.isascii() or not v.isdigit() or (len(v) > 1 and v[0] == "0") or len(v) > 78:
                raise RequestError("invalid_request", f"{sol} must be a decimal integer string, got {v[:40]!r}")
            v = kw[a] = int(v)
        if not 0 <= v < bound:
            raise RequestError("invalid_request", f"{sol} = {v} is out of range (0 <= {sol} < "
                                                  f"2**{bound.bit_length() - 1})")
    if kind.message is eip712.Order and _FAST_ORDER:
        m = _fast_order(kw)
        if m is not None:
            return m
    try:
        m = kind.message(**kw)
    except eip712.MessageError as e:
        raise RequestError("invalid_request", str(e)) from None
    if kind.message is eip712.Order:
        _learn_order(kw, m)
    return m


# Fast build of an Order (the hot path of order entry). ``eip712.Order.__post_init__``
# costs ~25-45 us per order on the loop thread, mostly the EIP-55 checksum of the account
# (a keccak and a 40-character join) and the instrument name parse. Both are pure
# functions of the input string, so their results are remembered from orders built the
# normal way: an order whose account string and instrument were seen valid before is
# built directly (slots filled, no __post_init__) after the remaining, cheap checks of
# __post_init__ (uint8 codes in range, size > 0, a limit order's price > 0; the uint
# bounds and JSON types were checked by msgspec and ``build_message``). Anything else,
# including every invalid order, takes the normal constructor, so the accepted messages
# and the error messages are exactly eip712's (checked against it at import).
_ORDER_ACCOUNTS: dict[str, str] = {}  # account string as sent -> its checksum form
_ORDER_INSTRUMENTS: set[str] = set()
_ORDER_CACHE_MAX = 200_000


def _order_builder() -> Callable[[dict[str, Any], str], Any]:
    cls = eip712.Order
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = ["def build(kw, account):", "    m = _new(_cls)"]
    for _, a, _ in cls.FIELDS:
        ns[f"_set_{a}"] = cls.__dict__[a].__set__
        lines.append(f"    _set_{a}(m, account)" if a == "account" else f"    _set_{a}(m, kw[{a!r}])")
    lines.append("    return m")
    exec("\n".join(lines), ns)  # noqa: S102 - generated from the class's own field names
    return ns["build"]


_build_order = _order_builder()


def _fast_order(kw: dict[str, Any]) -> Any:
    account = _ORDER_ACCOUNTS.get(kw["account"])
    if account is None or kw["instrument"] not in _ORDER_INSTRUMENTS:
        return None
    ot = kw["order_type"]
    if (0 < kw["side"] < 3 and 0 < ot < 3 and 0 < kw["time_in_force"] < 5 and 0 < kw["self_trade_prevention"] < 4
            and kw["size"] != 0 and (ot != 1 or kw["price"] != 0) and type(kw["reduce_only"]) is bool):
        return _build_order(kw, account)
    return None


def _check_fast_order() -> bool:
    """Return whether ``_fast_order`` agrees with ``eip712.Order`` on valid and invalid samples."""
    base = {"account": "0x" + "ab" * 20, "instrument": "ETH-PERP", "side": 1, "order_type": 1, "time_in_force": 1,
            "self_trade_prevention": 1, "reduce_only": False, "price": 3_000, "size": 5, "client_order_id": 0,
            "nonce": 1, "expiry": 2**40}
    _learn_order(base, eip712.Order(**base))
    changes = [{}, {"side": 2}, {"order_type": 2, "price": 0}, {"time_in_force": 4}, {"self_trade_prevention": 3},
               {"reduce_only": True}, {"side": 0}, {"side": 3}, {"order_type": 0}, {"order_type": 3},
               {"time_in_force": 0}, {"time_in_force": 5}, {"self_trade_prevention": 0},
               {"self_trade_prevention": 4}, {"size": 0}, {"price": 0}, {"side": 255}, {"side": 256}]
    ok = True
    for ch in changes:
        kw = {**base, **ch}
        try:
            want: Any = eip712.Order(**kw)
        except eip712.MessageError:
            want = None
        got = _fast_order(kw)
        if got != want or (got is not None and type(got) is not eip712.Order):
            ok = False
    _ORDER_ACCOUNTS.clear()
    _ORDER_INSTRUMENTS.clear()
    return ok


def _learn_order(kw: dict[str, Any], m: Any) -> None:
    if len(_ORDER_ACCOUNTS) >= _ORDER_CACHE_MAX:
        _ORDER_ACCOUNTS.clear()
    _ORDER_ACCOUNTS[kw["account"]] = m.account
    if len(_ORDER_INSTRUMENTS) < 4096:
        _ORDER_INSTRUMENTS.add(m.instrument)


def learn_account(account: str) -> None:
    """Remember ``account`` (in checksum form, e.g. from a deposit) as valid for the fast Order build."""
    if account not in _ORDER_ACCOUNTS and eip712.to_checksum_address(account) == account:
        if len(_ORDER_ACCOUNTS) >= _ORDER_CACHE_MAX:
            _ORDER_ACCOUNTS.clear()
        _ORDER_ACCOUNTS[account] = account


_FAST_ORDER = False
_FAST_ORDER = _check_fast_order()
if not _FAST_ORDER:  # pragma: no cover - eip712.Order gained a rule the fast path does not mirror
    log.warning("fast Order build disabled: it disagrees with eip712.Order")


def parse_signature(sig: str) -> bytes:
    """Return the normalised 65-byte signature; ``RequestError(bad_signature)`` otherwise."""
    try:
        return eip712.normalize_signature(sig)
    except eip712.SignatureError as e:
        raise RequestError("bad_signature", str(e)) from None


def parse_signed(kind_name: str, body: bytes) -> tuple[Any, bytes]:
    """Decode one signed request body of kind ``kind_name``: return ``(message, signature)``."""
    kind = KINDS[kind_name]
    try:
        req = _DECODERS[kind_name].decode(body)
    except msgspec.DecodeError as e:
        raise RequestError("invalid_request", f"{kind_name}: {e}") from None
    return build_message(kind, getattr(req, kind.field)), parse_signature(req.signature)


def from_wire_request(kind_name: str, req: Any) -> tuple[Any, bytes]:
    """Return ``(message, signature)`` of an already decoded request struct."""
    kind = KINDS[kind_name]
    return build_message(kind, getattr(req, kind.field)), parse_signature(req.signature)


def parse_batch(body: bytes, max_batch: int = MAX_BATCH) -> list[tuple[Any, bytes] | RequestError]:
    """Decode an order batch; each item is ``(order, signature)`` or its ``RequestError``."""
    try:
        batch = _BATCH_DECODER.decode(body)
    except msgspec.DecodeError as e:
        raise RequestError("invalid_request", f"batch: {e}") from None
    if not batch.orders:
        raise RequestError("invalid_request", "batch: orders is empty")
    if len(batch.orders) > max_batch:
        raise RequestError("invalid_request", f"batch: at most {max_batch} orders, got {len(batch.orders)}")
    out: list[tuple[Any, bytes] | RequestError] = []
    for req in batch.orders:
        try:
            out.append(from_wire_request("order", req))
        except RequestError as e:
            out.append(e)
    return out


# ------------------------------------------------------------------------- verifying
# Hot path of every signed request, run on the Verifier's worker threads. The generic
# helpers (``eip712.digest`` / ``recover_raw``) cost ~45 us of GIL-held Python per order
# around ~60 us of GIL-free secp256k1 work: pycryptodome's keccak wrapper allocates a
# state, two ctypes buffers and a finaliser per call (~8 us, 3 calls per order), and
# ``recover_raw`` re-normalises the (already normalised) signature and goes through
# coincurve's object wrappers. ``_Recoverer`` keeps one keccak state and the cffi output
# buffers per thread and calls the C functions directly (ctypes and cffi release the GIL
# during each call); ``_fast_digest`` is ``eip712.digest`` over the same encoding with the
# per-thread keccak. Both are checked against the eip712 functions at import (a mismatch
# or a missing native library falls back to the eip712 functions).


class _Keccak:
    """keccak-256 over pycryptodome's native library with one reusable state (one thread)."""

    def __init__(self) -> None:
        import ctypes

        from Crypto.Hash import keccak as _k

        lib = ctypes.CDLL(_k._raw_keccak_lib._name)
        self._init, self._reset, self._absorb, self._digest = (
            lib.keccak_init, lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest)
        vp, sz, u8 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_ubyte
        self._init.argtypes = [ctypes.POINTER(vp), sz, u8]
        self._reset.argtypes = [vp]
        self._absorb.argtypes = [vp, ctypes.c_char_p, sz]
        self._digest.argtypes = [vp, ctypes.c_char_p, sz, u8]
        for f in (self._init, self._reset, self._absorb, self._digest):
            f.restype = ctypes.c_int
        self._local = threading.local()
        self._ctypes = ctypes

    def _state(self) -> tuple[Any, Any]:
        loc = self._local
        st = getattr(loc, "st", None)
        if st is None:
            ct = self._ctypes
            p = ct.c_void_p()
            if self._init(ct.byref(p), 64, 24):  # capacity 512 bits, 24 rounds: keccak-256
                raise RuntimeError("keccak_init failed")
            st = loc.st = (p, ct.create_string_buffer(32))
        return st

    def __call__(self, data: bytes) -> bytes:
        st, buf = self._state()
        reset, absorb, dig = self._reset, self._absorb, self._digest
        if reset(st) or absorb(st, data, len(data)) or dig(st, buf, 32, 1):
            raise RuntimeError("keccak failed")
        return buf.raw


def _make_digest(keccak: Callable[[bytes], bytes]) -> Callable[[eip712.Domain, Any], bytes]:
    """Return ``digest(domain, msg)`` = ``eip712.digest`` computed with ``keccak``."""
    enc: dict[type, Callable[[Any], bytes]] = {}
    strings: dict[str, bytes] = {}

    def enc_string(v: str) -> bytes:
        h = strings.get(v)
        if h is None:
            h = keccak(v.encode())
            if len(strings) >= 4096:
                strings.clear()
            strings[v] = h
        return h

    for cls in eip712.MESSAGE_TYPES.values():
        enc[cls] = eip712._compile_encoder(cls, keccak, enc_string)

    def digest(domain: eip712.Domain, msg: Any) -> bytes:
        return keccak(b"\x19\x01" + domain.separator + enc[type(msg)](msg))

    return digest


class _Recoverer:
    """``eip712.recover_raw`` for an already normalised signature: coincurve's C calls, buffers per thread."""

    def __init__(self, keccak: Callable[[bytes], bytes]) -> None:
        from coincurve._libsecp256k1 import ffi, lib
        from coincurve.context import GLOBAL_CONTEXT

        self.ffi, self.lib, self.ctx, self.keccak = ffi, lib, GLOBAL_CONTEXT.ctx, keccak
        self._local = threading.local()

    def __call__(self, digest32: bytes, sig: bytes) -> bytes:
        loc = self._local
        bufs = getattr(loc, "bufs", None)
        if bufs is None:
            ffi = self.ffi
            bufs = loc.bufs = (ffi.new("secp256k1_ecdsa_recoverable_signature *"), ffi.new("secp256k1_pubkey *"),
                               ffi.new("unsigned char[65]"), ffi.new("size_t *"), ffi.buffer)
        rsig, pub, out, outlen, buffer = bufs
        lib, ctx = self.lib, self.ctx
        if not (lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, rsig, sig[:64], sig[64] - 27)
                and lib.secp256k1_ecdsa_recover(ctx, pub, rsig, digest32)):
            raise eip712.SignatureError("signature does not recover a public key")
        outlen[0] = 65
        lib.secp256k1_ec_pubkey_serialize(ctx, out, outlen, pub, lib.SECP256K1_EC_UNCOMPRESSED)
        return self.keccak(buffer(out, 65)[1:])[12:]


def _fast_paths() -> tuple[Callable[[eip712.Domain, Any], bytes], Callable[[bytes, bytes], bytes]]:
    """Return ``(digest, recover_raw)``: the fast ones if they agree with eip712's, else eip712's."""
    try:
        k = _Keccak()
        digest, recover = _make_digest(k), _Recoverer(k)
        for data in (b"", b"omniclear", bytes(range(256)) * 3):
            if k(data) != eip712.keccak(data):
                raise ValueError("keccak mismatch")
        key = coincurve.PrivateKey(eip712.keccak(b"omniclear verifier self-check"))
        addr = eip712.to_checksum_address(eip712.keccak(key.public_key.format(compressed=False)[1:])[12:])
        dom = eip712.Domain(1, "0x" + "11" * 20)
        msg = eip712.Order(addr, "ETH-PERP", 1, 1, 1, 1, False, 3_000, 7, 9, 5, 2**40)
        d = digest(dom, msg)
        if d != eip712.digest(dom, msg):
            raise ValueError("digest mismatch")
        sig = eip712.sign_digest(key.secret, d)
        if recover(d, eip712.normalize_signature(sig)) != eip712.recover_raw(d, sig):
            raise ValueError("recover mismatch")
        return digest, recover
    except Exception as e:  # noqa: BLE001 - the generic path is always correct
        log.warning("fast signature verification unavailable (%r); using eip712.digest / recover_raw", e)
        return eip712.digest, eip712.recover_raw


_digest, _recover_raw = _fast_paths()


def _verify_chunk(domain: eip712.Domain, items: list[tuple[Any, bytes]]) -> list[str | RequestError]:
    out: list[str | RequestError] = []
    digest, recover_raw, fromhex = _digest, _recover_raw, bytes.fromhex
    generic = eip712.recover_raw
    for msg, sig in items:
        try:
            d = digest(domain, msg)
            # fast path only for normalised low-s signatures; anything else (and any failure)
            # goes through eip712.recover_raw, so errors and their messages are unchanged
            if type(sig) is bytes and len(sig) == 65 and sig[64] in (27, 28) and sig[32] < 0x7F:
                try:
                    raw = recover_raw(d, sig)
                except eip712.SignatureError:
                    raw = generic(d, sig)
            else:
                raw = generic(d, sig)
        except eip712.SignatureError as e:
            out.append(RequestError("bad_signature", str(e)))
            continue
        acct = msg.account
        out.append(acct if raw == fromhex(acct[2:]) else eip712.to_checksum_address(raw))
    return out


class _Round:
    """The requests of one dispatch: their items are verified in chunks; resolved when all are back."""

    __slots__ = ("reqs", "results", "left", "owner")

    def __init__(self, reqs: list[tuple[list[tuple[Any, bytes]], asyncio.Future, bool]], n: int, chunks: int,
                 owner: Verifier | None = None) -> None:
        self.reqs = reqs
        self.results: list[Any] = [None] * n
        self.left = chunks
        self.owner = owner

    def done(self, start: int, count: int, results: Any) -> None:
        """Store one chunk's results (a list, or an exception for all of it); resolve when complete."""
        if isinstance(results, BaseException) or len(results) != count:
            err = results if isinstance(results, BaseException) else RuntimeError("verifier returned a short chunk")
            results = [err] * count
        self.results[start:start + count] = results
        self.left -= 1
        if self.owner is not None:
            self.owner._busy -= 1
        if self.left:
            return
        res, off = self.results, 0
        for items, fut, single in self.reqs:
            n = len(items)
            if not fut.done():
                fut.set_result(res[off] if single else res[off:off + n])
            off += n


class Verifier:
    """Recover signers on worker threads, coalescing requests that arrive together into chunks.

    ``verify`` (one message) and ``verify_batch`` (a list: one future for all of it) queue
    the request; once per loop iteration everything queued is cut into at most
    ``threads`` chunks. The workers are plain threads fed by a ``SimpleQueue``; a finished
    chunk comes back to the loop with one ``call_soon_threadsafe``.

    A round of at most ``inline_max`` messages while no chunk is out is verified on the
    loop thread itself (~60 us): a lone order at low rate is not worth a wake-up of
    another thread or process, which on a busy host can cost milliseconds of scheduling
    (the loop thread, having used its share, is then the one that waits).
    """

    def __init__(self, domain: eip712.Domain, threads: int = 2, min_chunk: int = 4, inline_max: int = 2) -> None:
        self.domain = domain
        self.threads = max(1, threads)
        self.min_chunk = min_chunk
        self.inline_max = inline_max
        self._busy = 0  # chunks handed out and not back yet
        self.inline_rounds = 0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._workers = [threading.Thread(target=self._work, name=f"ecrecover-{i}", daemon=True)
                         for i in range(self.threads)]
        for t in self._workers:
            t.start()
        self._pending: list[tuple[list[tuple[Any, bytes]], asyncio.Future, bool]] = []
        self._n_pending = 0
        self._scheduled = False

    @property
    def lanes(self) -> int:
        """How many chunks one dispatch is cut into at most."""
        return self.threads

    def _work(self) -> None:
        jobs, domain = self._jobs, self.domain
        while True:
            job = jobs.get()
            if job is None:
                return
            loop, items, rnd, start = job
            try:
                results: Any = _verify_chunk(domain, items)
            except BaseException as e:  # noqa: BLE001 - handed to every request of the chunk
                results = e
            try:
                loop.call_soon_threadsafe(rnd.done, start, len(items), results)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _queue(self, items: list[tuple[Any, bytes]], single: bool) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not items:
            fut.set_result([])
            return fut
        self._pending.append((items, fut, single))
        self._n_pending += len(items)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return fut

    def verify(self, msg: Any, sig: bytes) -> asyncio.Future:
        """Return a future of the recovered checksum signer (or a ``RequestError`` result)."""
        return self._queue([(msg, sig)], True)

    def verify_batch(self, items: list[tuple[Any, bytes]]) -> asyncio.Future:
        """Return one future of the list of results of ``items`` (each as ``verify`` gives it)."""
        return self._queue(items, False)

    def verify_many(self, items: list[tuple[Any, bytes]]) -> list[asyncio.Future]:
        return [self.verify(m, s) for m, s in items]

    def _dispatch(self) -> None:
        reqs, n = self._pending, self._n_pending
        self._pending, self._n_pending, self._scheduled = [], 0, False
        if not reqs:
            return
        if self._closed:
            for _, fut, _ in reqs:
                fut.cancel()
            return
        flat = reqs[0][0] if len(reqs) == 1 else [it for items, _, _ in reqs for it in items]
        if n <= self.inline_max and not self._busy:
            self.inline_rounds += 1
            try:
                results: Any = _verify_chunk(self.domain, flat)
            except Exception as e:  # noqa: BLE001 - handed to every request, as from a worker
                results = e
            _Round(reqs, n, 1).done(0, n, results)
            return
        k = max(1, min(self.lanes, n // self.min_chunk))
        size = math.ceil(n / k)
        k = math.ceil(n / size)
        rnd = _Round(reqs, n, k, self)
        self._busy += k
        loop = asyncio.get_running_loop()
        for i in range(0, n, size):
            self._submit(loop, flat[i:i + size], rnd, i)

    def _submit(self, loop: asyncio.AbstractEventLoop, items: list[tuple[Any, bytes]], rnd: _Round,
                start: int) -> None:
        self._jobs.put((loop, items, rnd, start))

    def close(self) -> None:
        """Stop the workers; requests not yet verified are cancelled."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                for _, fut, _ in job[2].reqs:
                    fut.cancel()
        for _ in self._workers:
            self._jobs.put(None)


# Verification in worker processes. Threads share the GIL with the event loop: every
# order's digest and recovery glue (~15-20 us of Python, a dozen GIL hand-offs around
# the native keccak and secp256k1 calls) competes with sequencing for one lock, and with
# the loop busy the workers wait for it (in-process batch path: ~4-5k orders/s with
# recovery on 2 threads vs ~10k with recovery stubbed out, same loop-thread CPU). A
# worker process has its own interpreter: the loop thread only encodes each message's
# fields (msgpack, one write per chunk on a socketpair, non-blocking through asyncio) and
# decodes the signers. The worker rebuilds the same eip712 message from the same field
# values and runs ``_verify_chunk``, so results and error messages are the threads'.
# A worker that dies hands its chunks (and later ones, if none is left) to threads.

_PROC_TYPES: tuple[type, ...] = tuple(eip712.MESSAGE_TYPES.values())
_PROC_INDEX = {cls: i for i, cls in enumerate(_PROC_TYPES)}
_PROC_FIELDS = {cls: operator.attrgetter(*(a for _, a, _ in cls.FIELDS)) for cls in _PROC_TYPES}
_FRAME = struct.Struct("!i")  # multiprocessing.Connection's framing (messages < 2 GiB)
_PROC_MAX_INFLIGHT = 8  # chunks in flight per worker; the rest wait in the parent


def _slot_builder(cls: type) -> Callable[[Any], Any]:
    """Return ``values -> cls instance`` filling the slots directly (the values were validated)."""
    setters = [cls.__dict__[a].__set__ for _, a, _ in cls.FIELDS]
    new = object.__new__

    def build(values: Any) -> Any:
        m = new(cls)
        for s, v in zip(setters, values):
            s(m, v)
        return m

    return build


def _verify_process_entry() -> None:
    """``python -c`` entry of a worker: ``argv`` = socket fd, chain id, verifying contract."""
    from multiprocessing.connection import Connection

    import sys

    _verify_process_main(Connection(int(sys.argv[1])), int(sys.argv[2]), sys.argv[3])


def _verify_process_main(conn: Any, chain_id: int, verifying_contract: str) -> None:
    """Worker process: verify chunks until the parent closes the connection (or dies)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop: EOF
    import gc

    gc.freeze()
    domain = eip712.Domain(chain_id, verifying_contract)
    builders = [_slot_builder(cls) for cls in _PROC_TYPES]
    dec, enc = msgspec.msgpack.Decoder(), msgspec.msgpack.Encoder()
    conn.send_bytes(enc.encode(["ready", os.getpid()]))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        job, items = dec.decode(data)
        try:
            res: Any = [r if type(r) is str else [r.code, r.message]
                        for r in _verify_chunk(domain, [(builders[t](v), s) for t, v, s in items])]
        except Exception as e:  # noqa: BLE001 - reported for every request of the chunk
            res = f"verifier process failed: {e!r}"
        try:
            conn.send_bytes(enc.encode([job, res]))
        except OSError:
            return


class _WorkerLink(asyncio.Protocol):
    """The parent's end of one worker process: framed msgpack over a socketpair."""

    def __init__(self, owner: ProcessVerifier, index: int) -> None:
        self.owner, self.index = owner, index
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.inflight: dict[int, tuple[_Round, int, list[tuple[Any, bytes]]]] = {}
        self.backlog: collections.deque[int] = collections.deque()  # job ids not yet written
        self.backlog_data: dict[int, bytes] = {}
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.alive = True
        self.process: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos, end = 0, len(buf)
        while end - pos >= 4:
            (n,) = _FRAME.unpack_from(buf, pos)
            if end - pos - 4 < n:
                break
            self.owner._on_frame(self, bytes(buf[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if pos:
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._on_lost(self, exc)


class ProcessVerifier(Verifier):
    """``Verifier`` whose chunks run in ``processes`` worker processes (threads as fallback).

    Create it inside the running loop, then ``await start()`` (workers import and report
    ready); ``aclose()`` stops them. A worker exits by itself when its connection closes,
    also when this process is killed.
    """

    def __init__(self, domain: eip712.Domain, processes: int = 2, min_chunk: int = 4) -> None:
        super().__init__(domain, threads=1, min_chunk=min_chunk)
        self.processes = max(1, processes)
        self._links: list[_WorkerLink] = []
        self._enc = msgspec.msgpack.Encoder()
        self._dec = msgspec.msgpack.Decoder()
        self._next_job = 0

    @property
    def lanes(self) -> int:
        live = sum(1 for w in self._links if w.alive)
        return live or self.threads

    async def start(self, timeout: float = 60.0) -> None:
        import socket
        import subprocess
        import sys
        from pathlib import Path

        loop = asyncio.get_running_loop()
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        for i in range(self.processes):
            mine, theirs = socket.socketpair()
            try:
                p = subprocess.Popen(
                    [sys.executable, "-c", "from aggregator.sequencer_service import _verify_process_entry as m; m()",
                     str(theirs.fileno()), str(self.domain.chain_id), self.domain.verifying_contract],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
            finally:
                theirs.close()
            link = _WorkerLink(self, i)
            link.process = p
            await loop.create_unix_connection(lambda link=link: link, sock=mine)
            self._links.append(link)
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready for w in self._links)), timeout)
        except BaseException:
            await self.aclose()
            raise

    def _submit(self, loop: asyncio.AbstractEventLoop, items: list[tuple[Any, bytes]], rnd: _Round,
                start: int) -> None:
        live = [w for w in self._links if w.alive]
        if not live:
            return super()._submit(loop, items, rnd, start)
        try:
            idx, fields = _PROC_INDEX, _PROC_FIELDS
            payload = [(idx[type(m)], fields[type(m)](m), s) for m, s in items]
        except KeyError:  # not an eip712 message type: threads
            return super()._submit(loop, items, rnd, start)
        w = min(live, key=lambda w: len(w.inflight) + len(w.backlog))
        self._next_job += 1
        job = self._next_job
        try:
            data = self._enc.encode([job, payload])
        except (OverflowError, msgspec.EncodeError, TypeError):  # e.g. an int beyond 64 bits: threads
            return super()._submit(loop, items, rnd, start)
        w.inflight[job] = (rnd, start, items)
        if len(w.inflight) > _PROC_MAX_INFLIGHT:
            w.backlog.append(job)
            w.backlog_data[job] = data
        else:
            w.transport.write(_FRAME.pack(len(data)) + data)

    def _on_frame(self, w: _WorkerLink, frame: bytes) -> None:
        job, res = self._dec.decode(frame)
        if job == "ready":
            if not w.ready.done():
                w.ready.set_result(res)
            return
        entry = w.inflight.pop(job, None)
        if entry is None:
            return
        rnd, start, items = entry
        if type(res) is str:
            out: Any = RuntimeError(res)
        else:
            out = [r if type(r) is str else RequestError(r[0], r[1]) for r in res]
        if w.backlog:
            nxt = w.backlog.popleft()
            data = w.backlog_data.pop(nxt)
            w.transport.write(_FRAME.pack(len(data)) + data)
        rnd.done(start, len(items), out)

    def _on_lost(self, w: _WorkerLink, exc: Exception | None) -> None:
        w.alive = False
        if not w.ready.done():
            w.ready.set_exception(RuntimeError(f"verifier process {w.index} exited before it was ready"))
        if self._closed:
            return
        log.error("verifier process %d is gone (%r); its %d chunks go to the other workers", w.index, exc,
                  len(w.inflight))
        pending, w.inflight = w.inflight, {}
        w.backlog.clear()
        w.backlog_data.clear()
        loop = asyncio.get_running_loop()
        for rnd, start, items in pending.values():
            self._submit(loop, items, rnd, start)

    def close(self) -> None:
        super().close()
        for w in self._links:
            w.alive = False
            if w.transport is not None:
                w.transport.close()
            for rnd, _, _ in w.inflight.values():
                for _, fut, _ in rnd.reqs:
                    fut.cancel()
            w.inflight.clear()

    async def aclose(self) -> None:
        """Close the connections and wait (bounded) for the worker processes to exit."""
        self.close()

        def join() -> None:
            import subprocess

            for w in self._links:
                p = w.process
                if p is None:
                    continue
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)

        await asyncio.to_thread(join)


# ---------------------------------------------------------------------- book mirror


def _accounts_of(ev: Any) -> tuple[str, ...]:
    a = getattr(ev, "account", None)
    if a is not None:
        return (a,)
    m = getattr(ev, "maker_account", None) or getattr(ev, "maker", None)
    t = getattr(ev, "taker_account", None) or getattr(ev, "taker", None)
    return tuple(x for x in (m, t) if isinstance(x, str))


class BookMirror:
    """Price levels of every book, rebuilt from matching events; one ``seq`` per instrument.

    Orders are tracked by ``(instrument, order_id)`` with side, price and open size;
    ``OrderAccepted`` adds, ``OrderFilled`` / ``OrderAmended`` set the open size (the
    events carry absolute remainders), ``OrderCancelled`` / ``OrderExpired`` remove. A
    command's events end with every order either resting or removed, so after each
    command the levels equal the book's. ``apply_events`` returns the changed levels.
    """

    def __init__(self) -> None:
        self.orders: dict[tuple[str, int], list] = {}  # -> [side, price, remaining]
        self.levels: dict[str, tuple[dict[int, int], dict[int, int]]] = {}  # inst -> (bids, asks)
        self.seq: dict[str, int] = {}
        self._base = 0  # an instrument's seq before its first delta (see load)

    def _level_add(self, touched: dict, inst: str, side: int, price: int, qty: int) -> None:
        sides = self.levels.get(inst)
        if sides is None:
            sides = self.levels[inst] = ({}, {})
        lv = sides[0 if side == 1 else 1]
        v = lv.get(price, 0) + qty
        if v:
            lv[price] = v
        else:
            lv.pop(price, None)
        touched.setdefault(inst, set()).add((side, price))

    def load(self, resting: Iterable[tuple[str, int, int, int, int]], seq: int) -> None:
        """Rebuild from ``(instrument, order_id, side, price, remaining)`` of every resting order.

        Used after a replay instead of applying every replayed command's events (a fifth of
        the replay's time). Every instrument's book ``seq`` restarts at ``seq`` (the
        journal's last), above any it had before: a client that kept an older one sees a
        gap and takes a new snapshot.
        """
        self.orders.clear()
        self.levels.clear()
        self.seq.clear()
        self._base = seq
        touched: dict = {}
        for inst, oid, side, price, remaining in resting:
            self.orders[(inst, oid)] = [side, price, remaining]
            self._level_add(touched, inst, side, price, remaining)

    def apply_events(self, events: Iterable[Any]) -> dict[str, tuple[int, list, list]]:
        """Apply one command's events; return ``{instrument: (seq, bid changes, ask changes)}``."""
        touched: dict[str, set] = {}
        orders = self.orders
        for ev in events:
            name = type(ev).__name__
            if name == "OrderAccepted":
                if ev.size > 0 and ev.price > 0:
                    orders[(ev.instrument, ev.order_id)] = [ev.side, ev.price, ev.size]
                    self._level_add(touched, ev.instrument, ev.side, ev.price, ev.size)
            elif name == "OrderFilled":
                for oid, rem in ((ev.maker_order_id, ev.maker_remaining), (ev.taker_order_id, ev.taker_remaining)):
                    o = orders.get((ev.instrument, oid))
                    if o is None:
                        continue
                    self._level_add(touched, ev.instrument, o[0], o[1], rem - o[2])
                    if rem:
                        o[2] = rem
                    else:
                        del orders[(ev.instrument, oid)]
            elif name in ("OrderCancelled", "OrderExpired"):
                o = orders.pop((ev.instrument, ev.order_id), None)
                if o is not None:
                    self._level_add(touched, ev.instrument, o[0], o[1], -o[2])
            elif name == "OrderAmended":
                o = orders.get((ev.instrument, ev.order_id))
                if o is not None:
                    self._level_add(touched, ev.instrument, o[0], o[1], -o[2])
                    if ev.remaining:
                        o[1], o[2] = ev.price, ev.remaining
                        self._level_add(touched, ev.instrument, o[0], o[1], o[2])
                    else:
                        del orders[(ev.instrument, ev.order_id)]
        out: dict[str, tuple[int, list, list]] = {}
        for inst, keys in touched.items():
            bids, asks = self.levels[inst]
            bch = sorted(((p, bids.get(p, 0)) for s, p in keys if s == 1), reverse=True)
            ach = sorted((p, asks.get(p, 0)) for s, p in keys if s != 1)
            # a level touched twice in one command may end where it started: still a delta (harmless)
            seq = self.seq.get(inst, self._base) + 1
            self.seq[inst] = seq
            out[inst] = (seq, bch, ach)
        return out

    def snapshot(self, instrument: str, depth: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """Return ``(seq, bids best first, asks best first)`` with at most ``depth`` levels a side."""
        bids, asks = self.levels.get(instrument, ({}, {}))
        b = sorted(bids.items(), reverse=True)[:depth]
        a = sorted(asks.items())[:depth]
        return self.seq.get(instrument, self._base), b, a


class Published:
    """What subscribers receive for one durable command.

    ``book``: instrument -> (book seq, bid changes, ask changes). ``accounts`` (the
    accounts its events or deposit touch) is worked out on first use: most commands are
    published to nobody who asks.
    """

    __slots__ = ("cmd", "outcome", "book", "_accounts")

    def __init__(self, cmd: C.Command, outcome: Any, book: dict[str, tuple[int, list, list]]) -> None:
        self.cmd = cmd
        self.outcome = outcome
        self.book = book
        self._accounts: frozenset[str] | None = None

    @property
    def accounts(self) -> frozenset[str]:
        acc = self._accounts
        if acc is None:
            s: set[str] = set()
            for ev in self.outcome.events:
                s.update(a for a in _accounts_of(ev) if isinstance(a, str))
            if type(self.cmd) is C.DepositCredit:
                s.add(self.cmd.account)
            acc = self._accounts = frozenset(s)
        return acc


# ---------------------------------------------------------------------- JSON helpers


def _enc_hook(o: Any) -> Any:
    if isinstance(o, bytes):
        return "0x" + o.hex()
    if isinstance(o, enum.Enum):
        return o.value
    if dataclasses.is_dataclass(o):
        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise NotImplementedError(f"cannot encode {type(o).__name__}")


_json_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


_PLAIN = frozenset((int, str, bool, float, type(None)))  # exact types returned as they are
_NAMEDTUPLE_JSON: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _namedtuple_json(t: type) -> Callable[[Any], dict[str, Any]]:
    """Generate ``o -> {"type": name, field: jsonable(value), ...}`` for NamedTuple class ``t``."""
    vs = [f"_v{i}" for i in range(len(t._fields))]
    items = "".join(f", {f!r}: {v} if type({v}) in _P else _J({v})" for f, v in zip(t._fields, vs))
    unpack = f"    {', '.join(vs)}, = o\n" if vs else ""
    ns: dict[str, Any] = {"_P": _PLAIN, "_J": jsonable, "_name": t.__name__}
    exec(f"def conv(o):\n{unpack}    return {{'type': _name{items}}}\n", ns)  # noqa: S102 - own field names
    return ns["conv"]


def jsonable(o: Any) -> Any:
    """Return ``o`` as plain JSON data: NamedTuples become objects with a ``type``.

    Hot path of every acknowledgement: exact scalar types return at once, NamedTuples go
    through a converter generated once per class, plain dicts/lists/tuples recurse only
    into non-scalar values; everything else takes the general path below.
    """
    t = type(o)
    if t in _PLAIN:
        return o
    conv = _NAMEDTUPLE_JSON.get(t)
    if conv is not None:
        return conv(o)
    if t is dict:
        return {k if type(k) is str else str(k): v if type(v) in _PLAIN else jsonable(v) for k, v in o.items()}
    if t is list or t is tuple:
        return [v if type(v) in _PLAIN else jsonable(v) for v in o]
    if isinstance(o, tuple) and hasattr(o, "_fields"):
        conv = _NAMEDTUPLE_JSON[t] = _namedtuple_json(t)
        return conv(o)
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, enum.Enum):
        return o.value
    if isinstance(o, bytes):
        return "0x" + o.hex()
    if isinstance(o, msgspec.Struct):
        return {f: jsonable(getattr(o, f)) for f in o.__struct_fields__}
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: jsonable(getattr(o, f.name)) for f in dataclasses.fields(o)}
    return o


def outcome_json(outcome: Any) -> dict[str, Any]:
    """Return the acknowledgement body of an outcome."""
    return {
        "seq": outcome.seq,
        "accepted": outcome.accepted,
        "code": outcome.code,
        "message": outcome.message,
        "result": jsonable(outcome.result),
        "events": jsonable(list(outcome.events)),
    }


def dumps(o: Any) -> bytes:
    return _json_encoder.encode(o)


# -------------------------------------------------------------------------- service

Subscriber = Callable[[list[Published]], None]


class SequencerService:
    """The single writer: sequences commands into a ``Sequencer`` and a ``Journal``."""

    def __init__(self, sequencer_factory: Callable[[], Any], domain: eip712.Domain, journal_dir: str,
                 *, clock_ms: Callable[[], int] = wall_clock_ms, tick_interval_s: float | None = 1.0,
                 verify_threads: int = 2, segment_bytes: int = 64 << 20, fsync: bool = True,
                 verify_processes: int = 0, checkpoint_every: int = _ckpt.DEFAULT_CHECKPOINT_EVERY,
                 sequencer_config: Any = None, checkpoint_dir: str | None = None) -> None:
        """``checkpoint_every``: write a checkpoint (``aggregator.checkpoint``) every so many commands
        (0: never; loading still happens). Checkpoints need the ``SequencerConfig`` (``sequencer_config``,
        else the factory's ``config`` attribute, which ``default_sequencer_factory`` sets) and a
        Sequencer-like class with ``snapshot``/``restore``; without one they are off, writing and loading.
        ``checkpoint_dir``: default ``<journal_dir>/checkpoints``."""
        self.sequencer_factory = sequencer_factory
        self.domain = domain
        self.journal_dir = journal_dir
        self.clock_ms = clock_ms
        self.tick_interval_s = tick_interval_s
        self.verify_threads = verify_threads
        self.verify_processes = verify_processes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.sequencer: Any = None
        self.journal: Journal | None = None
        self.verifier: Verifier | None = None
        self.book = BookMirror()
        self.replayed = 0
        self._last_ts = 0
        self._subscribers: list[Subscriber] = []
        self._unpublished: list[tuple[C.Command, Any]] = []
        self._deposits: dict[tuple[int, int], int] = {}
        self._deposit_accounts: dict[str, None] = {}  # accounts of deposits, in order (taught to the fast Order build)
        self._tick_task: asyncio.Task | None = None
        self._fatal: str | None = None
        self._running = False
        # checkpoints
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        self.checkpoint_every = checkpoint_every
        self.sequencer_config = sequencer_config if sequencer_config is not None else getattr(
            sequencer_factory, "config", None)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else _ckpt.checkpoint_dir(journal_dir)
        self._config_fp: str | None = None
        self.checkpoint_writer = _ckpt.CheckpointWriter(self.checkpoint_dir)
        self.checkpoint_writer.on_done = self._checkpoint_done
        self.restored_from = 0  # seq of the checkpoint the last start() restored (0: full replay)
        self.checkpoint_rejected: list[tuple[str, str]] = []  # (file, reason) of checkpoints start() ignored
        self._ckpt_next = math.inf  # sequencing checks ``seq >= _ckpt_next`` (inf: off or a writer runs)
        self._ckpt_scheduled = False
        self._last_cmd: C.Command | None = None

    # --------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Open the journal, restore the newest valid checkpoint (if any), replay the rest, start the timer.

        Idempotent. Without a usable checkpoint the whole journal replays into a fresh
        Sequencer (see ``aggregator.checkpoint`` for what makes one unusable: each is
        ignored with one warning line).
        """
        if self._running:
            return
        self.journal = await asyncio.to_thread(Journal.open, self.journal_dir, segment_bytes=self.segment_bytes,
                                               fsync=self.fsync)
        self.book = BookMirror()
        self._deposits.clear()
        self._deposit_accounts.clear()
        self.restored_from = 0
        self.checkpoint_rejected = []
        self._last_cmd = None
        n = 0
        restored = self._restore_checkpoint() if self._checkpoints_supported() else None
        if restored is not None:
            self.sequencer, tail = restored
            n = self._replay(tail)
        else:
            self.sequencer = self.sequencer_factory()
            n = self._replay(self.journal.replay())
        self._next_order_expiry = getattr(self.sequencer, "next_order_expiry_ms", lambda: None)
        self.book.load(self.sequencer.resting_orders(), self.journal.last_seq)
        self.replayed = n
        self._last_ts = self.journal.last_ts_ms
        self.journal.on_durable = self._on_durable
        if self.verify_processes:
            verifier = ProcessVerifier(self.domain, self.verify_processes)
            await verifier.start()
            self.verifier = verifier
        else:
            self.verifier = Verifier(self.domain, self.verify_threads)
        self._fatal = None
        self._running = True
        self._ckpt_scheduled = False
        # the first checkpoint comes checkpoint_every commands after the newest one on disk (at once if the
        # journal is already that far past it, e.g. after a full replay of a long journal)
        self._ckpt_next = (self._newest_checkpoint_seq() + self.checkpoint_every
                           if self.checkpoint_every and self._checkpoints_supported() else math.inf)
        if self.tick_interval_s:
            self._tick_task = asyncio.create_task(self._tick_loop(), name="sequencer-tick")
        log.info("sequencer service started: restored checkpoint %d, replayed %d commands, last seq %d",
                 self.restored_from, n, self.journal.last_seq)

    def _replay(self, cmds: Iterable[C.Command]) -> int:
        """Apply journalled commands (no journal writes, no publication); return how many."""
        n = 0
        apply, deposit = self.sequencer.apply, C.DepositCredit
        deposits, accounts = self._deposits, self._deposit_accounts
        cmd = None
        for cmd in cmds:
            apply(cmd)
            if type(cmd) is deposit:  # what _note keeps besides the book mirror
                deposits[(cmd.chain_id, cmd.deposit_nonce)] = cmd.seq
                accounts[cmd.account] = None
                learn_account(cmd.account)
            n += 1
        if cmd is not None:
            self._last_cmd = cmd
        return n

    # -------------------------------------------------------------- checkpoints

    def _checkpoints_supported(self) -> bool:
        if self.sequencer_config is None:
            return False
        if self._config_fp is None:
            self._config_fp = _ckpt.config_fingerprint(self.sequencer_config)
        return True

    def _sequencer_class(self) -> Any:
        from aggregator.core.sequencer import Sequencer

        return Sequencer

    def _newest_checkpoint_seq(self) -> int:
        found = _ckpt.list_checkpoints(self.checkpoint_dir)
        return max(self.restored_from, found[0][0] if found else 0)

    def _restore_checkpoint(self) -> tuple[Any, Iterable[C.Command]] | None:
        """Return ``(restored sequencer, journal commands after it)`` of the newest valid checkpoint, or None.

        Fills ``_deposits`` and ``restored_from``; changes nothing on disk. Every
        checkpoint ignored is logged (one line) and listed in ``checkpoint_rejected``.
        """
        j = self.journal
        for seq, path in _ckpt.list_checkpoints(self.checkpoint_dir):
            try:
                ck = _ckpt.read(path, config=self._config_fp, max_seq=j.last_seq)
                meta = ck.meta
                try:
                    seqr = self._sequencer_class().restore(self.sequencer_config, ck.snapshot)
                except Exception as e:  # noqa: BLE001
                    raise _ckpt.CheckpointInvalid(f"snapshot does not restore: {e!r}") from None
                del ck
                root = seqr.state_root()
                if root != meta["state_root"]:
                    raise _ckpt.CheckpointInvalid(f"restored state root 0x{root.hex()} != recorded "
                                                  f"0x{meta['state_root'].hex()}")
                cmds = j.replay(seq)  # from the checkpoint's own command: it must be the recorded one
                first = next(cmds, None)
                if first is None or first.seq != seq:
                    raise _ckpt.CheckpointInvalid(f"the journal holds no command {seq}")
                if first != C.decode(meta["last_command"]) or first.ts_ms != meta["last_ts_ms"]:
                    raise _ckpt.CheckpointInvalid(f"the journal's command {seq} is not the one recorded "
                                                  "(a checkpoint of another journal)")
                svc = meta["service"]
                deposits = svc["deposits"]
                accounts = svc["deposit_accounts"]
            except _ckpt.CheckpointInvalid as e:
                log.warning("checkpoint %s ignored: %s", path, e)
                self.checkpoint_rejected.append((path.name, str(e)))
                continue
            self._deposits.update(deposits)
            for a in accounts:
                self._deposit_accounts[a] = None
                learn_account(a)
            self.restored_from = seq
            self._last_cmd = first
            log.info("restored checkpoint %s (seq %d); replaying the journal after it", path.name, seq)
            return seqr, cmds
        return None

    def checkpoint_now(self) -> _ckpt.CheckpointStats | None:
        """Start a checkpoint of the current state now (e.g. before a planned restart); return its stats.

        None if checkpoints are not possible (no config), a writer is running, the service
        is not running or nothing was sequenced. The stats fill in when the writer is done
        (``checkpoint_writer.busy`` turns False; ``outcome`` becomes ``written``, ...).
        """
        if not self._checkpoints_supported():
            return None
        self._checkpoint_now()
        w = self.checkpoint_writer.current
        return w if w is not None and w.seq == self.last_seq else None

    def _checkpoint_due(self) -> None:
        """Called by sequencing once ``seq >= _ckpt_next``: fork the writer at the end of this loop iteration."""
        self._ckpt_next = math.inf
        if not self._ckpt_scheduled:
            self._ckpt_scheduled = True
            asyncio.get_running_loop().call_soon(self._checkpoint_now)

    def _checkpoint_now(self) -> None:
        self._ckpt_scheduled = False
        j = self.journal
        w = self.checkpoint_writer
        if not self._running or self._fatal is not None or j is None or j.failed or w.busy or j.last_seq <= 0:
            return
        seq = j.last_seq
        last = self._last_cmd
        if last is None or last.seq != seq:  # cannot happen: every sequenced command passes through here
            self._ckpt_next = seq + self.checkpoint_every
            return

        def build() -> list[bytes]:  # runs in the child, on its copy of the state at seq: no cost to the loop
            # the deposit index as a replay up to seq builds it: keys in order of first sequencing, the seq
            # of the last one; deposits sequenced but not yet published are -1 (in flight) or missing
            deposits = dict(self._deposits)
            accounts = dict(self._deposit_accounts)
            for c, _ in self._unpublished:
                if type(c) is C.DepositCredit:
                    deposits[(c.chain_id, c.deposit_nonce)] = c.seq
                    accounts[c.account] = None
            deposits = {k: v for k, v in deposits.items() if v > 0}
            return _ckpt.encode(seq=seq, state_root=self.sequencer.state_root(), config=self._config_fp,
                                last_ts_ms=self._last_ts, last_command=C.encode(last),
                                service={"deposits": deposits, "deposit_accounts": list(accounts)},
                                snapshot=self.sequencer.snapshot())

        try:
            w.begin(seq, build, asyncio.get_running_loop())
        except OSError as e:  # fork failed (memory): try again later
            log.warning("checkpoint at seq %d not started: %r", seq, e)
            self._ckpt_next = seq + self.checkpoint_every
            return
        if j.durable_seq >= seq:
            w.release()

    def _checkpoint_done(self, stats: _ckpt.CheckpointStats) -> None:
        if self._running and self.checkpoint_every:
            base = stats.seq if stats.outcome == "written" else self.journal.last_seq
            self._ckpt_next = base + self.checkpoint_every
            if self.journal.last_seq >= self._ckpt_next:
                self._checkpoint_due()

    async def stop(self) -> None:
        """Stop the timer, flush the journal and close it."""
        if not self._running:
            return
        self._running = False
        if self._tick_task is not None:
            self._tick_task.cancel()
            await asyncio.gather(self._tick_task, return_exceptions=True)
            self._tick_task = None
        self._ckpt_next = math.inf
        if self.journal is not None:
            await self.journal.close()  # durable up to its last seq: a running writer was released
        w = self.checkpoint_writer
        if w.busy:  # let the writer finish (bounded by its write time), or discard if never durable
            if self.journal is None or self.journal.durable_seq < w.current.seq:
                w.abandon()
            await asyncio.to_thread(w.wait, 600)
            await asyncio.sleep(0)  # run its completion callback
        if isinstance(self.verifier, ProcessVerifier):
            await self.verifier.aclose()
        elif self.verifier is not None:
            self.verifier.close()

    async def _tick_loop(self) -> None:
        assert self.tick_interval_s
        while True:
            await asyncio.sleep(self.tick_interval_s)
            try:
                await self.execute(C.Tick)
            except ServiceUnavailable:
                return
            except Exception:  # noqa: BLE001 - the timer must not die silently
                log.exception("tick failed")

    # ---------------------------------------------------------------- sequencing

    def _check(self) -> None:
        if not self._running:
            raise ServiceUnavailable("sequencer service is not running")
        if self._fatal is not None:
            raise ServiceUnavailable(self._fatal)

    def sequence_nowait(self, make: Callable[..., C.Command], *args: Any) -> Any:
        """Assign seq and ts, apply, journal: return the outcome (``durable(seq)`` says when it is on disk)."""
        self._check()
        j = self.journal
        seq = j.last_seq + 1
        now = self.clock_ms()
        ts = now if now > self._last_ts else self._last_ts
        if make is not C.Tick:
            due = self._next_order_expiry()
            if due is not None and ts > due:  # good-til-time: expire what is due before anything trades
                self.sequence_nowait(C.Tick)
                seq = j.last_seq + 1
        cmd = make(seq, ts, *args)
        try:
            outcome = self.sequencer.apply(cmd)
        except Exception as e:
            self._fatal = f"sequencer failed on seq {seq}: {e!r}"
            log.critical("%s; refusing further commands", self._fatal, exc_info=True)
            raise ServiceUnavailable(self._fatal) from e
        try:
            j.append_nowait(cmd)
        except JournalError as e:
            self._fatal = str(e)
            raise ServiceUnavailable(str(e)) from e
        self._last_ts = ts
        self._last_cmd = cmd
        self._unpublished.append((cmd, outcome))
        if seq >= self._ckpt_next:
            self._checkpoint_due()
        return outcome

    def sequence(self, make: Callable[..., C.Command], *args: Any) -> tuple[Any, asyncio.Future]:
        """Assign seq and ts, apply, journal: return ``(outcome, durable future)``. Synchronous."""
        outcome = self.sequence_nowait(make, *args)
        return outcome, self.journal.durable(self.journal.last_seq)

    async def durable(self, seq: int) -> None:
        """Wait until every command up to ``seq`` is durable (``ServiceUnavailable`` if the journal failed)."""
        try:
            await self.journal.durable(seq)
        except JournalError as e:
            self._fatal = str(e)
            raise ServiceUnavailable(str(e)) from e

    async def execute(self, make: Callable[..., C.Command], *args: Any) -> Any:
        """Sequence one command and return its outcome once it is durable."""
        outcome = self.sequence_nowait(make, *args)
        await self.durable(self.journal.last_seq)
        return outcome

    async def submit(self, kind_name: str, msg: Any, signature: bytes) -> Any:
        """Verify the signature (400 ``bad_signature``), sequence, await durability; return the outcome."""
        self._check()
        signer = await self.verifier.verify(msg, signature)
        if isinstance(signer, Exception):
            raise signer
        return await self.execute(KINDS[kind_name].command, signer, msg, signature)

    async def submit_many(self, kind_name: str, items: list[tuple[Any, bytes] | RequestError]) -> list[Any]:
        """Verify all (in parallel), sequence the valid ones in order; return outcomes or errors."""
        self._check()
        ok = [it for it in items if not isinstance(it, RequestError)]
        verified = iter(await self.verifier.verify_batch(ok))
        signers = [None if isinstance(it, RequestError) else next(verified) for it in items]
        cls = KINDS[kind_name].command
        results: list[Any] = []
        last = None
        for it, signer in zip(items, signers):
            if isinstance(it, RequestError):
                results.append(it)
            elif isinstance(signer, Exception):
                results.append(signer)
            else:
                results.append(self.sequence_nowait(cls, signer, it[0], it[1]))
                last = self.journal.last_seq
        if last is not None:
            await self.durable(last)  # durability is in order: the last one covers the batch
        return results

    async def submit_deposit(self, chain_id: int, deposit_nonce: int, account: str, amount_internal: int) -> Any:
        """Credit a confirmed vault deposit (internal units). Idempotent: a repeat returns ``None``."""
        key = (chain_id, deposit_nonce)
        if key in self._deposits:
            return None
        account = eip712.to_checksum_address(account)
        if not 0 < amount_internal < UINT64:
            raise RequestError("invalid_request", f"deposit amount {amount_internal} out of range")
        self._deposits[key] = -1  # reserved while in flight
        try:
            return await self.execute(C.DepositCredit, chain_id, deposit_nonce, account, amount_internal)
        except BaseException:
            if self._deposits.get(key) == -1:
                del self._deposits[key]
            raise

    async def submit_price(self, feed: str, price: int, confidence: int, publish_ts: int, status: str = "ok") -> Any:
        """Sequence a verified price report (8-decimal integers, ``publish_ts`` in seconds)."""
        if status not in C.PRICE_STATUSES:
            raise RequestError("invalid_request", f"price status {status!r} not in {C.PRICE_STATUSES}")
        return await self.execute(C.PriceUpdate, feed, price, confidence, publish_ts, status)

    async def tick(self) -> Any:
        """Sequence a ``Tick`` now (the timer does this every ``tick_interval_s``)."""
        return await self.execute(C.Tick)

    # ------------------------------------------------------------- publication

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(list of Published)`` after each durable group, in seq order."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _note(self, cmd: C.Command, outcome: Any) -> Published:
        if type(cmd) is C.DepositCredit:
            self._deposits[(cmd.chain_id, cmd.deposit_nonce)] = cmd.seq
            self._deposit_accounts[cmd.account] = None
            learn_account(cmd.account)  # its orders skip the EIP-55 check (the same string as sent)
        return Published(cmd, outcome, self.book.apply_events(outcome.events) if outcome.events else {})

    def _on_durable(self, durable: int) -> None:
        """Journal hook after each group commit: publish what became durable, in seq order."""
        w = self.checkpoint_writer.current
        if w is not None and durable >= w.seq:
            self.checkpoint_writer.release()  # the checkpoint's commands are all on disk now
        if not self._unpublished:
            return
        pend = self._unpublished
        i = 0
        while i < len(pend) and pend[i][0].seq <= durable:
            i += 1
        if not i:
            return
        done, self._unpublished = pend[:i], pend[i:]
        batch = [self._note(cmd, out) for cmd, out in done]
        for cb in list(self._subscribers):
            try:
                cb(batch)
            except Exception:  # noqa: BLE001 - a subscriber never breaks sequencing
                log.exception("subscriber %r failed", cb)

    # --------------------------------------------------------------------- reads

    def state_root(self) -> bytes:
        return self.sequencer.state_root()

    def undurable_commands(self) -> list[C.Command]:
        """Return the commands sequenced but not yet durable (published), in seq order."""
        return [cmd for cmd, _ in self._unpublished]

    def deposit_keys(self) -> list[tuple[int, int]]:
        """Return the ``(chain_id, deposit_nonce)`` of every deposit sequenced (or in flight)."""
        return list(self._deposits)

    def knows_instrument(self, name: str) -> bool:
        """Return whether ``name`` is a market of the sequencer (active or expired)."""
        try:
            self.sequencer.book(name, 1)
        except KeyError:  # UnknownInstrument
            return False
        return True

    @property
    def last_seq(self) -> int:
        return self.journal.last_seq if self.journal else 0


# ---------------------------------------------------------------- standalone entry


DEFAULT_FEE_ACCOUNT = "0x000000000000000000000000000000000000fEE1"
DEFAULT_INSURANCE_ACCOUNT = "0x000000000000000000000000000000000000F00D"


def default_sequencer_config(hub_chain_id: int = 31337, instruments_toml: str | None = None,
                             fee_account: str = DEFAULT_FEE_ACCOUNT,
                             insurance_account: str = DEFAULT_INSURANCE_ACCOUNT, **kw: Any) -> Any:
    """Return a ``SequencerConfig`` over the packaged ``aggregator/instruments.toml``."""
    from pathlib import Path

    from aggregator.core.instruments import InstrumentRegistry
    from aggregator.core.sequencer import SequencerConfig

    path = Path(instruments_toml) if instruments_toml else Path(__file__).with_name("instruments.toml")
    return SequencerConfig(registry=InstrumentRegistry.from_toml(path.read_text()), fee_account=fee_account,
                           insurance_account=insurance_account, hub_chain_id=hub_chain_id, **kw)


class SequencerFactory:
    """Fresh Sequencers over one ``config``; ``config`` also lets the service checkpoint and restore."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def __call__(self) -> Any:
        from aggregator.core.sequencer import Sequencer

        return Sequencer(self.config)


def default_sequencer_factory(config: Any) -> Callable[[], Any]:
    """Return a factory of fresh Sequencers over ``config`` (the same config on every restart)."""
    return SequencerFactory(config)


GC_YOUNG_THRESHOLD = 2_000


def tune_gc(young: int = GC_YOUNG_THRESHOLD) -> None:
    """Young-only cyclic GC for a long-running service (call once after start-up).

    Everything alive after start-up (the replayed state, imported modules) is frozen:
    never scanned again. After that only young collections run, every ``young`` net
    allocations of tracked objects; the objects that survive one are nearly all state
    that lives long (resting orders, histories), so older generations are never
    collected automatically (``gc.collect()`` still works). A young collection's pause
    grows faster than linearly with ``young``: measured on the order-entry mix, 2,000 ->
    ~0.2 ms per collection, 50,000 (the former setting) -> 30-60 ms, which was the p99
    of acknowledgement latency. Cyclic garbage that outlives a young collection is only
    reclaimed by an explicit full collection (none was found in the benchmark runs).
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(young, 1 << 30, 1 << 30)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import os
    import signal

    from aiohttp import web

    from aggregator.api.errors import error_middleware
    from aggregator.api.trading import TradingOptions, add_trading_routes

    ap = argparse.ArgumentParser(prog="python -m aggregator.sequencer_service",
                                 description="Run the sequencer service and the trading API over one journal.")
    ap.add_argument("--journal", required=True, help="journal directory (created if missing)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--chain-id", type=int, default=31337, help="EIP-712 domain chainId (the hub chain)")
    ap.add_argument("--verifying-contract", default="0x5FbDB2315678afecb367f032d93F642f64180aa3",
                    help="EIP-712 domain verifyingContract (the SettlementHub)")
    ap.add_argument("--instruments", default=None, help="instruments TOML (default: the packaged one)")
    ap.add_argument("--tick-interval", type=float, default=1.0, help="seconds between Tick commands (0: none)")
    ap.add_argument("--verify-processes", type=int, default=os.cpu_count() or 2,
                    help="signature verification worker processes (0: threads of this process)")
    ap.add_argument("--verify-threads", type=int, default=os.cpu_count() or 2,
                    help="verification threads when --verify-processes is 0")
    ap.add_argument("--rate", type=float, default=200.0, help="per-account requests/s (0: no limit)")
    ap.add_argument("--burst", type=float, default=400.0)
    ap.add_argument("--ip-rate", type=float, default=2_000.0,
                    help="per-client-IP requests/s before parsing (0: no limit; benchmarks from one address)")
    ap.add_argument("--no-fsync", action="store_true", help="skip fsync (benchmarks of the CPU path only)")
    ap.add_argument("--checkpoint-every", type=int, default=_ckpt.DEFAULT_CHECKPOINT_EVERY, metavar="N",
                    help="write a checkpoint (JOURNAL/checkpoints/) every N commands, so a restart replays only "
                         f"the journal after it (default {_ckpt.DEFAULT_CHECKPOINT_EVERY:,}; 0: never)")
    ap.add_argument("--log-level", default="WARNING")
    a = ap.parse_args(argv)
    if a.checkpoint_every < 0:
        ap.error(f"--checkpoint-every must be >= 0, got {a.checkpoint_every}")
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    domain = eip712.Domain(a.chain_id, a.verifying_contract)
    cfg = default_sequencer_config(a.chain_id, a.instruments)
    service = SequencerService(default_sequencer_factory(cfg), domain, a.journal,
                               tick_interval_s=a.tick_interval or None, verify_threads=a.verify_threads,
                               fsync=not a.no_fsync, verify_processes=max(0, a.verify_processes),
                               checkpoint_every=a.checkpoint_every)
    delay = os.environ.get("OMNICLEAR_CHECKPOINT_TEST_DELAY_S")  # tests: hold the writer before its rename
    if delay:
        service.checkpoint_writer.child_delay_s = float(delay)

    async def run() -> None:
        app = web.Application(middlewares=[error_middleware], client_max_size=1 << 20)
        add_trading_routes(app, service, TradingOptions(rate=a.rate or None, burst=a.burst,
                                                           ip_rate=a.ip_rate or None, ip_burst=2 * (a.ip_rate or 1)))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        tune_gc()
        site = web.TCPSite(runner, a.host, a.port)
        await site.start()
        print(f"sequencer service listening on http://{a.host}:{a.port} journal={a.journal} "
              f"last_seq={service.last_seq} replayed={service.replayed} checkpoint={service.restored_from}",
              flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, stop.set)
        await stop.wait()
        await runner.cleanup()

    try:
        asyncio.run(run())
    except JournalError as e:  # e.g. JournalVersionMismatch: one line, not a traceback
        raise SystemExit(f"{ap.prog}: error: {e}") from None


if __name__ == "__main__":
    main()

"""The sequencer's journalled inputs: frozen msgspec Structs in one tagged union.

Every state change of the sequencer (``aggregator.core.sequencer.Sequencer.apply``) is
caused by exactly one ``Command``. The service assigns ``seq`` (strictly increasing by
one) and ``ts_ms`` (Unix milliseconds, never decreasing), journals the encoded bytes,
then applies the command. Replaying the journal through ``decode`` + ``apply`` rebuilds
the exact state.

Wire format
    msgpack (``msgspec``). A command is encoded as an array whose first element is the
    tag (the class name, e.g. ``"PlaceOrder"``) followed by the fields in declaration
    order (``seq``, ``ts_ms``, then the subclass's fields). The EIP-712 messages inside
    (``aggregator.eip712`` dataclasses) are encoded as maps keyed by attribute name.
    Evolving the format: new fields are only ever *appended* to a command, with a
    default, so old journals still decode; tags are never renamed.

Invariants
    - ``decode(encode(cmd)) == cmd`` for every command (the tests check it by property).
    - Encoding is deterministic: equal commands give equal bytes.
    - Integers must fit msgpack's 64-bit range; ``encode`` raises ``CommandError``
      otherwise (an order price or size >= 2**64 is refused by the service as malformed
      before it is sequenced).

Trust
    ``decode`` trusts its input by default: the EIP-712 messages are rebuilt without
    re-running their ``__post_init__`` validation (which costs ~10 µs per message, mostly
    EIP-55 checksums), because the journal only ever holds commands that were validated
    before they were written. Pass ``validate=True`` to re-check every message (e.g. a
    watchtower reading published batch data).
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from aggregator import eip712

__all__ = [
    "Command",
    "DepositCredit",
    "PlaceOrder",
    "CancelOrder",
    "CancelAllOrders",
    "CancelAllAfter",
    "SetMmp",
    "PlaceTrigger",
    "AmendOrder",
    "GrantSessionKey",
    "RevokeSession",
    "PriceUpdate",
    "Tick",
    "Withdraw",
    "SetWithdrawalHalt",
    "CloseBatch",
    "BatchSettled",
    "AnyCommand",
    "CommandError",
    "PRICE_STATUSES",
    "encode",
    "decode",
]


class CommandError(ValueError):
    """A command cannot be encoded or decoded."""


PRICE_STATUSES = ("ok", "stale", "market-closed", "halted", "deviating")


class Command(msgspec.Struct, frozen=True, tag=True, array_like=True):
    """Base of every journalled input: ``seq`` and ``ts_ms`` are assigned by the service."""

    seq: int
    ts_ms: int


class DepositCredit(Command, frozen=True, tag=True, array_like=True):
    """A vault deposit seen on ``chain_id`` after its confirmations; ``amount`` in internal units.

    Credited exactly once per ``(chain_id, deposit_nonce)``; a repeat is a no-op.
    """

    chain_id: int
    deposit_nonce: int
    account: str
    amount: int


class PlaceOrder(Command, frozen=True, tag=True, array_like=True):
    """A signed order; ``signer`` was recovered from ``signature`` by the service."""

    signer: str
    order: eip712.Order
    signature: bytes


class CancelOrder(Command, frozen=True, tag=True, array_like=True):
    """A signed cancel of one resting order (by order id or client order id)."""

    signer: str
    cancel: eip712.Cancel
    signature: bytes


class CancelAllOrders(Command, frozen=True, tag=True, array_like=True):
    """A signed cancel of every resting order of the account (one instrument or all)."""

    signer: str
    cancel_all: eip712.CancelAll
    signature: bytes


class CancelAllAfter(Command, frozen=True, tag=True, array_like=True):
    """A signed dead man's switch: arm (or re-arm, or with timeout 0 disarm) the account's cancel-all timer."""

    signer: str
    cancel_after: eip712.CancelAllAfter
    signature: bytes


class SetMmp(Command, frozen=True, tag=True, array_like=True):
    """A signed market maker protection config for the account's options on one underlying."""

    signer: str
    mmp: eip712.MmpConfig
    signature: bytes


class PlaceTrigger(Command, frozen=True, tag=True, array_like=True):
    """A signed trigger order (stop-loss / take-profit) on a perpetual."""

    signer: str
    trigger: eip712.TriggerOrder
    signature: bytes


class AmendOrder(Command, frozen=True, tag=True, array_like=True):
    """A signed amend (new price and/or new total size) of one resting order."""

    signer: str
    amend: eip712.Amend
    signature: bytes


class GrantSessionKey(Command, frozen=True, tag=True, array_like=True):
    """The account authorises a session key (signed by the account itself)."""

    signer: str
    grant: eip712.SessionKey
    signature: bytes


class RevokeSession(Command, frozen=True, tag=True, array_like=True):
    """Revoke a session key (signed by the account or by the session key itself)."""

    signer: str
    revoke: eip712.RevokeSessionKey
    signature: bytes


class PriceUpdate(Command, frozen=True, tag=True, array_like=True):
    """A verified ``PriceReport``: ``price``/``confidence`` with 8 decimals, ``publish_ts`` in s.

    ``status`` is one of ``PRICE_STATUSES``.
    """

    feed: str
    price: int
    confidence: int
    publish_ts: int
    status: str


class Tick(Command, frozen=True, tag=True, array_like=True):
    """Timer: funding, liquidation sweep, option expiry settlement and listing."""


class Withdraw(Command, frozen=True, tag=True, array_like=True):
    """A signed withdrawal; ``signer`` must be the account itself (a session key cannot withdraw)."""

    signer: str
    withdrawal: eip712.Withdrawal
    signature: bytes


class SetWithdrawalHalt(Command, frozen=True, tag=True, array_like=True):
    """Stop (``halted``) or resume withdrawals to ``chain_id`` (e.g. from reconciliation)."""

    chain_id: int
    halted: bool
    reason: str = ""


class CloseBatch(Command, frozen=True, tag=True, array_like=True):
    """Close the next settlement batch; ``journal_hash`` (32 bytes) covers the journal up to ``seq``."""

    journal_hash: bytes


class BatchSettled(Command, frozen=True, tag=True, array_like=True):
    """The vault of ``chain_id`` applied batch ``batch_number`` (seen on chain by the relayer)."""

    chain_id: int
    batch_number: int


_COMMANDS: tuple[type[Command], ...] = (
    DepositCredit,
    PlaceOrder,
    CancelOrder,
    CancelAllOrders,
    AmendOrder,
    GrantSessionKey,
    RevokeSession,
    PriceUpdate,
    Tick,
    Withdraw,
    SetWithdrawalHalt,
    CloseBatch,
    BatchSettled,
    CancelAllAfter,
    SetMmp,
    PlaceTrigger,
)

AnyCommand = Union[
    DepositCredit, PlaceOrder, CancelOrder, CancelAllOrders, AmendOrder,
    GrantSessionKey, RevokeSession, PriceUpdate, Tick, Withdraw, SetWithdrawalHalt, CloseBatch,
    BatchSettled, CancelAllAfter, SetMmp, PlaceTrigger,
]

# ------------------------------------------------------------------------ encoding

_encoder = msgspec.msgpack.Encoder()


def encode(cmd: Command) -> bytes:
    """Return the msgpack bytes of ``cmd`` (deterministic)."""
    try:
        if type(cmd) is Withdraw:
            return _encoder.encode(_withdraw_wire(cmd))
        return _encoder.encode(cmd)
    except OverflowError as e:
        raise CommandError(f"{type(cmd).__name__} seq={cmd.seq}: {e}") from e


# ------------------------------------------------------------------------ decoding
# Decoding goes through wire mirrors: the same tags and field order, but each EIP-712
# message is a plain msgspec Struct (map form, same keys as the dataclass). The mirror is
# then turned into the real dataclass without running its validation (see "Trust").

_PY_TYPE = {"address": str, "string": str, "bool": bool}


def _msg_wire(cls: type) -> type[msgspec.Struct]:
    fields = [(attr, _PY_TYPE.get(typ, int)) for _sol, attr, typ in cls.FIELDS]
    return msgspec.defstruct(f"_{cls.__name__}Wire", fields, frozen=True)


def _fast_builder(cls: type, validate: bool) -> Any:
    """Return ``wire -> cls`` that fills the slots directly (skipping ``__post_init__``).

    The function is generated once per class (one direct slot-descriptor call per field).
    """
    attrs = tuple(attr for _sol, attr, _typ in cls.FIELDS)
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_post": cls.__post_init__}
    lines = ["def build(w):", "    m = _new(_cls)"]
    for a in attrs:
        ns[f"_set_{a}"] = cls.__dict__[a].__set__
        lines.append(f"    _set_{a}(m, w.{a})")
    if validate:
        lines.append("    _post(m)")
    lines.append("    return m")
    exec("\n".join(lines), ns)  # noqa: S102 - generated from the class's own field names
    return ns["build"]


# command class -> (name of its message field, eip712 class)
_SIGNED: dict[type[Command], tuple[str, type]] = {
    PlaceOrder: ("order", eip712.Order),
    CancelOrder: ("cancel", eip712.Cancel),
    CancelAllOrders: ("cancel_all", eip712.CancelAll),
    CancelAllAfter: ("cancel_after", eip712.CancelAllAfter),
    SetMmp: ("mmp", eip712.MmpConfig),
    PlaceTrigger: ("trigger", eip712.TriggerOrder),
    AmendOrder: ("amend", eip712.Amend),
    GrantSessionKey: ("grant", eip712.SessionKey),
    RevokeSession: ("revoke", eip712.RevokeSessionKey),
}

_MSG_WIRE = {mcls: _msg_wire(mcls) for _f, mcls in _SIGNED.values()}


def _cmd_wire(ccls: type[Command]) -> type[msgspec.Struct]:
    fname, mcls = _SIGNED[ccls]
    fields = [("seq", int), ("ts_ms", int), ("signer", str), (fname, _MSG_WIRE[mcls]),
              ("signature", bytes)]
    return msgspec.defstruct(f"_{ccls.__name__}Wire", fields, tag=ccls.__name__,
                             array_like=True, frozen=True)


_WIRE_OF = {ccls: _cmd_wire(ccls) for ccls in _SIGNED}


# A withdrawal's amount is in the destination token's native units (uint256: $1M of an
# 18-decimal token is 10^24), beyond msgpack's 64-bit integers. Its journal form holds an
# amount >= 2**63 as 32 big-endian bytes, a smaller one as an int (same bytes as the map
# form of the other messages).
class _WithdrawalWire(msgspec.Struct, frozen=True):
    account: str
    token: str
    amount: Union[int, bytes]
    destination_chain_id: int
    recipient: str
    nonce: int
    expiry: int


class _WithdrawWire(msgspec.Struct, tag="Withdraw", array_like=True, frozen=True):
    seq: int
    ts_ms: int
    signer: str
    withdrawal: _WithdrawalWire
    signature: bytes


def _withdraw_wire(cmd: Withdraw) -> _WithdrawWire:
    w = cmd.withdrawal
    amt = w.amount
    if isinstance(amt, int) and not isinstance(amt, bool) and 2**63 <= amt < 2**256:
        amt = amt.to_bytes(32, "big")
    msg = _WithdrawalWire(w.account, w.token, amt, w.destination_chain_id, w.recipient, w.nonce, w.expiry)
    return _WithdrawWire(cmd.seq, cmd.ts_ms, cmd.signer, msg, cmd.signature)


def _withdraw_converter(validate: bool) -> Any:
    build = _fast_builder(eip712.Withdrawal, validate)

    def convert(w: _WithdrawWire) -> Withdraw:
        m = w.withdrawal
        if type(m.amount) is bytes:
            m = msgspec.structs.replace(m, amount=int.from_bytes(m.amount, "big"))
        return Withdraw(w.seq, w.ts_ms, w.signer, build(m), w.signature)

    return convert


_WIRE_OF[Withdraw] = _WithdrawWire
_WIRE_UNION = Union[tuple(_WIRE_OF.get(c, c) for c in _COMMANDS)]  # type: ignore[misc]
_decoder = msgspec.msgpack.Decoder(_WIRE_UNION)


def _converters(validate: bool) -> dict[type, Any]:
    conv: dict[type, Any] = {}
    for ccls, wcls in _WIRE_OF.items():
        if ccls not in _SIGNED:  # Withdraw has its own converter (see _WithdrawWire)
            continue
        fname, mcls = _SIGNED[ccls]
        build = _fast_builder(mcls, validate)

        def convert(w: Any, ccls: type = ccls, fname: str = fname, build: Any = build) -> Command:
            return ccls(w.seq, w.ts_ms, w.signer, build(getattr(w, fname)), w.signature)

        conv[wcls] = convert
    return conv


_CONV_TRUSTED = _converters(False)
_CONV_VALIDATE = _converters(True)
_CONV_TRUSTED[_WithdrawWire] = _withdraw_converter(False)
_CONV_VALIDATE[_WithdrawWire] = _withdraw_converter(True)


def decode(data: bytes, validate: bool = False) -> Command:
    """Return the command encoded in ``data``; ``validate`` re-checks the EIP-712 messages."""
    try:
        w = _decoder.decode(data)
    except msgspec.DecodeError as e:
        raise CommandError(f"cannot decode command: {e}") from e
    conv = (_CONV_VALIDATE if validate else _CONV_TRUSTED).get(type(w))
    if conv is None:
        return w
    try:
        return conv(w)
    except eip712.MessageError as e:
        raise CommandError(f"invalid message in seq={w.seq}: {e}") from e

"""The settlement batch builder: per-(account, chain) deltas, withdrawals, netted bridge legs.

Pure: plain data in, plain data out; no I/O, no clock, no web3. The sequencer
(``aggregator.core.sequencer``, command ``CloseBatch``) calls ``build_batch`` with its
ledger and its *projected on-chain view* and applies the result;
``aggregator.settlement`` turns a ``Batch`` into the ``bridges.messages`` encoding.

What a vault does with one chain's part (``CollateralVault.handle``), in this order:
debit negative deltas, bridge out, require every bridge-in of the batch minted, credit
positive deltas, pay withdrawals (each debited from the account's settled balance and
sent to the recipient). So a withdrawal is *not* part of the delta: it is debited
separately, after the credits. For an account ``a`` on chain ``X``, with ``L`` its ledger
balance after the batch, ``S`` the settled balance the vault will hold once every earlier
batch has applied (the projected view) and ``W`` what the batch pays ``a`` on ``X``::

    delta[a, X] = L[a, X] - S[a, X] + W[a, X]        (then S' = S + delta - W = L)

Per chain, ``net[X] = sum_a delta[a, X]`` must equal ``bridgeIn - bridgeOut``: a chain with
``net < 0`` sends ``-net``, one with ``net > 0`` receives ``net``. Across chains
``sum_X net[X] = sum(L) - sum(S) + sum(W) = 0`` because deposits enter L and S alike and
every reserved withdrawal (already debited from L) is paid in this batch.

Invariants (``tests/settlement/test_batch_core.py`` checks each one)
    - ``sum`` of every delta over the batch is 0 and each chain's deltas sum to its bridge
      net; ``build_batch`` raises ``BatchImbalance`` before returning anything otherwise.
    - Legs are one-to-one ``(from, to, amount)`` with amount > 0, no chain both sends and
      receives, at most one leg per pair, per-chain lists ascending by domain: the hub's
      ``check_batch`` rules.
    - Bridged volume is ``sum_X max(net[X], 0)``: the least any matching can move. The
      greedy matching (largest sender to largest receiver, ties by chain id) uses at most
      ``senders + receivers - 1`` legs.
    - Every target balance is >= 0 (an account's negative balance on one chain is first
      covered from its other chains, see ``cover_negatives``), so every settled balance
      after the batch is >= 0 and the vault can always apply it: a sender holds at least
      ``sum_a S`` >= its bridge-out plus withdrawals, and a receiver waits for its
      bridge-ins (``BridgeInPending``) before crediting or paying anyone. With no chain
      both sending and receiving there is no wait cycle.
    - Deterministic: accounts sorted by address, chains by id, withdrawals in reservation
      order.

Netting report
    *Gross cross-chain obligations* are the volume that would cross chains if every
    journalled command's balance changes were settled on their own, right after the
    command: for each command, the changes it books on each chain (trade cash, premium,
    fees, funding, liquidation and settlement flows on the accounts' primary chains, and
    the moves of an account's own balance between chains to fund a withdrawal or to cover
    a negative chain balance) sum to zero over chains, and the command's obligation is
    ``sum_X max(change[X], 0)``. Deposits and withdrawal payouts are not obligations (they
    enter and leave on their own chain). Netting over a command is already counted, so
    this is a lower bound of pairwise gross. *Bridged volume* is ``sum`` of the legs.
    ``efficiency = 1 - bridged / gross``; ``bridged <= gross`` always (the batch net of a
    chain is the sum of the commands' nets, and ``max(sum, 0) <= sum of max``). A liquidity
    account's rebalancing moves (``rebalance_moves``) are its own balance changing chains:
    they count in gross (and in ``rebalanced``) like any such move, so the bound holds.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CANONICAL_DECIMALS",
    "BatchImbalance",
    "SettlementChain",
    "Payout",
    "Leg",
    "buffer_swaps",
    "rebalance_moves",
    "ChainBatch",
    "Netting",
    "Batch",
    "BatchPlan",
    "cover_negatives",
    "match_legs",
    "build_batch",
]

CANONICAL_DECIMALS = 6
ZERO_HASH = bytes(32)


class BatchImbalance(AssertionError):
    """The deltas of a batch do not net to zero (overall or against the legs): a ledger bug."""


@dataclass(frozen=True, slots=True)
class SettlementChain:
    """A chain with a vault: its settlement token (``None``: not checked) and the token's decimals."""

    chain_id: int
    token: str | None = None
    decimals: int = CANONICAL_DECIMALS

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, int) or not 0 < self.chain_id < 2**32:
            raise ValueError(f"chain_id must be a uint32 > 0 (it is the Mailbox domain), got {self.chain_id!r}")
        if not isinstance(self.decimals, int) or self.decimals < CANONICAL_DECIMALS:
            raise ValueError(f"token decimals must be >= {CANONICAL_DECIMALS}, got {self.decimals!r}")

    @property
    def scale(self) -> int:
        """Native token units per canonical unit (1e-6 USD)."""
        return 10 ** (self.decimals - CANONICAL_DECIMALS)


@dataclass(frozen=True, slots=True)
class Payout:
    """A withdrawal paid by a chain's vault; ``amount`` in canonical units."""

    withdrawal_id: bytes
    account: str
    recipient: str
    chain_id: int
    amount: int


@dataclass(frozen=True, slots=True)
class Leg:
    """One token-bridge transfer of ``amount`` canonical units from one vault to another."""

    from_chain: int
    to_chain: int
    amount: int


@dataclass(frozen=True, slots=True)
class ChainBatch:
    """One chain's part of a batch (the content of one ``ChainSettlement``)."""

    chain_id: int
    deltas: tuple[tuple[str, int], ...] = ()  # (account, amount), ascending by account, non-zero
    withdrawals: tuple[Payout, ...] = ()
    bridge_out: tuple[tuple[int, int], ...] = ()  # (to chain, amount), ascending
    bridge_in: tuple[tuple[int, int], ...] = ()  # (from chain, amount), ascending

    @property
    def net(self) -> int:
        """Return the sum of the deltas (== bridged in - bridged out)."""
        return sum(a for _, a in self.deltas)

    @property
    def withdrawn(self) -> int:
        """Return the sum of the withdrawals paid on this chain."""
        return sum(w.amount for w in self.withdrawals)

    def to_dict(self) -> dict:
        return {"chain_id": self.chain_id, "deltas": [[a, v] for a, v in self.deltas],
                "withdrawals": [{"withdrawal_id": "0x" + w.withdrawal_id.hex(), "account": w.account,
                                 "recipient": w.recipient, "amount": w.amount} for w in self.withdrawals],
                "bridge_out": [[d, v] for d, v in self.bridge_out], "bridge_in": [[d, v] for d, v in self.bridge_in]}


@dataclass(frozen=True, slots=True)
class Netting:
    """Gross cross-chain obligations vs bridged volume (canonical units), see the module doc."""

    gross: int = 0
    bridged: int = 0
    buffered: int = 0  # served from the liquidity account's balance on the receiving chain instead
    rebalanced: int = 0  # the liquidity account's own balance moved to chains low on it (in gross and bridged)

    def __add__(self, other: Netting) -> Netting:
        return Netting(self.gross + other.gross, self.bridged + other.bridged, self.buffered + other.buffered,
                       self.rebalanced + other.rebalanced)

    @property
    def efficiency_bps(self) -> int:
        """Return ``floor((1 - bridged / gross) * 10^4)``; 10^4 when nothing was owed."""
        if not self.gross:
            return 10_000
        return (self.gross - self.bridged) * 10_000 // self.gross

    @property
    def efficiency(self) -> float:
        """Return ``1 - bridged / gross`` as a float, for display only (1.0 when nothing was owed)."""
        return 1.0 if not self.gross else 1 - self.bridged / self.gross

    def to_dict(self) -> dict:
        return {"gross": self.gross, "bridged": self.bridged, "buffered": self.buffered,
                "rebalanced": self.rebalanced, "efficiency_bps": self.efficiency_bps}


@dataclass(frozen=True, slots=True)
class Batch:
    """A closed (or previewed) batch: everything the hub commits, plus its netting report.

    ``state_root`` is ``Sequencer.state_root()`` after the batch; the previous batch hash
    is linked by the adapter (``aggregator.settlement.to_header``), which also computes
    ``settlementsHash``.
    """

    number: int
    seq: int
    ts_ms: int
    state_root: bytes
    journal_hash: bytes
    chains: tuple[ChainBatch, ...]
    legs: tuple[Leg, ...]
    netting: Netting
    cumulative: Netting

    def chain(self, chain_id: int) -> ChainBatch:
        """Return the part of ``chain_id``; KeyError if the chain is not in the batch."""
        for c in self.chains:
            if c.chain_id == chain_id:
                return c
        raise KeyError(chain_id)

    @property
    def domains(self) -> tuple[int, ...]:
        return tuple(c.chain_id for c in self.chains)

    @property
    def withdrawals(self) -> tuple[Payout, ...]:
        return tuple(w for c in self.chains for w in c.withdrawals)

    def is_empty(self) -> bool:
        """Return whether the batch changes nothing on any chain."""
        return not any(c.deltas or c.withdrawals for c in self.chains)

    def to_dict(self) -> dict:
        return {"number": self.number, "seq": self.seq, "ts_ms": self.ts_ms,
                "state_root": "0x" + self.state_root.hex(), "journal_hash": "0x" + self.journal_hash.hex(),
                "chains": [c.to_dict() for c in self.chains],
                "legs": [[g.from_chain, g.to_chain, g.amount] for g in self.legs],
                "netting": self.netting.to_dict(), "cumulative": self.cumulative.to_dict()}


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """``build_batch``'s result: the batch and the ledger balances to adopt (changed accounts only)."""

    batch: Batch
    targets: dict[str, dict[int, int]] = field(default_factory=dict)


# ------------------------------------------------------------------ pure steps


def _by_size(items: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(chain, amount) sorted by amount descending, then chain ascending."""
    return sorted(items, key=lambda t: (-t[1], t[0]))


def cover_negatives(balances: Mapping[int, int]) -> tuple[dict[int, int], int]:
    """Return (balances with no negative chain, amount moved) for one account.

    Each negative chain (ascending id) is brought to zero from the account's positive
    chains, largest balance first (ties: lower chain id). Raise ``ValueError`` if the
    account's total is negative (it cannot be settled; the sequencer socialises the insurance fund's deficit first).
    """
    if sum(balances.values()) < 0:
        raise ValueError(f"negative total {sum(balances.values())}")
    out = dict(balances)
    moved = 0
    for c in sorted(k for k, v in out.items() if v < 0):
        need = -out[c]
        for src, have in _by_size((k, v) for k, v in out.items() if v > 0):
            take = min(have, need)
            out[src] = have - take
            need -= take
            moved += take
            if not need:
                break
        out[c] = -need  # 0: the total is >= 0
    return out, moved


def match_legs(nets: Mapping[int, int]) -> tuple[Leg, ...]:
    """Return one-to-one legs moving each chain's residual: ``net < 0`` sends, ``net > 0`` receives.

    Greedy: the largest remaining sender pays the largest remaining receiver (ties by
    chain id), so a pair gets at most one leg and no chain both sends and receives.
    Raise ``BatchImbalance`` if the nets do not sum to zero.
    """
    total = sum(nets.values())
    if total:
        raise BatchImbalance(f"chain nets sum to {total}")
    senders = _by_size((c, -n) for c, n in nets.items() if n < 0)
    receivers = _by_size((c, n) for c, n in nets.items() if n > 0)
    legs: list[Leg] = []
    i = j = 0
    s_left = senders[0][1] if senders else 0
    r_left = receivers[0][1] if receivers else 0
    while i < len(senders) and j < len(receivers):
        amt = min(s_left, r_left)
        legs.append(Leg(senders[i][0], receivers[j][0], amt))
        s_left -= amt
        r_left -= amt
        if not s_left:
            i += 1
            s_left = senders[i][1] if i < len(senders) else 0
        if not r_left:
            j += 1
            r_left = receivers[j][1] if j < len(receivers) else 0
    return tuple(legs)


def buffer_swaps(nets: Mapping[int, int], liquidity: Mapping[int, int]) -> list[tuple[int, int, int]]:
    """Return ``(receiving chain, sending chain, amount)`` swaps served by a liquidity account.

    A chain with ``net > 0`` must receive that much; a chain with ``net < 0`` sends it.
    Instead of a bridge leg, the liquidity account gives up ``amount`` of its balance on
    the receiving chain and gets it back on the sending one: both nets move toward zero,
    no vault holds less than its balances. Greedy and deterministic: receivers and
    senders by size (ties by chain id), never more than the account holds on a chain.
    """
    senders = [[c, n] for c, n in _by_size((c, -n) for c, n in nets.items() if n < 0)]
    held = {c: max(v, 0) for c, v in liquidity.items()}
    out: list[tuple[int, int, int]] = []
    for r, need in _by_size((c, n) for c, n in nets.items() if n > 0):
        for s in senders:
            avail = held.get(r, 0)
            if not need or not avail:
                break
            x = min(need, avail, s[1])
            if x:
                out.append((r, s[0], x))
                held[r] = avail - x
                s[1] -= x
                need -= x
    return out


def rebalance_moves(balances: Mapping[int, int], weights: Mapping[int, int], chains: Iterable[int], low_bps: int,
                    blocked: Container[int] = ()) -> list[tuple[int, int, int]]:
    """Return ``(from chain, to chain, amount)`` moves that refill a liquidity account's low chains.

    Each chain's part is ``target[c] = total * weights[c] // sum(weights)`` (``total``: its
    non-negative balances on ``chains``; the weights are what the account was funded with
    per chain, so the operator's split is kept; a chain without weight has part 0). A
    weighted chain below ``target * low_bps / 10^4`` and not in ``blocked`` is low; only when
    one is, each low chain is brought up to its part (largest need first, ties by chain
    id) from the chains above theirs (largest surplus first), never taking a donor below
    its part. Deterministic; empty if nothing is low.
    """
    cs = sorted(chains)
    w = {c: max(weights.get(c, 0), 0) for c in cs}
    wsum = sum(w.values())
    if not cs or low_bps <= 0 or not wsum:
        return []
    bal = {c: max(balances.get(c, 0), 0) for c in cs}
    total = sum(bal.values())
    target = {c: total * w[c] // wsum for c in cs}
    low = [(c, target[c] - bal[c]) for c in cs
           if w[c] and bal[c] * 10_000 < target[c] * low_bps and c not in blocked]
    if not low:
        return []
    donors = [[c, x] for c, x in _by_size((c, bal[c] - target[c]) for c in cs if bal[c] > target[c])]
    out: list[tuple[int, int, int]] = []
    for r, need in _by_size(low):
        for d in donors:
            if not need:
                break
            x = min(need, d[1])
            if x:
                out.append((d[0], r, x))
                d[1] -= x
                need -= x
    return out


def build_batch(*, number: int, seq: int, ts_ms: int, chains: Sequence[int],
                balances: Mapping[str, Mapping[int, int]], settled: Mapping[tuple[str, int], int],
                payouts: Sequence[Payout], gross: int, cumulative: Netting, state_root: bytes,
                journal_hash: bytes = ZERO_HASH, known: Container[str] | None = None,
                liquidity: tuple[str, Mapping[int, int]] | None = None, rebalance_bps: int = 0,
                liquidity_weights: Mapping[int, int] | None = None) -> BatchPlan:
    """Build batch ``number`` from the ledger ``balances`` (account -> chain -> balance) and the
    projected on-chain view ``settled`` ((account, chain) -> balance), paying ``payouts``.

    ``gross`` is the obligations booked since the previous batch (the normalisation moves
    made here are added to it); ``cumulative`` is the report before this batch. Raise
    ``ValueError`` for an account with a negative total or a balance on a chain outside
    ``chains``, ``BatchImbalance`` if the deltas do not net out (a ledger bug).

    ``known`` is every account of the ledger (default: the keys of ``balances``); given
    it, ``balances`` may hold only the accounts whose balances changed since the previous
    batch: an unchanged account equals its projected balances, so it has no delta.

    ``liquidity`` is ``(account, its ledger balances)`` of a liquidity account (see
    ``buffer_swaps``): where a chain must receive tokens and the account holds a balance
    there, that balance is handed over and the account is credited on a sending chain
    instead, so no bridge leg (and no wait for a mint) is needed; ``netting.buffered``
    counts it. Every vault stays solvent: the swaps move only settled balances.

    ``rebalance_bps`` > 0 also keeps that account's balance spread over the chains as it
    was funded (``liquidity_weights``: chain -> what it deposited there; see
    ``rebalance_moves``): after the swaps, a chain whose balance fell below that share of
    its part, and that pays no withdrawal in this batch (so no payout waits for the
    refill's mint), is brought back to its part from the chains above theirs. The moves
    are the account's own ledger balances changing chains: they enter the nets, so they
    are bridged together with everything else, and count in ``gross`` and
    ``netting.rebalanced``.
    """
    chain_set = frozenset(chains)
    if liquidity is not None and liquidity[0] not in balances:
        balances = {**balances, liquidity[0]: liquidity[1]}
    paid: dict[tuple[str, int], int] = {}
    for w in payouts:
        if w.chain_id not in chain_set:
            raise ValueError(f"withdrawal on chain {w.chain_id}, not a settlement chain")
        k = (w.account, w.chain_id)
        paid[k] = paid.get(k, 0) + w.amount
    targets: dict[str, dict[int, int]] = {}
    deltas: dict[int, list[tuple[str, int]]] = {c: [] for c in chain_set}
    moved = 0
    for addr in sorted(balances):
        bal = balances[addr]
        if any(v < 0 for v in bal.values()):
            try:
                new, m = cover_negatives(bal)
            except ValueError as e:
                raise ValueError(f"account {addr} cannot be settled: {e}") from None
            moved += m
            targets[addr] = new
            bal = new
        for c in sorted(bal):
            v = bal[c]
            k = (addr, c)
            d = v - settled.get(k, 0) + paid.get(k, 0)
            if not d:
                continue
            if c not in chain_set:
                raise ValueError(f"account {addr} has a balance change on chain {c}, not a settlement chain")
            deltas[c].append((addr, d))
    buffered = rebalanced = 0
    if liquidity is not None:
        laddr = liquidity[0]
        nets = {c: sum(a for _, a in deltas[c]) for c in chain_set}
        lbal = dict(targets.get(laddr) or balances[laddr])
        swaps = buffer_swaps(nets, lbal)
        for r, snd, x in swaps:
            lbal[r] -= x
            lbal[snd] = lbal.get(snd, 0) + x
            buffered += x
        moves = rebalance_moves(lbal, liquidity_weights or {}, chain_set, rebalance_bps,
                                blocked={w.chain_id for w in payouts})
        for src, dst, x in moves:
            lbal[src] -= x
            lbal[dst] = lbal.get(dst, 0) + x
            rebalanced += x
        if swaps or moves:
            targets[laddr] = lbal
            for c in chain_set:  # the liquidity account's deltas, recomputed from its new balances
                k = (laddr, c)
                d = lbal.get(c, 0) - settled.get(k, 0) + paid.get(k, 0)
                rest = [(a, v) for a, v in deltas[c] if a != laddr]
                if d:
                    rest.append((laddr, d))
                    rest.sort()
                deltas[c] = rest
    if known is None:
        known = balances
    for k in settled:
        if k[0] not in known:
            raise BatchImbalance(f"settled balance of unknown account {k[0]}")
    nets = {c: sum(a for _, a in deltas[c]) for c in chain_set}
    total = sum(nets.values())
    if total:
        raise BatchImbalance(f"batch {number}: deltas sum to {total}")
    legs = match_legs(nets)
    outs: dict[int, list[tuple[int, int]]] = {c: [] for c in chain_set}
    ins: dict[int, list[tuple[int, int]]] = {c: [] for c in chain_set}
    for g in legs:
        outs[g.from_chain].append((g.to_chain, g.amount))
        ins[g.to_chain].append((g.from_chain, g.amount))
    by_chain: dict[int, list[Payout]] = {c: [] for c in chain_set}
    for w in payouts:
        by_chain[w.chain_id].append(w)
    parts = []
    for c in sorted(chain_set):
        part = ChainBatch(c, tuple(deltas[c]), tuple(by_chain[c]), tuple(sorted(outs[c])), tuple(sorted(ins[c])))
        if part.net != sum(a for _, a in part.bridge_in) - sum(a for _, a in part.bridge_out):
            raise BatchImbalance(f"batch {number}: chain {c} deltas {part.net} do not match its legs")
        parts.append(part)
    bridged = sum(g.amount for g in legs)
    netting = Netting(gross + moved + rebalanced, bridged, buffered, rebalanced)
    batch = Batch(number, seq, ts_ms, state_root, journal_hash, tuple(parts), legs, netting, cumulative + netting)
    return BatchPlan(batch, targets)

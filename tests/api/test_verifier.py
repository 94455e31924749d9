"""Signature verification on threads and in worker processes: same results, batches, failures."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from aggregator import eip712
from aggregator.sequencer_service import ProcessVerifier, RequestError, Verifier, parse_signature
from tests.api.helpers import DOMAIN, Clock, Trader, make_service, seed

CLOCK = Clock()
A, B = Trader.make(1), Trader.make(2)


def _items() -> list[tuple[object, bytes]]:
    """Orders signed by their account, one signed by someone else, one whose signature recovers nothing,
    a withdrawal whose uint256 amount does not fit 64 bits (process workers hand it to threads)."""
    out: list[tuple[object, bytes]] = []
    for i in range(23):
        t = A if i % 2 else B
        m = t.order_msg(CLOCK, price=3_000_000_000 + i * 10_000, size=1_000 + i)
        out.append((m, parse_signature("0x" + eip712.sign(t.key, DOMAIN, m).hex())))
    m = A.order_msg(CLOCK)
    out.append((m, parse_signature("0x" + eip712.sign(B.key, DOMAIN, m).hex())))  # signer B, account A
    out.append((m, bytes(64) + b"\x1b"))  # r = s = 0: no public key
    w = eip712.Withdrawal(A.address, "0x" + "22" * 20, 3 << 70, 5, A.address, 1, 2**40)
    out.append((w, parse_signature("0x" + eip712.sign(A.key, DOMAIN, w).hex())))
    return out


def _plain(results: list) -> list:
    return [(r.code, r.message) if isinstance(r, RequestError) else r for r in results]


async def _threads(items: list) -> list:
    v = Verifier(DOMAIN, threads=2)
    try:
        return await v.verify_batch(items)
    finally:
        v.close()


async def test_thread_verifier_results() -> None:
    items = _items()
    got = await _threads(items)
    assert got[:23] == [(B if i % 2 == 0 else A).address for i in range(23)]
    assert got[23] == B.address  # recovered signer, not the account: the core answers unauthorized_signer
    assert isinstance(got[24], RequestError) and got[24].code == "bad_signature"
    assert got[25] == A.address
    # single requests and a batch in the same loop iteration are cut into chunks and resolved each
    v = Verifier(DOMAIN, threads=2)
    try:
        singles = [v.verify(m, s) for m, s in items[:5]]
        batch = v.verify_batch(items[5:])
        assert _plain([await f for f in singles] + await batch) == _plain(got)
    finally:
        v.close()


async def test_process_verifier_matches_threads() -> None:
    items = _items()
    want = _plain(await _threads(items))
    v = ProcessVerifier(DOMAIN, processes=2)
    await v.start()
    try:
        assert _plain(await v.verify_batch(items)) == want
        singles = [v.verify(m, s) for m, s in items]
        assert _plain([await f for f in singles]) == want
        # many requests in flight at once: more chunks than a worker takes before answering
        batches = [v.verify_batch(items) for _ in range(40)]
        assert all(_plain(r) == want for r in await asyncio.gather(*batches))
    finally:
        await v.aclose()
    assert all(w.process.poll() is not None for w in v._links)  # the workers are gone


async def test_process_verifier_survives_a_dead_worker() -> None:
    items = _items()
    want = _plain(await _threads(items))
    v = ProcessVerifier(DOMAIN, processes=2)
    await v.start()
    try:
        os.kill(v._links[0].process.pid, signal.SIGKILL)
        v._links[0].process.wait(10)
        results = await asyncio.wait_for(asyncio.gather(*(v.verify_batch(items) for _ in range(6))), 30)
        assert all(_plain(r) == want for r in results)
        os.kill(v._links[1].process.pid, signal.SIGKILL)  # none left: threads take over
        v._links[1].process.wait(10)
        assert _plain(await asyncio.wait_for(v.verify_batch(items), 30)) == want
        assert not any(w.alive for w in v._links)
    finally:
        await v.aclose()


async def test_service_with_verifier_processes(tmp_path) -> None:
    svc = make_service(tmp_path / "journal", CLOCK, verify_processes=1)
    await svc.start()
    try:
        assert isinstance(svc.verifier, ProcessVerifier)
        await seed(svc, [A, B])
        m = A.order_msg(CLOCK)
        sig = parse_signature("0x" + eip712.sign(A.key, DOMAIN, m).hex())
        out = await svc.submit("order", m, sig)
        assert out.accepted
        bad = await svc.submit_many("order", [(A.order_msg(CLOCK), bytes(64) + b"\x1b")])
        assert isinstance(bad[0], RequestError) and bad[0].code == "bad_signature"
    finally:
        await svc.stop()
    assert svc.verifier._links[0].process.poll() is not None


async def test_process_verifier_start_failure_is_reported(monkeypatch) -> None:
    monkeypatch.setattr("sys.executable", "/bin/false")  # the worker exits before it is ready
    v = ProcessVerifier(DOMAIN, processes=1)
    with pytest.raises(RuntimeError, match="exited before it was ready"):
        await v.start(timeout=10)


@pytest.mark.parametrize("processes", [False, True])
async def test_small_idle_rounds_are_verified_inline(processes) -> None:
    items = _items()
    want = _plain(await _threads(items))
    if processes:
        v: Verifier = ProcessVerifier(DOMAIN, processes=1)
        await v.start()
    else:
        v = Verifier(DOMAIN, threads=1)
    try:
        for i, (m, s) in enumerate(items):  # one at a time, nothing out: on the loop thread
            assert _plain([await v.verify(m, s)]) == want[i:i + 1]
        assert v.inline_rounds == len(items)
        big = v.verify_batch(items)  # a round above inline_max goes out ...
        await asyncio.sleep(0)
        assert v._busy > 0
        single = v.verify(*items[0])  # ... and a small round while it is out follows it
        assert _plain(await big) == want and _plain([await single]) == want[:1]
        assert v.inline_rounds == len(items) and v._busy == 0
    finally:
        if isinstance(v, ProcessVerifier):
            await v.aclose()
        else:
            v.close()


def test_accounts_learned_from_deposits_build_the_same_orders() -> None:
    from aggregator.sequencer_service import _ORDER_ACCOUNTS, KINDS, build_message, learn_account

    t = Trader.make(77)
    lower = t.address.lower()
    learn_account(lower)  # not the checksum form: not learned
    assert lower not in _ORDER_ACCOUNTS
    learn_account(t.address)
    assert _ORDER_ACCOUNTS[t.address] == t.address
    wire = KINDS["order"].wire
    for account in (t.address, lower):
        m = eip712.message_to_dict(t.order_msg(CLOCK, account=account))
        got = build_message(KINDS["order"], wire(**{a: m[s] for s, a, _ in eip712.Order.FIELDS}))
        assert got == eip712.Order(**{a: m[s] for s, a, _ in eip712.Order.FIELDS}) and got.account == t.address

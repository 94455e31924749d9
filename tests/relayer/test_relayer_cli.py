"""``aggregator relayer`` admin commands and bad input, without chains: list, retry, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from aggregator.cli import main
from aggregator.devnet import ChainDeployment, Deployment, SettlementInfo
from bridges.relay_store import DEAD, DELIVERED, PENDING, RelayStore
from tests.relayer.test_relay_store import insert


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse
        rc = int(e.code or 0)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aggregator: error: "), err
    for n in needles:
        assert n in lines[0], err


@pytest.fixture
def store(db_url) -> RelayStore:
    from aggregator.db import make_engine

    st = RelayStore(make_engine(db_url))
    st.create_tables()
    return st


def fake_deployment(path: Path, n_relayers: int = 2) -> Path:
    """A deployment file with a settlement layer (no chain behind it: only argument checks run)."""
    keys = [Account.create().key.to_0x_hex() for _ in range(n_relayers)]
    chain = ChainDeployment("hub", 61000, "http://127.0.0.1:1", True, 2, 0.1, "USDC", 6, "0x" + "11" * 20,
                            "0x" + "22" * 20, 0, mailbox="0x" + "33" * 20)
    st = SettlementInfo(61000, "0x" + "44" * 20, "0x" + "55" * 20, keys[0], [], [], 1,
                        [Account.from_key(k).address for k in keys], keys)
    Deployment([chain], "0x" + "66" * 20, "0x" + "77" * 20, st).save(path)
    return path / "deployment.json"


def test_list_and_retry(capsys, store, db_url):
    a, b, c = insert(store, 0), insert(store, 1), insert(store, 2)
    store.mark_delivered(a.id, "0x" + "ab" * 32)
    (claimed,) = store.claim_next("me", 2, lease_s=10)  # the path's head is now b
    assert claimed.id == b.id and store.mark_dead(b.id, "me", "InsufficientBalance", retries=41)
    assert store.get(b.id).status == DEAD  # type: ignore[union-attr]

    rc, out, _ = run(capsys, "relayer", "list", "--db", db_url)
    assert rc == 0 and all(r.id in out for r in (a, b, c)) and "InsufficientBalance" in out
    rc, out, _ = run(capsys, "relayer", "list", "--status", "dead", "--json", "--db", db_url)
    listed = json.loads(out)
    assert rc == 0 and [r["id"] for r in listed] == [b.id] and listed[0]["retries"] == 41

    rc, out, _ = run(capsys, "relayer", "retry", b.id, "--db", db_url)
    assert rc == 0 and "queued again" in out
    revived = store.get(b.id)
    assert revived is not None and revived.status == PENDING and revived.retries == 0

    rc, _, err = run(capsys, "relayer", "retry", a.id, "--db", db_url)
    assert_one_line_error(rc, err, "already delivered")
    assert store.get(a.id).status == DELIVERED  # type: ignore[union-attr]
    rc, _, err = run(capsys, "relayer", "retry", "0x" + "00" * 32, "--db", db_url)
    assert_one_line_error(rc, err, "no message")
    rc, _, err = run(capsys, "relayer", "list", "--status", "lost", "--db", db_url)
    assert_one_line_error(rc, err, "--status must be one of")


def test_bad_relayer_arguments_are_one_line_errors(capsys, tmp_path, db_url):
    dep = fake_deployment(tmp_path, n_relayers=2)
    for bad in ("2", "-1"):
        rc, _, err = run(capsys, "relayer", "--deployment", str(dep), "--db", db_url, "--key-index", bad)
        assert_one_line_error(rc, err, "--key-index must be in 0..1")
    rc, _, err = run(capsys, "relayer", "--deployment", str(dep), "--key-index", "x")
    assert_one_line_error(rc, err, "--key-index", "invalid int value")
    rc, _, err = run(capsys, "relayer", "--deployment", str(dep), "--port", "http")
    assert_one_line_error(rc, err, "--port")
    rc, _, err = run(capsys, "relayer", "--deployment", str(tmp_path / "missing.json"), "--db", db_url)
    assert_one_line_error(rc, err, "no devnet deployment")
    (tmp_path / "broken.json").write_text("{not json")
    rc, _, err = run(capsys, "relayer", "--deployment", str(tmp_path / "broken.json"), "--db", db_url)
    assert_one_line_error(rc, err, "not a valid deployment")

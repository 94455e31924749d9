"""The ``aggregator`` CLI: devnet up/status/down, one-line errors, and the demo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridges.anvil import free_port

pytestmark = pytest.mark.chain
ROOT = Path(__file__).resolve().parent.parent


def write_chains(path: Path, ports: list[int]) -> Path:
    body = "[ledger]\ndecimals = 6\n"
    for i, (port, dec) in enumerate(zip(ports, (6, 6, 18))):
        body += (f"\n[[chains]]\nname = 'c{i}'\nchain_id = {41000 + i}\nrpc_url = 'http://127.0.0.1:{port}'\n"
                 f"hub = {'true' if i == 0 else 'false'}\nblock_time = 0.25\nconfirmations = 2\n"
                 f"[chains.token]\nsymbol = 'USDC'\ndecimals = {dec}\n")
    path.write_text(body)
    return path


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregator.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_one_line_error(p: subprocess.CompletedProcess, needle: str) -> None:
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("aggregator: error:") and needle in lines[0], lines[0]
    assert "Traceback" not in p.stderr


def test_devnet_up_status_down_round_trip(tmp_path):
    chains = write_chains(tmp_path / "chains.toml", [free_port() for _ in range(3)])
    state = str(tmp_path / "state")
    up = run("--chains", str(chains), "devnet", "up", "--state-dir", state)
    try:
        assert up.returncode == 0, up.stderr
        st = run("--chains", str(chains), "devnet", "status", "--json", "--state-dir", state)
        assert st.returncode == 0, st.stderr
        rows = json.loads(st.stdout)["chains"]
        assert [r["chain_id"] for r in rows] == [41000, 41001, 41002]
        assert all(r["up"] and r["head_block"] >= 3 and r["vault_holdings"] == 0 for r in rows)
        # Deterministic deployment: the same addresses on every chain.
        assert len({r["vault"] for r in rows}) == 1 and len({r["token"] for r in rows}) == 1
        again = run("--chains", str(chains), "devnet", "up", "--state-dir", state)
        assert_one_line_error(again, "already running")
    finally:
        down = run("--chains", str(chains), "devnet", "down", "--state-dir", state)
    assert down.returncode == 0 and "c0" in down.stdout
    gone = run("--chains", str(chains), "devnet", "status", "--state-dir", state)
    assert_one_line_error(gone, "no devnet deployment")


def test_devnet_up_on_a_busy_port_fails_in_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        chains = write_chains(tmp_path / "chains.toml", [free_port(), busy, free_port()])
        p = run("--chains", str(chains), "devnet", "up", "--state-dir", str(tmp_path / "s"))
    assert_one_line_error(p, f"port {busy}")


def test_devnet_up_without_anvil_fails_in_one_line(tmp_path):
    chains = write_chains(tmp_path / "chains.toml", [free_port() for _ in range(3)])
    p = run("--chains", str(chains), "devnet", "up", "--state-dir", str(tmp_path / "s"),
            env={"OMNICLEAR_ANVIL_BIN": str(tmp_path / "no-anvil")})
    assert_one_line_error(p, "anvil not found")


def test_status_of_a_chain_that_does_not_answer_exits_nonzero(tmp_path):
    chains = write_chains(tmp_path / "chains.toml", [free_port() for _ in range(3)])
    state = tmp_path / "state"
    assert run("--chains", str(chains), "devnet", "up", "--state-dir", str(state)).returncode == 0
    try:
        dep = json.loads((state / "deployment.json").read_text())
        os.killpg(dep["chains"][1]["pid"], 9)
        st = run("--chains", str(chains), "devnet", "status", "--json", "--state-dir", str(state))
        assert st.returncode == 1
        rows = json.loads(st.stdout)["chains"]
        assert [r["up"] for r in rows] == [True, False, True]
    finally:
        run("--chains", str(chains), "devnet", "down", "--state-dir", str(state))


def test_bad_chains_file_fails_in_one_line(tmp_path):
    bad = tmp_path / "chains.toml"
    bad.write_text("[[chains]]\nname = 'x'\n")
    assert_one_line_error(run("--chains", str(bad), "devnet", "up", "--state-dir", str(tmp_path)), "chains.toml")


def test_demo_reconciles_every_chain_and_writes_report(tmp_path):
    report = tmp_path / "demo.json"
    p = run("demo", "--traders", "4", "--report", str(report), timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    body = json.loads(report.read_text())
    assert body["ok"] is True
    assert len(body["chains"]) >= 3
    for c in body["chains"]:
        assert c["ok"] and c["vault_holdings"] == c["vault_settled"] == c["ledger_settled"] > 0
        assert c["deposits_onchain"] == c["deposits_ledger"] > 0
    assert "RECONCILED" in p.stdout and "MISMATCH" not in p.stdout
    assert body["trading"]["maker_switch_deadline_ms"] > 0  # the maker re-armed its dead man's switch each round
    # the venue's own 24-hour ticker figures count the same trades and volume as the fills do
    assert body["trading"]["ticker_volume_matches_fills"] is True and body["trading"]["tickers"]
    feeds = {f["feed"]: f for f in body["feeds"]}
    assert {"ETH-USD", "BTC-USD", "SPY-USD", "XAU-USD", "EUR-USD", "TBILL-NAV"} <= set(feeds)
    assert feeds["ETH-USD"]["status"] == "ok" and float(feeds["ETH-USD"]["price"]) > 0


def test_serve_with_negative_verify_processes_fails_in_one_line(tmp_path):
    assert_one_line_error(run("serve", "--verify-processes", "-1", "--state-dir", str(tmp_path)), "--verify-processes")


def test_serve_with_bad_checkpoint_or_rebalance_option_fails_in_one_line(tmp_path):
    assert_one_line_error(run("serve", "--checkpoint-every", "-5", "--state-dir", str(tmp_path)), "--checkpoint-every")
    assert_one_line_error(run("serve", "--liquidity-rebalance-bps", "10001", "--state-dir", str(tmp_path)),
                          "--liquidity-rebalance-bps")

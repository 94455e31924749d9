"""GET /v1/prices routes and the `oracle` CLI sub-command."""

from __future__ import annotations

import argparse
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from web3 import Web3

from bridges.contracts import contract
from oracles.api import add_price_routes
from oracles.cli import add_oracle_parser, run_oracle
from oracles.report import SignedPriceReport, verify_report
from tests.oracles.test_service import TUESDAY, make_service, run_for


@pytest.fixture
async def client():
    svc, clock, _, _ = make_service(TUESDAY)
    await run_for(svc, clock, 3)
    app = web.Application()
    add_price_routes(app, svc)
    async with TestClient(TestServer(app)) as c:
        c.svc = svc  # type: ignore[attr-defined]
        yield c


async def test_list_prices_returns_every_feed(client) -> None:
    resp = await client.get("/v1/prices")
    assert resp.status == 200
    body = await resp.json()
    assert {p["feed"] for p in body["prices"]} == set(client.svc.feeds)
    eth = next(p for p in body["prices"] if p["feed"] == "ETH-USD")
    assert eth["status"] == "ok" and eth["decimals"] == 8 and isinstance(eth["priceE8"], str)
    assert eth["price"].replace(".", "").lstrip("0") == eth["priceE8"].lstrip("0")


async def test_one_price_carries_verifiable_report(client) -> None:
    resp = await client.get("/v1/prices/BTC-USD")
    body = await resp.json()
    assert body["feed"] == "BTC-USD" and body["status"] == "ok" and body["timestamp"]
    signed = SignedPriceReport.from_dict(body["report"])
    assert verify_report(signed, client.svc.signer.addresses, 3) == tuple(body["report"]["signers"])
    assert len(body["report"]["signatures"]) == 3


async def test_unknown_feed_404_json_error(client) -> None:
    resp = await client.get("/v1/prices/DOGE-USD")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"]["code"] == "unknown_feed" and "DOGE-USD" in body["error"]["message"]


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    add_oracle_parser(sub)
    return p.parse_args(["oracle", *argv])


def test_parser_registers_oracle_subcommand() -> None:
    args = parse(["--sources", "sim", "--port", "0"])
    assert args.func.__name__ == "cmd_oracle" and args.sources == "sim"


@pytest.mark.chain
async def test_cli_deploys_runs_and_pushes_on_anvil(anvil, tmp_path, capsys) -> None:
    out = tmp_path / "oracle-deployment.json"
    args = parse(["--chain", f"hub={anvil.rpc_url}", "--deploy", "--oracle-deployment", str(out),
                  "--db", f"sqlite:///{tmp_path / 'o.db'}", "--port", "0", "--duration", "3",
                  "--snapshot-every", "1.5", "--interval", "0.3"])
    assert await run_oracle(args) == 0
    printed = capsys.readouterr().out
    assert "ETH-USD" in printed and "deployed on hub" in printed
    dep = json.loads(out.read_text())["chains"][0]
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    feed = contract(w3, "OracleFeed", dep["contracts"]["feed:BTC-USD"])
    assert feed.functions.latestRound().call() >= 1

"""GET /openapi.json describes every route the main service registers, and nothing else."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from aggregator.api.app import make_app
from aggregator.api.openapi import described_paths, registered_paths
from aggregator.api.trading import TradingOptions, add_trading_routes
from aggregator.api.withdrawals import add_withdrawal_routes
from aggregator.config import local_settings
from aggregator.db import init_db, make_engine
from aggregator.ledger import Ledger
from oracles.api import add_price_routes
from oracles.config import load_feeds
from oracles.report import Eip712Domain, ReportSigner
from oracles.service import OracleService
from tests.api.helpers import Clock, make_service


async def test_openapi_describes_every_registered_route(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    init_db(engine)
    app = make_app(Ledger(engine, local_settings(("solo", 31337, 8545, 6))))
    add_price_routes(app, OracleService(load_feeds(), [], ReportSigner(["0x" + "11" * 32]), Eip712Domain(31337)))
    svc = make_service(tmp_path / "j", Clock())
    add_trading_routes(app, svc, TradingOptions(rate=None, ip_rate=None))
    add_withdrawal_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        r = await client.get("/openapi.json")
        assert r.status == 200
        doc = await r.json()
        registered = registered_paths(app)
        described = described_paths(doc)
        assert registered - described == set(), "registered but not described"
        assert described - registered == set(), "described but not registered"
        assert ("GET", "/v1/chains") in described and ("POST", "/v1/orders/batch") in described
        errors = doc["paths"]["/v1/accounts/{address}"]["get"]["responses"]
        assert "account_not_found" in errors["404"]["description"]
    finally:
        await client.close()
        engine.dispose()

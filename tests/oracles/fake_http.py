"""Local aiohttp servers that answer in the real APIs' formats (Pyth Hermes, Coinbase)."""

from __future__ import annotations

import json
from decimal import Decimal

from aiohttp import web


class FakeUpstream:
    """A local server on a free port; ``raw`` (bytes) or ``status`` override normal answers."""

    def __init__(self) -> None:
        self.raw: bytes | None = None
        self.status = 200
        self.requests: list[web.Request] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> FakeUpstream:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _override(self) -> web.Response | None:
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        if self.raw is not None:
            return web.Response(body=self.raw, content_type="application/json")
        return None


class FakeHermes(FakeUpstream):
    """``GET /v2/updates/price/latest?ids[]=..&parsed=true`` like Pyth Hermes."""

    def __init__(self) -> None:
        super().__init__()
        self.prices: dict[str, tuple[int, int, int, int]] = {}  # id -> (price, conf, expo, publish)

    def set(self, pid: str, price: Decimal, publish_s: int, conf: Decimal = Decimal("0.5"), expo: int = -8) -> None:
        scale = Decimal(1).scaleb(-expo)
        self.prices[pid.lower().removeprefix("0x")] = (int(price * scale), int(conf * scale), expo, publish_s)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/updates/price/latest", self.latest)

    async def latest(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        over = self._override()
        if over is not None:
            return over
        ids = [i.lower().removeprefix("0x") for i in request.query.getall("ids[]", [])]
        missing = [i for i in ids if i not in self.prices]
        if missing:  # Hermes answers 404 for unknown ids
            return web.Response(status=404, text=f"Price ids not found: {missing}")
        parsed = []
        for i in ids:
            price, conf, expo, publish = self.prices[i]
            p = {"price": str(price), "conf": str(conf), "expo": expo, "publish_time": publish}
            parsed.append({"id": i, "price": p, "ema_price": dict(p),
                           "metadata": {"slot": 1, "proof_available_time": publish + 1,
                                        "prev_publish_time": publish - 1}})
        body = {"binary": {"encoding": "hex", "data": ["504e4155"]}, "parsed": parsed}
        return web.json_response(body)


class FakeCoinbase(FakeUpstream):
    """``GET /products/{product_id}/ticker`` like Coinbase Exchange."""

    def __init__(self) -> None:
        super().__init__()
        self.tickers: dict[str, dict[str, object]] = {}

    def set(self, product: str, price: Decimal, time_iso: str, spread: Decimal = Decimal("0.02")) -> None:
        self.tickers[product] = {
            "ask": str(price + spread / 2), "bid": str(price - spread / 2), "volume": "1234.5",
            "trade_id": 86326522, "price": str(price), "size": "0.0123", "time": time_iso,
            "rfq_volume": "0.0",
        }

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/products/{product}/ticker", self.ticker)

    async def ticker(self, request: web.Request) -> web.Response:
        self.requests.append(request)
        over = self._override()
        if over is not None:
            return over
        t = self.tickers.get(request.match_info["product"])
        if t is None:
            return web.json_response({"message": "NotFound"}, status=404)
        return web.Response(text=json.dumps(t), content_type="application/json")

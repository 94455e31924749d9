"""Price sources: one small adapter per source behind ``PriceSource``.

- ``pyth.PythHermesSource``: Pyth Hermes HTTP (``/v2/updates/price/latest``, parsed JSON)
- ``coinbase.CoinbaseTickerSource``: Coinbase Exchange ``/products/{id}/ticker``
- ``chainlink.ChainlinkSource``: AggregatorV3 ``latestRoundData`` over web3
- ``simulator.SimulatedVenue``: the devnet market simulator (never a real market)
"""

from oracles.sources.base import MalformedResponse, PriceSource, SourceError, SourceUnavailable

__all__ = ["MalformedResponse", "PriceSource", "SourceError", "SourceUnavailable"]

"""Async Python client of the Omniclear trading API, with ccxt's unified verbs and result shapes.

    async with OmniclearClient("https://api.omniclear.example", "0x<private key>") as ex:
        await ex.load_markets()
        order = await ex.create_order("ETH/USDC:USDC", "limit", "buy", "0.5", "3000.25")

Modules: ``client`` (REST verbs, signing, the HTTP boundary), ``stream`` (WebSocket:
books by seq with gap resync, trades, private orders and fills), ``units`` (exact unit
conversion, markets, nonces), ``parse`` (ccxt result structures), ``errors`` (the
error tree and the code -> class table).

Units: human prices and amounts (``str``, ``Decimal``, ``int``; never ``float``) become
integer ticks and lots exactly or raise ``InvalidOrder`` before anything is sent; every
number in a result is an exact ``Decimal``. Symbols are ccxt's (``ETH/USDC:USDC``,
``ETH/USDC:USDC-261227-3000-C``); the venue's names (``ETH-PERP``) are accepted too.
Nonces: ``units.NonceGenerator`` (microseconds << 16 | random salt, strictly increasing),
justified there against the venue's rule. Errors: ``errors`` (rejected vs transient).
"""

from aggregator.client.client import MAX_BATCH, OmniclearClient, local_account, sign_digest
from aggregator.client.errors import *  # noqa: F403
from aggregator.client.errors import __all__ as _errors_all
from aggregator.client.units import Market, NonceGenerator, from_units, to_units

__all__ = ["OmniclearClient", "MAX_BATCH", "Market", "NonceGenerator", "from_units", "to_units",
           "local_account", "sign_digest", *_errors_all]

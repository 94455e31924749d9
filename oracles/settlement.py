"""Settlement prices rebuilt from the database, to check (or replace) the live ones.

``rebuild_settlement_report`` reads the stored aggregate history of a feed and signs the
TWAP report for an expiry. Because the live service computes its TWAP from exactly the
points it stored, and signatures are deterministic, the rebuilt report equals the live
one byte for byte.
"""

from __future__ import annotations

from oracles.config import FeedConfig
from oracles.report import Eip712Domain, ReportSigner, SignedPriceReport
from oracles.store import OracleStore
from oracles.twap import Twap, settlement_report, twap


def rebuild_twap(store: OracleStore, cfg: FeedConfig, expiry_ms: int, window_s: int | None = None) -> Twap:
    """Return the TWAP of ``cfg``'s feed over the window before ``expiry_ms``, from the DB."""
    w = (window_s or cfg.twap_window_s) * 1000
    points = store.price_points(cfg.name, expiry_ms - w, expiry_ms)
    return twap(cfg.name, points, expiry_ms, w, max_hold_ms=cfg.heartbeat_s * 1000)


def rebuild_settlement_report(
    store: OracleStore, cfg: FeedConfig, signer: ReportSigner, domain: Eip712Domain,
    expiry_ms: int, window_s: int | None = None,
) -> SignedPriceReport:
    """Return the signed settlement report rebuilt from stored observations' aggregates."""
    return signer.sign(settlement_report(rebuild_twap(store, cfg, expiry_ms, window_s)), domain)

"""Shared grids for the pricing tests."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

FORWARDS = (50.0, 100.0, 2500.0)
MONEYNESS = (0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 2.0)  # K / F
EXPIRIES = (1.0 / 365.0, 7.0 / 365.0, 0.25, 1.0, 3.0)  # years
VOLS = (0.05, 0.3, 0.8, 1.5)
RATES = (0.0, 0.05)


@pytest.fixture(scope="session")
def grid() -> dict[str, np.ndarray]:
    """Return a flat grid of (F, K, T, sigma, r, is_call), 1,680 options."""
    rows = list(itertools.product(FORWARDS, MONEYNESS, EXPIRIES, VOLS, RATES, (True, False)))
    F, m, T, sigma, r, is_call = (np.array(c) for c in zip(*rows))
    return {"F": F, "K": F * m, "T": T, "sigma": sigma, "r": r, "is_call": is_call.astype(bool)}

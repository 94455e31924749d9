"""Tests of the pure pricing core: Black-76, implied vol, SVI, ledger units."""

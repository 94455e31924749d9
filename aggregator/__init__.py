"""Omniclear sequencer: unified order API, matching, risk, ledger and settlement batching."""

__version__ = "0.1.0"

"""Omniclear cross-chain layer: chain clients, event watchers, relayer, reconciliation."""

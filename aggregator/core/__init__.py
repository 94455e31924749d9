"""The pure core of the sequencer: instruments, matching, nonces.

Everything under this package is deterministic Python: no I/O, no clock reads, no
randomness, no asyncio, and no imports of web3, aiohttp or sqlmodel. Time arrives as an
argument (integer milliseconds since the Unix epoch, UTC, from the sequencer's clock);
prices and sizes are integers. The same sequenced inputs always give the same outputs,
which is what journal replay and batch verification rely on.
"""

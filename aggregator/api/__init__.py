"""The unified HTTP/WebSocket API (aiohttp)."""

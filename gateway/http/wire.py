"""What a client connection may send, and how long it may take: one place for both servers.

The hot lane (``gateway.http.hotconn``) and aiohttp's handler
(``gateway.http.front._Handler``) read these at the moment they use them, so
a test can shorten a deadline for both.
"""

from __future__ import annotations

from typing import Final

__all__ = ("HEAD_TIMEOUT", "KEEPALIVE_TIMEOUT", "MAX_HEADER_FIELD")

#: Seconds a new connection has to send a complete request head (slowloris).
HEAD_TIMEOUT: float = 15.0
#: Seconds an idle kept-alive connection stays open (aiohttp's default).
KEEPALIVE_TIMEOUT: Final = 3630.0
#: The longest header line the parser reads (aiohttp's default); the request line's
#: limit comes from the config and is always longer, so the two errors are told apart.
MAX_HEADER_FIELD: Final = 8190

"""The transport seam: one HTTP exchange (one hop), its answer and its error.

Redirects, the SSRF pre-check, TLS and the user agent are shared code around
the clients (``redirects``, ``ssrf``, ``tls``), so a new client implements
only :class:`Transport` and the retry logic never sees a client's own types.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

import msgspec

__all__ = ("USER_AGENT", "Answer", "Transport", "TransportError")

#: Sent with every request, by every client.
USER_AGENT: Final = "postback-gateway/0.1"


class Answer(msgspec.Struct, kw_only=True, gc=False):  # never in a cycle: untracked
    """What a destination answered (after redirects, when they were followed)."""

    status: int
    #: Response headers; ``.get()`` with a lower-case name must work (a dict with
    #: lower-case keys, or aiohttp's case-insensitive view, not copied per answer).
    headers: Mapping[str, str]
    body_prefix: bytes
    elapsed: float  # seconds, all hops
    final_url: str
    redirects: int = 0


class TransportError(Exception):
    """No HTTP answer: connect error, timeout, reset, or a refused destination.

    ``final`` marks errors that retrying cannot fix (a blocked address, a
    malformed URL); the others are retried.  ``timed_out`` tells the redirect
    loop that a hop ran out of time, so it can name the whole budget.
    """

    def __init__(
        self,
        reason: str,
        *,
        final: bool = False,
        elapsed: float = 0.0,
        final_url: str = "",
        timed_out: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.elapsed = elapsed
        self.final_url = final_url
        self.timed_out = timed_out


class Transport(Protocol):
    """An HTTP client: one request, one answer, no redirects followed."""

    async def exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Answer:
        """One hop within ``timeout`` seconds; raise TransportError when no answer.

        The URL's scheme and literal address are checked first
        (``redirects.check_hop``); a redirect status comes back as the answer.
        """
        ...

    async def close(self) -> None: ...

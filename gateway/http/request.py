"""What the intake handlers read from a request, whichever server parsed it.

aiohttp's ``web.BaseRequest`` and the hot lane's :class:`HotRequest` both
fit :class:`IntakeRequest`; the handlers of ``GET /postback`` and
``GET /click/{id}`` (``gateway.http.intake_routes``) and the checks around
them (``gateway.http.middleware``) read nothing else.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from multidict import CIMultiDict, MultiDict, MultiMapping
from yarl import URL

__all__ = ("HotRequest", "IntakeRequest", "plain_query_pairs")


class IntakeRequest(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def remote(self) -> str | None: ...
    @property
    def headers(self) -> MultiMapping[str]: ...
    @property
    def query(self) -> MultiMapping[str]: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...


class HotRequest:
    """A plain GET the hot lane read (``gateway.http.head``): no body, so no
    ``content_length``; the query as yarl reads it, built only when asked for."""

    __slots__ = (
        "_pairs",
        "_query",
        "_query_string",
        "headers",
        "path",
        "raw_path",
        "remote",
        "transport",
    )

    method = "GET"
    content_length = None

    def __init__(
        self,
        raw_path: str,
        path: str,
        query_string: str,
        pairs: list[tuple[str, str]] | None,
        headers: list[tuple[str, str]],
        remote: str | None,
        transport: asyncio.Transport | None,
    ) -> None:
        self.raw_path = raw_path
        #: percent-encoded, as the hot routes match it (never decoded: they need no decoding)
        self.path = path
        self.headers: CIMultiDict[str] = CIMultiDict(headers)
        self.remote = remote
        self.transport = transport
        self._query_string = query_string
        #: the query's pairs when nothing in it needed decoding (:func:`plain_query_pairs`)
        self._pairs = pairs
        self._query: MultiMapping[str] | None = None

    @property
    def query(self) -> MultiMapping[str]:
        if self._query is None:
            if self._pairs is not None:
                self._query = MultiDict(self._pairs)
            else:
                self._query = URL.build(query_string=self._query_string, encoded=True).query
        return self._query


def plain_query_pairs(query: str) -> list[tuple[str, str]] | None:
    """A query's (name, value) pairs when nothing in it is percent-encoded,
    read as yarl reads it ('+' is a space, blank values kept, empty pairs
    skipped); None when it needs decoding (or has a fragment): then the
    request's own ``query`` is used.  Saves building a multidict per postback.
    """
    if "%" in query or "#" in query:
        return None
    pairs = []
    for pair in query.replace("+", " ").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((name, value))
    return pairs

"""Reading a plain request head, and knowing when a head is not plain.

The hot lane (``gateway.http.hotconn``) answers ``GET /postback`` and
``GET /click/{id}`` itself, so it reads their heads itself.  It reads only
the heads nobody could read two ways: ASCII, ``CRLF`` line ends, a
``GET`` of an origin-form target in HTTP/1.0 or 1.1, header names that are
tokens followed straight by a colon, no folded lines, no body (neither
``Content-Length`` nor ``Transfer-Encoding``), no ``Expect`` or ``Upgrade``,
at most one ``Connection`` header saying ``close`` or ``keep-alive``, a
``Host`` in HTTP/1.1, none of aiohttp's once-only headers twice, and no
two header names in a row longer together than a header line may be.
Everything else, hostile or merely unusual, is *not plain* and goes to
aiohttp's parser, which answers it as it always has.  So this parser can be
strict without ever being the one that refuses a request
(``tests/test_hotconn.py`` lists heads it must leave to aiohttp;
``tests/test_head_parity.py`` checks each plain head against aiohttp's parser).
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ("MAX_HEADERS", "PlainHead", "hot_route", "read_plain_head")

#: More header lines than this and the head is left to aiohttp (its limit is 128).
MAX_HEADERS: Final = 64

#: An origin-form target of URL characters only: no fragment, no spaces, no
#: controls, nothing a parser might read as something else.
_TARGET = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*")
#: Header lines, each a token, a colon straight after it, visible ASCII, space or tab.
_FIELDS = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n)*")
#: Headers that mean a body, a protocol switch or a 100-continue: aiohttp's job.  Also
#: Proxy-Connection, which llhttp reads as Connection, and the old WebSocket key aiohttp refuses.
_NOT_PLAIN: Final = frozenset(
    (
        "content-length",
        "transfer-encoding",
        "expect",
        "upgrade",
        "proxy-connection",
        "sec-websocket-key1",
    )
)
#: aiohttp's SINGLETON_HEADERS (those above aside): it refuses a request with one twice.
_ONCE: Final = frozenset(
    (
        "host",
        "content-location",
        "content-range",
        "content-type",
        "etag",
        "max-forwards",
        "server",
        "user-agent",
    )
)
_VERSIONS: Final = {"HTTP/1.1": 1, "HTTP/1.0": 0}
_CLICK: Final = "/click/"
#: A click path with any of these is the router's: "%" needs decoding, and
#: "/", "{", "}" are outside what ``{campaign_id}`` matches there.
_PLAIN_SEGMENT: Final = frozenset("%/{}")


class PlainHead(NamedTuple):
    """A plain ``GET``'s head, as aiohttp would read it."""

    #: still percent-encoded: "/path?query"
    target: str
    #: HTTP/1.<minor>
    minor: int
    headers: list[tuple[str, str]]
    keep_alive: bool


def read_plain_head(head: bytes, line_limit: int, field_limit: int) -> PlainHead | None:
    """``head`` (up to, not including, the blank line) when it is plain, else None.

    ``line_limit`` and ``field_limit`` are the request line's and a header
    line's limits: a head near either is left to aiohttp, which answers it.
    """
    if not head.isascii():
        return None
    lines = head.count(b"\r\n")
    if head.count(b"\r") != lines or head.count(b"\n") != lines:
        return None  # a bare CR or LF
    if lines >= MAX_HEADERS:
        return None
    text = head.decode("ascii")
    first, _, fields = text.partition("\r\n")
    if len(first) >= line_limit:
        return None
    parts = first.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or _TARGET.fullmatch(parts[1]) is None:
        return None
    minor = _VERSIONS.get(parts[2])
    if minor is None:
        return None
    headers: list[tuple[str, str]] = []
    connection = None
    once: set[str] = set()
    last = 0  # the previous header name's length
    if fields:
        fields += "\r\n"
        if _FIELDS.fullmatch(fields) is None:
            return None
        for line in fields[:-2].split("\r\n"):
            if len(line) >= field_limit:
                return None
            name, _, value = line.partition(":")
            if len(name) + last >= field_limit:
                return None  # aiohttp counts a name with the one before it: its 431
            last = len(name)
            lowered = name.lower()
            if lowered in _NOT_PLAIN:
                return None
            if lowered in _ONCE:
                if lowered in once:
                    return None  # aiohttp's 400: a duplicate
                once.add(lowered)
            value = value.strip(" \t")
            if lowered == "connection":
                if connection is not None:
                    return None
                connection = value.lower()
                if connection != "close" and connection != "keep-alive":
                    return None
            headers.append((name, value))
    if minor and "host" not in once:
        return None  # aiohttp's 400: HTTP/1.1 needs a Host
    if minor:
        keep_alive = connection != "close"
    else:
        keep_alive = connection == "keep-alive"
    return PlainHead(parts[1], minor, headers, keep_alive)


def hot_route(method: str, target: str) -> tuple[str, str | None, int] | None:
    """``(path, campaign_id, query_start)`` when ``method target`` is a hot route
    (``campaign_id`` None for /postback), else None: the router's.

    ``query_start`` is the index of "?" in ``target``, or -1.  POST /postback is
    hot for ``front`` (aiohttp parsed it) but never for the hot lane, which
    reads only GETs.
    """
    end = target.find("?")
    path = target if end < 0 else target[:end]
    if path == "/postback":
        if method != "GET" and method != "POST":
            return None  # the router's 405, with Allow
        return path, None, end
    if method == "GET" and path.startswith(_CLICK):
        campaign_id = path[len(_CLICK) :]
        if campaign_id and _PLAIN_SEGMENT.isdisjoint(campaign_id):
            return path, campaign_id, end
    return None

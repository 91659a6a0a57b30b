"""Redirects, followed once for every client, and the check each hop passes.

A client does one hop (:meth:`Transport.exchange`); this loop follows up to
``MAX_REDIRECTS`` redirects within the attempt's one timeout.  Each hop's URL
is pre-checked (scheme, and a host that is a blocked address literal, in any
spelling) before anything is dialled; the clients still check every address
they dial, which covers DNS answers and ``resolve`` overrides.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from yarl import URL

from gateway.constants import MAX_REDIRECTS
from gateway.dispatch.transport.base import Answer, Transport, TransportError
from gateway.dispatch.transport.ssrf import AddressPolicy
from gateway.dispatch.transport.urls import InvalidURL, URLParts, same_host, split_url

__all__ = (
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "check_fixed_host",
    "check_hop",
    "follow",
    "send",
)

#: (scheme and authority, fixed host) pairs found to agree: the check runs per
#: attempt, and a postback's origin is one of a few per network.
_FIXED_OK: dict[tuple[str, str], None] = {}

#: The statuses whose ``Location`` is followed.
REDIRECT_STATUSES: Final = frozenset((301, 302, 303, 307, 308))


def check_hop(url: str, policy: AddressPolicy) -> URLParts:
    """A hop's URL read the one way (``urls.split_url``), refused before dialling
    when it is not http(s), reads ambiguously, or names a blocked address."""
    try:
        parts = split_url(url)
    except InvalidURL as exc:
        text = str(exc)
        if not text.startswith("unsupported URL"):
            text = f"invalid URL: {text}"
        raise TransportError(text, final=True, final_url=url) from None
    why = policy.check_host(parts.host)
    if why is not None:
        raise TransportError(
            f"blocked destination: {parts.host} ({why})", final=True, final_url=url
        )
    return parts


def check_fixed_host(url: str, host: str) -> None:
    """Refuse a first hop whose host is not the one its template fixed (``host``).

    Templates cannot put a value in the host (the compiler refuses it), so this
    only fires on a URL stored before that check, or a reader that went wrong:
    either way the request must not leave.
    """
    sep = url.find("://")
    end = len(url)
    for stop in "/?#":  # where split_url's authority ends: the host depends on nothing after
        found = url.find(stop, sep + 3, end)
        if found >= 0:
            end = found
    key = (url[:end], host)
    if key in _FIXED_OK:
        return
    try:
        same = same_host(url, host)
    except InvalidURL as exc:
        raise TransportError(f"invalid URL: {exc}", final=True, final_url=url) from None
    if not same:
        raise TransportError(
            f"blocked destination: the URL's host is not {host!r}, the host its template fixed",
            final=True,
            final_url=url,
        )
    if len(_FIXED_OK) >= 4096:
        _FIXED_OK.clear()
    _FIXED_OK[key] = None


async def send(
    transport: Transport,
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
) -> Answer:
    """One request with its redirects followed; raise TransportError when no answer."""
    answer = await transport.exchange(method, url, body, headers, timeout)
    if answer.status in REDIRECT_STATUSES:
        return await follow(transport, answer, method, url, body, headers, timeout)
    return answer


async def follow(
    transport: Transport,
    first: Answer,
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
) -> Answer:
    """The redirects ``first`` (the answer to ``url``) starts, followed.

    Callers await this only when ``first.status`` is in ``REDIRECT_STATUSES``,
    so an answer without a redirect costs no extra frame.  303 (and 301/302
    after a POST) turn the request into a GET without a body.
    """
    started = time.perf_counter() - first.elapsed
    answer = first
    current = url
    hops = 0
    while True:
        status = answer.status
        location = answer.headers.get("location") if status in REDIRECT_STATUSES else None
        if not location or hops >= MAX_REDIRECTS:
            answer.elapsed = time.perf_counter() - started
            answer.final_url = current
            answer.redirects = hops
            return answer
        try:
            if not location.isprintable() or "\\" in location or " " in location:
                raise ValueError("redirect Location with a backslash, space or control character")
            current = str(URL(current, encoded=True).join(URL(location)))
        except (ValueError, TypeError, UnicodeError) as exc:
            raise TransportError(
                f"invalid URL: {exc}",
                final=True,
                elapsed=time.perf_counter() - started,
                final_url=current,
            ) from exc
        if status == 303 or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
        hops += 1
        left = started + timeout - time.perf_counter()
        try:
            if left <= 0:
                raise TransportError("out of time", timed_out=True)
            answer = await transport.exchange(method, current, body, headers, left)
        except TransportError as exc:
            if exc.timed_out:  # the attempt's budget is what ran out, not this hop's
                raise TransportError(
                    f"timeout after {timeout:g} s",
                    elapsed=timeout,
                    final_url=current,
                    timed_out=True,
                ) from exc
            exc.elapsed = time.perf_counter() - started
            exc.final_url = current
            raise

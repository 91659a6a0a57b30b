"""User-agent tokens: OS, browser, device type, brand and model, bots flagged.

Parsing uses ua-parser with its ``[regex]`` backend (the uap-core rules run
by a Rust regex set), about 30 µs per string; the tokens are cached by the
exact user-agent string, since a campaign's visitors share a few thousand
strings between them, so a repeat costs one dictionary lookup.

ua-parser names the browser, OS and device but has no device *type*; that is
decided here from its answer and a few markers in the string, in one place
(:func:`device_type`).  ``{device_name}`` is the device as ua-parser names it
(``Samsung SM-S918B``); marketing names ("Galaxy S23 Ultra") need a device
database the gateway does not ship.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from ua_parser import OS, Device, Domain, UserAgent, load_builtins
from ua_parser.regex import Resolver

from gateway.enrich.base import EMPTY, DataFile, Visit

__all__ = ("UA_CACHE_SIZE", "UserAgentEnricher", "device_type")

#: Distinct user-agent strings kept parsed (about 1 KiB each).
UA_CACHE_SIZE: Final = 20_000

_OTHER = "Other"
_TV_MARKERS = ("smart-tv", "smarttv", "googletv", "appletv", "hbbtv", "crkey", "roku", "bravia")
_CONSOLE_MARKERS = ("playstation", "xbox", "nintendo")
_BOT_MARKERS = ("bot", "crawl", "spider", "slurp", "headless", "lighthouse", "externalhit")
#: user agents of tools, not browsers (ua-parser's family names)
_TOOLS = frozenset({"curl", "Wget", "Python Requests", "Python-urllib", "okhttp", "Go-http-client"})
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD", "Debian"}
)
_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "HarmonyOS"})


def _version(part: UserAgent | OS | None) -> str:
    if part is None or part.major is None:
        return ""
    pieces = [part.major]
    for piece in (part.minor, part.patch):
        if piece is None:
            break
        pieces.append(piece)
    return ".".join(pieces)


def device_type(ua: str, browser: str, os: str, device: Device | None) -> str:
    """``bot``, ``tv``, ``console``, ``tablet``, ``mobile``, ``desktop`` or "" (unknown)."""
    low = ua.lower()
    family = device.family if device is not None else _OTHER
    if family == "Spider" or browser in _TOOLS or any(m in low for m in _BOT_MARKERS):
        return "bot"
    if any(m in low for m in _TV_MARKERS) or " tv " in low or low.endswith(" tv"):
        return "tv"
    if any(m in low for m in _CONSOLE_MARKERS):
        return "console"
    brand = device.brand or "" if device is not None else ""
    if (
        family in ("iPad", "Kindle")
        or "tablet" in low
        or brand.endswith("Tablet")
        or (os == "Android" and "mobile" not in low)
    ):
        return "tablet"
    if family == "iPhone" or "mobi" in low or os in _MOBILE_OS:
        return "mobile"
    if os in _DESKTOP_OS:
        return "desktop"
    return ""


def _parse(resolver: Resolver, ua: str) -> Mapping[str, str]:
    try:
        found = resolver(ua, Domain.ALL)
    except UnicodeEncodeError:  # a lone surrogate: not a user agent anyone sent on purpose
        return EMPTY
    agent, system, device = found.user_agent, found.os, found.device
    browser = agent.family if agent is not None and agent.family != _OTHER else ""
    os = system.family if system is not None and system.family != _OTHER else ""
    out: dict[str, str] = {}
    kind = device_type(ua, browser, os, device)
    if kind:
        out["device"] = kind
    if kind == "bot":
        out["bot"] = "1"
    if browser:
        out["browser"] = browser
        if version := _version(agent):
            out["browserversion"] = version
    if os:
        out["os"] = os
        if version := _version(system):
            out["osversion"] = version
    if device is not None and device.family not in (_OTHER, "Spider"):
        brand = device.brand or ""
        if brand and not brand.startswith("Generic"):  # ua-parser's placeholder brands
            out["brand"] = brand
        if device.model:
            out["model"] = device.model
        out["device_name"] = device.family
    return MappingProxyType(out)


@functools.cache
def _resolver() -> Resolver:
    """The compiled rules (about 0.2 s to build), shared by every enricher in the process."""
    return Resolver(load_builtins())


class UserAgentEnricher:
    """``{os}``, ``{osversion}``, ``{browser}``, ``{browserversion}``, ``{device}``,
    ``{brand}``, ``{model}``, ``{device_name}``; ``bot`` is ``1`` for crawlers and tools."""

    name = "user agent"

    def __init__(self, cache_size: int = UA_CACHE_SIZE) -> None:
        resolver = Resolver(load_builtins())
        self._lookup = functools.lru_cache(maxsize=cache_size)(functools.partial(_parse, resolver))

    def tokens(self, visit: Visit) -> Mapping[str, str]:
        ua = visit.user_agent
        return self._lookup(ua) if ua else EMPTY

    def files(self) -> Sequence[DataFile]:
        return ()

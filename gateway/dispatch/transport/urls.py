"""One way to read a postback URL, for the compiler, ``check`` and every client.

URL readers disagree at the edges: WHATWG (browsers, the template compiler's
lenient view) ends the authority at ``\\`` in http(s) URLs, RFC 3986 readers
(urllib, yarl) do not; they pick different ``@`` signs; they map or refuse
non-ASCII hosts differently.  A postback URL is read here, strictly, and
anything two readers could take differently is refused:

- the authority runs from ``//`` to the first ``/``, ``?`` or ``#``; a
  backslash, a space or control character, ``%`` or more than one ``@`` in
  it is an invalid URL;
- the host is normalised once (``normalise_host``): UTS-46 mapping for a
  non-ASCII name (fullwidth and enclosed forms become ASCII, ``ⓛⓞⓒⓐⓛⓗⓞⓢⓣ``
  becomes ``localhost``), lower case, and any numeric spelling of an IPv4
  address (``0x7f.1``, ``2130706433``) written as the dotted quad it means.

So the host a template fixes at compile time, the host ``check`` shows, the
host a client connects to and the one the SSRF guard judges are one string.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from typing import Final, NamedTuple

import idna

__all__ = ("InvalidURL", "URLParts", "normalise_host", "same_host", "split_url")

#: Characters a user-info part may hold (RFC 3986 unreserved and sub-delims, ':').
_USERINFO_OK: Final = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:-]*\Z")
_HOST_OK: Final = re.compile(r"[a-z0-9._-]+\Z")
_NUMERIC_LABEL: Final = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)\Z")
_DEFAULT_PORT: Final = {"http": 80, "https": 443}
#: scheme, authority (to the first "/", "?" or "#"), request target (to "#").
_SPLIT: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^#]*)")


class InvalidURL(ValueError):
    """A URL (or template) no two readers are sure to read alike."""


class URLParts(NamedTuple):
    scheme: str  # "http" | "https"
    host: str  # normalised; an IPv6 address without brackets
    port: int
    #: the request target: path and query as written ("/" when empty), no fragment
    target: str
    userinfo: str  # "" when absent

    @property
    def host_header(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return shown if self.port == _DEFAULT_PORT[self.scheme] else f"{shown}:{self.port}"


def split_url(url: str) -> URLParts:
    """An http(s) URL's parts as every client must read them; raise InvalidURL."""
    found = _SPLIT.match(url)
    scheme = found.group(1).lower() if found is not None else ""
    if scheme not in _DEFAULT_PORT or found is None:
        raise InvalidURL(f"unsupported URL (scheme {scheme!r})")
    authority, target = found.group(2, 3)
    host, port, userinfo = _authority(scheme, authority)
    if not target.startswith("/"):
        target = "/" + target
    return URLParts(scheme, host, port, target, userinfo)


@functools.lru_cache(maxsize=4096)
def _authority(scheme: str, authority: str) -> tuple[str, int, str]:
    """(host, port, user info) of an authority; kept per text (a few per destination)."""
    if "\\" in authority:
        raise InvalidURL("backslash in the URL's authority (readers disagree where the host ends)")
    userinfo, at, hostport = authority.rpartition("@")
    if at and ("@" in userinfo or not _USERINFO_OK.match(userinfo)):
        raise InvalidURL("user info in the URL's authority that readers may split differently")
    port = _DEFAULT_PORT[scheme]
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise InvalidURL("unclosed '[' in the URL's host")
        host_text, rest = hostport[: close + 1], hostport[close + 1 :]
    else:
        host_text, colon, port_text = hostport.partition(":")
        rest = colon + port_text
    if rest:
        if not rest.startswith(":") or not (rest[1:].isdigit() and rest[1:].isascii()):
            raise InvalidURL("the URL's port is not a number")
        port = int(rest[1:])
        if not 0 < port < 65536:
            raise InvalidURL("the URL's port is out of range")
    return normalise_host(host_text), port, userinfo


@functools.lru_cache(maxsize=4096)
def normalise_host(host: str) -> str:
    """The one spelling of a URL host (see the module docstring); raise InvalidURL."""
    if not host:
        raise InvalidURL("the URL has no host")
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidURL("unclosed '[' in the URL's host")
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise InvalidURL("the URL's host is not a valid IPv6 address") from None
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True, std3_rules=False, transitional=False).decode()
        except (idna.IDNAError, UnicodeError, ValueError):
            raise InvalidURL("the URL's host is not a valid international domain name") from None
    host = host.lower()
    if len(host) > 253 or not _HOST_OK.match(host):
        raise InvalidURL("the URL's host has characters no URL reader agrees on")
    labels = host.split(".")
    if labels[-1] == "":
        labels.pop()
    if not labels or "" in labels:
        raise InvalidURL("the URL's host has an empty label")
    if _NUMERIC_LABEL.match(labels[-1]):  # WHATWG: a host ending in a number is IPv4
        try:
            return socket.inet_ntoa(socket.inet_aton(".".join(labels)))
        except OSError:
            raise InvalidURL("the URL's host is not a valid IPv4 address") from None
    return host


def same_host(url: str, fixed: str) -> bool:
    """Whether ``url`` goes to ``fixed`` (a template's host, an IPv6 one with or
    without brackets); raise InvalidURL."""
    if ":" in fixed and not fixed.startswith("["):
        fixed = f"[{fixed}]"
    return split_url(url).host.rstrip(".") == normalise_host(fixed).rstrip(".")

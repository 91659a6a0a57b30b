"""The SSRF guard: postbacks go to public addresses only.

Rendered URLs come from operator config plus values that visitors and
networks control, so the destination is untrusted.  The check runs on the
address actually dialled (a socket factory handed to aiohttp), which covers
DNS answers, ``resolve`` overrides, IP literals and every redirect hop; a URL
pre-check only gives clearer errors earlier.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.dispatch.transport.registry import EMBEDDED_V4, GLOBAL_UNICAST_V6, V4_ROWS, V6_ROWS

__all__ = (
    "AddressPolicy",
    "BlockedAddress",
    "blocked_reason",
    "literal_address",
    "parse_resolve",
)

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Most specific first, so a reason names the narrowest block (Teredo, not 2001::/23).
_V4_BLOCKED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    sorted(
        ((ipaddress.IPv4Network(net), why) for net, why, _ in V4_ROWS),
        key=lambda row: -row[0].prefixlen,
    )
)
_V6_BLOCKED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    sorted(
        ((ipaddress.IPv6Network(net), why) for net, why, _ in V6_ROWS),
        key=lambda row: -row[0].prefixlen,
    )
)
#: ISATAP interface ids (RFC 5214): ``0000:5efe`` or ``0200:5efe`` then an IPv4 address.
_ISATAP_IDS = (0x00005EFE, 0x02005EFE)


def _v4_reason(ip: ipaddress.IPv4Address) -> str | None:
    for net, why in _V4_BLOCKED:
        if ip in net:
            return why
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an address is not a public destination, or None when it is.

    IPv4: the registry rows.  IPv6: an embedded IPv4 address is judged as
    itself (mapped, NAT64, 6to4, an ISATAP interface id), then the rows, then
    anything outside global unicast space (2000::/3) is refused.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _v4_reason(ip)
    value = int(ip)
    for net, name, shift in EMBEDDED_V4:
        if ip in net:
            inner = _v4_reason(ipaddress.IPv4Address((value >> shift) & 0xFFFFFFFF))
            return f"{name} {inner}" if inner else None
    if (value >> 32) & 0xFFFFFFFF in _ISATAP_IDS:
        inner = _v4_reason(ipaddress.IPv4Address(value & 0xFFFFFFFF))
        if inner:
            return f"isatap {inner}"
    for net, why in _V6_BLOCKED:
        if ip in net:
            return why
    if ip not in GLOBAL_UNICAST_V6:
        return "not global unicast"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names by itself, with the spellings a resolver accepts.

    ``inet_aton`` semantics: ``127.1``, ``2130706433``, ``0x7f.1`` and
    ``0177.0.0.1`` all mean 127.0.0.1 to libc, so they must to us too.
    """
    host = host.strip("[]").rstrip(".")
    if not host:
        return None
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if ":" in host:
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def parse_resolve(mapping: dict[str, str]) -> dict[tuple[str, int | None], tuple[str, int]]:
    """``{"host[:port]": "address:port"}`` -> ``{(host, port|None): (address, port)}``."""
    out: dict[tuple[str, int | None], tuple[str, int]] = {}
    for key, target in mapping.items():
        host, port = _split_host_port(key)
        address, target_port = _split_host_port(target)
        if target_port is None:
            raise ValueError(f"resolve target {target!r} needs a port (address:port)")
        out[(host.lower(), port)] = (address, target_port)
    return out


def _split_host_port(value: str) -> tuple[str, int | None]:
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, None


class BlockedAddress(OSError):
    """Raised from the socket factory when a dial targets a blocked address."""


#: Per-request record of blocked dials, so the transport can tell an SSRF
#: refusal from an ordinary connection error after aiohttp wraps both.
blocked_dials: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "blocked_dials", default=None
)


class AddressPolicy:
    """Which destination addresses may be dialled."""

    __slots__ = ("_allowed", "_host_cache", "allow_private")

    def __init__(self, *, allow_private: bool = False, allowed_networks: Iterable[str] = ()):
        self.allow_private = allow_private
        self._allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        ]
        self._host_cache: dict[str, str | None] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> AddressPolicy:
        """The policy a ``[delivery]`` table asks for (``DeliverySettings``)."""
        return cls(
            allow_private=settings.allow_private_targets,
            allowed_networks=settings.allowed_networks,
        )

    def check(self, ip: IPAddress) -> str | None:
        """The reason to refuse ``ip``, or None to allow it."""
        reason = blocked_reason(ip)
        if reason is None or self.allow_private:
            return None
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        for net in self._allowed:
            if any(c.version == net.version and c in net for c in candidates):
                return None
        return reason

    def check_host(self, host: str) -> str | None:
        """Pre-check a URL host that is an address literal (any spelling)."""
        try:
            return self._host_cache[host]
        except KeyError:
            pass
        ip = literal_address(host)
        reason = None if ip is None else self.check(ip)
        if len(self._host_cache) > 4096:
            self._host_cache.clear()
        self._host_cache[host] = reason
        return reason

    def socket_factory(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """aiohttp/aiohappyeyeballs socket factory: refuse blocked addresses at dial time."""
        family, type_, proto, _, sockaddr = addr_info
        address = str(sockaddr[0]).split("%", 1)[0]
        reason = self.check(ipaddress.ip_address(address))
        if reason is not None:
            seen = blocked_dials.get()
            if seen is not None:
                seen.append(f"{address} ({reason})")
            log.warning("refused to connect to %s: %s address", address, reason)
            raise BlockedAddress(f"blocked destination address {address} ({reason})")
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock

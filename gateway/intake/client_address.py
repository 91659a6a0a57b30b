"""The client's address behind reverse proxies: ``[server] trusted_proxies``.

``Forwarded`` (RFC 7239) or, without it, ``X-Forwarded-For`` is believed only
when the TCP peer is a trusted proxy, and then read from the right: each hop a
trusted proxy added is skipped, and the first address that is not a trusted
proxy is the client.  Anything to its left was written by the client itself
and proves nothing, so a visitor cannot choose its ``{ip}``, its geo, or pass
an affiliate network's address allowlist by sending the header.  Without the
setting the TCP peer is the client, as before.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from multidict import CIMultiDictProxy

__all__ = ("client_address", "forwarded_hops")

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Addr | None:
    """An address from one hop: ``1.2.3.4``, ``1.2.3.4:80``, ``"[::1]:80"``, ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def forwarded_hops(headers: CIMultiDictProxy[str] | Any) -> list[str]:
    """The forwarded-for chain, client first: ``Forwarded``'s ``for=`` values when
    the header is present, else ``X-Forwarded-For``'s (every line, in order)."""
    lines = headers.getall("Forwarded", None)
    if lines:
        hops = []
        for element in ",".join(lines).split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                if name.lower() == "for":
                    hops.append(value)
        return hops
    lines = headers.getall("X-Forwarded-For", None)
    if not lines:
        return []
    return [hop for hop in ",".join(lines).split(",") if hop.strip()]


def _trusted(ip: Addr, nets: Sequence[Net]) -> bool:
    return any(ip in net for net in nets)


def client_address(peer: str, headers: CIMultiDictProxy[str] | Any, nets: Sequence[Net]) -> str:
    """The visitor's (or network's) address: ``peer`` unless it is a trusted proxy."""
    if not nets:
        return peer
    current = _address(peer)
    if current is None or not _trusted(current, nets):
        return peer
    for hop in reversed(forwarded_hops(headers)):
        ip = _address(hop)
        if ip is None:  # "unknown", an obfuscated name: the chain ends at the last proxy
            break
        current = ip
        if not _trusted(ip, nets):
            break
    return str(current)

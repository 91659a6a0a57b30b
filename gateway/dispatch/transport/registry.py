"""IANA's special-purpose address registries, as the SSRF guard reads them.

Sources (the table was drawn up on 2026-12-07 from both):

- IPv4: https://www.iana.org/assignments/iana-ipv4-special-registry
- IPv6: https://www.iana.org/assignments/iana-ipv6-special-registry
  (last updated 2025-10-09)

Each row is (block, reason, RFC); the reason is what a refusal names.  Every
row is a block IANA marks *not* globally reachable (or "N/A": 6to4, Teredo),
plus multicast, the IPv4 "class E" block and IPv6 outside 2000::/3 (no global
unicast is assigned there).
Blocks IANA marks globally reachable inside a blocked one (TURN and PCP
anycast in 192.0.0.0/24, AS112 and AMT in 2001::/23) stay blocked: no
postback endpoint lives there, and one rule is easier to trust than a list of
exceptions.  Embedded IPv4 forms (``EMBEDDED_V4``) are judged by the IPv4
address they carry.  A new registry entry is one more row; ``docs/security.md``
prints the same table.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ("EMBEDDED_V4", "GLOBAL_UNICAST_V6", "UPDATED", "V4_ROWS", "V6_ROWS")

#: When the rows below were last compared with the registries.
UPDATED: Final = "2026-12-07"

V4_ROWS: Final[tuple[tuple[str, str, str], ...]] = (
    ("0.0.0.0/8", "this network", "RFC 791"),
    ("10.0.0.0/8", "private", "RFC 1918"),
    ("100.64.0.0/10", "cgnat", "RFC 6598"),
    ("127.0.0.0/8", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link-local", "RFC 3927"),
    ("172.16.0.0/12", "private", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast", "RFC 7526"),
    ("192.168.0.0/16", "private", "RFC 1918"),
    ("198.18.0.0/15", "benchmarking", "RFC 2544"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    ("224.0.0.0/4", "multicast", "RFC 5771"),
    ("240.0.0.0/4", "reserved", "RFC 1112"),
    ("255.255.255.255/32", "broadcast", "RFC 919"),
)

V6_ROWS: Final[tuple[tuple[str, str, str], ...]] = (
    ("::/128", "unspecified", "RFC 4291"),
    ("::1/128", "loopback", "RFC 4291"),
    ("::/96", "deprecated IPv4-compatible", "RFC 4291"),
    ("::ffff:0:0:0/96", "IPv4-translated (SIIT)", "RFC 2765"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation", "RFC 8215"),
    ("100::/64", "discard-only", "RFC 6666"),
    ("100:0:0:1::/64", "dummy prefix", "RFC 9780"),
    ("2001::/23", "IETF protocol assignments", "RFC 2928"),
    ("2001::/32", "Teredo", "RFC 4380"),
    ("2001:2::/48", "benchmarking", "RFC 5180"),
    ("2001:db8::/32", "documentation", "RFC 3849"),
    ("2001:10::/28", "deprecated ORCHID", "RFC 4843"),
    ("3fff::/20", "documentation", "RFC 9637"),
    ("5f00::/16", "SRv6 SIDs", "RFC 9602"),
    ("fc00::/7", "unique local", "RFC 4193"),
    ("fe80::/10", "link-local", "RFC 4291"),
    ("fec0::/10", "deprecated site-local", "RFC 3879"),
    ("ff00::/8", "multicast", "RFC 4291"),
)

#: IPv6 blocks that carry an IPv4 address and are judged by it: (block, name,
#: the right shift that brings the IPv4 address to the low 32 bits).  Other
#: embedded forms (IPv4-compatible, SIIT, local-use NAT64, Teredo) are blocked
#: whole by the rows above; ISATAP interface ids are read in ``ssrf``.
EMBEDDED_V4: Final[tuple[tuple[ipaddress.IPv6Network, str, int], ...]] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "ipv4-mapped", 0),
    (ipaddress.IPv6Network("64:ff9b::/96"), "nat64", 0),
    (ipaddress.IPv6Network("2002::/16"), "6to4", 80),
)

#: The only IPv6 space with global unicast assignments (RFC 4291, IANA's
#: IPv6 address space registry); everything outside it is refused.
GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")

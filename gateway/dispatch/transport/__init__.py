"""Outbound HTTP: the one-hop clients and the redirect, SSRF and TLS handling they share.

``base`` is the seam, ``factory`` picks a client, ``redirects`` follows
redirects for all of them, ``ssrf`` and ``tls`` hold the shared checks.
"""

"""Outbound HTTP: the one-hop transports and the redirect, SSRF and TLS handling they share."""

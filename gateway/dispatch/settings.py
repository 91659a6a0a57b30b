"""Delivery settings: the ``[delivery]`` table of the config."""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.dispatch import retry

__all__ = ("DeliverySettings",)


class DeliverySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Connections in the shared pool, and per destination host.
    max_connections: int = 512
    max_connections_per_host: int = 32
    #: Optional requests per second per host (None: unlimited).
    rate_per_host: float | None = None
    #: The whole attempt, every redirect hop included (seconds).
    timeout: float = 10.0
    #: Each of the TCP connect and the TLS handshake, within ``timeout`` (lean client).
    connect_timeout: float = 5.0
    #: From the request written to the answer's first byte (lean client; None: ``timeout``).
    first_byte_timeout: float | None = None
    #: A pooled keep-alive connection idle this long is closed (lean client).
    idle_timeout: float = 15.0
    #: Body bytes kept for the delivery log; nothing past this is read.
    body_prefix_bytes: int = 512
    #: The retry policy's defaults (``gateway.dispatch.retry``); rules may override
    #: ``max_attempts`` and ``schedule``.
    max_attempts: int = retry.RETRY_MAX_ATTEMPTS
    schedule: list[float] = msgspec.field(default_factory=lambda: list(retry.RETRY_SCHEDULE))
    jitter: float = retry.RETRY_JITTER
    #: Retry-After is honoured but clamped to this (seconds).
    max_retry_after: float = retry.MAX_RETRY_AFTER
    #: Circuit breaker: consecutive failures that open it, and the pause before a probe.
    breaker_failures: int = 5
    breaker_pause: float = 30.0
    #: SSRF guard: loopback/private targets only when explicitly allowed.
    allow_private_targets: bool = False
    allowed_networks: list[str] = msgspec.field(default_factory=list)
    #: curl --resolve: "host[:port]" -> "address:port".
    resolve: dict[str, str] = msgspec.field(default_factory=dict)
    #: Extra CA certificates (PEM file) trusted for HTTPS on top of the system's,
    #: e.g. a test CA for local sinks reached through ``resolve``.
    ca_file: str | None = None
    #: Finished deliveries older than this many days are purged.
    retention_days: float = 30.0
    #: The HTTP client: "lean" (the default: a small asyncio.Protocol HTTP/1.1
    #: client that skips what postbacks never use) or "aiohttp" (one pooled
    #: ClientSession).
    transport: Literal["aiohttp", "lean"] = "lean"
    #: Shadow mode for everything: each delivery is rendered, stored and logged
    #: as ``dry_run``; no client is even built, so no request can leave.
    dry_run: bool = False

"""A destination's health from its recent attempts: success rate and p99 latency.

Read from the delivery log (``DeliveryLog.recent_host_attempts``) when the hosts
page is asked for, so it covers every worker sharing the store and costs the
send path nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

from gateway.store.base import HostAttempt

__all__ = ("HostHealth", "WINDOW_S", "MAX_ATTEMPTS", "host_health")

#: How far back the hosts page looks, and how many attempts it reads at most.
WINDOW_S = 3600.0
MAX_ATTEMPTS = 20_000


class HostHealth(msgspec.Struct, frozen=True):
    host: str
    attempts: int
    delivered: int
    success_rate: float  # delivered / attempts, 0..1
    p99_ms: float


def _p99(latencies: list[float]) -> float:
    """Nearest-rank 99th percentile (no interpolation: an attempt that happened)."""
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def host_health(attempts: Iterable[HostAttempt]) -> dict[str, HostHealth]:
    """Each host's share of ``delivered`` attempts and its p99 attempt time."""
    by_host: dict[str, list[HostAttempt]] = {}
    for a in attempts:
        by_host.setdefault(a.host, []).append(a)
    out = {}
    for host, rows in by_host.items():
        delivered = sum(1 for a in rows if a.outcome == "delivered")
        out[host] = HostHealth(
            host=host,
            attempts=len(rows),
            delivered=delivered,
            success_rate=delivered / len(rows),
            p99_ms=_p99([a.latency_ms for a in rows]),
        )
    return out

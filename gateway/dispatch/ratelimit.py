"""An optional per-host rate limit (token bucket), so a burst of conversions
does not look like an attack to a small network's endpoint.
"""

from __future__ import annotations

__all__ = ("HostRateLimiter",)


class HostRateLimiter:
    """``rate`` requests per second per host, with bursts up to ``burst``."""

    def __init__(self, rate: float | None, burst: float | None = None) -> None:
        self.rate = rate if rate and rate > 0 else None
        self.burst = max(1.0, burst if burst is not None else (self.rate or 1.0))
        self._buckets: dict[str, tuple[float, float]] = {}  # host -> (tokens, updated)

    def reserve(self, host: str, now: float) -> float:
        """Take one token; return 0 when it was there, else seconds to wait (nothing taken)."""
        if self.rate is None:
            return 0.0
        tokens, updated = self._buckets.get(host, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens >= 1.0:
            self._buckets[host] = (tokens - 1.0, now)
            return 0.0
        self._buckets[host] = (tokens, now)
        return (1.0 - tokens) / self.rate

"""Per-host ready queues under the connection caps, with held hosts and fair rotation.

A worker keeps its slot while its host has deliveries ready, is not held and
no other host waits for a slot (``starved``); then the slot goes round.

Each host gets at most ``max_connections_per_host`` concurrent attempts out
of the global ``max_connections``, so a host that hangs holds only its own
share and never slows the others.  A host is *held* while its breaker is
open or its rate limit is spent; a host that finds every global slot taken
waits in the *starved* list and gets the next free slot, in arrival order.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from gateway.dispatch.breaker import Breaker
from gateway.dispatch.ratelimit import HostRateLimiter
from gateway.store.base import Delivery

__all__ = ("HostQueues",)


class HostQueues:
    """Which delivery may take a connection slot next; the slots themselves are counted here."""

    __slots__ = (
        "_breaker",
        "_inflight_host",
        "_limiter",
        "_now",
        "_on_hold",
        "_per_host",
        "held",
        "inflight",
        "max_connections",
        "ready",
        "starved",
    )

    def __init__(
        self,
        *,
        max_connections: int,
        max_connections_per_host: int,
        breaker: Breaker,
        limiter: HostRateLimiter,
        now: Callable[[], float],
        on_hold: Callable[[str, float], None],
    ) -> None:
        self.max_connections = max_connections
        self._per_host = max_connections_per_host
        self._breaker = breaker
        self._limiter = limiter
        self._now = now
        self._on_hold = on_hold  # told when a held host should be looked at again
        self.ready: dict[str, deque[Delivery]] = {}
        self.held: dict[str, float] = {}  # host -> not before (breaker or rate limit)
        self.starved: dict[str, None] = {}  # hosts waiting for a global slot, FIFO
        self._inflight_host: Counter[str] = Counter()
        self.inflight = 0

    def push(self, d: Delivery) -> None:
        """``d`` is due: it waits in its host's ready queue."""
        queue = self.ready.get(d.host)
        if queue is None:
            queue = self.ready[d.host] = deque()
        queue.append(d)

    def start(self, host: str) -> Delivery | None:
        """The host's next delivery with a new slot counted for it, or None when the
        caps, a hold or an empty queue say no (a full pool marks the host starved)."""
        if not self.ready.get(host):
            return None
        if self._inflight_host[host] >= self._per_host or host in self.held:
            return None
        if self.inflight >= self.max_connections:
            self.starved[host] = None
            return None
        d = self.take(host)
        if d is not None:
            self.inflight += 1
            self._inflight_host[host] += 1
        return d

    def release(self, host: str) -> None:
        """One of ``host``'s slots is free."""
        self.inflight -= 1
        self._inflight_host[host] -= 1
        if not self._inflight_host[host]:
            del self._inflight_host[host]

    def next_starved(self) -> str | None:
        """The host that waited longest for a global slot, if one is free now."""
        if not self.starved or self.inflight >= self.max_connections:
            return None
        host = next(iter(self.starved))
        del self.starved[host]
        return host

    def hold(self, host: str, until: float) -> None:
        """Keep a host's ready queue waiting until ``until`` (breaker, rate limit)."""
        if self.held.get(host) == until:
            return
        self.held[host] = until
        self._on_hold(host, until)

    def unhold(self, host: str, now: float | None = None) -> bool:
        """Let ``host`` go if its hold is over at ``now`` (None: at once); True if it was held."""
        until = self.held.get(host)
        if until is None or (now is not None and until > now):
            return False
        del self.held[host]
        return True

    def waiting(self) -> bool:
        """Whether a host that is not held has deliveries ready."""
        held = self.held
        return any(h not in held for h in self.ready)

    def take(self, host: str) -> Delivery | None:
        """The host's next ready delivery (it has one) if the breaker and rate limit
        let it go now, for a slot the host holds already."""
        if self._breaker.active or self._limiter.rate is not None:
            now = self._now()
            until = self._breaker.blocked_until(host, now)
            if until is not None:
                self.hold(host, until)
                return None
            wait = self._limiter.reserve(host, now)
            if wait > 0:
                self.hold(host, now + wait)
                return None
        queue = self.ready[host]
        d = queue.popleft()
        if not queue:
            del self.ready[host]
        return d

"""Per-host ready queues under the connection caps, with held hosts and fair rotation.

A worker keeps its slot while its host has deliveries ready, is not held and
no other host waits for a slot (``starved``); then the slot goes round.

Each host gets at most ``max_connections_per_host`` concurrent attempts out
of the global ``max_connections`` once it has *proven* itself (its last
attempt got an HTTP answer).  A host not proven yet, or whose last attempt
timed out or failed to connect, gets ``UNPROVEN_PER_HOST`` slots, and all
such hosts together at most half the pool: so any number of hung hosts holds
at most half the connections and a healthy host always finds a slot (the
other half is its reserve).  A healthy newcomer is proven by its first answer.

A host is *held* while its breaker is open or its rate limit is spent; a host
that finds every global slot taken
waits in the *starved* list and gets the next free slot, in arrival order.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import Final

from gateway.dispatch.breaker import Breaker
from gateway.dispatch.ratelimit import HostRateLimiter
from gateway.store.base import Delivery

__all__ = ("UNPROVEN_PER_HOST", "HostQueues")

#: Concurrent attempts a host gets until its last attempt was answered.
UNPROVEN_PER_HOST: Final = 2
#: Hosts remembered as proven; past this the set starts again (all on probation).
_MAX_PROVEN: Final = 100_000


class HostQueues:
    """Which delivery may take a connection slot next; the slots themselves are counted here."""

    __slots__ = (
        "_breaker",
        "_inflight_host",
        "_limiter",
        "_now",
        "_on_hold",
        "_per_host",
        "_unproven_host",
        "_unproven_max",
        "held",
        "inflight",
        "max_connections",
        "proven",
        "ready",
        "starved",
        "unproven_inflight",
        "waiting_unproven",
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
        self.proven: set[str] = set()
        self._unproven_host: Counter[str] = Counter()  # slots taken while not proven
        self.unproven_inflight = 0
        self._unproven_max = max(1, max_connections // 2)
        self.waiting_unproven: dict[str, None] = {}  # hosts waiting for probation room

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
        proven = host in self.proven
        cap = self._per_host if proven else min(self._per_host, UNPROVEN_PER_HOST)
        if self._inflight_host[host] >= cap or host in self.held:
            return None
        if self.inflight >= self.max_connections:
            self.starved[host] = None
            return None
        if not proven and self.unproven_inflight >= self._unproven_max:
            self.waiting_unproven[host] = None
            return None
        d = self.take(host)
        if d is not None:
            self.inflight += 1
            self._inflight_host[host] += 1
            if not proven:
                self.unproven_inflight += 1
                self._unproven_host[host] += 1
        return d

    def answered(self, host: str, answered: bool) -> bool:
        """An attempt to ``host`` ended: with an HTTP answer (proven), or without
        one (a timeout, a connection error: back on probation).  True when the
        host has just been proven: it may take more slots now."""
        if answered:
            if host not in self.proven:
                if len(self.proven) >= _MAX_PROVEN:
                    self.proven.clear()
                self.proven.add(host)
                return True
        else:
            self.proven.discard(host)
        return False

    def may_continue(self, host: str) -> bool:
        """Whether a worker of ``host`` may take its next delivery on the slot it has."""
        if host in self.proven:
            return True
        return self._inflight_host[host] <= UNPROVEN_PER_HOST

    def release(self, host: str) -> None:
        """One of ``host``'s slots is free."""
        self.inflight -= 1
        self._inflight_host[host] -= 1
        if not self._inflight_host[host]:
            del self._inflight_host[host]
        if self._unproven_host.get(host):
            self.unproven_inflight -= 1
            self._unproven_host[host] -= 1
            if not self._unproven_host[host]:
                del self._unproven_host[host]

    def next_starved(self) -> str | None:
        """The host that waited longest for a global slot (or for probation room),
        if one is free now."""
        if self.inflight >= self.max_connections:
            return None
        if self.starved:
            host = next(iter(self.starved))
            del self.starved[host]
            return host
        if self.waiting_unproven and self.unproven_inflight < self._unproven_max:
            host = next(iter(self.waiting_unproven))
            del self.waiting_unproven[host]
            return host
        return None

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

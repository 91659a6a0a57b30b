"""A per-host circuit breaker: stop hammering a destination that keeps failing.

Closed -> (``failures`` consecutive failures) -> open for ``pause`` seconds
-> half-open: one probe goes out; success closes, failure reopens with a
doubled pause (capped).  While open, the host's deliveries wait in memory
without spending attempts, and other hosts are untouched.
"""

from __future__ import annotations

import logging
from typing import Literal

import msgspec

__all__ = ("Breaker", "Circuit", "HostState", "HostView")

log = logging.getLogger(__name__)


class HostState(msgspec.Struct):
    failures: int = 0
    open_until: float = 0.0
    pause: float = 0.0
    probing: bool = False
    #: the last failure, in words (``HTTP 503``, ``timeout``)
    reason: str = ""


Circuit = Literal["closed", "open", "half-open"]


class HostView(msgspec.Struct, frozen=True):
    """A host's circuit as ``/metrics`` and ``GET /api/hosts`` show it."""

    host: str
    circuit: Circuit
    failures: int  # consecutive, since the last success
    paused_until: float | None  # Unix seconds; None while closed
    #: the last failure, in words (``HTTP 503``, ``timeout``)
    reason: str = ""


class Breaker:
    def __init__(self, *, failures: int, pause: float, max_pause: float | None = None) -> None:
        self.failures = max(1, failures)
        self.pause = pause
        self.max_pause = max_pause if max_pause is not None else pause * 16
        self._hosts: dict[str, HostState] = {}

    def blocked_until(self, host: str, now: float) -> float | None:
        """None when a request to ``host`` may go now, else when to ask again.

        When the pause is over the first caller becomes the probe; the others
        wait until its answer comes in.
        """
        state = self._hosts.get(host)
        if state is None or state.open_until == 0.0:
            return None
        if state.probing:
            return now + max(1.0, state.pause / 4)
        if now >= state.open_until:
            state.probing = True
            log.info("circuit half-open for %s: sending a probe", host)
            return None
        return state.open_until

    def success(self, host: str) -> bool:
        """Close ``host``'s circuit; True when it was open (a probe came back)."""
        if not self._hosts:  # the usual case: no host in trouble
            return False
        state = self._hosts.pop(host, None)
        if state is not None and state.open_until:
            log.info("circuit closed for %s", host)
            return True
        return False

    @property
    def active(self) -> bool:
        """Whether any host has failures on record (else nothing is ever blocked)."""
        return bool(self._hosts)

    def failure(self, host: str, now: float, reason: str = "") -> None:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = HostState()
        state.failures += 1
        state.reason = reason
        if state.probing:
            state.probing = False
            state.pause = min(self.max_pause, state.pause * 2)
            state.open_until = now + state.pause
            log.warning("probe to %s failed: paused for %.0f s", host, state.pause)
        elif state.open_until == 0.0 and state.failures >= self.failures:
            state.pause = self.pause
            state.open_until = now + state.pause
            log.warning(
                "circuit open for %s after %d failures: paused for %.0f s",
                host,
                state.failures,
                state.pause,
            )

    def snapshot(self, now: float) -> dict[str, HostView]:
        """Every host with failures on record, where its circuit stands and why: the one
        view that ``GET /api/hosts``, the delivery API and ``/metrics`` all read."""
        out: dict[str, HostView] = {}
        for host, state in self._hosts.items():
            if state.open_until == 0.0:
                circuit: Circuit = "closed"
            elif state.probing or now >= state.open_until:
                circuit = "half-open"
            else:
                circuit = "open"
            out[host] = HostView(
                host=host,
                circuit=circuit,
                failures=state.failures,
                paused_until=state.open_until or None,
                reason=state.reason,
            )
        return out

    def is_open(self, host: str) -> bool:
        state = self._hosts.get(host)
        return state is not None and state.open_until != 0.0

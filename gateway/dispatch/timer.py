"""What comes due later: deliveries not ready yet and held hosts, in one heap,
and the scheduler's sleep until the first of them, cut short by anything sooner.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterator

from gateway.clock import Clock

__all__ = ("Timer",)

#: The delivery id of an entry that marks the end of a host's hold.
HOST = -1


class Timer:
    """Due times; a delivery's later entry supersedes its earlier ones."""

    __slots__ = ("_clock", "_heap", "_planned", "_seq", "_wake", "due_seq")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, int, str]] = []  # (due, seq, delivery_id|HOST, host)
        self._seq = itertools.count()
        #: delivery_id -> seq of its live entry; dropping one cancels that entry.
        self.due_seq: dict[int, int] = {}
        self._wake = asyncio.Event()
        self._planned = float("inf")  # when the scheduler means to wake up

    def add(self, due: float, delivery_id: int, host: str) -> None:
        """Make ``delivery_id`` ready at ``due``."""
        seq = next(self._seq)
        self.due_seq[delivery_id] = seq
        heapq.heappush(self._heap, (due, seq, delivery_id, host))
        self._nudge(due)

    def add_host(self, host: str, until: float) -> None:
        """Look at a held host again at ``until``."""
        heapq.heappush(self._heap, (until, next(self._seq), HOST, host))
        self._nudge(until)

    def _nudge(self, at: float) -> None:
        if at < self._planned:
            self._wake.set()

    def due(self, now: float) -> bool:
        """Whether something is due at ``now``."""
        return bool(self._heap) and self._heap[0][0] <= now

    def pop_due(self, now: float) -> Iterator[tuple[int, str]]:
        """``(delivery_id or HOST, host)`` for each live entry due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, delivery_id, host = heapq.heappop(heap)
            if delivery_id != HOST:
                if self.due_seq.get(delivery_id) != seq:
                    continue  # superseded entry
                del self.due_seq[delivery_id]
            yield delivery_id, host

    def start_tick(self) -> None:
        """Forget earlier nudges: the tick about to run sees what they were for."""
        self._wake.clear()

    async def sleep(self, until: float) -> None:
        """Sleep until the first due entry or ``until``, or until something sooner is added."""
        wake_at = min(self._heap[0][0] if self._heap else float("inf"), until)
        self._planned = wake_at
        if wake_at > self._clock.now():
            await self._sleep_or_wake(wake_at)
        self._planned = float("-inf")

    async def _sleep_until(self, when: float) -> None:
        # The delay is computed when this task first runs, not when it is
        # created: time may have moved in between (a virtual clock's advance()).
        # (A virtual clock's sleep(0) would wait for the next advance(): skip it.)
        delay = when - self._clock.now()
        if delay > 0:
            await self._clock.sleep(delay)

    async def _sleep_or_wake(self, when: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep_until(when))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waker.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

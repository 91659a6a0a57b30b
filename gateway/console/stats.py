"""Rolling aggregates for the console's live view, read from the metrics once a second.

Intake and the dispatcher already count everything in ``gateway.metrics``;
this module adds nothing to their path.  A sampler task copies the counters'
totals per traffic source into a ring of one-second snapshots (an hour of
them), and a window is the difference between the newest snapshot and an
older one.  Every connected browser is sent the same snapshot, rendered
once per tick by whoever asks first.

Counts are this process's: under ``serve --workers`` each worker's console
shows its own share (``/metrics`` has the fleet's).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.metrics import Metrics

__all__ = ("OUTCOMES", "WINDOWS", "Snapshot", "Stats", "quantile")

#: Column name -> the counter it reads; each counter is labelled by traffic source.
OUTCOMES: tuple[tuple[str, str], ...] = (
    ("received", "ingested"),
    ("duplicate", "duplicates"),
    ("queued", "queued"),
    ("delivered", "delivered"),
    ("retried", "retries"),
    ("failed", "failed"),
    ("held", "held"),
    ("expired", "expired"),
)
#: The windows the overview shows, in seconds.
WINDOWS: tuple[tuple[str, int], ...] = (("1 min", 60), ("5 min", 300), ("1 h", 3600))

Totals = dict[str, dict[str, float]]  # traffic source -> column -> running total
#: traffic source -> bucket upper bound -> cumulative count (the end-to-end histogram)
Buckets = dict[str, dict[float, float]]


class Snapshot:
    """One tick: when, the running totals per source, the queue depth."""

    __slots__ = ("at", "e2e", "queue_depth", "totals", "unattributed")

    def __init__(
        self, at: float, totals: Totals, queue_depth: float, unattributed: float, e2e: Buckets
    ) -> None:
        self.at = at
        self.totals = totals
        self.queue_depth = queue_depth
        self.unattributed = unattributed
        self.e2e = e2e


def _totals(metrics: Metrics) -> Totals:
    out: Totals = {}
    for column, attr in OUTCOMES:
        counter: Any = getattr(metrics, attr)
        for family in counter.collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                source = sample.labels.get("traffic_source", "")
                row = out.setdefault(source, {})
                row[column] = row.get(column, 0.0) + sample.value
    return out


def _buckets(histogram: Any) -> Buckets:
    out: Buckets = {}
    for family in histogram.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                source = sample.labels.get("traffic_source", "")
                out.setdefault(source, {})[float(sample.labels["le"])] = sample.value
    return out


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None: no observations)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    wanted = q * buckets[bounds[-1]]
    return next(b for b in bounds if buckets[b] >= wanted)


def _single(metric: Any) -> float:
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") or not sample.name.endswith("_created"):
                return float(sample.value)
    return 0.0


class Stats:
    """The ring of snapshots and the sampler that fills it."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        interval: float = 1.0,
        keep: int = 3600,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.interval = interval
        self.ring: deque[Snapshot] = deque(maxlen=keep + 1)
        self.tick = 0
        self._now = now
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        #: called after each sample (the console records config reloads here)
        self.on_tick: list[Callable[[], None]] = []

    def sample(self) -> Snapshot:
        """Read the counters once and append the snapshot."""
        snap = Snapshot(
            self._now(),
            _totals(self.metrics),
            _single(self.metrics.queue_depth),
            _single(self.metrics.unattributed),
            _buckets(self.metrics.end_to_end),
        )
        self.ring.append(snap)
        self.tick += 1
        for hook in self.on_tick:
            hook()
        return snap

    def latest(self) -> Snapshot:
        return self.ring[-1] if self.ring else self.sample()

    def window(self, seconds: int) -> Totals:
        """Per source and column, what was counted in the last ``seconds`` (or since start)."""
        if not self.ring:
            self.sample()
        newest = self.ring[-1]
        back = min(len(self.ring) - 1, max(1, round(seconds / self.interval)))
        oldest = self.ring[-1 - back] if back else None
        out: Totals = {}
        for source, row in newest.totals.items():
            before = oldest.totals.get(source, {}) if oldest is not None else {}
            out[source] = {c: row.get(c, 0.0) - before.get(c, 0.0) for c, _ in OUTCOMES}
        return out

    def latency(self, seconds: int) -> dict[str, tuple[float | None, float | None]]:
        """Per source, the end-to-end p50 and p99 (bucket bounds, seconds) in the window."""
        if not self.ring:
            self.sample()
        newest = self.ring[-1]
        back = min(len(self.ring) - 1, max(1, round(seconds / self.interval)))
        oldest = self.ring[-1 - back] if back else None
        out: dict[str, tuple[float | None, float | None]] = {}
        for source, now in newest.e2e.items():
            before = oldest.e2e.get(source, {}) if oldest is not None else {}
            delta = {le: n - before.get(le, 0.0) for le, n in now.items()}
            out[source] = (quantile(delta, 0.5), quantile(delta, 0.99))
        return out

    def series(self, seconds: int, columns: tuple[str, ...]) -> list[list[float]]:
        """uPlot's data: the tick times, then per column the count in each tick (all sources)."""
        start = max(0, len(self.ring) - 1 - seconds)
        snaps = list(itertools.islice(self.ring, start, None))
        sums = [
            [sum(row.get(c, 0.0) for row in snap.totals.values()) for snap in snaps]
            for c in columns
        ]
        out: list[list[float]] = [[float(round(snap.at)) for snap in snaps[1:]]]
        out += [[b - a for a, b in itertools.pairwise(col)] for col in sums]
        return out

    async def wait_tick(self, seen: int) -> int:
        """Wait for a tick after ``seen``; returns the new tick number."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.tick > seen or self.closed)
            return self.tick

    async def wake(self) -> None:
        """End every wait: the app is shutting down."""
        self.closed = True
        async with self._changed:
            self._changed.notify_all()

    async def _run(self) -> None:
        while True:
            self.sample()
            async with self._changed:
                self._changed.notify_all()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

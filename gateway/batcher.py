"""Group commit: many requests, one SQLite transaction, then every answer.

Requests put an input on the batcher and await its future.  One worker task
takes up to ``max_size`` inputs (waiting at most ``max_wait_ms`` for company
when the queue was idle), decides and renders them (``intake.build_batch``),
writes clicks, conversions and deliveries in one transaction, and only then
resolves the futures.  Requests that arrive during a commit form the next
batch, so under load the window costs nothing.  After the commit the new
deliveries, with their ids, go to the ``DeliverySink``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gateway import clickid
from gateway.clock import Clock
from gateway.config import Config
from gateway.dispatch import DeliverySink
from gateway.intake import ClickInput, ConversionInput, Result, build_batch, dedup_key
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore

__all__ = ("Batcher", "Closed")

log = logging.getLogger(__name__)


class Closed(RuntimeError):
    """The gateway is draining: no new input is taken."""


class Batcher:
    def __init__(self, store: SQLiteStore, sink: DeliverySink, *, config: Callable[[], Config],
                 metrics: Metrics, clock: Clock) -> None:  # fmt: skip
        self._store = store
        self.sink = sink
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._pending: list[ClickInput | ConversionInput] = []
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Commit everything already taken, then stop (SIGTERM's drain)."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
            self._worker = None

    def put(self, item: ClickInput | ConversionInput) -> asyncio.Future[Any]:
        """Queue an input; its future resolves after the commit (ClickInput: None;
        ConversionInput: a Result)."""
        if self._closing:
            raise Closed("draining")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        item.future = future
        self._pending.append(item)
        if not self._wakeup.is_set():
            self._wakeup.set()
        return future

    async def _run(self) -> None:
        idle = True
        while True:
            await self._wakeup.wait()
            if not self._pending:
                self._wakeup.clear()
                if self._closing:
                    return
                idle = True
                continue
            window = self._config().batch.max_wait_ms / 1000.0
            max_size = self._config().batch.max_size
            if idle and window > 0 and len(self._pending) < max_size and not self._closing:
                await asyncio.sleep(window)
            batch = self._pending[:max_size]
            del self._pending[:max_size]
            idle = not self._pending
            try:
                await self._flush(batch)
            except Exception as exc:  # the store failed: every waiter hears it
                log.exception("group commit of %d items failed", len(batch))
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(exc)

    async def _flush(self, batch: list[ClickInput | ConversionInput]) -> None:
        config = self._config()
        now = self._clock.now()
        clicks = [i for i in batch if isinstance(i, ClickInput)]
        convs = [i for i in batch if isinstance(i, ConversionInput)]
        stored_clicks = {}
        stored = {}
        if convs:
            in_batch = {c.click.click_id for c in clicks}
            wanted = [c.click_id for c in convs if c.click_id is not None
                      and c.click_id not in in_batch and clickid.created_at(c.click_id) is not None]  # fmt: skip
            stored_clicks = await self._store.find_clicks(wanted)
            stored = await self._store.find_conversions([dedup_key(c) for c in convs])
        rows, deliveries, results, counts = build_batch(
            config, clicks, convs, stored_clicks, stored, now
        )
        committed = await self._store.commit_batch([c.click for c in clicks], rows, deliveries)
        m = self._metrics
        m.commit_batch.observe(len(batch))
        for click in clicks:
            m.clicks.labels(click.click.traffic_source).inc()
        for label, n in counts.items():
            if label == "accepted":
                m.ingested.labels("all").inc(n)
            elif label == "duplicate":
                m.duplicates.labels("all").inc(n)
            elif label == "unattributed":
                m.unattributed.inc(n)
        for delivery in committed.deliveries:
            m.queued.labels(delivery.traffic_source).inc()
        for item in clicks:
            if not item.future.done():
                item.future.set_result(None)
        result: Result
        for item, result in zip(convs, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        if committed.deliveries:
            try:
                self.sink.submit(committed.deliveries)
            except Exception:  # committed already: the dispatcher finds them after a restart
                log.exception("delivery sink refused %d deliveries", len(committed.deliveries))

"""Group commit: many requests, one store transaction, then every answer.

Requests put an input on the batcher and await its future.  The worker takes
up to ``max_size`` inputs (waiting at most ``max_wait_ms`` for company when
nothing is in flight) and hands them to ``IntakeStore.commit_group``: the
click ids and dedup keys to look up, and the pure decision
(``intake.decide.build_batch``) that turns what was found into rows.  Only
after the commit are the futures resolved and the new deliveries, with their
ids, handed to the ``DeliverySink``.

One group is in flight at a time: while it commits, new inputs pile up and
become the next group as soon as it is done, so the group size follows the
load.  A second group queued behind the first would be frozen while still
small, and its work would compete with the event loop for the GIL.  With one
in flight, groups commit strictly in order and each one's dedup decisions see
every earlier commit.
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
from gateway.intake.decide import Result, build_batch, dedup_key
from gateway.intake.params import ClickInput, ConversionInput
from gateway.metrics import Metrics
from gateway.store.base import Found, IntakeStore, Wanted, Writes

__all__ = ("Batcher", "Closed")

log = logging.getLogger(__name__)

#: Batches in flight at once (see the module docstring).
PIPELINE_DEPTH = 1
#: Loop iterations without a new input that end the wait for company.
QUIET_ROUNDS = 3


class Closed(RuntimeError):
    """The gateway is draining: no new input is taken."""


class Batcher:
    def __init__(
        self,
        store: IntakeStore,
        sink: DeliverySink,
        *,
        config: Callable[[], Config],
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self._store = store
        self.sink = sink
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._pending: list[ClickInput | ConversionInput] = []
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(PIPELINE_DEPTH)
        self._inflight: set[asyncio.Task[None]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if self._worker is None:
            self._loop = asyncio.get_running_loop()
            self._worker = self._loop.create_task(self._run(), name="batcher")

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
        future: asyncio.Future[Any] = (self._loop or asyncio.get_running_loop()).create_future()
        item.future = future
        self._pending.append(item)
        if not self._wakeup.is_set():
            self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            if not self._pending:
                self._wakeup.clear()
                if self._closing:
                    if self._inflight:
                        await asyncio.gather(*self._inflight, return_exceptions=True)
                    return
                continue
            batch_config = self._config().batch
            window = batch_config.max_wait_ms / 1000.0
            if (
                not self._inflight
                and window > 0
                and not self._closing
                and len(self._pending) < batch_config.max_size
            ):
                await self._company(window, batch_config.max_size)  # idle: a moment for company
            await self._slots.acquire()
            batch = self._pending[: batch_config.max_size]
            del self._pending[: batch_config.max_size]
            task = asyncio.get_running_loop().create_task(self._flush(batch))
            self._inflight.add(task)
            task.add_done_callback(self._done)

    async def _company(self, window: float, max_size: int) -> None:
        """Wait for company until the arrivals stop or ``window`` has passed.

        Arrivals have stopped when QUIET_ROUNDS loop iterations (each one polls the
        sockets and runs the handlers that were woken) bring no new input.  A burst
        (every client answered at once sends its next request at once) becomes one
        batch without the loop idling out the rest of the window, and a lone
        request waits microseconds, not ``window``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        seen = len(self._pending)
        quiet = 0
        while quiet < QUIET_ROUNDS and seen < max_size and not self._closing:
            await asyncio.sleep(0)
            if len(self._pending) == seen:
                quiet += 1
            else:
                seen, quiet = len(self._pending), 0
            if loop.time() >= deadline:
                return

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _flush(self, batch: list[ClickInput | ConversionInput]) -> None:
        try:
            await self._commit(batch)
        except Exception as exc:  # the store failed: every waiter hears it
            log.exception("group commit of %d items failed", len(batch))
            for item in batch:
                if item.future is not None and not item.future.done():
                    item.future.set_exception(exc)

    async def _commit(self, batch: list[ClickInput | ConversionInput]) -> None:
        config = self._config()
        now = self._clock.now()
        clicks = [i for i in batch if isinstance(i, ClickInput)]
        convs = [i for i in batch if isinstance(i, ConversionInput)]

        in_batch = {c.click.click_id for c in clicks}
        wanted = Wanted(
            # a click id of the wrong shape can find nothing: not looked up
            click_ids=[
                c.click_id
                for c in convs
                if c.click_id is not None
                and len(c.click_id) == clickid.LENGTH
                and c.click_id not in in_batch
            ],
            dedup_keys=[dedup_key(c) for c in convs],
            size=len(batch),
        )

        def decide(found: Found) -> tuple[Writes, tuple[list[Result], dict[str, int]]]:
            rows, deliveries, results, counts = build_batch(
                config, clicks, convs, found.clicks, found.conversions, now
            )
            writes = Writes(
                clicks=[c.click for c in clicks], conversions=rows, deliveries=deliveries
            )
            return writes, (results, counts)

        committed, (results, counts) = await self._store.commit_group(wanted, decide)
        self._account(clicks, counts, committed.deliveries, len(batch))
        for item in clicks:
            if not item.future.done():
                item.future.set_result(None)
        result: Result
        for conv, result in zip(convs, results, strict=True):
            if not conv.future.done():
                conv.future.set_result(result)
        due = committed.deliveries
        if any(kind.startswith("held:") for kind in counts):  # held ones never go out
            due = [d for d in due if d.status == "queued"]
        if due:
            try:
                self.sink.submit(due)
            except Exception:  # committed already: the dispatcher finds them after a restart
                log.exception("delivery sink refused %d deliveries", len(due))

    def _account(
        self, clicks: list[ClickInput], counts: dict[str, int], deliveries: Any, size: int
    ) -> None:
        m = self._metrics
        m.commit_batch.observe(size)
        per_source: dict[str, int] = {}
        for click in clicks:
            source = click.click.traffic_source
            per_source[source] = per_source.get(source, 0) + 1
        for source, n in per_source.items():
            m.clicks.labels(source).inc(n)
        for label, n in counts.items():
            kind, _, source = label.partition(":")
            if kind == "accepted":
                m.ingested.labels(source).inc(n)
            elif kind == "duplicate":
                m.duplicates.labels(source).inc(n)
            elif kind == "unattributed":
                m.unattributed.inc(n)
            elif kind == "held":
                m.held.labels(source).inc(n)
        queued: dict[str, int] = {}
        for delivery in deliveries:
            if delivery.status != "queued":
                continue
            queued[delivery.traffic_source] = queued.get(delivery.traffic_source, 0) + 1
        for source, n in queued.items():
            m.queued.labels(source).inc(n)

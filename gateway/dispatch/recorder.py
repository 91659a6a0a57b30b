"""Group commit for the delivery log: attempts finished in the same moment are
written in one store transaction.

One store round trip per attempt (a thread hop plus a transaction) cost more
than the HTTP request itself; batching keeps the log's durability (a caller
returns only once its row is committed) at a fraction of the price.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from gateway.store.base import Attempt, DeliveryStatus, Store

__all__ = ("AttemptRecorder", "BatchAttemptStore")

log = logging.getLogger(__name__)

Item = tuple[Attempt, DeliveryStatus, float | None, bool]
Done = Callable[[BaseException | None], None]


@runtime_checkable
class BatchAttemptStore(Protocol):
    """A store that can log many attempts in one transaction (optional)."""

    async def record_attempts(self, items: Sequence[Item]) -> None: ...


class _Call:
    """A per-item callback (``add``), told apart from ``add_tagged``'s tags."""

    __slots__ = ("done",)

    def __init__(self, done: Done) -> None:
        self.done = done


class AttemptRecorder:
    def __init__(self, store: Store, *, max_batch: int = 512) -> None:
        self._store = store
        self._batch = store if isinstance(store, BatchAttemptStore) else None
        self._max_batch = max_batch
        self._pending: list[tuple[Item, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Called once after each group's callbacks (cheaper than once per item).
        self.on_flushed: Callable[[], None] | None = None
        #: Called once per group with the tags of the items added by ``add_tagged``
        #: (in order) and the write's error: one call instead of one closure per item.
        self.on_group: Callable[[list[Any], BaseException | None], None] | None = None

    async def record(
        self, attempt: Attempt, *, status: DeliveryStatus, next_at: float | None,
        count_attempt: bool = True,
    ) -> None:
        """Return once the attempt and its delivery's new state are committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(exc: BaseException | None) -> None:
            if future.done():
                return
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

        self.add((attempt, status, next_at, count_attempt), done)
        # A caller cancelled (stop) cancels only its future: its item stays in the
        # batch and is still written.
        await future

    def add(self, item: Item, done: Done) -> None:
        """Queue one attempt for the next group write; ``done(error)`` runs after it."""
        self._pending.append((item, _Call(done)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="attempt-recorder")

    def add_tagged(self, item: Item, tag: Any) -> None:
        """Queue one attempt; ``on_group(tags, error)`` hears of it with its group."""
        self._pending.append((item, tag))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="attempt-recorder")

    async def drain(self) -> None:
        """Wait until every attempt handed in so far is written."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            error: BaseException | None = None
            try:
                await self._write([item for item, _ in batch])
            except Exception as exc:
                log.exception("could not write %d attempts to the delivery log", len(batch))
                error = exc
            tags = []
            for _, tag in batch:
                if type(tag) is _Call:
                    try:
                        tag.done(error)
                    except Exception:
                        log.exception("delivery-log callback failed")
                else:
                    tags.append(tag)
            if tags and self.on_group is not None:
                try:
                    self.on_group(tags, error)
                except Exception:
                    log.exception("delivery-log callback failed")
            if self.on_flushed is not None:
                self.on_flushed()

    async def _write(self, items: list[Item]) -> None:
        if self._batch is not None:
            await self._batch.record_attempts(items)
            return
        for attempt, status, next_at, count in items:  # a store without the batch method
            await self._store.record_attempt(attempt, status=status, next_at=next_at,
                                             count_attempt=count)

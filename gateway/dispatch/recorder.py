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


@runtime_checkable
class BatchAttemptStore(Protocol):
    """A store that can log many attempts in one transaction (optional)."""

    async def record_attempts(self, items: Sequence[Item]) -> None: ...


class AttemptRecorder:
    def __init__(self, store: Store, *, max_batch: int = 512) -> None:
        self._store = store
        self._batch = store if isinstance(store, BatchAttemptStore) else None
        self._max_batch = max_batch
        self._pending: list[tuple[Item, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Called once after each group's callbacks (cheaper than once per item).
        self.on_flushed: Callable[[], None] | None = None
        #: Called once per group with the items' tags (in order) and the write's
        #: error: one call instead of one closure per item.
        self.on_group: Callable[[list[Any], BaseException | None], None] | None = None

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
            tags = [tag for _, tag in batch]
            if self.on_group is not None:
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
            await self._store.record_attempt(
                attempt, status=status, next_at=next_at, count_attempt=count
            )

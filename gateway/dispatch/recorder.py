"""Group commit for the delivery log: attempts finished in the same moment are
written in one store transaction.

One store round trip per attempt (a thread hop plus a transaction) cost more
than the HTTP request itself; batching keeps the log's durability (a caller
returns only once its row is committed) at a fraction of the price.

A group waits GROUP_WINDOW for company before it commits.  Nobody outside
waits on the log (the connection slot moves on at the answer), so the window
costs no caller latency; what it costs is that a ``kill -9`` inside it loses
the record of attempts already answered, and those deliveries are sent again
after the restart, like any other in flight.  Under a trickle of postbacks it
turns one commit per attempt into a few per window.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from gateway.store.base import AttemptRecord, DeliveryQueue

__all__ = ("AttemptRecorder",)

log = logging.getLogger(__name__)


#: Seconds a group of attempts waits for company before its commit.
GROUP_WINDOW = 0.002


class AttemptRecorder:
    def __init__(
        self, store: DeliveryQueue, *, max_batch: int = 512, window: float = GROUP_WINDOW
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._window = window
        self._pending: list[tuple[AttemptRecord, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Called once after each group's callbacks (cheaper than once per item).
        self.on_flushed: Callable[[], None] | None = None
        #: Called once per group with the items' tags (in order) and the write's
        #: error: one call instead of one closure per item.
        self.on_group: Callable[[list[Any], BaseException | None], None] | None = None

    def add_tagged(self, item: AttemptRecord, tag: Any) -> None:
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
            if self._window > 0 and len(self._pending) < self._max_batch:
                await asyncio.sleep(self._window)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            error: BaseException | None = None
            try:
                await self._store.record_attempts([item for item, _ in batch])
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

"""Loading due deliveries from the store into memory, and the pace of it.

The store is the source of truth; memory holds only what comes due within
``REFILL_INTERVAL`` (or is in flight).  A refill *claims* its rows
(``DeliveryQueue.claim_due``): on a store several processes share, what one
process holds in memory is leased to it, and the rows of a process that died
come back to a refill once their lease runs out.  A delivery delayed further, by its
rule or by a retry, waits in the store until a refill loads it, so a long
delay at a high rate (or a host that fails for a day) cannot fill memory.
"""

from __future__ import annotations

import logging
from collections.abc import Container

from gateway.store.base import Delivery, Store

__all__ = ("REFILL_INTERVAL", "REFILL_LIMIT", "REFILL_SOON", "Refill", "pause")

log = logging.getLogger(__name__)

#: How often (and how far ahead, in seconds) queued rows are loaded from the store.
REFILL_INTERVAL = 60.0
#: Rows per page.
REFILL_LIMIT = 10_000
#: After a full page of rows new to memory, the next page comes this soon while
#: memory holds less than two pages, else a second later.  Delayed deliveries
#: reach memory only through refills, so this pace caps their rate.
REFILL_SOON = 0.1


class Refill:
    """Pages of due rows from the store, each past the last full one."""

    __slots__ = ("_after", "_store", "every", "loading", "recent_done")

    def __init__(self, store: Store) -> None:
        self._store = store
        #: Seconds between refills with nothing more to load.  On a shared
        #: store a refill is also how a dead process's deliveries are taken
        #: over once their leases lapse, so it comes twice per lease.
        self.every = (
            min(REFILL_INTERVAL, max(1.0, store.lease / 2)) if store.shared else REFILL_INTERVAL
        )
        #: Where the next page goes on: the key of the last row of a full page.
        self._after: tuple[float, int] | None = None
        self.loading = False
        #: Deliveries finished since the last page was asked for: a page read
        #: before their commit may still list them as queued.
        self.recent_done: set[int] = set()

    async def load(self, now: float, known: Container[int]) -> tuple[list[Delivery], bool]:
        """Rows due within the next interval that ``known`` (memory) does not hold,
        and whether to look again soon (a full page with news)."""
        self.recent_done.clear()
        self.loading = True
        try:
            rows = await self._store.claim_due(
                now, REFILL_LIMIT, self._store.lease, ahead=REFILL_INTERVAL, after=self._after
            )
        except Exception:
            log.exception("could not load queued deliveries from the store")
            return [], False
        finally:
            self.loading = False
        full = len(rows) >= REFILL_LIMIT
        # After a full page the next refill goes on past it, so a backlog memory
        # already holds (a paused host's) cannot hide the rows queued behind it;
        # a short page was the end, and the next refill starts from the top.
        last = rows[-1] if full else None
        self._after = None if last is None else (last.next_at or 0.0, last.delivery_id)
        done = self.recent_done
        fresh = [d for d in rows if d.delivery_id not in known and d.delivery_id not in done]
        if fresh:
            log.info("loaded %d queued deliveries from the store", len(fresh))
        # A full page of rows memory already holds: the next page waits for the
        # usual interval.
        return fresh, full and bool(fresh)

    def pause(self, more: bool, held: int) -> float:
        """Seconds until the next refill: soon while there is more and memory has room."""
        return pause(more, held, self.every)


def pause(more: bool, held: int, every: float = REFILL_INTERVAL) -> float:
    """Seconds until the next refill: soon while there is more and memory has room."""
    if not more:
        return every
    if held < 2 * REFILL_LIMIT:
        return REFILL_SOON
    return 1.0

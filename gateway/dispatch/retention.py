"""Retention: finished deliveries past ``retention_days`` are purged from the store."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.clock import Clock
from gateway.store.base import Store

__all__ = ("PURGE_INTERVAL", "purge_forever")

log = logging.getLogger(__name__)

#: How often finished rows past retention are purged.
PURGE_INTERVAL = 3600.0


async def purge_forever(
    store: Store, clock: Clock, days: float, running: Callable[[], bool]
) -> None:
    """Purge every ``PURGE_INTERVAL`` while ``running()``; a failed purge is tried next time."""
    while running() and days > 0:
        try:
            purged = await store.purge(clock.now() - days * 86400.0)
            if purged:
                log.info("purged %d finished deliveries older than %g days", purged, days)
        except Exception:
            log.exception("retention purge failed")
        await clock.sleep(PURGE_INTERVAL)

"""``PostgresStore``: the ``Store`` seam on a PostgreSQL database several processes share.

This class holds the connection pool, this process's lease owner id and the
task that renews its leases; the SQL lives in the modules beside it
(``schema``, ``commit``, ``claims``, ``log``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg

from gateway import constants
from gateway.store.base import (
    Attempt,
    AttemptRecord,
    Click,
    CommitResult,
    Conversion,
    ConversionFilter,
    Delivery,
    DeliveryFilter,
    Found,
    HostAttempt,
    NewDelivery,
    Rewrite,
    Wanted,
    Writes,
)
from gateway.store.postgres import claims, lookups
from gateway.store.postgres import log as delivery_log
from gateway.store.postgres.commit import LOCK_KEYS, insert_deliveries, run_group
from gateway.store.postgres.schema import migrate

__all__ = ("PostgresStore",)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Connections per process: one group commit at a time, the attempt log, the
#: API and the lease renewal each get one without waiting.
POOL_SIZE = 6
#: Leases are renewed this many times per lease, so one missed renewal (a
#: slow database) does not let a live process's deliveries go.
RENEWALS_PER_LEASE = 3


class PostgresStore:
    """One process's handle on the shared database.  ``lease``: see ``Store``."""

    shared = True

    def __init__(self, dsn: str, *, lease: float = constants.LEASE_SECONDS) -> None:
        self.dsn = dsn
        self.lease = lease
        #: Who holds a lease: readable in the table (host, pid), unique per start.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._pool: asyncpg.Pool | None = None
        self._sequence = ""
        #: One group at a time from this process, as on SQLite: the batcher
        #: has one in flight anyway, and the order of a process's groups is
        #: the order their lookups see each other.
        self._commit_lock = asyncio.Lock()
        self._renewer: asyncio.Task[None] | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=POOL_SIZE)
        async with self._pool.acquire() as conn:
            await migrate(conn)
            self._sequence = str(
                await conn.fetchval("SELECT pg_get_serial_sequence('deliveries', 'delivery_id')")
            )
        self._renewer = asyncio.create_task(self._renew_forever(), name="store-lease-renewal")

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._pool is None:
            return
        try:
            async with self._pool.acquire() as conn:
                await claims.release(conn, self.owner)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("could not release this process's leases (%s): they run out", exc)
        await self._pool.close()
        self._pool = None

    async def _renew_forever(self) -> None:
        """Keep this process's leases alive while it runs; a failure is retried next time."""
        every = self.lease / RENEWALS_PER_LEASE
        while True:
            await asyncio.sleep(every)
            try:
                async with self.pool.acquire() as conn:
                    await claims.renew(conn, self.owner, time.time() + self.lease)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("lease renewal failed (%s); retrying in %.1fs", exc, every)

    # -- IntakeStore ------------------------------------------------------------

    async def commit_group(
        self, wanted: Wanted, decide: Callable[[Found], tuple[Writes, T]]
    ) -> tuple[CommitResult, T]:
        async with self._commit_lock, self.pool.acquire() as conn:
            stored, extra = await run_group(
                conn, self._sequence, self.owner, time.time() + self.lease, wanted, decide
            )
        return CommitResult(deliveries=stored), extra

    # -- DeliveryQueue ----------------------------------------------------------

    async def claim_due(
        self,
        now: float,
        limit: int,
        lease: float,
        *,
        ahead: float = 0.0,
        after: tuple[float, int] | None = None,
    ) -> list[Delivery]:
        async with self.pool.acquire() as conn:
            return await claims.claim(conn, self.owner, now, now + ahead, limit, lease, after)

    async def queued_count(self) -> int:
        async with self.pool.acquire() as conn:
            return int(
                await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'queued'")
            )

    async def oldest_queued_at(self) -> float | None:
        async with self.pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT min(created_at) FROM deliveries WHERE status = 'queued'"
            )
        return None if value is None else float(value)

    async def record_attempts(self, items: Sequence[AttemptRecord]) -> None:
        if items:
            async with self.pool.acquire() as conn:
                await claims.record(conn, items)

    async def purge(self, older_than: float) -> int:
        async with self.pool.acquire() as conn:
            return await delivery_log.purge(conn, older_than)

    # -- DeliveryLog ------------------------------------------------------------

    async def list_deliveries(
        self, filters: DeliveryFilter, *, after_id: int | None, limit: int
    ) -> list[Delivery]:
        async with self.pool.acquire() as conn:
            return await delivery_log.listing(conn, filters, after_id, limit)

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        async with self.pool.acquire() as conn:
            return await delivery_log.get(conn, delivery_id)

    async def list_attempts(self, delivery_id: int) -> list[Attempt]:
        async with self.pool.acquire() as conn:
            return await delivery_log.attempts(conn, delivery_id)

    async def requeue(
        self, filters: DeliveryFilter, *, ids: Sequence[int] | None, now: float
    ) -> list[Delivery]:
        async with self.pool.acquire() as conn:
            return await delivery_log.requeue(conn, filters, ids, now, self.owner, self.lease)

    async def get_click(self, click_id: str) -> Click | None:
        async with self.pool.acquire() as conn:
            return await lookups.get_click(conn, click_id)

    async def recent_host_attempts(self, *, since: float, limit: int) -> list[HostAttempt]:
        async with self.pool.acquire() as conn:
            return await lookups.recent_host_attempts(conn, since, max(0, limit))

    async def get_conversion(self, conversion_id: str) -> Conversion | None:
        async with self.pool.acquire() as conn:
            return await lookups.get_conversion(conn, conversion_id)

    async def find_conversions_by(
        self, filters: ConversionFilter, *, limit: int
    ) -> list[Conversion]:
        async with self.pool.acquire() as conn:
            return await lookups.find_conversions_by(conn, filters, limit)

    async def rewrite(self, items: Sequence[Rewrite], *, now: float) -> list[Delivery]:
        if not items:
            return []
        async with self.pool.acquire() as conn:
            return await lookups.rewrite(conn, items, now, self.owner, self.lease)

    async def add_missing(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        """One transaction holding an advisory lock per (conversion, rule), so two
        backfills running at once still write each pair once."""
        if not deliveries:
            return []
        keys = [f"{d.conversion_id}\x1f{d.rule}" for d in deliveries]
        async with self._commit_lock, self.pool.acquire() as conn, conn.transaction():
            await conn.execute(LOCK_KEYS, keys)
            kept = await lookups.missing(conn, deliveries)
            if not kept:
                return []
            return await insert_deliveries(
                conn, self._sequence, self.owner, time.time() + self.lease, kept
            )

    # -- for tests and benchmarks (not part of ``Store``) ------------------------

    async def counts(self) -> dict[str, int]:
        """Rows per table and deliveries per status."""
        async with self.pool.acquire() as conn:
            out = {
                t: int(await conn.fetchval(f"SELECT count(*) FROM {t}"))
                for t in ("clicks", "conversions", "deliveries", "attempts")
            }
            for status, n in await conn.fetch(
                "SELECT status, count(*) FROM deliveries GROUP BY status"
            ):
                out[f"deliveries.{status}"] = int(n)
        return out

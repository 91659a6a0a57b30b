"""``SQLiteStore``: the ``Store`` seam on one SQLite file.

Each method hands one job to the file's ``Writer`` (its thread, or the event
loop while that thread is idle) and does its SQL through the modules beside
this one; this class only holds the state they share (the next delivery id,
whether this SQLite has JSON functions).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway import constants
from gateway.store.base import (
    NOTHING_WANTED,
    Attempt,
    AttemptRecord,
    Click,
    CommitResult,
    Conversion,
    ConversionFilter,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    Found,
    HostAttempt,
    NewDelivery,
    Rewrite,
    Wanted,
    Writes,
)
from gateway.store.sqlite import attempts, commit, lookups, replays
from gateway.store.sqlite.rides import Ride, Rides, write_each
from gateway.store.sqlite.rows import delivery
from gateway.store.sqlite.schema import ATTEMPT_COLUMNS, DELIVERY_COLUMNS, SCHEMA, add_spans
from gateway.store.sqlite.spans import TRIM_SPANS, SpanBuffer, cover_the_tail, matching, where
from gateway.store.sqlite.writer import Writer

__all__ = ("INLINE_MAX", "SQLiteStore")

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Groups up to this many inputs commit on the event loop when the writer
#: thread is idle (``Writer.call_inline``), which blocks the loop while they
#: commit; bigger ones go to the thread so the loop keeps serving meanwhile.
INLINE_MAX = 256


def _where(db: sqlite3.Connection, filters: DeliveryFilter) -> tuple[list[str], list[Any]] | None:
    """The filters as SQL on ``deliveries``; None when they name conversions that
    do not exist (nothing can match)."""
    clauses, args = where(filters)
    named = lookups.conversion_ids(db, filters)
    if named is None:
        return clauses, args
    if not named:
        return None
    clauses.append(f"conversion_id IN ({','.join('?' * len(named))})")
    args.extend(named)
    return clauses, args


class SQLiteStore:
    """The one writer of a SQLite file.  Every method runs as the writer's job."""

    #: One process per file: ``serve --workers`` refuses more than one.
    shared = False
    lease = constants.LEASE_SECONDS  # nobody to take over from: never waited on

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer = Writer(self.path)
        # The writer's entry points, bound once: no extra frame per call.
        self._call = self._writer.call
        self._call_inline = self._writer.call_inline
        self._transaction = self._writer.transaction
        self._next_delivery_id = 1
        self._spans = SpanBuffer()
        #: SQLite has json_each/json_extract (3.38+, or a JSON1 build): the
        #: attempt log takes its one-parameter path (``attempts.group_work``).
        self._json = False
        #: attempt groups waiting to be written inside the next intake commit
        self._rides = Rides(self._write_rides_alone)
        self._loop_thread: int | None = None  # the event loop's (set at open)

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._writer.conn

    async def open(self) -> None:
        self._loop_thread = threading.get_ident()
        await self._writer.open(self._setup)

    def _setup(self, db: sqlite3.Connection) -> None:
        add_spans(db)
        db.executescript(SCHEMA)
        if covered := cover_the_tail(db):
            log.info("spans for %d deliveries written after an unclean stop", covered)
        (seq,) = db.execute(
            "SELECT MAX(v) FROM (SELECT MAX(delivery_id) AS v FROM deliveries"
            " UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'deliveries')"
        ).fetchone()
        self._next_delivery_id = (seq or 0) + 1
        try:
            db.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchall()
            self._json = True
        except sqlite3.OperationalError:
            log.info(
                "SQLite %s has no JSON functions: the delivery log binds rows instead",
                sqlite3.sqlite_version,
            )

    async def close(self) -> None:
        if self._writer.is_open:
            await self._rides.flush()
            await self._call(self._write_spans)
        await self._writer.close()

    def _write_deliveries(
        self, work: Callable[[sqlite3.Connection, list[tuple[Any, ...]]], T]
    ) -> T:
        """``work(db, spans)`` in one transaction; the spans it adds for the
        deliveries it writes go to the buffer, and are written in that same
        transaction when the buffer is due (``SpanBuffer.stage``)."""
        spans: list[tuple[Any, ...]] = []

        def run(db: sqlite3.Connection) -> tuple[T, bool]:
            result = work(db, spans)
            return result, self._spans.stage(db, spans)

        result, written = self._transaction(run)
        self._spans.committed(spans, written)
        return result

    def _write_spans(self) -> None:
        """Write the held spans in a transaction of their own (before a walk)."""
        if self._spans:
            self._transaction(self._spans.write)
            self._spans.committed([], True)

    # -- IntakeStore ------------------------------------------------------------

    async def commit_group(
        self, wanted: Wanted, decide: Callable[[Found], tuple[Writes, T]]
    ) -> tuple[CommitResult, T]:
        """``IntakeStore.commit_group`` in one trip to the writer thread.

        The lookups and the writes share one ``BEGIN IMMEDIATE`` transaction,
        which holds the write lock, so a group's dedup decisions and its writes
        cannot interleave with another writer's.  Groups of up to INLINE_MAX
        inputs run on the event loop itself when the writer thread is idle
        (``Writer.call_inline``): for them, blocking the loop for the commit
        costs less than the hop to the thread and back.
        """
        self._rides.intake_committing()
        if wanted.size <= INLINE_MAX:
            return await self._call_inline(self._commit_group, wanted, decide)
        return await self._call(self._commit_group, wanted, decide)

    def _commit_group(
        self, wanted: Wanted, decide: Callable[[Found], tuple[Writes, T]]
    ) -> tuple[CommitResult, T]:
        # Waiting attempt groups ride along when this runs on the event loop,
        # which owns them (rides.py); on the writer thread they wait on.
        rides = self._rides.take() if threading.get_ident() == self._loop_thread else []

        # Inside the write transaction the lookups see exactly what the writes
        # build on, and they share its start (outside one, each statement opens
        # a read transaction of its own: WAL read marks, shm locks).
        def work(
            db: sqlite3.Connection, spans: list[tuple[Any, ...]]
        ) -> tuple[list[Delivery], T, list[BaseException | None]]:
            ridden = write_each(db, rides) if rides else []
            found = Found(
                clicks=commit.find_clicks(db, wanted.click_ids) if wanted.click_ids else {},
                conversions=(
                    commit.find_conversions(db, wanted.dedup_keys) if wanted.dedup_keys else {}
                ),
            )
            writes, extra = decide(found)
            stored = commit.write_batch(
                db,
                self._next_delivery_id,
                writes.clicks,
                writes.conversions,
                writes.deliveries,
                spans,
            )
            return stored, extra, ridden

        try:
            stored, extra, ridden = self._write_deliveries(work)
        except BaseException:
            self._rides.put_back(rides)  # rolled back with the group: written alone
            raise
        self._next_delivery_id += len(stored)  # once committed
        self._rides.settle(rides, ridden)
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
        """The due rows: one process writes a SQLite file (``shared`` is False),
        so every queued row is this process's and a claim needs no lease."""
        return await self._call(self._due, now + ahead, limit, after)

    def _due(self, now: float, limit: int, after: tuple[float, int] | None) -> list[Delivery]:
        if after is None:
            cursor = self._conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'queued'"
                " AND next_at <= ? ORDER BY next_at, delivery_id LIMIT ?",
                (now, limit),
            )
        else:  # keyset paging along deliveries_due (status, next_at, rowid)
            cursor = self._conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE status = 'queued'"
                " AND next_at <= ? AND (next_at, delivery_id) > (?, ?)"
                " ORDER BY next_at, delivery_id LIMIT ?",
                (now, after[0], after[1], limit),
            )
        return [delivery(row) for row in cursor]

    async def queued_count(self) -> int:
        return await self._call(self._queued_count)

    def _queued_count(self) -> int:
        # a range of the deliveries_due index: cost in proportion to the queue
        query = "SELECT COUNT(*) FROM deliveries WHERE status = 'queued'"
        return int(self._conn.execute(query).fetchone()[0])

    async def oldest_queued_at(self) -> float | None:
        return await self._call(self._oldest_queued_at)

    def _oldest_queued_at(self) -> float | None:
        # the queued range of deliveries_due, read once per scrape
        query = "SELECT MIN(created_at) FROM deliveries WHERE status = 'queued'"
        value = self._conn.execute(query).fetchone()[0]
        return None if value is None else float(value)

    async def record_attempts(self, items: Sequence[AttemptRecord]) -> None:
        if not items:
            return
        if len(items) <= INLINE_MAX:
            # On the loop (the writer thread is idle): binding rows costs SQLite
            # less than the JSON text, which only pays off on the thread.
            if self._rides.worth_waiting():  # inside the next intake commit
                await self._rides.board(attempts.group_work(attempts.flatten(items), json=False))
                return
            await self._call_inline(self._record_attempts, list(items), False)
        else:
            await self._call(self._record_attempts, list(items), self._json)

    def _record_attempts(self, items: list[AttemptRecord], json: bool) -> None:
        self._transaction(attempts.group_work(attempts.flatten(items), json=json))

    async def _write_rides_alone(self, rides: list[Ride]) -> list[BaseException | None]:
        """Groups that found no intake commit to ride: one transaction of their own."""
        return await self._call_inline(self._transaction, lambda db: write_each(db, rides))

    async def purge(self, older_than: float) -> int:
        return await self._call(self._purge, older_than)

    def _purge(self, older_than: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            finished = "status != 'queued' AND updated_at < ?"
            db.execute(
                f"DELETE FROM attempts WHERE delivery_id IN"
                f" (SELECT delivery_id FROM deliveries WHERE {finished})",
                (older_than,),
            )
            deleted = db.execute(f"DELETE FROM deliveries WHERE {finished}", (older_than,)).rowcount
            db.execute(TRIM_SPANS)  # they can no longer match anything
            return int(deleted)

        return self._transaction(work)

    # -- DeliveryLog ------------------------------------------------------------

    async def list_deliveries(
        self, filters: DeliveryFilter, *, after_id: int | None, limit: int
    ) -> list[Delivery]:
        return await self._call(self._list, filters, after_id, limit)

    def _list(self, filters: DeliveryFilter, after_id: int | None, limit: int) -> list[Delivery]:
        self._write_spans()  # the walk sees every committed delivery
        found = _where(self._conn, filters)
        if found is None:
            return []
        clauses, args = found
        rows = matching(
            self._conn,
            DELIVERY_COLUMNS,
            filters,
            clauses,
            args,
            after_id=after_id,
            limit=max(0, limit),
        )
        return [delivery(row) for row in rows]

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        return await self._call(self._get_delivery, delivery_id)

    def _get_delivery(self, delivery_id: int) -> Delivery | None:
        row = self._conn.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = ?", (delivery_id,)
        ).fetchone()
        return None if row is None else delivery(row)

    async def list_attempts(self, delivery_id: int) -> list[Attempt]:
        return await self._call(self._attempts, delivery_id)

    def _attempts(self, delivery_id: int) -> list[Attempt]:
        cursor = self._conn.execute(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ? ORDER BY attempt_id",
            (delivery_id,),
        )
        return [
            Attempt(
                delivery_id=d,
                started_at=s,
                url=u,
                status_code=c,
                error=e,
                latency_ms=lat,
                body_prefix=b,
                outcome=o,
                reason=r,
            )
            for d, s, u, c, e, lat, b, o, r in cursor
        ]

    async def requeue(
        self, filters: DeliveryFilter, *, ids: Sequence[int] | None, now: float
    ) -> list[Delivery]:
        """Failed deliveries (or the given ids, any finished status) go back to the queue
        with a fresh attempt budget; the attempt log keeps their history."""
        return await self._call(self._requeue, filters, None if ids is None else list(ids), now)

    def _requeue(
        self, filters: DeliveryFilter, ids: list[int] | None, now: float
    ) -> list[Delivery]:
        if ids is None and filters.status is None:
            filters = msgspec.structs.replace(filters, status="failed")  # the default
        self._write_spans()  # the walk sees every committed delivery
        found = _where(self._conn, filters)
        if found is None:
            return []
        clauses, args = found
        if ids is not None:
            if not ids:
                return []
            clauses.append(f"delivery_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
            if filters.status is None:
                clauses.append("status != 'queued'")

        def work(db: sqlite3.Connection) -> list[Delivery]:
            picked = [
                r[0] for r in matching(db, "delivery_id", filters, clauses, args, spans=ids is None)
            ]
            if not picked:
                return []
            marks = ",".join("?" * len(picked))
            db.execute(
                "UPDATE deliveries SET status = 'queued', attempts = 0, next_at = ?,"
                f" not_before = ?, updated_at = ? WHERE delivery_id IN ({marks})",
                (now, now, now, *picked),
            )
            cursor = db.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id IN ({marks})"
                " ORDER BY delivery_id",
                picked,
            )
            return [delivery(row) for row in cursor]

        return self._transaction(work)

    async def get_click(self, click_id: str) -> Click | None:
        return await self._call(lambda: lookups.get_click(self._conn, click_id))

    async def recent_host_attempts(self, *, since: float, limit: int) -> list[HostAttempt]:
        n = max(0, limit)
        return await self._call(lambda: lookups.recent_host_attempts(self._conn, since, n))

    async def get_conversion(self, conversion_id: str) -> Conversion | None:
        return await self._call(lambda: lookups.get_conversion(self._conn, conversion_id))

    async def find_conversions_by(
        self, filters: ConversionFilter, *, limit: int
    ) -> list[Conversion]:
        return await self._call(
            lambda: lookups.find_conversions_by(self._conn, filters, max(0, limit))
        )

    async def rewrite(self, items: Sequence[Rewrite], *, now: float) -> list[Delivery]:
        rows = list(items)
        return await self._call(lambda: self._transaction(replays.rewrite_work(rows, now)))

    async def add_missing(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        news = list(deliveries)
        if not news:
            return []

        def work(db: sqlite3.Connection, spans: list[tuple[Any, ...]]) -> list[Delivery]:
            kept = replays.missing(db, news)
            return (
                commit.write_batch(db, self._next_delivery_id, (), (), kept, spans) if kept else []
            )

        stored: list[Delivery] = await self._call(self._write_deliveries, work)
        self._next_delivery_id += len(stored)  # once committed
        return stored

    # -- conveniences for tests and benchmarks (not part of ``Store``) ---------

    async def commit_batch(
        self,
        clicks: Sequence[Click],
        conversions: Sequence[Conversion],
        deliveries: Sequence[NewDelivery],
    ) -> CommitResult:
        """Write rows in one transaction, on the writer thread, without lookups;
        a conversion whose dedup key exists is an update (new status)."""
        if not (clicks or conversions or deliveries):
            return CommitResult(deliveries=[])
        writes = Writes(clicks=clicks, conversions=conversions, deliveries=deliveries)
        result, _ = await self._call(self._commit_group, NOTHING_WANTED, lambda _: (writes, None))
        return result

    async def record_attempt(
        self,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_at: float | None,
        count_attempt: bool = True,
    ) -> None:
        """One attempt in its own transaction (``record_attempts`` for one)."""
        await self._call(self._record_attempt, attempt, status, next_at, count_attempt)

    def _record_attempt(
        self, a: Attempt, status: DeliveryStatus, next_at: float | None, count: bool
    ) -> None:
        self._transaction(lambda db: attempts.record_one(db, a, status, next_at, count))

    async def find_click(self, click_id: str) -> Click | None:
        return (await self.find_clicks([click_id])).get(click_id)

    async def find_clicks(self, click_ids: Iterable[str]) -> dict[str, Click]:
        ids = list(dict.fromkeys(click_ids))
        return await self._call(self._find, commit.find_clicks, ids) if ids else {}

    async def find_conversion(self, dedup_key: str) -> Conversion | None:
        return (await self.find_conversions([dedup_key])).get(dedup_key)

    async def find_conversions(self, dedup_keys: Iterable[str]) -> dict[str, Conversion]:
        """Stored conversions by dedup key."""
        keys = list(dict.fromkeys(dedup_keys))
        return await self._call(self._find, commit.find_conversions, keys) if keys else {}

    def _find(self, find: Callable[[sqlite3.Connection, list[str]], T], keys: list[str]) -> T:
        return find(self._conn, keys)

    async def counts(self) -> dict[str, int]:
        """Rows per table and deliveries per status."""
        return await self._call(self._counts)

    def _counts(self) -> dict[str, int]:
        db = self._conn
        out = {
            t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("clicks", "conversions", "deliveries", "attempts")
        }
        for status, n in db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"):
            out[f"deliveries.{status}"] = n
        return out

"""Filtered listing through ``delivery_spans``: the filters as SQL, and the walk of spans.

Filters by source, campaign or ``since`` walk the spans (``schema.SPANS_DDL``)
in id order and read each candidate span's rows by id range; the filters'
own clauses decide row by row, so a span only has to be a superset.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from gateway.store.base import DeliveryFilter
from gateway.store.sqlite.statements import execute_rows

__all__ = (
    "FEW",
    "INSERT_SPANS",
    "SPAN_PAGE",
    "SPAN_VALUES",
    "TRIM_SPANS",
    "SpanBuffer",
    "cover_the_tail",
    "matching",
    "where",
)

#: One write's spans: (first_id, last_id, traffic_source, campaign_id, max_created).
INSERT_SPANS = "INSERT INTO delivery_spans VALUES "
SPAN_VALUES = "(?, ?, ?, ?, ?)"
#: After a purge: the spans wholly below the oldest delivery left.
TRIM_SPANS = (
    "DELETE FROM delivery_spans WHERE last_id <"
    " COALESCE((SELECT MIN(delivery_id) FROM deliveries), 9223372036854775807)"
)
#: Spans held back from the group commits (``SpanBuffer``): at most this many rows,
#: for at most this many seconds.
SPAN_BUFFER_ROWS = 4096
SPAN_BUFFER_SECONDS = 1.0
#: At open: the deliveries past the last written span (the buffer a crash lost)
#: get one span each, a superset as every span is.
_COVER_THE_TAIL = (
    "INSERT INTO delivery_spans (first_id, last_id, traffic_source, campaign_id, max_created)"
    " SELECT delivery_id, delivery_id, traffic_source, campaign_id, created_at FROM deliveries"
    " WHERE delivery_id > (SELECT COALESCE(MAX(last_id), 0) FROM delivery_spans)"
)
#: Spans read per query while walking them (keyset pages: no cursor left open).
SPAN_PAGE = 512
#: A status with fewer deliveries than this is read through deliveries_due
#: (status, next_at) and sorted, rather than by walking spans: "failed for one
#: source" must not scan every delivery of that source.
FEW = 5000


def where(filters: DeliveryFilter, *, spans: bool = False) -> tuple[list[str], list[Any]]:
    """The filters as SQL clauses on ``deliveries`` (``spans=True``: on
    ``delivery_spans``, which have no status and their newest creation time)."""
    clauses: list[str] = []
    args: list[Any] = []
    if filters.status is not None and not spans:
        clauses.append("status = ?")
        args.append(filters.status)
    if filters.traffic_source is not None:
        clauses.append("traffic_source = ?")
        args.append(filters.traffic_source)
    if filters.campaign_id is not None:
        clauses.append("campaign_id = ?")
        args.append(filters.campaign_id)
    if filters.since is not None:
        clauses.append("max_created >= ?" if spans else "created_at >= ?")
        args.append(filters.since)
    if spans:  # the rest are not span columns: checked row by row
        return clauses, args
    if filters.until is not None:
        clauses.append("created_at < ?")
        args.append(filters.until)
    for column in ("rule", "host"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    return clauses, args


def matching(
    db: sqlite3.Connection,
    columns: str,
    filters: DeliveryFilter,
    clauses: list[str],
    args: list[Any],
    *,
    after_id: int | None = None,
    limit: int | None = None,
    spans: bool = True,
) -> list[tuple[Any, ...]]:
    """``columns`` of the deliveries matching ``clauses`` (the filters' own among
    them), by id, past ``after_id``, at most ``limit``.

    ``spans=False``: the clauses alone (they already pin a few ids)."""
    if limit is not None and limit <= 0:
        return []
    tail = " ORDER BY delivery_id" + (" LIMIT ?" if limit is not None else "")
    if (
        not spans
        or filters.by_conversion()  # named conversions: through deliveries_conversion
        or (
            filters.traffic_source is None and filters.campaign_id is None and filters.since is None
        )
        or (filters.status is not None and _few(db, filters.status))
    ):
        conditions = list(clauses)
        params = list(args)
        if after_id is not None:
            conditions.append("delivery_id > ?")
            params.append(after_id)
        if limit is not None:
            params.append(limit)
        sql = f"SELECT {columns} FROM deliveries"
        sql += f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return db.execute(sql + tail, params).fetchall()
    # NOT INDEXED: each span is read by its rowid range, never through
    # deliveries_due (which a status clause would otherwise tempt the planner to)
    sql = f"SELECT {columns} FROM deliveries NOT INDEXED WHERE delivery_id BETWEEN ? AND ?"
    sql += "".join(f" AND {c}" for c in clauses) + tail
    after = after_id if after_id is not None else 0
    found: list[tuple[Any, ...]] = []
    for first, last in _spans(db, filters, after):
        params = [max(first, after + 1), last, *args]
        if limit is not None:
            params.append(limit - len(found))
        found.extend(db.execute(sql, params))
        if limit is not None and len(found) >= limit:
            break
    return found


def _few(db: sqlite3.Connection, status: str) -> bool:
    (n,) = db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE status = ? LIMIT ?)",
        (status, FEW),
    ).fetchone()
    return bool(n < FEW)


def _spans(
    db: sqlite3.Connection, filters: DeliveryFilter, after: int
) -> Iterator[tuple[int, int]]:
    """(first_id, last_id) of the spans that may hold matching deliveries past
    ``after``, in id order, adjacent ones joined (within a page of spans)."""
    clauses, args = where(filters, spans=True)
    conditions = ["first_id > ?", *clauses]
    sql = (
        f"SELECT first_id, last_id FROM delivery_spans WHERE {' AND '.join(conditions)}"
        f" ORDER BY first_id LIMIT {SPAN_PAGE}"
    )
    pending: tuple[int, int] | None = None
    # The one span that may hold ``after`` itself (spans never overlap): the
    # nearest at or below it, found by its key, kept if it matches and reaches past.
    holder = db.execute(
        "SELECT first_id, last_id FROM delivery_spans WHERE first_id ="
        " (SELECT MAX(first_id) FROM delivery_spans WHERE first_id <= ?) AND last_id > ?"
        + "".join(f" AND {c}" for c in clauses),
        (after, after, *args),
    ).fetchone()
    if holder is not None:
        pending = (holder[0], holder[1])
    cursor = after
    while True:
        page = db.execute(sql, (cursor, *args)).fetchall()
        for first, last in page:
            if pending is not None and first == pending[1] + 1:
                pending = (pending[0], last)
                continue
            if pending is not None:
                yield pending
            pending = (first, last)
        if len(page) < SPAN_PAGE:
            break
        cursor = page[-1][0]
        if pending is not None:  # a page's worth at most: the caller may stop soon
            yield pending
            pending = None
    if pending is not None:
        yield pending


class SpanBuffer:
    """Spans of committed deliveries, written in bulk rather than with each group.

    Each (source, campaign) appends at its own place in both span indexes, so
    a group commit that wrote its spans dirtied a leaf page of each index per
    pair it held, a write to the WAL each.  Held back and written together,
    once a second or every SPAN_BUFFER_ROWS, they dirty those pages once.

    Nothing is lost to a crash: the deliveries themselves are committed, and
    at open ``cover_the_tail`` gives those past the last written span a span
    each.  Every walk of the spans writes the buffer first (``write``), so
    a filter sees every committed delivery.
    """

    def __init__(self, *, rows: int | None = None, seconds: float | None = None) -> None:
        self._rows = SPAN_BUFFER_ROWS if rows is None else rows
        self._seconds = SPAN_BUFFER_SECONDS if seconds is None else seconds
        self._held: list[tuple[Any, ...]] = []
        self._since = 0.0

    def __len__(self) -> int:
        return len(self._held)

    def stage(self, db: sqlite3.Connection, new: list[tuple[Any, ...]]) -> bool:
        """In the group's open transaction: write the held spans and ``new`` if
        they are due (True), else nothing yet; then ``committed`` after COMMIT."""
        now = time.monotonic()
        if not self._held:
            self._since = now
        if len(self._held) + len(new) < self._rows and now - self._since < self._seconds:
            return False
        execute_rows(db, INSERT_SPANS, SPAN_VALUES, "", self._held + new)
        return True

    def committed(self, new: list[tuple[Any, ...]], written: bool) -> None:
        """The transaction ``stage`` ran in committed."""
        if written:
            self._held = []
        else:
            self._held.extend(new)

    def write(self, db: sqlite3.Connection) -> None:
        """In the caller's transaction (before a walk): write what is held;
        ``committed([], True)`` once it commits."""
        execute_rows(db, INSERT_SPANS, SPAN_VALUES, "", self._held)


def cover_the_tail(db: sqlite3.Connection) -> int:
    """At open: spans for the deliveries a crash left without (see SpanBuffer)."""
    return int(db.execute(_COVER_THE_TAIL).rowcount)

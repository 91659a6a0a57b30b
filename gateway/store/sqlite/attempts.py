"""The attempt log's writes: an attempt's row and its delivery's new state, one or many.

Many attempts are written in one transaction, so the dispatcher's log keeps
up with its fan-out (a thread hop and a transaction per attempt would cap it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from gateway.store.base import Attempt, AttemptRecord, DeliveryStatus
from gateway.store.sqlite.rows import encode
from gateway.store.sqlite.schema import ATTEMPT_COLUMNS
from gateway.store.sqlite.statements import execute_rows

__all__ = ("flatten", "group_work", "record_one")

_INSERT_ATTEMPTS = f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES "
_ATTEMPT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPDATE_DELIVERIES = (
    "UPDATE deliveries SET status = v.column2, next_at = v.column3,"
    " attempts = attempts + v.column4, last_outcome = v.column5,"
    " last_reason = v.column6, updated_at = v.column7 FROM (VALUES "
)
_MOVE_VALUES = "(?, ?, ?, ?, ?, ?, ?)"
#: One attempt's two statements (record_one, and a group naming a delivery twice).
_ADD_ATTEMPT = _INSERT_ATTEMPTS + _ATTEMPT_VALUES
_MOVE_DELIVERY = (
    "UPDATE deliveries SET status = ?, next_at = ?, attempts = attempts + ?,"
    " last_outcome = ?, last_reason = ?, updated_at = ? WHERE delivery_id = ?"
)
_UPDATE_DELIVERIES_TAIL = ") AS v WHERE deliveries.delivery_id = v.column1"


def _item(i: int) -> str:
    return f"json_extract(value, '$[{i}]')"


#: The group written from one JSON parameter (see ``group_work``): each item is
#: [delivery_id, started_at, url, status_code, error, latency_ms, body_prefix,
#: outcome, reason, status, next_at, count (0/1), updated_at], as ``flatten``.
_JSON_ATTEMPTS = (
    f"INSERT INTO attempts ({ATTEMPT_COLUMNS}) SELECT {', '.join(map(_item, range(9)))}"
    " FROM json_each(?)"
)
_JSON_MOVES = (
    f"UPDATE deliveries SET status = v.status, next_at = v.next_at,"
    " attempts = attempts + v.count, last_outcome = v.outcome, last_reason = v.reason,"
    " updated_at = v.updated_at FROM (SELECT"
    f" {_item(0)} AS id, {_item(9)} AS status, {_item(10)} AS next_at, {_item(11)} AS count,"
    f" {_item(7)} AS outcome, {_item(8)} AS reason, {_item(12)} AS updated_at"
    " FROM json_each(?)) AS v WHERE deliveries.delivery_id = v.id"
)


def record_one(
    db: sqlite3.Connection, a: Attempt, status: DeliveryStatus, next_at: float | None, count: bool
) -> None:
    """One attempt and its delivery's move, in the open transaction."""
    db.execute(
        _ADD_ATTEMPT,
        (
            a.delivery_id,
            a.started_at,
            a.url,
            a.status_code,
            a.error,
            a.latency_ms,
            a.body_prefix,
            a.outcome,
            a.reason,
        ),
    )
    db.execute(
        _MOVE_DELIVERY,
        (
            status,
            next_at,
            1 if count else 0,
            a.outcome,
            a.reason,
            a.started_at + a.latency_ms / 1000.0,
            a.delivery_id,
        ),
    )


def flatten(items: Sequence[AttemptRecord]) -> list[tuple[Any, ...]]:
    """Each (attempt, status, next_at, count) as one flat tuple (``_JSON_ATTEMPTS``'s items)."""
    return [
        (
            a.delivery_id,
            a.started_at,
            a.url,
            a.status_code,
            a.error,
            a.latency_ms,
            a.body_prefix,
            a.outcome,
            a.reason,
            status,
            next_at,
            1 if count else 0,
            a.started_at + a.latency_ms / 1000.0,
        )
        for a, status, next_at, count in items
    ]


def group_work(flat: list[tuple[Any, ...]], *, json: bool) -> Callable[[sqlite3.Connection], None]:
    """The transaction's work for ``flatten``'s tuples, built before the
    transaction starts (the encoding then holds no lock).

    ``json=True`` is for the store's thread, which shares the GIL with the
    event loop while it keeps sending: what counts there is how long the
    thread holds it.  One JSON text (msgspec, in C) read by both statements
    through json_each keeps the thread's Python work to building one tuple
    per attempt; SQLite unpacks the JSON with the GIL released.  It costs
    SQLite more CPU than binding the same values to multi-row statements,
    so a group written on the loop itself (``Writer.call_inline``), or on a
    SQLite without JSON functions, binds rows (``json=False``).
    """
    # A group naming one delivery twice (UPDATE ... FROM would pick one row)
    # goes row by row.
    grouped = len({f[0] for f in flat}) == len(flat)
    text = encode(flat) if grouped and json else None
    if text is not None and b"\\u0000" in text:
        text = None  # SQLite's JSON functions cut a string at an escaped NUL

    def work(db: sqlite3.Connection) -> None:
        if text is not None:
            db.execute(_JSON_ATTEMPTS, (text,))
            db.execute(_JSON_MOVES, (text,))
        elif grouped:  # multi-row statements: fewer steps than executemany
            execute_rows(db, _INSERT_ATTEMPTS, _ATTEMPT_VALUES, "", [f[:9] for f in flat])
            execute_rows(
                db,
                _UPDATE_DELIVERIES,
                _MOVE_VALUES,
                _UPDATE_DELIVERIES_TAIL,
                [(f[0], f[9], f[10], f[11], f[7], f[8], f[12]) for f in flat],
            )
        else:
            db.executemany(_ADD_ATTEMPT, [f[:9] for f in flat])
            db.executemany(
                _MOVE_DELIVERY, [(f[9], f[10], f[11], f[7], f[8], f[12], f[0]) for f in flat]
            )

    return work

"""Multi-row statements: a batch of rows goes in as a few chunks, not one step per row.

Rows per multi-row statement come from ``CHUNKS`` (a batch is cut into
pieces of those sizes, its binary digits), so only a few statement texts
exist and they stay prepared in the connection's statement cache.  The writer
makes one ``sqlite3_step`` per chunk instead of one per row; each step
releases and retakes the GIL, and retaking it while the event loop runs costs
a switch (up to ``sys.getswitchinterval()``), so fewer steps keep a group
commit short.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Any, TypeVar

from gateway.store.sqlite.schema import DELIVERY_COLUMNS

__all__ = (
    "CHUNKS",
    "chunked",
    "execute_rows",
    "grouped_deliveries_statement",
    "insert_deliveries",
    "statement",
)

T = TypeVar("T")

#: Chunk sizes, largest first.  256 rows x 19 values stays far below SQLite's
#: limit on bound parameters.
CHUNKS = (256, 128, 64, 32, 16, 8, 4, 2, 1)
_chain = chain.from_iterable


def chunked(rows: Sequence[T]) -> Iterator[tuple[int, Sequence[T]]]:
    """``rows`` cut in order into pieces of the sizes in CHUNKS: (size, piece)."""
    start, total = 0, len(rows)
    for size in CHUNKS:
        while total - start >= size:
            yield size, rows[start : start + size]
            start += size


_STATEMENTS: dict[tuple[str, str, int], str] = {}


def statement(head: str, values: str, tail: str, size: int) -> str:
    """``head`` + ``values`` ``size`` times, comma-separated, + ``tail`` (built once)."""
    key = (head, tail, size)
    sql = _STATEMENTS.get(key)
    if sql is None:
        sql = _STATEMENTS[key] = head + ", ".join([values] * size) + tail
    return sql


def execute_rows(
    db: sqlite3.Connection, head: str, values: str, tail: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """``rows`` through multi-row statements (``head`` + ``values`` once per row,
    comma-separated, + ``tail``) of the sizes in CHUNKS, in order."""
    for size, chunk in chunked(rows):
        db.execute(statement(head, values, tail, size), list(_chain(chunk)))


_INSERT_DELIVERIES = f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES "
#: A group of deliveries sharing their rule-level columns is written with those
#: bound once (numbered parameters after the rows'), and per row only these:
#: delivery_id, conversion_id, campaign_id, url, display_url, body, host,
#: click_time, expires_at.  The shared ones: traffic_source, rule, method,
#: not_before (= next_at), max_attempts, created_at (= updated_at), schedule,
#: answer_rule.  Binding is most of a multi-row INSERT's cost on our side
#: (each text value is copied), so fewer values per row matter.
ROW_COLUMNS = 9
_GROUPED_STATEMENTS: dict[int, str] = {}


def grouped_deliveries_statement(size: int) -> str:
    """The INSERT of ``size`` delivery rows sharing one group's values (built once)."""
    sql = _GROUPED_STATEMENTS.get(size)
    if sql is None:
        c = size * ROW_COLUMNS  # the shared values follow the rows': ?{c+1}..?{c+8}
        rows = []
        for r in range(size):
            b = r * ROW_COLUMNS
            rows.append(
                f"(?{b + 1}, ?{b + 2}, ?{c + 1}, ?{b + 3}, ?{c + 2}, ?{c + 3}, ?{b + 4},"
                f" ?{b + 5}, ?{b + 6}, ?{b + 7}, ?{b + 8}, ?{c + 4}, ?{c + 5}, ?{c + 6},"
                f" ?{c + 7}, ?{b + 9}, ?{c + 8}, 'queued', 0, ?{c + 4}, NULL, NULL, ?{c + 6})"
            )
        sql = _GROUPED_STATEMENTS[size] = _INSERT_DELIVERIES + ", ".join(rows)
    return sql


def insert_deliveries(
    db: sqlite3.Connection, groups: dict[tuple[Any, ...], list[tuple[Any, ...]]]
) -> None:
    """Each group's rows (9 values each) in chunks, the group's 8 shared values
    bound once per statement."""
    for shared, rows in groups.items():
        for size, chunk in chunked(rows):
            params = list(_chain(chunk))
            params.extend(shared)
            db.execute(grouped_deliveries_statement(size), params)

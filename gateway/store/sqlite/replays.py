"""Fix-and-replay and backfill writes: deliveries rendered again, deliveries added late."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from gateway.store.base import Delivery, NewDelivery, Rewrite
from gateway.store.sqlite.rows import delivery
from gateway.store.sqlite.schema import DELIVERY_COLUMNS

__all__ = ("missing", "rewrite_work")

_REWRITE = (
    "UPDATE deliveries SET url = ?, display_url = ?, body = ?, host = ?, method = ?,"
    " answer_rule = ?, status = ?, attempts = 0, next_at = ?, not_before = ?,"
    " last_outcome = ?, last_reason = ?, updated_at = ?"
    " WHERE delivery_id = ? AND status != 'queued'"
)


def rewrite_work(
    items: Sequence[Rewrite], now: float
) -> Callable[[sqlite3.Connection], list[Delivery]]:
    """The transaction's work: each delivery replaced and queued (or held)."""

    def work(db: sqlite3.Connection) -> list[Delivery]:
        changed = []
        for r in items:
            held = r.held is not None
            cursor = db.execute(
                _REWRITE,
                (
                    r.url,
                    r.display_url,
                    r.body,
                    r.host,
                    r.method,
                    r.answer_rule,
                    "held" if held else "queued",
                    None if held else now,
                    now,
                    "held" if held else None,
                    r.held,
                    now,
                    r.delivery_id,
                ),
            )
            if cursor.rowcount:
                changed.append(r.delivery_id)
        if not changed:
            return []
        marks = ",".join("?" * len(changed))
        rows = db.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id IN ({marks})"
            " ORDER BY delivery_id",
            changed,
        )
        return [delivery(row) for row in rows]

    return work


def missing(db: sqlite3.Connection, news: Sequence[NewDelivery]) -> list[NewDelivery]:
    """Those of ``news`` whose (conversion_id, rule) has no delivery yet (nor an
    earlier one of ``news``), read inside the caller's write transaction."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for d in news:
        key = (d.conversion_id, d.rule)
        if key in seen:
            continue
        seen.add(key)
        row = db.execute(
            "SELECT 1 FROM deliveries WHERE conversion_id = ? AND rule = ? LIMIT 1", key
        ).fetchone()
        if row is None:
            kept.append(d)
    return kept

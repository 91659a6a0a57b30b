"""Finding a conversion or a click by any of its keys, and the fix-and-replay writes.

Conversion and click ids are indexed (migration 2); an ``externalid`` or a
transaction id lives in the token JSON, read with ``->>`` (a scan, bounded
by ``limit``), as the SQLite backend scans its token text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.store.base import (
    Click,
    Conversion,
    ConversionFilter,
    Delivery,
    DeliveryFilter,
    HostAttempt,
    NewDelivery,
    Rewrite,
)
from gateway.store.postgres.rows import Conn, click, conversion, delivery
from gateway.store.postgres.schema import DELIVERY_COLUMNS

__all__ = (
    "recent_host_attempts",
    "MAX_NAMED",
    "conversion_ids",
    "find_conversions_by",
    "get_click",
    "get_conversion",
    "missing",
    "rewrite",
)

_CONVERSION = (
    "SELECT conversion_id, click_id, dedup_key, status, created_at, tokens FROM conversions"
)
_CLICK = "SELECT click_id, campaign_id, traffic_source, created_at, tokens FROM clicks"
#: Most conversions one delivery filter may name.
MAX_NAMED = 5000
_REWRITE = (
    "UPDATE deliveries SET url = $1, display_url = $2, body = $3, host = $4, method = $5,"
    " answer_rule = $6, status = $7, attempts = 0, next_at = $8, not_before = $9,"
    " last_outcome = $10, last_reason = $11, updated_at = $9, lease_owner = $12,"
    " lease_until = $13 WHERE delivery_id = $14 AND status <> 'queued'"
    f" RETURNING {DELIVERY_COLUMNS}"
)


async def get_click(conn: Conn, click_id: str) -> Click | None:
    row = await conn.fetchrow(f"{_CLICK} WHERE click_id = $1", click_id)
    return None if row is None else click(row)


async def get_conversion(conn: Conn, conversion_id: str) -> Conversion | None:
    row = await conn.fetchrow(f"{_CONVERSION} WHERE conversion_id = $1", conversion_id)
    return None if row is None else conversion(row)


async def find_conversions_by(
    conn: Conn, filters: ConversionFilter, limit: int
) -> list[Conversion]:
    args: list[Any] = []
    clauses: list[str] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if filters.click_id is not None:
        clauses.append(f"click_id = {arg(filters.click_id)}")
    if filters.transaction_id is not None:
        clauses.append(f"(tokens::jsonb ->> 'transaction.id') = {arg(filters.transaction_id)}")
    if filters.externalid is not None:
        value = arg(filters.externalid)
        clauses.append(
            f"((tokens::jsonb ->> 'externalid') = {value} OR click_id IN"
            f" (SELECT click_id FROM clicks WHERE (tokens::jsonb ->> 'externalid') = {value}))"
        )
    if filters.since is not None:
        clauses.append(f"created_at >= {arg(filters.since)}")
    if filters.until is not None:
        clauses.append(f"created_at < {arg(filters.until)}")
    sql = _CONVERSION + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
    sql += f" ORDER BY created_at, conversion_id LIMIT {arg(max(0, limit))}"
    return [conversion(r) for r in await conn.fetch(sql, *args)]


async def conversion_ids(conn: Conn, filters: DeliveryFilter) -> list[str] | None:
    """The conversions a delivery filter names, or None when it names none."""
    if not filters.by_conversion():
        return None
    if filters.click_id is None and filters.externalid is None and filters.transaction_id is None:
        return [filters.conversion_id] if filters.conversion_id is not None else []
    named = await find_conversions_by(
        conn,
        ConversionFilter(
            click_id=filters.click_id,
            externalid=filters.externalid,
            transaction_id=filters.transaction_id,
        ),
        MAX_NAMED,
    )
    ids = [c.conversion_id for c in named]
    if filters.conversion_id is not None:
        ids = [i for i in ids if i == filters.conversion_id]
    return ids


async def rewrite(
    conn: Conn, items: Sequence[Rewrite], now: float, owner: str, lease: float
) -> list[Delivery]:
    """Each delivery replaced and queued, leased to ``owner`` (its caller dispatches
    them), or held; one transaction."""
    out: list[Delivery] = []
    async with conn.transaction():
        for r in items:
            held = r.held is not None
            row = await conn.fetchrow(
                _REWRITE,
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
                None if held else owner,
                None if held else now + lease,
                r.delivery_id,
            )
            if row is not None:
                out.append(delivery(row))
    out.sort(key=lambda d: d.delivery_id)
    return out


async def missing(conn: Conn, news: Sequence[NewDelivery]) -> list[NewDelivery]:
    """Those of ``news`` whose (conversion_id, rule) has no delivery yet, inside the
    caller's transaction (which holds a lock per pair: see ``PostgresStore.add_missing``)."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for d in news:
        key = (d.conversion_id, d.rule)
        if key in seen:
            continue
        seen.add(key)
        found = await conn.fetchval(
            "SELECT 1 FROM deliveries WHERE conversion_id = $1 AND rule = $2 LIMIT 1", *key
        )
        if found is None:
            kept.append(d)
    return kept


async def recent_host_attempts(conn: Conn, since: float, limit: int) -> list[HostAttempt]:
    """Newest first by attempt id (the primary key), so the read stops at ``limit``."""
    rows = await conn.fetch(
        "SELECT d.host, a.outcome, a.latency_ms FROM attempts a"
        " JOIN deliveries d ON d.delivery_id = a.delivery_id"
        " WHERE a.started_at >= $1 ORDER BY a.attempt_id DESC LIMIT $2",
        since,
        limit,
    )
    return [HostAttempt(r[0], r[1], r[2]) for r in rows]

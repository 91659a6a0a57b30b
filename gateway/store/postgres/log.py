"""The delivery log on PostgreSQL: filtered listing, lookups, requeue and retention.

The filters are plain indexed columns here (``schema``): PostgreSQL's planner
picks among the (status | source | campaign, delivery_id) indexes, where
SQLite needs its span table to keep the intake's inserts cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from gateway.store.base import Attempt, Delivery, DeliveryFilter
from gateway.store.postgres.lookups import conversion_ids
from gateway.store.postgres.rows import Conn, attempt, delivery
from gateway.store.postgres.schema import ATTEMPT_COLUMNS, DELIVERY_COLUMNS

__all__ = ("attempts", "get", "listing", "purge", "requeue")

_PURGE = (
    "WITH gone AS (DELETE FROM deliveries WHERE status <> 'queued' AND updated_at < $1"
    " RETURNING delivery_id), logged AS (DELETE FROM attempts WHERE delivery_id IN"
    " (SELECT delivery_id FROM gone)) SELECT count(*) FROM gone"
)


def where(filters: DeliveryFilter, args: list[Any]) -> list[str]:
    """The filters as clauses on ``deliveries``; their values appended to ``args``."""
    clauses: list[str] = []
    for column, value in (
        ("status", filters.status),
        ("traffic_source", filters.traffic_source),
        ("campaign_id", filters.campaign_id),
    ):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if filters.since is not None:
        args.append(filters.since)
        clauses.append(f"created_at >= ${len(args)}")
    if filters.until is not None:
        args.append(filters.until)
        clauses.append(f"created_at < ${len(args)}")
    for column, value in (("rule", filters.rule), ("host", filters.host)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    return clauses


async def where_named(conn: Conn, filters: DeliveryFilter, args: list[Any]) -> list[str] | None:
    """``where`` with the conversions the filters name (a click id, an externalid, a
    transaction id) resolved; None when they name none that exist."""
    clauses = where(filters, args)
    named = await conversion_ids(conn, filters)
    if named is None:
        return clauses
    if not named:
        return None
    args.append(named)
    clauses.append(f"conversion_id = ANY(${len(args)}::text[])")
    return clauses


async def listing(
    conn: Conn, filters: DeliveryFilter, after_id: int | None, limit: int
) -> list[Delivery]:
    if limit <= 0:
        return []
    args: list[Any] = []
    named = await where_named(conn, filters, args)
    if named is None:
        return []
    clauses = named
    if after_id is not None:
        args.append(after_id)
        clauses.append(f"delivery_id > ${len(args)}")
    args.append(limit)
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
    sql += f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql += f" ORDER BY delivery_id LIMIT ${len(args)}"
    return [delivery(r) for r in await conn.fetch(sql, *args)]


async def get(conn: Conn, delivery_id: int) -> Delivery | None:
    row = await conn.fetchrow(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = $1", delivery_id
    )
    return None if row is None else delivery(row)


async def attempts(conn: Conn, delivery_id: int) -> list[Attempt]:
    rows = await conn.fetch(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = $1 ORDER BY attempt_id",
        delivery_id,
    )
    return [attempt(r) for r in rows]


async def requeue(
    conn: Conn,
    filters: DeliveryFilter,
    ids: Sequence[int] | None,
    now: float,
    owner: str,
    lease: float,
) -> list[Delivery]:
    """Finished deliveries back in the queue, leased to ``owner`` (its caller
    dispatches them); failed ones by default, any finished one by id."""
    if ids is not None and not ids:
        return []
    if ids is None and filters.status is None:
        filters = msgspec.structs.replace(filters, status="failed")
    args: list[Any] = [now, owner, now + lease]
    named = await where_named(conn, filters, args)
    if named is None:
        return []
    clauses = named
    if ids is not None:
        args.append(list(ids))
        clauses.append(f"delivery_id = ANY(${len(args)}::bigint[])")
        if filters.status is None:
            clauses.append("status <> 'queued'")
    rows = await conn.fetch(
        "UPDATE deliveries SET status = 'queued', attempts = 0, next_at = $1, not_before = $1,"
        " updated_at = $1, lease_owner = $2, lease_until = $3"
        f" WHERE {' AND '.join(clauses)} RETURNING {DELIVERY_COLUMNS}",
        *args,
    )
    found = [delivery(r) for r in rows]
    found.sort(key=lambda d: d.delivery_id)
    return found


async def purge(conn: Conn, older_than: float) -> int:
    """Finished deliveries older than ``older_than`` and their attempts, in one statement."""
    return int(await conn.fetchval(_PURGE, older_than))

"""The group commit on PostgreSQL: lock the dedup keys, look up, decide, write, one transaction.

Several processes commit at once here, so "each group's lookups see every
earlier commit" needs more than one writer per process: each group first
takes a transaction-scoped advisory lock per dedup key (in sorted order, so
two groups never wait on each other in a circle).  A second group naming a
key waits until the first commits, and its lookup then sees that commit:
two instances can never both accept one conversion, and a status change is
decided on the row as it stands.  The primary key on ``dedup_key`` is the
backstop.  Clicks need no lock: the first writer of a click id wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gateway.store.base import (
    Click,
    Conversion,
    Delivery,
    Found,
    NewDelivery,
    Wanted,
    Writes,
    held_record,
)
from gateway.store.postgres.rows import Conn, click, conversion, encode

__all__ = ("LOCK_KEYS", "insert_deliveries", "run_group")

T = TypeVar("T")

LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(h) FROM"
    " (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) AS s"
)
_FIND_CLICKS = (
    "SELECT click_id, campaign_id, traffic_source, created_at, tokens"
    " FROM clicks WHERE click_id = ANY($1::text[])"
)
_FIND_CONVERSIONS = (
    "SELECT conversion_id, click_id, dedup_key, status, created_at, tokens"
    " FROM conversions WHERE dedup_key = ANY($1::text[])"
)
_INSERT_CLICKS = (
    "INSERT INTO clicks (click_id, campaign_id, traffic_source, created_at, tokens)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[])"
    " ON CONFLICT (click_id) DO NOTHING"
)
_UPSERT_CONVERSIONS = (
    "INSERT INTO conversions"
    " (conversion_id, click_id, dedup_key, status, created_at, updated_at, tokens)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],"
    " $6::float8[], $7::text[])"
    " ON CONFLICT (dedup_key) DO UPDATE SET status = excluded.status,"
    " updated_at = excluded.updated_at, tokens = excluded.tokens"
)
_NEW_IDS = "SELECT nextval($1::regclass) FROM generate_series(1, $2::int)"
#: A delivery with ``held`` set is stored ``held`` (never due) with its reason.
_INSERT_DELIVERIES = (
    "INSERT INTO deliveries (delivery_id, conversion_id, traffic_source, campaign_id, rule,"
    " method, url, display_url, body, host, click_time, not_before, max_attempts, created_at,"
    " schedule, expires_at, answer_rule, status, attempts, next_at, last_outcome, last_reason,"
    " updated_at, lease_owner, lease_until)"
    " SELECT d.id, d.conv, d.ts, d.camp, d.rule, d.method, d.url, d.durl, d.body, d.host,"
    " d.ct, d.nb, d.ma, d.ca, d.sched, d.exp, d.ar,"
    " CASE WHEN d.held IS NULL THEN 'queued' ELSE 'held' END, 0,"
    " CASE WHEN d.held IS NULL THEN d.nb END, CASE WHEN d.held IS NULL THEN NULL ELSE 'held' END,"
    " d.held, d.ca, $19::text, $20::float8 FROM unnest("
    "$1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::text[], $9::text[], $10::text[], $11::float8[], $12::float8[], $13::int[],"
    " $14::float8[], $15::text[], $16::float8[], $17::text[], $18::text[])"
    " AS d(id, conv, ts, camp, rule, method, url, durl, body, host, ct, nb, ma, ca, sched,"
    " exp, ar, held)"
)


async def run_group(
    conn: Conn,
    sequence: str,
    owner: str,
    lease_until: float,
    wanted: Wanted,
    decide: Callable[[Found], tuple[Writes, T]],
) -> tuple[list[Delivery], T]:
    """One group: its rows written and committed, or nothing (``decide`` raised,
    or the database failed); the new deliveries leased to ``owner``."""
    async with conn.transaction():
        keys = wanted.dedup_keys
        if keys:
            await conn.execute(LOCK_KEYS, keys)
        clicks = (
            {r["click_id"]: click(r) for r in await conn.fetch(_FIND_CLICKS, wanted.click_ids)}
            if wanted.click_ids
            else {}
        )
        conversions = (
            {r["dedup_key"]: conversion(r) for r in await conn.fetch(_FIND_CONVERSIONS, keys)}
            if keys
            else {}
        )
        writes, extra = decide(Found(clicks=clicks, conversions=conversions))
        if writes.clicks:
            await conn.execute(_INSERT_CLICKS, *_click_columns(writes.clicks))
        if writes.conversions:
            await conn.execute(_UPSERT_CONVERSIONS, *_conversion_columns(writes.conversions))
        stored: list[Delivery] = []
        if writes.deliveries:
            stored = await insert_deliveries(conn, sequence, owner, lease_until, writes.deliveries)
    return stored, extra


async def insert_deliveries(
    conn: Conn, sequence: str, owner: str, lease_until: float, news: Sequence[NewDelivery]
) -> list[Delivery]:
    """Number and write ``news`` in the open transaction, leased to ``owner``
    (held ones are stored ``held``: never due, whatever their lease)."""
    ids = [r[0] for r in await conn.fetch(_NEW_IDS, sequence, len(news))]
    ids.sort()
    await conn.execute(_INSERT_DELIVERIES, *_delivery_columns(ids, news), owner, lease_until)
    return [_numbered(d, i) for d, i in zip(news, ids, strict=True)]


def _click_columns(clicks: Sequence[Click]) -> list[list[Any]]:
    return [
        [c.click_id for c in clicks],
        [c.campaign_id for c in clicks],
        [c.traffic_source for c in clicks],
        [c.created_at for c in clicks],
        [encode(c.tokens) for c in clicks],
    ]


def _conversion_columns(conversions: Sequence[Conversion]) -> list[list[Any]]:
    """One row per dedup key (one statement cannot touch a row twice): a later
    conversion for a key in the same group is an update of the first, as it
    would be in the next group."""
    rows: dict[str, list[Any]] = {}
    for c in conversions:
        row = rows.get(c.dedup_key)
        tokens = encode(c.tokens)
        if row is None:
            rows[c.dedup_key] = [
                c.conversion_id,
                c.click_id,
                c.dedup_key,
                c.status,
                c.created_at,
                c.created_at,
                tokens,
            ]
        else:
            row[3], row[5], row[6] = c.status, c.created_at, tokens
    return [list(column) for column in zip(*rows.values(), strict=True)]


def _delivery_columns(ids: list[int], news: Sequence[NewDelivery]) -> list[list[Any]]:
    return [
        ids,
        [d.conversion_id for d in news],
        [d.traffic_source for d in news],
        [d.campaign_id for d in news],
        [d.rule for d in news],
        [d.method for d in news],
        [d.url for d in news],
        [d.display_url for d in news],
        [d.body for d in news],
        [d.host for d in news],
        [d.click_time for d in news],
        [d.not_before for d in news],
        [d.max_attempts for d in news],
        [d.created_at for d in news],
        [None if d.schedule is None else encode(d.schedule) for d in news],
        [d.expires_at for d in news],
        [d.answer_rule for d in news],
        [d.held for d in news],
    ]


def _numbered(d: NewDelivery, delivery_id: int) -> Delivery:
    """The stored delivery, as ``SQLiteStore`` hands it back (a ``Delivery`` given
    is numbered in place)."""
    if d.held is not None:
        return held_record(d, delivery_id)
    if isinstance(d, Delivery):
        d.delivery_id = delivery_id
        d.status, d.attempts, d.next_at, d.updated_at = "queued", 0, d.not_before, d.created_at
        return d
    return Delivery(
        **{f: getattr(d, f) for f in d.__struct_fields__},
        delivery_id=delivery_id,
        status="queued",
        attempts=0,
        next_at=d.not_before,
        updated_at=d.created_at,
    )

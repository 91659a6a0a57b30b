"""Finding a conversion or a click by any of its keys: the "what happened to X" reads.

Conversion ids are indexed (``schema.LOOKUP_INDEXES``), click ids through the
dedup key (``_OF_CLICK``); an
``externalid`` or a transaction id lives in the records' token JSON, so it is
found by a scan of that text for the exact JSON pair (no JSON1 functions
needed), each hit decoded and checked.  The scan is bounded by ``limit``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store.base import Click, Conversion, ConversionFilter, DeliveryFilter, HostAttempt
from gateway.store.sqlite.rows import decode_tokens, encode

__all__ = (
    "conversion_ids",
    "find_conversions_by",
    "get_click",
    "get_conversion",
    "recent_host_attempts",
)

_CONVERSION = (
    "SELECT conversion_id, click_id, dedup_key, status, created_at, tokens FROM conversions"
)
_CLICK = "SELECT click_id, campaign_id, traffic_source, created_at, tokens FROM clicks"
#: Most conversions one delivery filter may name (a click id or externalid has few).
MAX_NAMED = 5000


def _conversion(row: tuple[Any, ...]) -> Conversion:
    conv, cid, key, status, created, tokens = row
    return Conversion(
        conversion_id=conv,
        click_id=cid,
        dedup_key=key,
        status=status,
        created_at=created,
        tokens=decode_tokens(tokens),
    )


def _click(row: tuple[Any, ...]) -> Click:
    cid, camp, ts, created, tokens = row
    return Click(
        click_id=cid,
        campaign_id=camp,
        traffic_source=ts,
        created_at=created,
        tokens=decode_tokens(tokens),
    )


def get_click(db: sqlite3.Connection, click_id: str) -> Click | None:
    row = db.execute(f"{_CLICK} WHERE click_id = ?", (click_id,)).fetchone()
    return None if row is None else _click(row)


def get_conversion(db: sqlite3.Connection, conversion_id: str) -> Conversion | None:
    row = db.execute(f"{_CONVERSION} WHERE conversion_id = ?", (conversion_id,)).fetchone()
    return None if row is None else _conversion(row)


#: A click's conversions: a range of the dedup key's unique index (each key
#: begins with its click id), then the exact match.  An index of its own on
#: ``click_id`` would cost every conversion a write to a random leaf page.
_OF_CLICK = "dedup_key >= ? AND dedup_key < ? AND click_id = ?"


def _of_click_args(click_id: str) -> tuple[str, str, str]:
    return click_id, click_id + "\U0010ffff", click_id


def _pair(name: str, value: str) -> str:
    """``"name":"value"`` as the token JSON holds it (msgspec writes no spaces)."""
    return encode(name).decode() + ":" + encode(value).decode()


def _clicks_with(db: sqlite3.Connection, name: str, value: str, limit: int) -> list[str]:
    cursor = db.execute(
        "SELECT click_id, tokens FROM clicks WHERE instr(CAST(tokens AS TEXT), ?) > 0 LIMIT ?",
        (_pair(name, value), limit),
    )
    return [cid for cid, tokens in cursor if decode_tokens(tokens).get(name) == value]


def find_conversions_by(
    db: sqlite3.Connection, filters: ConversionFilter, limit: int
) -> list[Conversion]:
    clauses: list[str] = []
    args: list[Any] = []
    if filters.click_id is not None:
        clauses.append(_OF_CLICK)
        args.extend(_of_click_args(filters.click_id))
    wanted: dict[str, str] = {}
    if filters.transaction_id is not None:
        wanted["transaction.id"] = filters.transaction_id
        clauses.append("instr(CAST(tokens AS TEXT), ?) > 0")
        args.append(_pair("transaction.id", filters.transaction_id))
    if filters.externalid is not None:
        wanted["externalid"] = filters.externalid
        # its own externalid (an upstream tracker's conversion), or its click's
        clicks = _clicks_with(db, "externalid", filters.externalid, MAX_NAMED)
        marks = ",".join("?" * len(clicks))
        own = "instr(CAST(tokens AS TEXT), ?) > 0"
        clauses.append(f"({own} OR click_id IN ({marks}))" if clicks else own)
        args.append(_pair("externalid", filters.externalid))
        args.extend(clicks)
        if clicks:  # a click's conversion need not repeat the externalid
            wanted.pop("externalid")
    if filters.since is not None:
        clauses.append("created_at >= ?")
        args.append(filters.since)
    if filters.until is not None:
        clauses.append("created_at < ?")
        args.append(filters.until)
    sql = _CONVERSION + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
    found = []
    for row in db.execute(sql + " ORDER BY created_at, rowid LIMIT ?", (*args, limit)):
        conv = _conversion(row)
        if all(conv.tokens.get(k) == v for k, v in wanted.items() if k != "externalid"):
            found.append(conv)
    return found


def conversion_ids(db: sqlite3.Connection, filters: DeliveryFilter) -> list[str] | None:
    """The conversions a delivery filter names, or None when it names none."""
    if not filters.by_conversion():
        return None
    if filters.click_id is None and filters.externalid is None and filters.transaction_id is None:
        return [filters.conversion_id] if filters.conversion_id is not None else []
    named = find_conversions_by(
        db,
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


def recent_host_attempts(db: sqlite3.Connection, since: float, limit: int) -> list[HostAttempt]:
    """Newest first by attempt id (the primary key), so the read stops at ``limit``."""
    rows = db.execute(
        "SELECT d.host, a.outcome, a.latency_ms FROM attempts a"
        " JOIN deliveries d ON d.delivery_id = a.delivery_id"
        " WHERE a.started_at >= ? ORDER BY a.attempt_id DESC LIMIT ?",
        (since, limit),
    )
    return [HostAttempt(host, outcome, latency) for host, outcome, latency in rows]

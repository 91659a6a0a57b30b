"""Records to PostgreSQL values and back: JSON text codecs, the row decoders, NUL-free text.

Tokens and schedules are JSON text encoded by msgspec (what SQLite stores
too): the gateway only ever reads them whole, so ``jsonb``'s parse on every
write would buy nothing.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from gateway.store.base import Attempt, Click, Conversion, Delivery

__all__ = (
    "Conn",
    "attempt",
    "click",
    "clean",
    "conversion",
    "decode_schedule",
    "delivery",
    "encode",
)

#: A connection, or a pool's handle on one.
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

_encode = msgspec.json.Encoder().encode
decode_tokens = msgspec.json.Decoder(dict[str, str]).decode
decode_schedule = msgspec.json.Decoder(list[float]).decode


def encode(value: Any) -> str:
    """JSON text: msgspec escapes a NUL as ``\\u0000``, which PostgreSQL's text takes."""
    return _encode(value).decode()


def clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: a network's answer with one keeps U+FFFD in its place."""
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\ufffd")


def delivery(row: asyncpg.Record) -> Delivery:
    """A ``deliveries`` row read as ``schema.DELIVERY_COLUMNS``."""
    schedule = row["schedule"]
    return Delivery(
        delivery_id=row["delivery_id"],
        conversion_id=row["conversion_id"],
        traffic_source=row["traffic_source"],
        campaign_id=row["campaign_id"],
        rule=row["rule"],
        method=row["method"],
        url=row["url"],
        display_url=row["display_url"],
        body=row["body"],
        host=row["host"],
        click_time=row["click_time"],
        not_before=row["not_before"],
        max_attempts=row["max_attempts"],
        created_at=row["created_at"],
        schedule=None if schedule is None else decode_schedule(schedule),
        expires_at=row["expires_at"],
        answer_rule=row["answer_rule"],
        status=row["status"],
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_outcome=row["last_outcome"],
        last_reason=row["last_reason"],
        updated_at=row["updated_at"],
    )


def click(row: asyncpg.Record) -> Click:
    return Click(
        click_id=row["click_id"],
        campaign_id=row["campaign_id"],
        traffic_source=row["traffic_source"],
        created_at=row["created_at"],
        tokens=decode_tokens(row["tokens"]),
    )


def conversion(row: asyncpg.Record) -> Conversion:
    return Conversion(
        conversion_id=row["conversion_id"],
        click_id=row["click_id"],
        dedup_key=row["dedup_key"],
        status=row["status"],
        created_at=row["created_at"],
        tokens=decode_tokens(row["tokens"]),
    )


def attempt(row: asyncpg.Record) -> Attempt:
    return Attempt(
        delivery_id=row["delivery_id"],
        started_at=row["started_at"],
        url=row["url"],
        status_code=row["status_code"],
        error=row["error"],
        latency_ms=row["latency_ms"],
        body_prefix=row["body_prefix"],
        outcome=row["outcome"],
        reason=row["reason"],
    )

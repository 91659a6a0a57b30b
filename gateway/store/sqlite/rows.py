"""Records to SQLite values and back: the JSON codecs and the delivery row decoder."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from gateway.store.base import Delivery

__all__ = ("decode_schedule", "decode_tokens", "delivery", "encode")

encode = msgspec.json.Encoder().encode
decode_tokens = msgspec.json.Decoder(dict[str, str]).decode
decode_schedule = msgspec.json.Decoder(list[float]).decode


def delivery(row: sqlite3.Row | tuple[Any, ...]) -> Delivery:
    """A ``deliveries`` row, read as ``schema.DELIVERY_COLUMNS``."""
    (
        did,
        conv,
        ts,
        camp,
        rule,
        method,
        url,
        durl,
        body,
        host,
        ctime,
        nb,
        maxa,
        created,
        sched,
        exp,
        answer,
        status,
        attempts,
        next_at,
        lo,
        lr,
        upd,
    ) = row
    return Delivery(
        delivery_id=did,
        conversion_id=conv,
        traffic_source=ts,
        campaign_id=camp,
        rule=rule,
        method=method,
        url=url,
        display_url=durl,
        body=body,
        host=host,
        click_time=ctime,
        not_before=nb,
        max_attempts=maxa,
        created_at=created,
        schedule=None if sched is None else decode_schedule(sched),
        expires_at=exp,
        answer_rule=answer,
        status=status,
        attempts=attempts,
        next_at=next_at,
        last_outcome=lo,
        last_reason=lr,
        updated_at=upd,
    )

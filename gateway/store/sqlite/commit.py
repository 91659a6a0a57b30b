"""The group commit's statements: look up clicks and conversions, write a group's rows.

Everything here runs as the writer's current job, inside its transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

from gateway.store.base import Click, Conversion, Delivery, NewDelivery, held_record
from gateway.store.sqlite.rows import decode_tokens, encode
from gateway.store.sqlite.statements import execute_rows, insert_deliveries

__all__ = ("find_clicks", "find_conversions", "write_batch")

_INSERT_CLICKS = "INSERT OR IGNORE INTO clicks VALUES "
_CLICK_VALUES = "(?, ?, ?, ?, ?)"
_INSERT_CONVERSIONS = "INSERT INTO conversions VALUES "
_CONVERSION_VALUES = "(?, ?, ?, ?, ?, ?, ?)"
_UPSERT_CONVERSIONS = (
    " ON CONFLICT (dedup_key) DO UPDATE SET status = excluded.status,"
    " updated_at = excluded.updated_at, tokens = excluded.tokens"
)
#: Keys per lookup statement (``IN (...)``), far below SQLite's parameter limit.
_LOOKUP_CHUNK = 500


_HOLD = (
    "UPDATE deliveries SET status = 'held', next_at = NULL, last_outcome = 'held',"
    " last_reason = ? WHERE delivery_id = ?"
)


def find_clicks(db: sqlite3.Connection, ids: list[str]) -> dict[str, Click]:
    """Stored clicks by id."""
    found: dict[str, Click] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        for cid, camp, ts, created, tokens in db.execute(
            "SELECT click_id, campaign_id, traffic_source, created_at, tokens"
            f" FROM clicks WHERE click_id IN ({marks})",
            chunk,
        ):
            found[cid] = Click(
                click_id=cid,
                campaign_id=camp,
                traffic_source=ts,
                created_at=created,
                tokens=decode_tokens(tokens),
            )
    return found


def find_conversions(db: sqlite3.Connection, keys: list[str]) -> dict[str, Conversion]:
    """Stored conversions by dedup key: the intake's duplicate/update decision."""
    found: dict[str, Conversion] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        for conv, cid, key, status, created, tokens in db.execute(
            "SELECT conversion_id, click_id, dedup_key, status, created_at, tokens"
            f" FROM conversions WHERE dedup_key IN ({marks})",
            chunk,
        ):
            found[key] = Conversion(
                conversion_id=conv,
                click_id=cid,
                dedup_key=key,
                status=status,
                created_at=created,
                tokens=decode_tokens(tokens),
            )
    return found


def write_batch(
    db: sqlite3.Connection,
    first_id: int,
    clicks: Sequence[Click],
    conversions: Sequence[Conversion],
    deliveries: Sequence[NewDelivery],
    spans_out: list[tuple[Any, ...]],
) -> list[Delivery]:
    """The rows, written in the open transaction; returns the deliveries, in the
    order given, numbered from ``first_id`` group by group: each
    (traffic_source, campaign_id) gets a run of consecutive ids, one span,
    added to ``spans_out`` for the caller to write (``spans.SpanBuffer``).

    A conversion whose dedup key exists is an update (status, tokens); a click
    whose id exists is left as it is."""
    runs: dict[tuple[str, str], list[int]] = {}
    for i, d in enumerate(deliveries):
        key = (d.traffic_source, d.campaign_id)
        run = runs.get(key)
        if run is None:
            runs[key] = [i]
        else:
            run.append(i)
    ids: Sequence[int] = range(first_id, first_id + len(deliveries))
    if len(runs) > 1:
        ids = [0] * len(deliveries)
        for number, i in enumerate(chain.from_iterable(runs.values()), start=first_id):
            ids[i] = number
    spans = []
    for (source, campaign), run in runs.items():
        spans.append(
            (
                ids[run[0]],
                ids[run[-1]],
                source,
                campaign,
                max([deliveries[i].created_at for i in run]),
            )
        )
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    schedules: dict[tuple[float, ...], str] = {}  # a rule's schedule, encoded once
    for i, d in enumerate(deliveries):
        schedule = None
        if d.schedule is not None:
            steps = tuple(d.schedule)
            schedule = schedules.get(steps)
            if schedule is None:
                schedule = schedules[steps] = encode(d.schedule).decode()
        shared = (
            d.traffic_source,
            d.rule,
            d.method,
            d.not_before,
            d.max_attempts,
            d.created_at,
            schedule,
            d.answer_rule,
        )
        row = (
            ids[i],
            d.conversion_id,
            d.campaign_id,
            d.url,
            d.display_url,
            d.body,
            d.host,
            d.click_time,
            d.expires_at,
        )
        group = groups.get(shared)
        if group is None:
            groups[shared] = [row]
        else:
            group.append(row)
    if clicks:
        execute_rows(
            db,
            _INSERT_CLICKS,
            _CLICK_VALUES,
            "",
            [
                (c.click_id, c.campaign_id, c.traffic_source, c.created_at, encode(c.tokens))
                for c in clicks
            ],
        )
    if conversions:
        execute_rows(
            db,
            _INSERT_CONVERSIONS,
            _CONVERSION_VALUES,
            _UPSERT_CONVERSIONS,
            [
                (
                    c.conversion_id,
                    c.click_id,
                    c.dedup_key,
                    c.status,
                    c.created_at,
                    c.created_at,
                    encode(c.tokens),
                )
                for c in conversions
            ],
        )
    if groups:
        insert_deliveries(db, groups)
        spans_out.extend(spans)
        held = [(d.held, ids[i]) for i, d in enumerate(deliveries) if d.held is not None]
        if held:  # rare: written as queued with the rest, then moved aside
            db.executemany(_HOLD, held)
    stored: list[Delivery] = []
    for i, d in enumerate(deliveries):
        if d.held is not None:
            stored.append(held_record(d, ids[i]))
        elif isinstance(d, Delivery):  # built as a Delivery already: just number it
            d.delivery_id = ids[i]
            d.status, d.attempts, d.next_at, d.updated_at = "queued", 0, d.not_before, d.created_at
            stored.append(d)
        else:
            stored.append(
                Delivery(
                    **{f: getattr(d, f) for f in d.__struct_fields__},
                    delivery_id=ids[i],
                    status="queued",
                    attempts=0,
                    next_at=d.not_before,
                    updated_at=d.created_at,
                )
            )
    return stored

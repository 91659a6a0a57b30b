"""The SQLite file's shape: tables, indexes, column lists, and the upgrade of older files."""

from __future__ import annotations

import logging
import sqlite3

__all__ = (
    "ATTEMPT_COLUMNS",
    "DELIVERY_COLUMNS",
    "LOOKUP_INDEXES",
    "SCHEMA",
    "SPANS_DDL",
    "add_spans",
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS clicks (
    click_id       TEXT PRIMARY KEY,
    campaign_id    TEXT NOT NULL,
    traffic_source TEXT NOT NULL,
    created_at     REAL NOT NULL,
    tokens         BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS conversions (
    conversion_id TEXT NOT NULL,  -- random 144 bits; looked up only through dedup_key
    click_id      TEXT,
    dedup_key     TEXT NOT NULL UNIQUE,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    tokens        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    conversion_id  TEXT NOT NULL,
    traffic_source TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    rule           TEXT NOT NULL,
    method         TEXT NOT NULL,
    url            TEXT NOT NULL,
    display_url    TEXT NOT NULL,
    body           TEXT,
    host           TEXT NOT NULL,
    click_time     REAL,
    not_before     REAL NOT NULL,
    max_attempts   INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    schedule       TEXT,
    expires_at     REAL,
    answer_rule    TEXT,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at        REAL,
    last_outcome   TEXT,
    last_reason    TEXT,
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
CREATE TABLE IF NOT EXISTS attempts (
    attempt_id  INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL,
    started_at  REAL NOT NULL,
    url         TEXT NOT NULL,
    status_code INTEGER,
    error       TEXT,
    latency_ms  REAL NOT NULL,
    body_prefix TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_delivery ON attempts (delivery_id);
"""
#: The delivery API's filters by source, campaign and creation time are indexed
#: per span of ids instead of per delivery (``spans.py``).  Each write numbers
#: its deliveries grouped by (traffic_source, campaign_id), so a span is a run
#: of consecutive ids with one source and one campaign, and spans never overlap.
#: Three index entries per delivery were the largest cost in the intake's
#: transaction after the rows themselves; a span is one row per write, held
#: back and written in bulk (``spans.SpanBuffer``).
SPANS_DDL = (
    "CREATE TABLE IF NOT EXISTS delivery_spans ("
    " first_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL,"
    " traffic_source TEXT NOT NULL, campaign_id TEXT NOT NULL, max_created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS delivery_spans_source ON delivery_spans (traffic_source)",
    "CREATE INDEX IF NOT EXISTS delivery_spans_campaign ON delivery_spans (campaign_id)",
)
SCHEMA += "".join(f"{ddl};\n" for ddl in SPANS_DDL)
#: "What happened to conversion X": one index entry per conversion and per
#: delivery.  Older files get them at open (IF NOT EXISTS), once.  A click's
#: conversions are found through the dedup key (``lookups._OF_CLICK``), so the
#: index on ``click_id`` that older files have goes.
LOOKUP_INDEXES = (
    "CREATE INDEX IF NOT EXISTS conversions_id ON conversions (conversion_id)",
    "CREATE INDEX IF NOT EXISTS deliveries_conversion ON deliveries (conversion_id)",
)
SCHEMA += "".join(f"{ddl};\n" for ddl in LOOKUP_INDEXES)
SCHEMA += "DROP INDEX IF EXISTS conversions_click;\n"
#: Files from before the spans: one span per existing delivery, then the
#: per-delivery indexes go (one transaction, at open).
_BACKFILL_SPANS = (
    "INSERT INTO delivery_spans (first_id, last_id, traffic_source, campaign_id, max_created)"
    " SELECT delivery_id, delivery_id, traffic_source, campaign_id, created_at FROM deliveries"
)
_OLD_INDEXES = ("deliveries_source", "deliveries_campaign", "deliveries_created")

DELIVERY_COLUMNS = (
    "delivery_id, conversion_id, traffic_source, campaign_id, rule, method, url, display_url,"
    " body, host, click_time, not_before, max_attempts, created_at, schedule, expires_at,"
    " answer_rule, status, attempts, next_at, last_outcome, last_reason, updated_at"
)
ATTEMPT_COLUMNS = (
    "delivery_id, started_at, url, status_code, error, latency_ms, body_prefix, outcome, reason"
)


def add_spans(db: sqlite3.Connection) -> None:
    """A file from before ``delivery_spans`` gets them, in one transaction."""
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if "deliveries" not in tables or "delivery_spans" in tables:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for ddl in SPANS_DDL:
            db.execute(ddl)
        db.execute(_BACKFILL_SPANS)
        for index in _OLD_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {index}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    log.info("delivery_spans added to an older file")

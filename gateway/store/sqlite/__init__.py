"""SQLite behind the ``Store`` Protocol: one writer thread, WAL, group commits.

Why plain ``sqlite3`` on one dedicated thread rather than aiosqlite: every
call here is already a batch, and a single-thread executor gives the same
"one connection, never shared across threads" guarantee with one hop per
call instead of aiosqlite's per-statement queue round trips.

Durability: WAL with ``synchronous=NORMAL``.  In WAL mode a commit appends
the transaction to the WAL file before ``COMMIT`` returns; NORMAL only skips
the fsync at each commit (it syncs at checkpoints).  A ``kill -9`` of the
process cannot lose a committed transaction, because the bytes are already in
the OS page cache and the kernel writes them out; only a power loss or kernel
crash could drop the last commits.  The contract's guarantee is about
``kill -9``, so NORMAL is enough, and it keeps commits cheap.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from gateway.store.base import (
    Attempt,
    Click,
    CommitResult,
    Conversion,
    Delivery,
    DeliveryFilter,
    DeliveryStatus,
    NewDelivery,
)

__all__ = ("SCHEMA", "SQLiteStore")

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long the writer thread waits for another connection's write lock.
BUSY_TIMEOUT_MS = 5000
#: SQLITE_BUSY and SQLITE_LOCKED: another connection holds what we need.
_BUSY = frozenset((sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
#: Seconds between background WAL checkpoints: the WAL holds about this much
#: intake (12 MB at 20k conversions/s in bench/intake_wrk.sh).
CHECKPOINT_INTERVAL = 0.25
#: How long the checkpoint thread waits for the write lock (a group commit).
CHECKPOINT_BUSY_MS = 100
#: The WAL file is cut back to this size after it starts over (a burst's growth).
WAL_SIZE_LIMIT = 64 * 1024 * 1024

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
#: per span of ids instead of per delivery (``_spans``).  Each write numbers its
#: deliveries grouped by (traffic_source, campaign_id), so a span is a run of
#: consecutive ids with one source and one campaign, and spans never overlap.
#: Three index entries per delivery cost the intake more than anything else in
#: its transaction but the rows themselves (~10 of ~35 WAL frames a commit); a
#: span is one row a batch: bench/intake_wrk.sh's setup ran 2.6% more req/s and
#: wrote 16% fewer bytes (nine interleaved pairs).
_SPANS_DDL = (
    "CREATE TABLE IF NOT EXISTS delivery_spans ("
    " first_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL,"
    " traffic_source TEXT NOT NULL, campaign_id TEXT NOT NULL, max_created REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS delivery_spans_source ON delivery_spans (traffic_source)",
    "CREATE INDEX IF NOT EXISTS delivery_spans_campaign ON delivery_spans (campaign_id)",
)
SCHEMA += "".join(f"{ddl};\n" for ddl in _SPANS_DDL)
#: Files from before the spans: one span per existing delivery, then the
#: per-delivery indexes go (one transaction, at open).
_BACKFILL_SPANS = (
    "INSERT INTO delivery_spans (first_id, last_id, traffic_source, campaign_id, max_created)"
    " SELECT delivery_id, delivery_id, traffic_source, campaign_id, created_at FROM deliveries"
)
_OLD_INDEXES = ("deliveries_source", "deliveries_campaign", "deliveries_created")
_INSERT_SPANS = "INSERT INTO delivery_spans VALUES "
#: After a purge: the spans wholly below the oldest delivery left.
_TRIM_SPANS = (
    "DELETE FROM delivery_spans WHERE last_id <"
    " COALESCE((SELECT MIN(delivery_id) FROM deliveries), 9223372036854775807)"
)
_SPAN_VALUES = "(?, ?, ?, ?, ?)"

_DELIVERY_COLUMNS = (
    "delivery_id, conversion_id, traffic_source, campaign_id, rule, method, url, display_url,"
    " body, host, click_time, not_before, max_attempts, created_at, schedule, expires_at,"
    " answer_rule, status, attempts, next_at, last_outcome, last_reason, updated_at"
)
_INSERT_DELIVERIES = f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES "
#: A group of deliveries sharing their rule-level columns is written with those
#: bound once (numbered parameters after the rows'), and per row only these:
#: delivery_id, conversion_id, campaign_id, url, display_url, body, host,
#: click_time, expires_at.  The shared ones: traffic_source, rule, method,
#: not_before (= next_at), max_attempts, created_at (= updated_at), schedule,
#: answer_rule.  Binding is most of a multi-row INSERT's cost on our side
#: (each text value is copied): 19 values a row became 9.
_ROW_COLUMNS = 9
_GROUPED_STATEMENTS: dict[int, str] = {}


def _grouped_deliveries_statement(size: int) -> str:
    sql = _GROUPED_STATEMENTS.get(size)
    if sql is None:
        c = size * _ROW_COLUMNS  # the shared values follow the rows': ?{c+1}..?{c+8}
        rows = []
        for r in range(size):
            b = r * _ROW_COLUMNS
            rows.append(
                f"(?{b + 1}, ?{b + 2}, ?{c + 1}, ?{b + 3}, ?{c + 2}, ?{c + 3}, ?{b + 4},"
                f" ?{b + 5}, ?{b + 6}, ?{b + 7}, ?{b + 8}, ?{c + 4}, ?{c + 5}, ?{c + 6},"
                f" ?{c + 7}, ?{b + 9}, ?{c + 8}, 'queued', 0, ?{c + 4}, NULL, NULL, ?{c + 6})"
            )
        sql = _GROUPED_STATEMENTS[size] = _INSERT_DELIVERIES + ", ".join(rows)
    return sql


def _insert_deliveries(db: sqlite3.Connection,
                       groups: dict[tuple[Any, ...], list[tuple[Any, ...]]]) -> None:  # fmt: skip
    """Each group's rows (9 values each) in chunks, the group's 8 shared values
    bound once per statement."""
    for shared, rows in groups.items():
        for size, chunk in _chunked(rows):
            params = list(_chain(chunk))
            params.extend(shared)
            db.execute(_grouped_deliveries_statement(size), params)


_INSERT_CLICKS = "INSERT OR IGNORE INTO clicks VALUES "
_CLICK_VALUES = "(?, ?, ?, ?, ?)"
_INSERT_CONVERSIONS = "INSERT INTO conversions VALUES "
_CONVERSION_VALUES = "(?, ?, ?, ?, ?, ?, ?)"
_UPSERT_CONVERSIONS = (
    " ON CONFLICT (dedup_key) DO UPDATE SET status = excluded.status,"
    " updated_at = excluded.updated_at, tokens = excluded.tokens"
)
#: Rows per multi-row INSERT: a batch is written as chunks of these sizes (its
#: binary digits), so a few statements stay prepared in the connection's cache
#: and the writer makes one ``sqlite3_step`` per chunk instead of one per row.
#: Each step releases and retakes the GIL, and retaking it while the event loop
#: runs costs a switch (up to ``sys.getswitchinterval()``), so fewer steps keep
#: a group commit short.  256 rows x 19 values stays far below SQLite's limit.
_CHUNKS = (256, 128, 64, 32, 16, 8, 4, 2, 1)
_ATTEMPT_COLUMNS = (
    "delivery_id, started_at, url, status_code, error, latency_ms, body_prefix, outcome, reason"
)
_INSERT_ATTEMPTS = f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) VALUES "
_ATTEMPT_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_UPDATE_DELIVERIES = (
    "UPDATE deliveries SET status = v.column2, next_at = v.column3,"
    " attempts = attempts + v.column4, last_outcome = v.column5,"
    " last_reason = v.column6, updated_at = v.column7 FROM (VALUES "
)
_MOVE_VALUES = "(?, ?, ?, ?, ?, ?, ?)"
#: One attempt's two statements (record_attempt, and a group naming a delivery twice).
_ADD_ATTEMPT = _INSERT_ATTEMPTS + _ATTEMPT_VALUES
_MOVE_DELIVERY = (
    "UPDATE deliveries SET status = ?, next_at = ?, attempts = attempts + ?,"
    " last_outcome = ?, last_reason = ?, updated_at = ? WHERE delivery_id = ?"
)
_UPDATE_DELIVERIES_TAIL = ") AS v WHERE deliveries.delivery_id = v.column1"


def _item(i: int) -> str:
    return f"json_extract(value, '$[{i}]')"


#: The attempt log's group written from one JSON parameter (see _record_attempts):
#: each item is [delivery_id, started_at, url, status_code, error, latency_ms,
#: body_prefix, outcome, reason, status, next_at, count (0/1), updated_at].
_JSON_ATTEMPTS = (
    f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) SELECT {', '.join(map(_item, range(9)))}"
    " FROM json_each(?)"
)
_JSON_MOVES = (
    f"UPDATE deliveries SET status = v.status, next_at = v.next_at,"
    " attempts = attempts + v.count, last_outcome = v.outcome, last_reason = v.reason,"
    " updated_at = v.updated_at FROM (SELECT"
    f" {_item(0)} AS id, {_item(9)} AS status, {_item(10)} AS next_at, {_item(11)} AS count,"
    f" {_item(7)} AS outcome, {_item(8)} AS reason, {_item(12)} AS updated_at"
    " FROM json_each(?)) AS v WHERE deliveries.delivery_id = v.id"
)
_chain = chain.from_iterable
_encode = msgspec.json.Encoder().encode
_decode_tokens = msgspec.json.Decoder(dict[str, str]).decode
_decode_schedule = msgspec.json.Decoder(list[float]).decode


def _chunked(rows: Sequence[T]) -> Iterator[tuple[int, Sequence[T]]]:
    """``rows`` cut in order into pieces of the sizes in _CHUNKS: (size, piece)."""
    start, total = 0, len(rows)
    for size in _CHUNKS:
        while total - start >= size:
            yield size, rows[start : start + size]
            start += size


def _execute_rows(db: sqlite3.Connection, head: str, values: str, tail: str,
                  rows: Sequence[tuple[Any, ...]]) -> None:  # fmt: skip
    """``rows`` through multi-row statements (``head`` + ``values`` once per row,
    comma-separated, + ``tail``) of the sizes in _CHUNKS, in order."""
    for size, chunk in _chunked(rows):
        db.execute(_statement(head, values, tail, size), list(_chain(chunk)))


_STATEMENTS: dict[tuple[str, str, int], str] = {}


def _statement(head: str, values: str, tail: str, size: int) -> str:
    key = (head, tail, size)
    sql = _STATEMENTS.get(key)
    if sql is None:
        sql = _STATEMENTS[key] = head + ", ".join([values] * size) + tail
    return sql


def _delivery(row: sqlite3.Row | tuple[Any, ...]) -> Delivery:
    (did, conv, ts, camp, rule, method, url, durl, body, host, ctime, nb, maxa, created,
     sched, exp, answer, status, attempts, next_at, lo, lr, upd) = row  # fmt: skip
    return Delivery(
        delivery_id=did, conversion_id=conv, traffic_source=ts, campaign_id=camp, rule=rule,
        method=method, url=url, display_url=durl, body=body, host=host, click_time=ctime,
        not_before=nb, max_attempts=maxa, created_at=created,
        schedule=None if sched is None else _decode_schedule(sched), expires_at=exp,
        answer_rule=answer, status=status, attempts=attempts, next_at=next_at,
        last_outcome=lo, last_reason=lr, updated_at=upd,
    )  # fmt: skip


def _where(filters: DeliveryFilter, *,
           spans: bool = False) -> tuple[list[str], list[Any]]:  # fmt: skip
    """The filters as SQL clauses on ``deliveries`` (``spans=True``: on
    ``delivery_spans``, which have no status and their newest creation time)."""
    clauses: list[str] = []
    args: list[Any] = []
    if filters.status is not None and not spans:
        clauses.append("status = ?")
        args.append(filters.status)
    if filters.traffic_source is not None:
        clauses.append("traffic_source = ?")
        args.append(filters.traffic_source)
    if filters.campaign_id is not None:
        clauses.append("campaign_id = ?")
        args.append(filters.campaign_id)
    if filters.since is not None:
        clauses.append("max_created >= ?" if spans else "created_at >= ?")
        args.append(filters.since)
    return clauses, args


#: Spans read per query while walking them (keyset pages: no cursor left open).
_SPAN_PAGE = 512


def _matching(db: sqlite3.Connection, columns: str, filters: DeliveryFilter,
              clauses: list[str], args: list[Any], *, after_id: int | None = None,
              limit: int | None = None, spans: bool = True) -> list[tuple[Any, ...]]:  # fmt: skip
    """``columns`` of the deliveries matching ``clauses`` (the filters' own among
    them), by id, past ``after_id``, at most ``limit``.

    Filters by source, campaign or ``since`` walk ``delivery_spans`` in id order
    and read each candidate span's rows by id range; the clauses decide row by
    row, so a span only has to be a superset.  ``spans=False``: the clauses
    alone (they already pin a few ids)."""
    if limit is not None and limit <= 0:
        return []
    tail = " ORDER BY delivery_id" + (" LIMIT ?" if limit is not None else "")
    if (not spans or (filters.traffic_source is None and filters.campaign_id is None
                      and filters.since is None)
            or (filters.status is not None and _few(db, filters.status))):  # fmt: skip
        where = list(clauses)
        params = list(args)
        if after_id is not None:
            where.append("delivery_id > ?")
            params.append(after_id)
        if limit is not None:
            params.append(limit)
        sql = f"SELECT {columns} FROM deliveries"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        return db.execute(sql + tail, params).fetchall()
    # NOT INDEXED: each span is read by its rowid range, never through
    # deliveries_due (which a status clause would otherwise tempt the planner to)
    sql = f"SELECT {columns} FROM deliveries NOT INDEXED WHERE delivery_id BETWEEN ? AND ?"
    sql += "".join(f" AND {c}" for c in clauses) + tail
    after = after_id if after_id is not None else 0
    found: list[tuple[Any, ...]] = []
    for first, last in _spans(db, filters, after):
        params = [max(first, after + 1), last, *args]
        if limit is not None:
            params.append(limit - len(found))
        found.extend(db.execute(sql, params))
        if limit is not None and len(found) >= limit:
            break
    return found


#: A status with fewer deliveries than this is read through deliveries_due
#: (status, next_at) and sorted, rather than by walking spans: "failed for one
#: source" must not scan every delivery of that source.
_FEW = 5000


def _few(db: sqlite3.Connection, status: str) -> bool:
    (n,) = db.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM deliveries WHERE status = ? LIMIT ?)",
        (status, _FEW),
    ).fetchone()
    return bool(n < _FEW)


def _spans(db: sqlite3.Connection, filters: DeliveryFilter,
           after: int) -> Iterator[tuple[int, int]]:  # fmt: skip
    """(first_id, last_id) of the spans that may hold matching deliveries past
    ``after``, in id order, adjacent ones joined (within a page of spans)."""
    clauses, args = _where(filters, spans=True)
    where = ["first_id > ?", *clauses]
    sql = (f"SELECT first_id, last_id FROM delivery_spans WHERE {' AND '.join(where)}"
           f" ORDER BY first_id LIMIT {_SPAN_PAGE}")  # fmt: skip
    pending: tuple[int, int] | None = None
    # The one span that may hold ``after`` itself (spans never overlap): the
    # nearest at or below it, found by its key, kept if it matches and reaches past.
    holder = db.execute(
        "SELECT first_id, last_id FROM delivery_spans WHERE first_id ="
        " (SELECT MAX(first_id) FROM delivery_spans WHERE first_id <= ?) AND last_id > ?"
        + "".join(f" AND {c}" for c in clauses), (after, after, *args),
    ).fetchone()  # fmt: skip
    if holder is not None:
        pending = (holder[0], holder[1])
    cursor = after
    while True:
        page = db.execute(sql, (cursor, *args)).fetchall()
        for first, last in page:
            if pending is not None and first == pending[1] + 1:
                pending = (pending[0], last)
                continue
            if pending is not None:
                yield pending
            pending = (first, last)
        if len(page) < _SPAN_PAGE:
            break
        cursor = page[-1][0]
        if pending is not None:  # a page's worth at most: the caller may stop soon
            yield pending
            pending = None
    if pending is not None:
        yield pending


class _Finders:
    """The lookups ``commit_prepared``'s callback may make (inside its write transaction)."""

    __slots__ = ("clicks", "conversions")

    def __init__(self, clicks: Callable[[list[str]], dict[str, Click]],
                 conversions: Callable[[list[str]], dict[str, Conversion]]) -> None:  # fmt: skip
        self.clicks = clicks
        self.conversions = conversions


class SQLiteStore:
    """The one writer of a SQLite file.  Every method runs on the store's thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._next_delivery_id = 1
        # Jobs handed to the writer thread and jobs it has finished: each counter
        # has one writer (the event loop, the thread), so no lock; equal means
        # the thread is idle and only the loop can give it work.
        self._submitted = 0
        self._finished = 0
        #: SQLite has json_each/json_extract (3.38+, or a JSON1 build): the
        #: attempt log takes its one-parameter path (_record_attempts).
        self._json = False

    # -- plumbing -------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("store is not open")
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._job, fn, args)
        self._submitted += 1  # counted once handed over (a refused submit leaves no job)
        return await job

    def _job(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        finally:
            self._finished += 1  # last touch: the connection is free from here

    async def _call_inline(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` on the calling (event-loop) thread if the writer thread is idle.

        Safe because every job reaches the thread from the loop: while the loop
        runs ``fn`` nothing new can be handed over, so the connection has one
        user.  Worth it for short jobs: measured with bench/intake_wrk.sh, a
        group commit of ~60 conversions run inline costs ~8 us less CPU per
        conversion than the hop to the thread and back (executor queue, loop
        wake-up, GIL hand-offs), and the GIL kept the thread from overlapping
        much with the loop anyway.

        The loop never waits for a lock: inline, SQLite's busy timeout is 0, and
        if another connection holds the write lock (an operator's sqlite3 shell,
        say) the job rolls back and goes to the thread, which may wait.
        """
        if self._executor is None:
            raise RuntimeError("store is not open")
        if self._submitted != self._finished:
            return await self._call(fn, *args)
        db = self._conn
        db.execute("PRAGMA busy_timeout=0")
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in _BUSY or db.in_transaction:
                raise
        finally:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return await self._call(fn, *args)  # rolled back (_transaction): nothing was written

    @property
    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None
        return self._db

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             cached_statements=256)  # fmt: skip
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA foreign_keys=OFF")
        db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the hot index pages stay in memory
        # Checkpoints (WAL -> database file, with an fsync) run on their own thread
        # and connection; a group commit waits only for their short FULL step
        # (_checkpoint_loop).  After the WAL starts over, SQLite cuts the file back
        # to journal_size_limit (what a burst left behind).
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        db.execute("PRAGMA temp_store=MEMORY")
        self._add_spans(db)
        db.executescript(SCHEMA)
        self._db = db
        (seq,) = db.execute(
            "SELECT MAX(v) FROM (SELECT MAX(delivery_id) AS v FROM deliveries"
            " UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'deliveries')"
        ).fetchone()
        self._next_delivery_id = (seq or 0) + 1
        try:
            db.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchall()
            self._json = True
        except sqlite3.OperationalError:
            log.info("SQLite %s has no JSON functions: the delivery log binds rows instead",
                     sqlite3.sqlite_version)

    @staticmethod
    def _add_spans(db: sqlite3.Connection) -> None:
        """A file from before ``delivery_spans`` gets them, in one transaction."""
        tables = {name for (name,) in db.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table'")}  # fmt: skip
        if "deliveries" not in tables or "delivery_spans" in tables:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for ddl in _SPANS_DDL:
                db.execute(ddl)
            db.execute(_BACKFILL_SPANS)
            for index in _OLD_INDEXES:
                db.execute(f"DROP INDEX IF EXISTS {index}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info("delivery_spans added to an older file")

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("final checkpoint failed: %s", exc)
            self._db.close()
            self._db = None

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._conn
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        await self._call(self._open)
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()
        log.debug("opened %s", self.path)

    def _checkpoint_loop(self) -> None:
        """Checkpoint every CHECKPOINT_INTERVAL s, so the WAL starts over instead of growing.

        A PASSIVE checkpoint copies what is in the WAL without taking the write
        lock, but under steady intake new frames land while it copies, so it
        never catches up; SQLite only restarts the WAL from its first frame
        once every frame is copied, and until then the file grows without
        bound (194 MB in 8 s of bench/intake_wrk.sh) and every commit extends
        it (block allocation, zeroed partial blocks).  So a FULL checkpoint
        follows and copies the few frames that arrived meanwhile: it holds the
        write lock for that short moment (a commit waits for it on the store's
        thread), and the next commit rewrites the WAL from the start.
        """
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")
            while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    db.execute("PRAGMA wal_checkpoint(FULL)")
                except sqlite3.Error as exc:
                    log.debug("checkpoint skipped: %s", exc)
        finally:
            db.close()

    async def close(self) -> None:
        if self._executor is None:
            return
        self._stop_checkpoints.set()
        await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
        await self._call(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    # -- intake side ----------------------------------------------------------

    async def find_click(self, click_id: str) -> Click | None:
        found = await self.find_clicks([click_id])
        return found.get(click_id)

    async def find_clicks(self, click_ids: Iterable[str]) -> dict[str, Click]:
        ids = list(dict.fromkeys(click_ids))
        return await self._call(self._find_clicks, ids) if ids else {}

    def _find_clicks(self, ids: list[str]) -> dict[str, Click]:
        found: dict[str, Click] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for cid, camp, ts, created, tokens in self._conn.execute(
                "SELECT click_id, campaign_id, traffic_source, created_at, tokens"
                f" FROM clicks WHERE click_id IN ({marks})", chunk,
            ):  # fmt: skip
                found[cid] = Click(
                    click_id=cid, campaign_id=camp, traffic_source=ts, created_at=created,
                    tokens=_decode_tokens(tokens),
                )  # fmt: skip
        return found

    async def find_conversions(self, dedup_keys: Iterable[str]) -> dict[str, Conversion]:
        """Stored conversions by dedup key: the intake's duplicate/update decision."""
        keys = list(dict.fromkeys(dedup_keys))
        return await self._call(self._find_conversions, keys) if keys else {}

    def _find_conversions(self, keys: list[str]) -> dict[str, Conversion]:
        found: dict[str, Conversion] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for conv, cid, key, status, created, tokens in self._conn.execute(
                "SELECT conversion_id, click_id, dedup_key, status, created_at, tokens"
                f" FROM conversions WHERE dedup_key IN ({marks})", chunk,
            ):  # fmt: skip
                found[key] = Conversion(
                    conversion_id=conv, click_id=cid, dedup_key=key, status=status,
                    created_at=created, tokens=_decode_tokens(tokens),
                )  # fmt: skip
        return found

    async def find_conversion(self, dedup_key: str) -> Conversion | None:
        return (await self.find_conversions([dedup_key])).get(dedup_key)

    async def commit_prepared(
        self, prepare: Callable[[_Finders], tuple[Sequence[Click], Sequence[Conversion],
                                                  Sequence[NewDelivery], T]],
        *, inline: bool = False,
    ) -> tuple[CommitResult, T]:
        """Look up, decide and write in one write transaction, in one trip to the
        writer thread.

        ``prepare`` runs inside the transaction (``BEGIN IMMEDIATE`` holds the
        write lock), with lookups that see every earlier commit, so a group
        commit's dedup decisions and its writes cannot interleave with another
        writer's.  If ``prepare`` raises, nothing is written.  It
        returns the rows to write and anything else the caller wants back.
        ``inline=True`` runs the whole trip on the event loop when the writer
        thread is idle (``_call_inline``): for small batches, where blocking the
        loop for the commit costs less than the hop.
        """
        if inline:
            return await self._call_inline(self._commit_prepared, prepare)
        return await self._call(self._commit_prepared, prepare)

    def _commit_prepared(self, prepare: Any) -> tuple[CommitResult, Any]:
        # The lookups run inside the write transaction: they see exactly what the
        # writes build on, and they share its start (outside a transaction each
        # statement starts and ends a read transaction of its own: WAL read
        # marks, shm locks).
        def work(db: sqlite3.Connection) -> tuple[list[Delivery], Any]:
            clicks, conversions, deliveries, extra = prepare(
                _Finders(self._find_clicks, self._find_conversions)
            )
            return self._write_batch(db, clicks, conversions, deliveries), extra

        stored, extra = self._transaction(work)
        self._next_delivery_id += len(stored)
        return CommitResult(deliveries=stored), extra

    async def commit_batch(
        self,
        clicks: Sequence[Click],
        conversions: Sequence[Conversion],
        deliveries: Sequence[NewDelivery],
    ) -> CommitResult:
        """One transaction.  A conversion whose id exists is an update (new status)."""
        if not (clicks or conversions or deliveries):
            return CommitResult(deliveries=[])
        return await self._call(self._commit_batch, clicks, conversions, deliveries)

    def _commit_batch(
        self,
        clicks: Sequence[Click],
        conversions: Sequence[Conversion],
        deliveries: Sequence[NewDelivery],
    ) -> CommitResult:
        stored = self._transaction(
            lambda db: self._write_batch(db, clicks, conversions, deliveries)
        )
        self._next_delivery_id += len(stored)
        return CommitResult(deliveries=stored)

    def _write_batch(
        self,
        db: sqlite3.Connection,
        clicks: Sequence[Click],
        conversions: Sequence[Conversion],
        deliveries: Sequence[NewDelivery],
    ) -> list[Delivery]:
        """The rows, written in the open transaction; returns the deliveries, in the
        order given, numbered from ``_next_delivery_id`` (which the caller moves on
        once committed) group by group: each (traffic_source, campaign_id) gets a
        run of consecutive ids, one span."""
        first_id = self._next_delivery_id
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
            spans.append((ids[run[0]], ids[run[-1]], source, campaign,
                          max([deliveries[i].created_at for i in run])))  # fmt: skip
        groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        schedules: dict[tuple[float, ...], str] = {}  # a rule's schedule, encoded once
        for i, d in enumerate(deliveries):
            schedule = None
            if d.schedule is not None:
                steps = tuple(d.schedule)
                schedule = schedules.get(steps)
                if schedule is None:
                    schedule = schedules[steps] = _encode(d.schedule).decode()
            shared = (d.traffic_source, d.rule, d.method, d.not_before, d.max_attempts,
                      d.created_at, schedule, d.answer_rule)  # fmt: skip
            row = (ids[i], d.conversion_id, d.campaign_id, d.url, d.display_url, d.body,
                   d.host, d.click_time, d.expires_at)  # fmt: skip
            group = groups.get(shared)
            if group is None:
                groups[shared] = [row]
            else:
                group.append(row)
        if clicks:
            _execute_rows(db, _INSERT_CLICKS, _CLICK_VALUES, "", [
                (c.click_id, c.campaign_id, c.traffic_source, c.created_at, _encode(c.tokens))
                for c in clicks
            ])  # fmt: skip
        if conversions:
            _execute_rows(db, _INSERT_CONVERSIONS, _CONVERSION_VALUES, _UPSERT_CONVERSIONS, [
                (c.conversion_id, c.click_id, c.dedup_key, c.status, c.created_at,
                 c.created_at, _encode(c.tokens)) for c in conversions
            ])  # fmt: skip
        if groups:
            _insert_deliveries(db, groups)
            _execute_rows(db, _INSERT_SPANS, _SPAN_VALUES, "", spans)
        stored: list[Delivery] = []
        for i, d in enumerate(deliveries):
            if isinstance(d, Delivery):  # built as a Delivery already: just number it
                d.delivery_id = ids[i]
                d.status, d.attempts, d.next_at, d.updated_at = (
                    "queued", 0, d.not_before, d.created_at
                )
                stored.append(d)
            else:
                stored.append(Delivery(
                    **{f: getattr(d, f) for f in d.__struct_fields__},
                    delivery_id=ids[i], status="queued", attempts=0, next_at=d.not_before,
                    updated_at=d.created_at,
                ))  # fmt: skip
        return stored

    # -- delivery side --------------------------------------------------------

    async def due_deliveries(self, now: float, limit: int,
                             after: tuple[float, int] | None = None) -> list[Delivery]:  # fmt: skip
        return await self._call(self._due, now, limit, after)

    def _due(self, now: float, limit: int, after: tuple[float, int] | None) -> list[Delivery]:
        if after is None:
            cursor = self._conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = 'queued'"
                " AND next_at <= ? ORDER BY next_at, delivery_id LIMIT ?", (now, limit),
            )  # fmt: skip
        else:  # keyset paging along deliveries_due (status, next_at, rowid)
            cursor = self._conn.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = 'queued'"
                " AND next_at <= ? AND (next_at, delivery_id) > (?, ?)"
                " ORDER BY next_at, delivery_id LIMIT ?", (now, after[0], after[1], limit),
            )  # fmt: skip
        return [_delivery(row) for row in cursor]

    async def queued_count(self) -> int:
        return await self._call(self._queued_count)

    def _queued_count(self) -> int:
        # a range of the deliveries_due index: cost in proportion to the queue
        return int(self._conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'queued'").fetchone()[0])  # fmt: skip

    async def get_delivery(self, delivery_id: int) -> Delivery | None:
        return await self._call(self._get_delivery, delivery_id)

    def _get_delivery(self, delivery_id: int) -> Delivery | None:
        row = self._conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id = ?", (delivery_id,)
        ).fetchone()
        return None if row is None else _delivery(row)

    async def record_attempt(
        self,
        attempt: Attempt,
        *,
        status: DeliveryStatus,
        next_at: float | None,
        count_attempt: bool = True,
    ) -> None:
        await self._call(self._record_attempt, attempt, status, next_at, count_attempt)

    def _record_attempt(
        self, a: Attempt, status: DeliveryStatus, next_at: float | None, count: bool
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(_ADD_ATTEMPT, (a.delivery_id, a.started_at, a.url, a.status_code,
                                      a.error, a.latency_ms, a.body_prefix, a.outcome,
                                      a.reason))  # fmt: skip
            db.execute(_MOVE_DELIVERY, (status, next_at, 1 if count else 0, a.outcome, a.reason,
                                        a.started_at + a.latency_ms / 1000.0,
                                        a.delivery_id))  # fmt: skip

        self._transaction(work)

    # -- batch attempt log: added by the delivery engine (gateway/dispatch/recorder.py)
    # One transaction for many attempts, so the dispatcher's log keeps up with
    # its fan-out (one executor hop per attempt capped it at a fraction).

    async def record_attempts(
        self, items: Sequence[tuple[Attempt, DeliveryStatus, float | None, bool]]
    ) -> None:
        """``record_attempt`` for many (attempt, status, next_at, count_attempt) at once."""
        if items:
            await self._call(self._record_attempts, list(items))

    def _record_attempts(
        self, items: list[tuple[Attempt, DeliveryStatus, float | None, bool]]
    ) -> None:
        # The log is written on the store's thread while the event loop keeps
        # sending, and they share the GIL: what counts is how long this thread
        # holds it.  One JSON text (msgspec, in C) read by both statements
        # through json_each keeps the thread's Python work to building one tuple
        # per attempt; SQLite unpacks the JSON with the GIL released.  It costs
        # SQLite more CPU than binding the same values to multi-row statements
        # (about 3.5 against 2 us per attempt, store alone), but the loop gets
        # the GIL back sooner: bench/fanout.py went from 0.78-0.80 to 0.85-0.86
        # of the bare client loop (interleaved A/B, ten rounds each).
        flat = [
            (a.delivery_id, a.started_at, a.url, a.status_code, a.error, a.latency_ms,
             a.body_prefix, a.outcome, a.reason, status, next_at, 1 if count else 0,
             a.started_at + a.latency_ms / 1000.0)
            for a, status, next_at, count in items
        ]  # fmt: skip
        # A group naming one delivery twice (UPDATE ... FROM would pick one row)
        # goes row by row.
        grouped = len({f[0] for f in flat}) == len(flat)
        text = _encode(flat) if grouped and self._json else None
        if text is not None and b"\\u0000" in text:
            text = None  # SQLite's JSON functions cut a string at an escaped NUL

        def work(db: sqlite3.Connection) -> None:
            if text is not None:
                db.execute(_JSON_ATTEMPTS, (text,))
                db.execute(_JSON_MOVES, (text,))
            elif grouped:  # multi-row statements: fewer steps than executemany
                _execute_rows(db, _INSERT_ATTEMPTS, _ATTEMPT_VALUES, "", [f[:9] for f in flat])
                _execute_rows(db, _UPDATE_DELIVERIES, _MOVE_VALUES, _UPDATE_DELIVERIES_TAIL,
                              [(f[0], f[9], f[10], f[11], f[7], f[8], f[12]) for f in flat])
            else:
                db.executemany(_ADD_ATTEMPT, [f[:9] for f in flat])
                db.executemany(_MOVE_DELIVERY,
                               [(f[9], f[10], f[11], f[7], f[8], f[12], f[0]) for f in flat])

        self._transaction(work)

    # -- end of the delivery engine's addition

    async def list_deliveries(
        self, filters: DeliveryFilter, *, after_id: int | None, limit: int
    ) -> list[Delivery]:
        return await self._call(self._list, filters, after_id, limit)

    def _list(self, filters: DeliveryFilter, after_id: int | None, limit: int) -> list[Delivery]:
        clauses, args = _where(filters)
        rows = _matching(self._conn, _DELIVERY_COLUMNS, filters, clauses, args,
                         after_id=after_id, limit=max(0, limit))  # fmt: skip
        return [_delivery(row) for row in rows]

    async def list_attempts(self, delivery_id: int) -> list[Attempt]:
        return await self._call(self._attempts, delivery_id)

    def _attempts(self, delivery_id: int) -> list[Attempt]:
        cursor = self._conn.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ? ORDER BY attempt_id",
            (delivery_id,),
        )
        return [
            Attempt(
                delivery_id=d, started_at=s, url=u, status_code=c, error=e, latency_ms=lat,
                body_prefix=b, outcome=o, reason=r,
            )
            for d, s, u, c, e, lat, b, o, r in cursor
        ]  # fmt: skip

    async def requeue(
        self, filters: DeliveryFilter, *, ids: Sequence[int] | None, now: float
    ) -> list[Delivery]:
        """Failed deliveries (or the given ids, any finished status) go back to the queue
        with a fresh attempt budget; the attempt log keeps their history."""
        return await self._call(self._requeue, filters, None if ids is None else list(ids), now)

    def _requeue(
        self, filters: DeliveryFilter, ids: list[int] | None, now: float
    ) -> list[Delivery]:
        if ids is None and filters.status is None:
            filters = msgspec.structs.replace(filters, status="failed")  # the default
        clauses, args = _where(filters)
        if ids is not None:
            if not ids:
                return []
            clauses.append(f"delivery_id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
            if filters.status is None:
                clauses.append("status != 'queued'")

        def work(db: sqlite3.Connection) -> list[Delivery]:
            picked = [r[0] for r in _matching(db, "delivery_id", filters, clauses, args,
                                               spans=ids is None)]  # fmt: skip
            if not picked:
                return []
            marks = ",".join("?" * len(picked))
            db.execute(
                "UPDATE deliveries SET status = 'queued', attempts = 0, next_at = ?,"
                f" not_before = ?, updated_at = ? WHERE delivery_id IN ({marks})",
                (now, now, now, *picked),
            )
            cursor = db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE delivery_id IN ({marks})"
                " ORDER BY delivery_id", picked,
            )  # fmt: skip
            return [_delivery(row) for row in cursor]

        return self._transaction(work)

    async def purge(self, older_than: float) -> int:
        return await self._call(self._purge, older_than)

    def _purge(self, older_than: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            finished = "status != 'queued' AND updated_at < ?"
            db.execute(
                f"DELETE FROM attempts WHERE delivery_id IN"
                f" (SELECT delivery_id FROM deliveries WHERE {finished})", (older_than,),
            )  # fmt: skip
            deleted = db.execute(f"DELETE FROM deliveries WHERE {finished}",
                                 (older_than,)).rowcount  # fmt: skip
            db.execute(_TRIM_SPANS)  # they can no longer match anything
            return int(deleted)

        return self._transaction(work)

    async def counts(self) -> dict[str, int]:
        """Rows per table and deliveries per status (tests, health, metrics)."""
        return await self._call(self._counts)

    def _counts(self) -> dict[str, int]:
        db = self._conn
        out = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
               for t in ("clicks", "conversions", "deliveries", "attempts")}  # fmt: skip
        for status, n in db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"):
            out[f"deliveries.{status}"] = n
        return out

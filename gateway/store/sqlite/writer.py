"""The one connection that writes a SQLite file, its thread, and the checkpoint thread.

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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = (
    "BUSY_TIMEOUT_MS",
    "CHECKPOINT_BUSY_MS",
    "CHECKPOINT_INTERVAL",
    "WAL_SIZE_LIMIT",
    "Writer",
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long the writer thread waits for another connection's write lock.
BUSY_TIMEOUT_MS = 5000
#: SQLITE_BUSY and SQLITE_LOCKED: another connection holds what we need.
_BUSY = frozenset((sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))
#: Seconds between background WAL checkpoints: the WAL holds about this much
#: intake, so it stays small enough to stay in the page cache.
CHECKPOINT_INTERVAL = 0.25
#: How long the checkpoint thread waits for the write lock (a group commit).
CHECKPOINT_BUSY_MS = 100
#: The WAL file is cut back to this size after it starts over (a burst's growth).
WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("PRAGMA cache_size=-65536")  # 64 MiB: the hot index pages stay in memory
    # Checkpoints (WAL -> database file, with an fsync) run on their own thread
    # and connection; a group commit waits only for their short FULL step
    # (Writer._checkpoint_loop).  After the WAL starts over, SQLite cuts the
    # file back to journal_size_limit (what a burst left behind).
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    db.execute("PRAGMA temp_store=MEMORY")
    return db


class Writer:
    """One connection to ``path``, used by one job at a time: on its own thread
    (``call``) or, while that thread is idle, on the event loop (``call_inline``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        # Jobs handed to the writer thread and jobs it has finished: each counter
        # has one writer (the event loop, the thread), so no lock; equal means
        # the thread is idle and only the loop can give it work.
        self._submitted = 0
        self._finished = 0
        self._busy_ms = BUSY_TIMEOUT_MS  # the connection's busy timeout now (_connect's)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the writer thread, after the jobs handed over before it."""
        if self._executor is None:
            raise RuntimeError("store is not open")
        job = asyncio.get_running_loop().run_in_executor(self._executor, self._job, fn, args)
        self._submitted += 1  # counted once handed over (a refused submit leaves no job)
        return await job

    def _job(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._db is not None:  # the thread may wait for another connection's lock
                self._busy_timeout(BUSY_TIMEOUT_MS)
            return fn(*args)
        finally:
            self._finished += 1  # last touch: the connection is free from here

    async def call_inline(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` on the calling (event-loop) thread if the writer thread is idle.

        Safe because every job reaches the thread from the loop: while the loop
        runs ``fn`` nothing new can be handed over, so the connection has one
        user.  Worth it for short jobs: the hop to the thread and back (executor
        queue, loop wake-up, GIL hand-offs) costs more than the job itself, and
        the GIL keeps the thread from overlapping much with the loop anyway.

        The loop never waits for a lock: inline, SQLite's busy timeout is 0, and
        if another connection holds the write lock (an operator's sqlite3 shell,
        say) the job rolls back and goes to the thread, which may wait.
        """
        if self._executor is None:
            raise RuntimeError("store is not open")
        if self._submitted != self._finished:
            return await self.call(fn, *args)
        self._busy_timeout(0)
        try:
            return fn(*args)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in _BUSY or self.conn.in_transaction:
                raise
        return await self.call(fn, *args)  # rolled back (transaction): nothing was written

    def _busy_timeout(self, ms: int) -> None:
        """Give the connection this busy timeout: 0 for jobs on the loop, which
        must not wait, BUSY_TIMEOUT_MS on the thread.  A PRAGMA only when it
        changes, not two per job: under load nearly every job runs inline."""
        if self._busy_ms != ms:
            self.conn.execute(f"PRAGMA busy_timeout={ms}")
            self._busy_ms = ms

    @property
    def is_open(self) -> bool:
        return self._executor is not None and self._db is not None

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; only for code running as the current job."""
        assert self._db is not None
        return self._db

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(db)`` inside ``BEGIN IMMEDIATE`` (the write lock), committed, or
        rolled back if it raises."""
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Connect on the writer thread, run ``setup`` (schema, state) there, and
        start the checkpoint thread.  Opening an open writer does nothing."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        await self.call(self._open, setup)
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()
        log.debug("opened %s", self.path)

    def _open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        db = _connect(self.path)
        setup(db)
        self._db, self._busy_ms = db, BUSY_TIMEOUT_MS

    def _checkpoint_loop(self) -> None:
        """Checkpoint every CHECKPOINT_INTERVAL s, so the WAL starts over instead of growing.

        A PASSIVE checkpoint copies what is in the WAL without taking the write
        lock, but under steady intake new frames land while it copies, so it
        never catches up; SQLite only restarts the WAL from its first frame
        once every frame is copied, and until then the file grows without
        bound and every commit extends it (block allocation, zeroed partial
        blocks).  So a FULL checkpoint follows and copies the few frames that
        arrived meanwhile: it holds the write lock for that short moment (a
        commit waits for it on the writer thread), and the next commit
        rewrites the WAL from the start.
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
        """Stop the checkpoints, checkpoint the whole WAL once more, close.
        Closing a closed writer does nothing."""
        if self._executor is None:
            return
        self._stop_checkpoints.set()
        await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
        await self.call(self._close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("final checkpoint failed: %s", exc)
            self._db.close()
            self._db = None

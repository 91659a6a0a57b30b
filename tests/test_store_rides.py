"""Attempt groups riding the next intake commit (``gateway.store.sqlite.rides``).

Every test runs the real SQLite store on a file and reads what SQLite itself
executed (the connection's trace callback): which transaction a group's rows
went into, and that a group's failure stays its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from gateway.store.base import NOTHING_WANTED, AttemptRecord, Delivery, Found, Wanted, Writes
from gateway.store.sqlite import INLINE_MAX, SQLiteStore
from gateway.store.sqlite.rides import RIDE_WAIT
from tests.store_helpers import attempt, click, conversion, new_delivery, write_rows


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "g.sqlite")
    await s.open()
    yield s
    await s.close()


class Trace:
    """The statements SQLite ran on the store's connection, as transactions."""

    def __init__(self, store: SQLiteStore) -> None:
        self.statements: list[str] = []
        store._conn.set_trace_callback(self.statements.append)

    def transactions(self) -> list[list[str]]:
        out: list[list[str]] = []
        for sql in self.statements:
            if sql == "BEGIN IMMEDIATE":
                out.append([])
            elif out:
                out[-1].append(sql)
        return out


def _retry(delivery_id: int) -> AttemptRecord:
    return (attempt(delivery_id), "queued", 2e9, True)


def _unbindable(delivery_id: int) -> AttemptRecord:
    """An attempt SQLite cannot bind (its URL is not text): its group fails."""
    bad = msgspec.structs.replace(attempt(delivery_id), url=object())  # type: ignore[arg-type]
    return (bad, "queued", 2e9, True)


async def _deliveries(store: SQLiteStore, n: int) -> list[Delivery]:
    return await write_rows(
        store,
        [click(i) for i in range(1, n + 1)],
        [conversion(i) for i in range(1, n + 1)],
        [new_delivery(f"v{i}") for i in range(1, n + 1)],
    )


async def _intake(store: SQLiteStore, i: int, wanted: Wanted = NOTHING_WANTED) -> None:
    writes = Writes(clicks=[click(i)])
    await store.commit_group(wanted, lambda found: (writes, None))


def _writes_attempts(transaction: list[str]) -> bool:
    return any(sql.startswith("INSERT INTO attempts") for sql in transaction)


async def test_a_group_rides_the_next_intake_commit(store: SQLiteStore) -> None:
    (d,) = await _deliveries(store, 1)  # an intake commit: intake is active
    trace = Trace(store)
    recorded = asyncio.ensure_future(store.record_attempts([_retry(d.delivery_id)]))
    await asyncio.sleep(0)
    assert not recorded.done()  # waiting for a ride, not committed yet
    await _intake(store, 50)
    await asyncio.wait_for(recorded, 1.0)
    (only,) = trace.transactions()  # one transaction wrote both
    assert _writes_attempts(only) and any("INTO clicks" in sql for sql in only)
    assert "SAVEPOINT attempt_group" in only
    assert [a.outcome for a in await store.list_attempts(d.delivery_id)] == ["retry"]
    stored = await store.get_delivery(d.delivery_id)
    assert stored is not None and stored.attempts == 1 and stored.next_at == 2e9


async def test_with_no_intake_about_a_group_commits_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    try:
        (d,) = await _deliveries(store, 1)
        await store.close()
        store = SQLiteStore(tmp_path / "g.sqlite")
        await store.open()  # a fresh store: no intake commit yet
        trace = Trace(store)
        await store.record_attempts([_retry(d.delivery_id)])  # nothing else runs
        (own,) = trace.transactions()
        assert _writes_attempts(own) and "SAVEPOINT attempt_group" not in own
    finally:
        await store.close()


async def test_the_wait_for_a_ride_ends(store: SQLiteStore) -> None:
    (d,) = await _deliveries(store, 1)
    trace = Trace(store)
    # no intake commit follows: after RIDE_WAIT the group goes on its own
    await asyncio.wait_for(store.record_attempts([_retry(d.delivery_id)]), 50 * RIDE_WAIT + 1)
    (own,) = trace.transactions()
    assert _writes_attempts(own) and not any("INTO clicks" in sql for sql in own)
    assert len(await store.list_attempts(d.delivery_id)) == 1


async def test_a_failing_group_never_fails_a_conversion(store: SQLiteStore) -> None:
    d1, d2 = await _deliveries(store, 2)
    good = asyncio.ensure_future(store.record_attempts([_retry(d1.delivery_id)]))
    bad = asyncio.ensure_future(store.record_attempts([_unbindable(d2.delivery_id)]))
    await asyncio.sleep(0)
    await _intake(store, 50)  # commits, whatever the groups do
    await asyncio.wait_for(good, 1.0)
    with pytest.raises(Exception, match="bind|type"):
        await asyncio.wait_for(bad, 1.0)
    assert (await store.counts())["clicks"] == 3
    assert len(await store.list_attempts(d1.delivery_id)) == 1
    assert await store.list_attempts(d2.delivery_id) == []  # rolled back alone
    stored = await store.get_delivery(d2.delivery_id)
    assert stored is not None and stored.attempts == 0


async def test_a_group_whose_intake_commit_rolls_back_is_written_alone(
    store: SQLiteStore,
) -> None:
    (d,) = await _deliveries(store, 1)
    recorded = asyncio.ensure_future(store.record_attempts([_retry(d.delivery_id)]))
    await asyncio.sleep(0)

    def decide(found: Found) -> tuple[Writes, None]:
        raise ValueError("bad rule")

    with pytest.raises(ValueError):
        await store.commit_group(NOTHING_WANTED, decide)
    await asyncio.wait_for(recorded, 1.0)
    assert len(await store.list_attempts(d.delivery_id)) == 1


async def test_a_commit_on_the_writer_thread_leaves_the_groups_waiting(
    store: SQLiteStore,
) -> None:
    """The waiting groups belong to the event loop: a group commit on the writer
    thread does not take them; they go on their own."""
    (d,) = await _deliveries(store, 1)
    trace = Trace(store)
    recorded = asyncio.ensure_future(store.record_attempts([_retry(d.delivery_id)]))
    await asyncio.sleep(0)
    await _intake(store, 50, Wanted(click_ids=[], dedup_keys=[], size=INLINE_MAX + 1))
    await asyncio.wait_for(recorded, 1.0)
    intake, own = trace.transactions()
    assert not _writes_attempts(intake) and _writes_attempts(own)


async def test_close_writes_the_waiting_groups(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    (d,) = await _deliveries(store, 1)
    recorded = asyncio.ensure_future(store.record_attempts([_retry(d.delivery_id)]))
    await asyncio.sleep(0)
    await store.close()
    await asyncio.wait_for(recorded, 1.0)
    again = SQLiteStore(tmp_path / "g.sqlite")
    await again.open()
    try:
        assert len(await again.list_attempts(d.delivery_id)) == 1
    finally:
        await again.close()

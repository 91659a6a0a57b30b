"""What only the SQLite store promises: its writer thread and inline commits, WAL
and checkpoints, multi-row statements, and files written by older versions.

What every backend promises is in ``test_store_contract.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store.base import ConversionFilter, DeliveryFilter, Found, NewDelivery, Wanted, Writes
from gateway.store.sqlite import INLINE_MAX, SQLiteStore, lookups
from gateway.store.sqlite import writer as sqlite_writer
from gateway.store.sqlite.writer import BUSY_TIMEOUT_MS
from tests.store_helpers import NOW, click, conversion, new_delivery

_click, _conv, _delivery = click, conversion, new_delivery


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "g.sqlite")
    await s.open()
    yield s
    await s.close()


async def test_conveniences_find_and_count_what_commit_batch_wrote(store: SQLiteStore) -> None:
    """``commit_batch``, ``find_*`` and ``counts``: SQLite-only helpers for tests
    and benchmarks (production writes through ``commit_group``)."""
    result = await store.commit_batch(
        [_click(1), _click(2)], [_conv(1)], [_delivery(), _delivery()]
    )
    ids = [d.delivery_id for d in result.deliveries]
    assert ids == [ids[0], ids[0] + 1]
    assert (await store.commit_batch([], [], [])).deliveries == []
    click_ = await store.find_click("c1")
    assert click_ is not None and click_.tokens == {"externalid": "x1"}
    assert await store.find_click("nope") is None
    assert await store.find_clicks([]) == {} and await store.find_conversions([]) == {}
    conv = await store.find_conversion("c1|t:1")
    assert conv is not None and conv.status == "approved"
    counts = await store.counts()
    assert (counts["clicks"], counts["conversions"], counts["deliveries"]) == (2, 1, 2)
    assert counts["deliveries.queued"] == 2 and counts["attempts"] == 0


async def test_conversion_update_keeps_one_row(store: SQLiteStore) -> None:
    await store.commit_batch([], [_conv(1, "pending")], [])
    await store.commit_batch([], [_conv(1, "approved")], [])
    found = await store.find_conversions(["c1|t:1"])
    assert found["c1|t:1"].status == "approved"
    assert (await store.counts())["conversions"] == 1


async def test_a_file_from_before_the_conversions_key_change_still_updates(tmp_path: Path) -> None:
    """Files made when conversion_id was the table's PRIMARY KEY keep that index;
    the upsert (now on dedup_key) works on both shapes."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE conversions (conversion_id TEXT PRIMARY KEY, click_id TEXT,"
            " dedup_key TEXT NOT NULL UNIQUE, status TEXT NOT NULL, created_at REAL NOT NULL,"
            " updated_at REAL NOT NULL, tokens BLOB NOT NULL)"
        )
    old = SQLiteStore(path)
    await old.open()
    try:
        await old.commit_batch([], [_conv(1, "pending")], [])
        await old.commit_batch([], [_conv(1, "approved")], [])
        assert (await old.find_conversions(["c1|t:1"]))["c1|t:1"].status == "approved"
        assert (await old.counts())["conversions"] == 1
    finally:
        await old.close()


async def test_ids_survive_reopen_and_wal_is_on(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    s = SQLiteStore(path)
    await s.open()
    first = (await s.commit_batch([], [], [_delivery()])).deliveries[0].delivery_id
    await s.close()
    s = SQLiteStore(path)
    await s.open()
    second = (await s.commit_batch([], [], [_delivery()])).deliveries[0].delivery_id
    await s.close()
    assert second == first + 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"deliveries_due", "delivery_spans_source", "delivery_spans_campaign"} <= names
    assert not names & {"deliveries_source", "deliveries_campaign", "deliveries_created"}


@pytest.mark.parametrize("n", [1, 7, 64, 300, 777])
async def test_multi_row_inserts_keep_order_and_ids(store: SQLiteStore, n: int) -> None:
    """Rows go in as multi-row INSERT chunks (256, 128, ..., 1): every row, in order."""
    clicks = [_click(i) for i in range(n)]
    convs = [_conv(i) for i in range(n)]
    result = await store.commit_batch(clicks, convs, [_delivery(f"v{i}") for i in range(n)])
    ids = [d.delivery_id for d in result.deliveries]
    assert ids == list(range(ids[0], ids[0] + n))
    stored = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=n + 1)
    assert [(d.delivery_id, d.conversion_id) for d in stored] == [
        (ids[i], f"v{i}") for i in range(n)
    ]
    assert stored[-1].schedule == [1.0, 2.0] and stored[-1].status == "queued"
    counts = await store.counts()
    assert (counts["clicks"], counts["conversions"], counts["deliveries"]) == (n, n, n)
    # the same rows again: clicks are ignored, conversions become updates (one row each)
    again = await store.commit_batch(clicks, [_conv(i, "rejected") for i in range(n)], [])
    assert again.deliveries == []
    counts = await store.counts()
    assert (counts["clicks"], counts["conversions"]) == (n, n)
    last = await store.find_conversion(f"c{n - 1}|t:{n - 1}")
    assert last is not None and last.status == "rejected"


def _decide_on(seen: list[int], i: int) -> Callable[[Found], tuple[Writes, int]]:
    """A decide that writes one click and notes the thread it ran on."""

    def decide(found: Found) -> tuple[Writes, int]:
        seen.append(threading.get_ident())
        return Writes(clicks=[_click(i)]), i

    return decide


#: A group small enough to commit on the event loop while the writer is idle.
SMALL = Wanted(click_ids=[], dedup_keys=[], size=1)
#: A group that always commits on the writer thread.
LARGE = Wanted(click_ids=[], dedup_keys=[], size=INLINE_MAX + 1)


async def test_a_small_group_commits_on_the_loop_only_while_the_writer_is_idle(
    store: SQLiteStore,
) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    _, extra = await store.commit_group(SMALL, _decide_on(seen, 1))
    assert extra == 1 and seen == [loop_thread]  # idle writer: run in place

    gate = threading.Event()
    busy = asyncio.ensure_future(store._call(gate.wait, 5.0))  # the writer thread is taken
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(store.commit_group(SMALL, _decide_on(seen, 2)))
    await asyncio.sleep(0.01)
    assert len(seen) == 1 and not second.done()  # queued behind the job, not run beside it
    gate.set()
    await busy
    await second
    assert seen[1] != loop_thread  # it went to the writer thread
    _, extra = await store.commit_group(SMALL, _decide_on(seen, 3))
    assert seen[2] == loop_thread  # idle again once the thread's jobs are done
    assert (await store.counts())["clicks"] == 3


async def test_a_large_group_commits_on_the_writer_thread(store: SQLiteStore) -> None:
    seen: list[int] = []
    _, extra = await store.commit_group(LARGE, _decide_on(seen, 1))  # the writer is idle
    assert extra == 1 and len(seen) == 1 and seen[0] != threading.get_ident()
    at_the_limit = Wanted(click_ids=[], dedup_keys=[], size=INLINE_MAX)
    await store.commit_group(at_the_limit, _decide_on(seen, 2))
    assert seen[1] == threading.get_ident()
    assert (await store.counts())["clicks"] == 2


async def test_a_failing_job_leaves_the_writer_idle(store: SQLiteStore) -> None:
    def boom() -> None:
        raise sqlite3.OperationalError("boom")

    with pytest.raises(sqlite3.OperationalError):
        await store._call(boom)
    seen: list[int] = []
    await store.commit_group(SMALL, _decide_on(seen, 1))
    assert seen == [threading.get_ident()]


async def test_an_inline_commit_never_waits_for_another_connections_lock(
    store: SQLiteStore,
) -> None:
    """An operator's shell holding the write lock: the inline commit hands the job
    to the writer thread, which waits, while the event loop keeps running."""
    seen: list[int] = []
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock
        started = time.monotonic()
        commit = asyncio.ensure_future(store.commit_group(SMALL, _decide_on(seen, 1)))
        for _ in range(20):  # the loop runs on while the commit waits on the thread
            await asyncio.sleep(0.005)
        # not blocked for the busy timeout (5 s), however slow the machine
        assert time.monotonic() - started < BUSY_TIMEOUT_MS / 2000
        assert not commit.done()
        other.execute("ROLLBACK")
        _, extra = await asyncio.wait_for(commit, 5.0)
    finally:
        other.close()
    # the lock was found before anything was decided: decide ran once, on the thread
    assert extra == 1 and len(seen) == 1 and seen[0] != threading.get_ident()
    assert (await store.counts())["clicks"] == 1
    seen.clear()
    await store.commit_group(SMALL, _decide_on(seen, 2))  # inline again
    assert seen == [threading.get_ident()]


@pytest.mark.parametrize("wanted_size", [1, INLINE_MAX + 1], ids=["inline", "thread"])
async def test_lookups_and_writes_share_one_write_transaction(
    store: SQLiteStore, wanted_size: int
) -> None:
    """While the group looks up and decides, no other connection can write: what
    it read is what its writes build on (another process's conversion with the
    same dedup key cannot slip in between)."""
    await store.commit_batch([_click(1)], [], [])
    other = sqlite3.connect(store.path, isolation_level=None, timeout=0, check_same_thread=False)
    refused: list[str] = []

    def decide(found: Found) -> tuple[Writes, None]:
        assert found.conversions == {} and list(found.clicks) == ["c1"]
        try:
            other.execute(
                "INSERT INTO conversions VALUES ('x', 'c1', 'c1|t:1', 'approved', 0, 0, '{}')"
            )
        except sqlite3.OperationalError as exc:
            refused.append(str(exc))
        return Writes(conversions=[_conv(1)], deliveries=[_delivery("v1")]), None

    wanted = Wanted(click_ids=["c1"], dedup_keys=["c1|t:1"], size=wanted_size)
    try:
        committed, _ = await store.commit_group(wanted, decide)
    finally:
        other.close()
    assert refused == ["database is locked"]
    assert [d.conversion_id for d in committed.deliveries] == ["v1"]
    stored = await store.find_conversion("c1|t:1")
    assert stored is not None and stored.conversion_id == "v1"


async def test_a_raising_decide_leaves_no_transaction_open(store: SQLiteStore) -> None:
    def decide(found: Found) -> tuple[Writes, None]:
        raise ValueError("bad rule")

    with pytest.raises(ValueError, match="bad rule"):
        await store.commit_group(Wanted(click_ids=["c1"], dedup_keys=[], size=1), decide)
    assert not store._conn.in_transaction
    await store.commit_batch([_click(2)], [], [])  # the connection is usable
    assert (await store.counts())["clicks"] == 1


def _wal_generation(path: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time the
    WAL starts over from its first frame."""
    with open(f"{path}-wal", "rb") as wal:
        return int.from_bytes(wal.read(16)[12:16], "big")


async def test_the_wal_starts_over_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits back to back never leave a PASSIVE checkpoint a quiet moment to
    finish in; without the FULL step the WAL only grew."""
    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_INTERVAL", 0.05)
    path = tmp_path / "g.sqlite"
    s = SQLiteStore(path)
    await s.open()
    try:
        await s.commit_batch([_click(0)], [], [])
        first = _wal_generation(path)
        i, deadline = 1, time.monotonic() + 4.0
        while _wal_generation(path) - first < 4 and time.monotonic() < deadline:
            await s.commit_batch(
                [_click(i + k) for k in range(20)], [], [_delivery(f"v{i + k}") for k in range(20)]
            )
            i += 20
        restarts = _wal_generation(path) - first
    finally:
        await s.close()
    assert restarts >= 4, f"the WAL started over {restarts} times in 4 s ({i} rows written)"


_pick = st.sampled_from
_new_deliveries = st.lists(
    st.builds(
        NewDelivery,
        conversion_id=st.text("abcXYZ019", min_size=1, max_size=8),
        traffic_source=_pick(["exoclick", "propeller"]),
        campaign_id=_pick(["c1", "c2", "c3"]),
        rule=_pick(["global", "campaign:pb"]),
        method=_pick(["GET", "POST"]),
        url=st.text(max_size=30).map(lambda t: "https://h.example/?" + t),
        display_url=st.text(max_size=30),
        body=st.none() | st.text(max_size=20),
        host=_pick(["h.example", "i.example"]),
        click_time=st.none() | st.floats(0, 4e9),
        not_before=_pick([NOW, NOW + 600]),
        max_attempts=_pick([1, 9]),
        created_at=st.just(NOW),
        schedule=st.none() | _pick([[10.0, 60.0], [0.5]]),
        expires_at=st.none() | st.floats(0, 4e9),
        answer_rule=st.none() | _pick(["exoclick"]),
    ),
    min_size=1,
    max_size=300,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=_new_deliveries)
def test_grouped_delivery_insert_stores_every_field(
    tmp_path: Path, batch: list[NewDelivery]
) -> None:
    """Deliveries are written in groups sharing their rule-level values (bound
    once per statement); every field must come back as given, ids in order."""

    async def run() -> None:
        s = SQLiteStore(tmp_path / f"g{abs(hash(repr(batch)))}.sqlite")
        await s.open()
        try:
            committed = (await s.commit_batch([], [], batch)).deliveries
            ids = [d.delivery_id for d in committed]
            assert sorted(ids) == list(range(min(ids), min(ids) + len(batch)))
            runs: dict[tuple[str, str], list[int]] = {}  # one run of ids per span
            for d in committed:
                runs.setdefault((d.traffic_source, d.campaign_id), []).append(d.delivery_id)
            for run in runs.values():
                assert run == list(range(run[0], run[0] + len(run)))
            for given_, d in zip(batch, committed, strict=True):
                stored = await s.get_delivery(d.delivery_id)
                assert stored is not None
                for field in NewDelivery.__struct_fields__:
                    assert getattr(stored, field) == getattr(given_, field), field
                assert (stored.status, stored.attempts, stored.next_at, stored.updated_at) == (
                    "queued",
                    0,
                    given_.not_before,
                    given_.created_at,
                )
        finally:
            await s.close()

    asyncio.run(run())


async def test_a_clicks_conversions_are_found_through_the_dedup_key(tmp_path: Path) -> None:
    """No index of its own on ``conversions.click_id`` (every conversion would write
    a random leaf of it); the lookup is a range of the dedup key's index."""
    path = tmp_path / "old.sqlite"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    old = sqlite3.connect(path)  # as a file from before: with the click index
    old.execute("CREATE INDEX conversions_click ON conversions (click_id)")
    old.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.commit_batch([], [_conv(1), _conv(10), _conv(2)], [])
        found = await store.find_conversions_by(ConversionFilter(click_id="c1"), limit=10)
        assert [c.conversion_id for c in found] == ["v1"]  # not c10's, whose key shares "c1"
        db = sqlite3.connect(path)
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_schema WHERE type='index'")}
        assert "conversions_click" not in indexes
        plan = " ".join(
            row[-1]
            for row in db.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM conversions WHERE " + lookups._OF_CLICK,
                lookups._of_click_args("c1"),
            )
        )
        db.close()
        assert "USING INDEX sqlite_autoindex_conversions_1" in plan, plan
    finally:
        await store.close()

"""The SQLite store against a real file: intake writes and the delivery side."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store import sqlite as sqlite_store
from gateway.store.base import Attempt, Click, Conversion, DeliveryFilter, NewDelivery
from gateway.store.sqlite import BUSY_TIMEOUT_MS, SQLiteStore

NOW = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "g.sqlite")
    await s.open()
    yield s
    await s.close()


def _click(i: int = 1) -> Click:
    return Click(click_id=f"c{i}", campaign_id="camp", traffic_source="ts", created_at=NOW,
                 tokens={"externalid": f"x{i}"})  # fmt: skip


def _conv(i: int = 1, status: str = "approved") -> Conversion:
    return Conversion(conversion_id=f"v{i}", click_id=f"c{i}", dedup_key=f"c{i}|t:{i}",
                      status=status, created_at=NOW, tokens={"payout": "1.5"})  # type: ignore[arg-type]  # fmt: skip


def _delivery(conv: str = "v1", *, source: str = "ts", campaign: str = "camp",
              not_before: float = NOW, created: float = NOW) -> NewDelivery:  # fmt: skip
    return NewDelivery(
        conversion_id=conv, traffic_source=source, campaign_id=campaign, rule="global",
        method="GET", url="https://h.example/pb?g=SECRET", display_url="https://h.example/pb?g=***",
        body=None, host="h.example", click_time=NOW - 5, not_before=not_before, max_attempts=3,
        created_at=created, schedule=[1.0, 2.0], expires_at=NOW + 100, answer_rule="exoclick",
    )


def _attempt(delivery_id: int, outcome: str = "retry") -> Attempt:
    return Attempt(delivery_id=delivery_id, started_at=NOW + 1, url="https://h.example/pb?g=***",
                   status_code=503, error=None, latency_ms=12.5, body_prefix="busy",
                   outcome=outcome, reason="HTTP 503")  # fmt: skip


async def test_commit_batch_writes_everything_and_numbers_deliveries(store: SQLiteStore) -> None:
    result = await store.commit_batch(
        [_click(1), _click(2)], [_conv(1)], [_delivery(), _delivery()]
    )
    ids = [d.delivery_id for d in result.deliveries]
    assert ids == [ids[0], ids[0] + 1]
    assert all(d.status == "queued" and d.next_at == NOW for d in result.deliveries)
    click = await store.find_click("c1")
    assert click is not None and click.tokens == {"externalid": "x1"}
    assert await store.find_click("nope") is None
    conv = await store.find_conversion("c1|t:1")
    assert conv is not None and conv.status == "approved"
    listed = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=10)
    assert listed == result.deliveries


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
        )  # fmt: skip
    old = SQLiteStore(path)
    await old.open()
    try:
        await old.commit_batch([], [_conv(1, "pending")], [])
        await old.commit_batch([], [_conv(1, "approved")], [])
        assert (await old.find_conversions(["c1|t:1"]))["c1|t:1"].status == "approved"
        assert (await old.counts())["conversions"] == 1
    finally:
        await old.close()


async def test_due_deliveries_page_by_next_at_then_id(store: SQLiteStore) -> None:
    times = [NOW + 5, NOW, NOW + 5, NOW + 1, NOW, NOW + 5, NOW + 2]
    res = await store.commit_batch([], [], [_delivery(not_before=t) for t in times])
    expected = sorted(res.deliveries, key=lambda d: (d.not_before, d.delivery_id))
    pages: list[list[int]] = []
    after = None
    while True:
        page = await store.due_deliveries(NOW + 10, 3, after)
        pages.append([d.delivery_id for d in page])
        if len(page) < 3:
            break
        after = (page[-1].next_at or 0.0, page[-1].delivery_id)
    assert [i for p in pages for i in p] == [d.delivery_id for d in expected]
    assert [len(p) for p in pages] == [3, 3, 1]


async def test_due_record_attempt_and_log(store: SQLiteStore) -> None:
    res = await store.commit_batch([], [], [_delivery(), _delivery(not_before=NOW + 60)])
    first, later = res.deliveries
    due = await store.due_deliveries(NOW, 10)
    assert [d.delivery_id for d in due] == [first.delivery_id]
    await store.record_attempt(_attempt(first.delivery_id), status="queued", next_at=NOW + 10)
    assert await store.due_deliveries(NOW + 5, 10) == []
    assert {d.delivery_id for d in await store.due_deliveries(NOW + 60, 10)} == {
        first.delivery_id, later.delivery_id}  # fmt: skip
    await store.record_attempt(
        _attempt(first.delivery_id, "delivered"), status="delivered", next_at=None
    )
    await store.record_attempt(_attempt(later.delivery_id, "paused"), status="queued",
                               next_at=NOW + 90, count_attempt=False)  # fmt: skip
    stored = await store.get_delivery(first.delivery_id)
    assert stored is not None and stored.status == "delivered" and stored.attempts == 2
    assert stored.last_outcome == "delivered" and stored.schedule == [1.0, 2.0]
    paused = await store.get_delivery(later.delivery_id)
    assert paused is not None and paused.attempts == 0 and paused.next_at == NOW + 90
    log = await store.list_attempts(first.delivery_id)
    assert [a.outcome for a in log] == ["retry", "delivered"]
    assert log[0].status_code == 503 and log[0].body_prefix == "busy"


async def test_list_filters_and_cursor(store: SQLiteStore) -> None:
    news = [_delivery(source="a" if i % 2 else "b", campaign=f"k{i % 3}", created=NOW + i)
            for i in range(10)]  # fmt: skip
    res = await store.commit_batch([], [], news)
    ids = sorted(d.delivery_id for d in res.deliveries)
    page1 = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=4)
    page2 = await store.list_deliveries(DeliveryFilter(), after_id=page1[-1].delivery_id, limit=4)
    page3 = await store.list_deliveries(DeliveryFilter(), after_id=page2[-1].delivery_id, limit=4)
    assert [d.delivery_id for d in page1 + page2 + page3] == ids
    only_a = await store.list_deliveries(
        DeliveryFilter(traffic_source="a"), after_id=None, limit=50
    )
    assert len(only_a) == 5 and all(d.traffic_source == "a" for d in only_a)
    k0 = await store.list_deliveries(DeliveryFilter(campaign_id="k0"), after_id=None, limit=50)
    assert len(k0) == 4
    since = await store.list_deliveries(DeliveryFilter(since=NOW + 7), after_id=None, limit=50)
    assert len(since) == 3
    queued = await store.list_deliveries(DeliveryFilter(status="queued"), after_id=None, limit=50)
    assert len(queued) == 10


async def test_requeue_failed_and_by_id(store: SQLiteStore) -> None:
    res = await store.commit_batch([], [], [_delivery(), _delivery(), _delivery()])
    a, b, c = (d.delivery_id for d in res.deliveries)
    await store.record_attempt(_attempt(a, "rejected"), status="failed", next_at=None)
    await store.record_attempt(_attempt(b, "delivered"), status="delivered", next_at=None)
    back = await store.requeue(DeliveryFilter(), ids=None, now=NOW + 500)
    assert [d.delivery_id for d in back] == [a]
    assert back[0].status == "queued" and back[0].attempts == 0 and back[0].next_at == NOW + 500
    again = await store.requeue(DeliveryFilter(), ids=[b, c], now=NOW + 600)
    assert [d.delivery_id for d in again] == [b]  # c was still queued
    assert len(await store.list_attempts(a)) == 1  # history kept


async def test_purge_removes_finished_only(store: SQLiteStore) -> None:
    res = await store.commit_batch([], [], [_delivery(), _delivery()])
    a, b = (d.delivery_id for d in res.deliveries)
    await store.record_attempt(_attempt(a, "delivered"), status="delivered", next_at=None)
    assert await store.purge(NOW) == 0
    assert await store.purge(NOW + 10) == 1
    assert await store.get_delivery(a) is None and await store.list_attempts(a) == []
    assert await store.get_delivery(b) is not None


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


def _prepare_on(seen: list[int], i: int) -> object:
    """A commit_prepared callback that writes one click and notes its thread."""

    def prepare(find: object) -> tuple[list[Click], list[Conversion], list[NewDelivery], int]:
        seen.append(threading.get_ident())
        return [_click(i)], [], [], i

    return prepare


async def test_inline_commit_runs_on_the_loop_only_while_the_writer_is_idle(
    store: SQLiteStore,
) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    _, extra = await store.commit_prepared(_prepare_on(seen, 1), inline=True)
    assert extra == 1 and seen == [loop_thread]  # idle writer: run in place

    gate = threading.Event()
    busy = asyncio.ensure_future(store._call(gate.wait, 5.0))  # the writer thread is taken
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(store.commit_prepared(_prepare_on(seen, 2), inline=True))
    await asyncio.sleep(0.01)
    assert len(seen) == 1 and not second.done()  # queued behind the job, not run beside it
    gate.set()
    await busy
    await second
    assert seen[1] != loop_thread  # it went to the writer thread
    _, extra = await store.commit_prepared(_prepare_on(seen, 3), inline=True)
    assert seen[2] == loop_thread  # idle again once the thread's jobs are done
    assert (await store.counts())["clicks"] == 3


async def test_a_failing_job_leaves_the_writer_idle(store: SQLiteStore) -> None:
    def boom() -> None:
        raise sqlite3.OperationalError("boom")

    with pytest.raises(sqlite3.OperationalError):
        await store._call(boom)
    seen: list[int] = []
    await store.commit_prepared(_prepare_on(seen, 1), inline=True)
    assert seen == [threading.get_ident()]


async def test_inline_commit_never_waits_for_another_connections_lock(
    store: SQLiteStore,
) -> None:
    """An operator's shell holding the write lock: the inline commit hands the job
    to the writer thread, which waits, while the event loop keeps running."""
    seen: list[int] = []
    other = sqlite3.connect(store.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock
        started = time.monotonic()
        commit = asyncio.ensure_future(store.commit_prepared(_prepare_on(seen, 1), inline=True))
        for _ in range(20):  # the loop runs on while the commit waits on the thread
            await asyncio.sleep(0.005)
        # not blocked for the busy timeout (5 s), however slow the machine
        assert time.monotonic() - started < BUSY_TIMEOUT_MS / 2000
        assert not commit.done()
        other.execute("ROLLBACK")
        _, extra = await asyncio.wait_for(commit, 5.0)
    finally:
        other.close()
    # the lock was found before anything was decided: prepare ran once, on the thread
    assert extra == 1 and len(seen) == 1 and seen[0] != threading.get_ident()
    assert (await store.counts())["clicks"] == 1
    seen.clear()
    await store.commit_prepared(_prepare_on(seen, 2), inline=True)  # inline again
    assert seen == [threading.get_ident()]


@pytest.mark.parametrize("inline", [True, False])
async def test_lookups_and_writes_share_one_write_transaction(
    store: SQLiteStore, inline: bool
) -> None:
    """While ``prepare`` looks up and decides, no other connection can write: what
    it read is what its writes build on (another process's conversion with the
    same dedup key cannot slip in between)."""
    await store.commit_batch([_click(1)], [], [])
    other = sqlite3.connect(store.path, isolation_level=None, timeout=0, check_same_thread=False)
    refused: list[str] = []

    def prepare(find: sqlite_store._Finders) -> tuple[list[Click], list[Conversion],
                                                      list[NewDelivery], None]:  # fmt: skip
        assert find.conversions(["c1|t:1"]) == {}
        try:
            other.execute("INSERT INTO conversions VALUES ('x', 'c1', 'c1|t:1', 'approved',"
                          " 0, 0, '{}')")  # fmt: skip
        except sqlite3.OperationalError as exc:
            refused.append(str(exc))
        return [], [_conv(1)], [_delivery("v1")], None

    try:
        committed, _ = await store.commit_prepared(prepare, inline=inline)
    finally:
        other.close()
    assert refused == ["database is locked"]
    assert [d.conversion_id for d in committed.deliveries] == ["v1"]
    stored = await store.find_conversion("c1|t:1")
    assert stored is not None and stored.conversion_id == "v1"


async def test_a_failing_prepare_writes_nothing(store: SQLiteStore) -> None:
    def prepare(find: object) -> tuple[list[Click], list[Conversion], list[NewDelivery], None]:
        find.clicks(["c1"])  # type: ignore[attr-defined]
        raise ValueError("bad rule")

    with pytest.raises(ValueError, match="bad rule"):
        await store.commit_prepared(prepare, inline=True)
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
    finish in; without the FULL step the WAL only grew (194 MB in 8 s of wrk)."""
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.05)
    path = tmp_path / "g.sqlite"
    s = SQLiteStore(path)
    await s.open()
    try:
        await s.commit_batch([_click(0)], [], [])
        first = _wal_generation(path)
        i, deadline = 1, time.monotonic() + 4.0
        while _wal_generation(path) - first < 4 and time.monotonic() < deadline:
            await s.commit_batch([_click(i + k) for k in range(20)], [],
                                 [_delivery(f"v{i + k}") for k in range(20)])  # fmt: skip
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
    min_size=1, max_size=300,
)  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
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
                    "queued", 0, given_.not_before, given_.created_at)
        finally:
            await s.close()

    asyncio.run(run())

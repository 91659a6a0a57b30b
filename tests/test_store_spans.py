"""The delivery API's filters through ``delivery_spans``, held to a plain scan.

Deliveries are indexed by source, campaign and creation time per span of
consecutive ids (one per write and (source, campaign)), not per delivery; the
store walks the matching spans and filters their rows.  Whatever the writes,
filters, page sizes and purges, the answer must be what filtering every row
gives.  This is the SQLite half, with the walk's own knobs turned (page of
spans, the "few" threshold); ``test_store_contract.py`` holds every backend
to the same model.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.store.base import DeliveryFilter, NewDelivery
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite import spans as sqlite_spans

NOW = 1_800_000_000.0
_files = itertools.count()


def _delivery(source: str, campaign: str, created: float) -> NewDelivery:
    return NewDelivery(
        conversion_id="v",
        traffic_source=source,
        campaign_id=campaign,
        rule="r",
        method="GET",
        url="https://h.example/pb",
        display_url="https://h.example/pb",
        body=None,
        host="h.example",
        click_time=None,
        not_before=created,
        max_attempts=3,
        created_at=created,
        schedule=None,
        expires_at=None,
        answer_rule=None,
    )


def _expected(db: sqlite3.Connection, f: DeliveryFilter, *, failed_only: bool = False) -> list[int]:
    out = []
    for did, status, source, campaign, created in db.execute(
        "SELECT delivery_id, status, traffic_source, campaign_id, created_at FROM deliveries"
        " ORDER BY delivery_id"
    ):
        if (
            (f.status is None or status == f.status)
            and (f.traffic_source is None or source == f.traffic_source)
            and (f.campaign_id is None or campaign == f.campaign_id)
            and (f.since is None or created >= f.since)
            and (not failed_only or status == "failed")
        ):
            out.append(did)
    return out


writes = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.sampled_from(["k1", "k2", ""]), st.integers(0, 5)
        ),
        min_size=1,
        max_size=12,
    ),
    min_size=1,
    max_size=6,
)
filters = st.builds(
    DeliveryFilter,
    status=st.none() | st.sampled_from(["queued", "failed"]),
    traffic_source=st.none() | st.sampled_from(["a", "b", "zz"]),
    campaign_id=st.none() | st.sampled_from(["k1", "k2", "", "zz"]),
    since=st.none() | st.integers(0, 6).map(lambda t: NOW + t),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=writes,
    f=filters,
    page=st.integers(1, 7),
    purge=st.booleans(),
    failing=st.integers(2, 4),
    span_page=st.sampled_from([2, 512]),
    few=st.sampled_from([1, 5000]),
    held=st.sampled_from([1, 5, 4096]),
)
def test_filters_and_pages_match_a_scan_of_every_row(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    writes: list[list[tuple[str, str, int]]],
    f: DeliveryFilter,
    page: int,
    purge: bool,
    failing: int,
    span_page: int,
    few: int,
    held: int,
) -> None:
    monkeypatch.setattr(sqlite_spans, "SPAN_PAGE", span_page)  # 2: many keyset pages
    monkeypatch.setattr(sqlite_spans, "SPAN_BUFFER_ROWS", held)  # 1: written with each group
    monkeypatch.setattr(sqlite_spans, "FEW", few)  # 1: statuses walk spans too

    async def run() -> None:
        store = SQLiteStore(tmp_path / f"s{next(_files)}.sqlite")
        await store.open()
        try:
            for write in writes:  # creation times in any order, as clocks allow
                await store.commit_batch([], [], [_delivery(s, c, NOW + t) for s, c, t in write])
            db = store._conn
            db.execute(
                "UPDATE deliveries SET status = 'failed' WHERE delivery_id % ? = 0", (failing,)
            )
            if purge:  # finished deliveries go; their spans may stay, emptier
                await store.purge(NOW + 100)
            want = _expected(db, f)
            got: list[int] = []
            after = None
            while True:
                rows = await store.list_deliveries(f, after_id=after, limit=page)
                got.extend(d.delivery_id for d in rows)
                if len(rows) < page:
                    break
                after = rows[-1].delivery_id
            assert got == want
            for d in await store.list_deliveries(f, after_id=None, limit=1000):
                assert (f.traffic_source or d.traffic_source) == d.traffic_source
            # requeue with the same filters picks the failed ones among them
            unfiltered = DeliveryFilter(
                traffic_source=f.traffic_source, campaign_id=f.campaign_id, since=f.since
            )
            picked = _expected(db, unfiltered, failed_only=True)
            requeued = await store.requeue(unfiltered, ids=None, now=NOW + 50)
            assert [d.delivery_id for d in requeued] == picked
        finally:
            await store.close()

    asyncio.run(run())


def test_a_file_from_before_the_spans_keeps_answering_filters(tmp_path: Path) -> None:
    """A file written with per-delivery indexes and no spans: the open adds a span
    per delivery and drops the old indexes, and every filter still finds them."""
    path = tmp_path / "old.sqlite"

    async def write_new_file() -> list[int]:
        store = SQLiteStore(path)
        await store.open()
        try:
            committed = await store.commit_batch(
                [],
                [],
                [
                    _delivery("a", "k1", NOW),
                    _delivery("b", "k2", NOW + 1),
                    _delivery("a", "k2", NOW + 2),
                ],
            )
            return [d.delivery_id for d in committed.deliveries]
        finally:
            await store.close()

    ids = asyncio.run(write_new_file())
    with sqlite3.connect(path) as db:  # make it look like a file from before the spans
        db.execute("DROP TABLE delivery_spans")
        db.execute("CREATE INDEX deliveries_source ON deliveries (traffic_source)")
        db.execute("CREATE INDEX deliveries_campaign ON deliveries (campaign_id)")
        db.execute("CREATE INDEX deliveries_created ON deliveries (created_at)")

    async def read_back() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            by_source = await store.list_deliveries(
                DeliveryFilter(traffic_source="a"), after_id=None, limit=10
            )
            assert sorted(d.delivery_id for d in by_source) == sorted([ids[0], ids[2]])
            by_campaign = await store.list_deliveries(
                DeliveryFilter(campaign_id="k2"), after_id=None, limit=10
            )
            assert sorted(d.delivery_id for d in by_campaign) == sorted([ids[1], ids[2]])
            since = await store.list_deliveries(
                DeliveryFilter(since=NOW + 1), after_id=None, limit=10
            )
            assert sorted(d.delivery_id for d in since) == sorted([ids[1], ids[2]])
            newer = await store.commit_batch([], [], [_delivery("a", "k1", NOW + 3)])
            again = await store.list_deliveries(
                DeliveryFilter(traffic_source="a"), after_id=None, limit=10
            )
            assert len(again) == 3 and again[-1].delivery_id == newer.deliveries[0].delivery_id
        finally:
            await store.close()

    asyncio.run(read_back())
    with sqlite3.connect(path) as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type='index'")}
        spans = db.execute("SELECT COUNT(*) FROM delivery_spans").fetchone()[0]
    assert not names & {"deliveries_source", "deliveries_campaign", "deliveries_created"}
    assert spans == 4  # one per old delivery, one for the new write


def _span_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM delivery_spans").fetchone()[0])


def test_spans_are_held_back_and_written_before_a_walk(tmp_path: Path) -> None:
    """Groups commit without their spans (each pair would dirty a leaf of both
    span indexes); a filter writes them first, so it still finds every delivery."""
    path = tmp_path / "held.sqlite"

    async def run() -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            for t in range(3):
                await store.commit_batch(
                    [], [], [_delivery("a", "k1", NOW + t), _delivery("b", "k2", NOW + t)]
                )
            assert _span_rows(path) == 0  # committed deliveries, spans still held
            found = await store.list_deliveries(
                DeliveryFilter(traffic_source="a"), after_id=None, limit=10
            )
            assert len(found) == 3
            assert _span_rows(path) == 6
        finally:
            await store.close()

    asyncio.run(run())


def test_held_spans_lost_to_a_crash_are_rebuilt_at_open(tmp_path: Path) -> None:
    """The files as ``kill -9`` leaves them (copied while the store is open and
    idle): the open gives the deliveries past the last written span a span each."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()

    async def write() -> None:
        store = SQLiteStore(live / "g.sqlite")
        await store.open()
        try:
            await store.commit_batch([], [], [_delivery("a", "k1", NOW)])
            await store.list_deliveries(DeliveryFilter(traffic_source="a"), after_id=None, limit=1)
            await store.commit_batch([], [], [_delivery("a", "k2", NOW), _delivery("b", "k1", NOW)])
            shutil.copytree(live, crashed)  # the second group's spans only in memory
        finally:
            await store.close()

    async def reopen() -> None:
        store = SQLiteStore(crashed / "g.sqlite")
        await store.open()
        try:
            assert _span_rows(crashed / "g.sqlite") == 3
            by_campaign = await store.list_deliveries(
                DeliveryFilter(campaign_id="k1"), after_id=None, limit=10
            )
            assert [(d.traffic_source, d.campaign_id) for d in by_campaign] == [
                ("a", "k1"),
                ("b", "k1"),
            ]
        finally:
            await store.close()

    asyncio.run(write())
    asyncio.run(reopen())

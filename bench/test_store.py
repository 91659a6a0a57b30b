"""Group-commit benchmarks: what one SQLite group commit costs, by group size.

Each round commits one group the way intake does (``SQLiteStore.commit_group``
on the event loop, the writer thread idle): the group's click ids and dedup
keys are looked up inside the write transaction, then its conversions and one
delivery each are written.  A round is GROUPS commits in one event-loop run
(starting the loop costs more than a small commit), so the time per group is
the reported time divided by GROUPS.  The cost at size 1 is nearly all the
fixed cost of a commit, the figure that makes small groups (a trickle, few
clients) dear.  Run for real with::

    .venv/bin/python -m pytest bench/test_store.py --benchmark-enable \\
        --benchmark-group-by=group --benchmark-columns=min,median,ops
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from gateway import clickid
from gateway.store.base import (
    Attempt,
    AttemptRecord,
    Click,
    Conversion,
    Delivery,
    Found,
    NewDelivery,
    Wanted,
    Writes,
)
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite import rides as sqlite_rides

NOW = 1_800_000_000.0
CLICKS = 1000
GROUPS = 20
ROUNDS = {"rounds": 50, "warmup_rounds": 5, "iterations": 1}


def _click(i: int) -> Click:
    return Click(
        click_id=f"click-{i:06d}",
        campaign_id="camp",
        traffic_source="ts",
        created_at=NOW,
        tokens={"externalid": f"ext-{i}", "country": "DE", "os": "Android"},
    )


def _delivery(conversion_id: str, externalid: str) -> NewDelivery:
    return NewDelivery(
        conversion_id=conversion_id,
        traffic_source="ts",
        campaign_id="camp",
        rule="global",
        method="GET",
        url=f"https://s.example/tag.php?goal=G&tag={externalid}&value=1.5",
        display_url=f"https://s.example/tag.php?goal=G&tag={externalid}&value=1.5",
        body=None,
        host="s.example",
        click_time=NOW,
        not_before=NOW,
        max_attempts=5,
        created_at=NOW,
    )


class _Groups:
    """Groups of new conversions of stored clicks, numbered on from the last.

    Conversion ids are made as intake makes them (time first, so each group's
    sort after the last); dedup keys carry a network's transaction id, whose
    order is the network's, so their index takes them anywhere.
    """

    def __init__(self, store: SQLiteStore, size: int) -> None:
        self.store, self.size = store, size
        self._numbers: Iterator[int] = itertools.count()

    async def commit(self) -> int:
        return len(await self.commit_returning())

    async def commit_returning(self) -> list[Delivery]:
        numbers = [next(self._numbers) for _ in range(self.size)]
        clicks = [f"click-{n % CLICKS:06d}" for n in numbers]
        keys = [f"ts|txid-{n * 7919 % 1_000_003}" for n in numbers]
        wanted = Wanted(click_ids=clicks, dedup_keys=keys, size=self.size)

        def decide(found: Found) -> tuple[Writes, int]:
            assert len(found.clicks) == len(set(clicks)) and not found.conversions
            ids = clickid.new_click_ids(NOW + numbers[0] / 1000, self.size)
            conversions = [
                Conversion(
                    conversion_id=conversion_id,
                    click_id=click,
                    dedup_key=key,
                    status="approved",
                    created_at=NOW,
                    tokens={"payout": "1.5", "txid": f"txid-{n}"},
                )
                for conversion_id, n, click, key in zip(ids, numbers, clicks, keys, strict=True)
            ]
            deliveries = [
                _delivery(c.conversion_id, found.clicks[c.click_id or ""].tokens["externalid"])
                for c in conversions
            ]
            return Writes(conversions=conversions, deliveries=deliveries), len(deliveries)

        committed, count = await self.store.commit_group(wanted, decide)
        assert len(committed.deliveries) == count == self.size
        return committed.deliveries

    async def commit_many(self, groups: int) -> int:
        return sum([await self.commit() for _ in range(groups)])


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = uvloop.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def store(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "bench.sqlite")
    loop.run_until_complete(store.open())
    clicks = [_click(i) for i in range(CLICKS)]
    writes = Writes(clicks=clicks)
    loop.run_until_complete(
        store.commit_group(Wanted(click_ids=[], dedup_keys=[], size=1), lambda _: (writes, None))
    )
    yield store
    loop.run_until_complete(store.close())


@pytest.mark.benchmark(group="group commit")
@pytest.mark.parametrize("size", [1, 4, 16, 64])
def test_group_commit(
    benchmark: Any, loop: asyncio.AbstractEventLoop, store: SQLiteStore, size: int
) -> None:
    groups = _Groups(store, size)
    written = benchmark.pedantic(
        lambda: loop.run_until_complete(groups.commit_many(GROUPS)), **ROUNDS
    )
    assert written == size * GROUPS
    benchmark.extra_info["groups_per_round"] = GROUPS
    benchmark.extra_info["conversions_per_round"] = size * GROUPS


def _attempts(deliveries: list[int]) -> list[AttemptRecord]:
    return [
        (
            Attempt(
                delivery_id=delivery_id,
                started_at=NOW,
                url="https://s.example/tag.php?goal=G&tag=***",
                status_code=200,
                error=None,
                latency_ms=3.0,
                body_prefix="OK",
                outcome="delivered",
                reason="HTTP 200",
            ),
            "delivered",
            None,
            True,
        )
        for delivery_id in deliveries
    ]


async def _commits_and_log(groups: _Groups, rounds: int) -> int:
    """Each group commit while the last group's attempts are logged, as under
    load: with rides, the log's group goes inside the next intake commit."""
    logged = 0
    previous: list[int] = []
    for _ in range(rounds):
        log = asyncio.ensure_future(groups.store.record_attempts(_attempts(previous)))
        await asyncio.sleep(0)  # the log's group is handed in first
        committed = await groups.commit_returning()
        await log
        logged += len(previous)
        previous = [d.delivery_id for d in committed]
    return logged


@pytest.mark.benchmark(group="group commit and the delivery log")
@pytest.mark.parametrize("rides", [True, False], ids=["ride", "alone"])
def test_group_commit_with_the_log(
    benchmark: Any,
    loop: asyncio.AbstractEventLoop,
    store: SQLiteStore,
    rides: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Groups of 16 and their attempts' log: riding the next intake commit
    (``store.sqlite.rides``) against a transaction of the log's own."""
    if not rides:
        monkeypatch.setattr(sqlite_rides, "INTAKE_QUIET", 0.0)
    groups = _Groups(store, 16)
    logged = benchmark.pedantic(
        lambda: loop.run_until_complete(_commits_and_log(groups, GROUPS)), **ROUNDS
    )
    assert logged == 16 * (GROUPS - 1)
    benchmark.extra_info["groups_per_round"] = GROUPS

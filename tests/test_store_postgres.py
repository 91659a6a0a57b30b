"""What only a store several processes share promises: leases, claims, fleet-wide dedup.

Two ``PostgresStore`` objects on one schema stand for two gateway processes
(each has its own pool and lease owner id).  Skipped without a server, like
the PostgreSQL half of the contract suite (``tests/store_fixtures.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import msgspec
import pytest

from gateway.store import open_store
from gateway.store.base import Found, NewDelivery, Store, Wanted, Writes
from tests.store_fixtures import fresh_pg_url, pg_skip_reason
from tests.store_helpers import attempt, click, conversion, new_delivery, record, write_rows

LEASE = 5.0


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Store, Store]]:
    """Two processes' stores on one fresh schema."""
    url = fresh_pg_url()
    if url is None:
        pytest.skip(pg_skip_reason())
    a, b = open_store(url, lease=LEASE), open_store(url, lease=LEASE)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


def _due_now(n: int, now: float) -> list[NewDelivery]:
    return [
        msgspec.structs.replace(new_delivery(f"v{i}"), not_before=now, expires_at=None)
        for i in range(n)
    ]


async def test_what_one_commits_is_its_own_until_the_lease_runs_out(
    pair: tuple[Store, Store],
) -> None:
    a, b = pair
    now = time.time()
    mine = await write_rows(a, deliveries=_due_now(3, now))
    ids = sorted(d.delivery_id for d in mine)
    assert await b.claim_due(now, 100, LEASE) == []  # a's lease is live
    assert [d.delivery_id for d in await a.claim_due(now, 100, LEASE)] == ids  # a's own
    # a stops renewing (it died): past the lease, b takes every one over
    later = now + LEASE + 1
    taken = await b.claim_due(later, 100, LEASE)
    assert [d.delivery_id for d in taken] == ids
    assert await a.claim_due(later, 100, LEASE) == []  # now b's


async def test_concurrent_claims_split_the_rows(pair: tuple[Store, Store]) -> None:
    a, b = pair
    now = time.time()
    await write_rows(a, deliveries=_due_now(300, now))
    later = now + LEASE + 1  # every lease lapsed: all free
    got_a, got_b = await asyncio.gather(
        a.claim_due(later, 200, LEASE), b.claim_due(later, 200, LEASE)
    )
    ids_a = {d.delivery_id for d in got_a}
    ids_b = {d.delivery_id for d in got_b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 300


async def test_a_clean_stop_lets_its_leases_go_at_once(pair: tuple[Store, Store]) -> None:
    a, b = pair
    now = time.time()
    await write_rows(a, deliveries=_due_now(4, now))
    await a.close()
    assert len(await b.claim_due(now, 100, LEASE)) == 4
    await a.open()  # the fixture closes it again


async def test_leases_are_renewed_while_the_process_lives(pair: tuple[Store, Store]) -> None:
    url = fresh_pg_url()
    assert url is not None
    quick_a, quick_b = open_store(url, lease=0.6), open_store(url, lease=0.6)
    await quick_a.open()
    await quick_b.open()
    try:
        now = time.time()
        await write_rows(quick_a, deliveries=_due_now(2, now))
        await asyncio.sleep(1.5)  # past two leases: only renewals keep them
        assert await quick_b.claim_due(time.time(), 100, 0.6) == []
    finally:
        await quick_a.close()
        await quick_b.close()


async def test_one_conversion_sent_to_two_processes_at_once_is_accepted_once(
    pair: tuple[Store, Store],
) -> None:
    a, b = pair
    for i in range(40):
        wanted = Wanted(click_ids=[f"c{i}"], dedup_keys=[f"c{i}|t:{i}"], size=1)

        def decide(found: Found, i: int = i) -> tuple[Writes, bool]:
            if found.conversions:
                return Writes(), False  # a duplicate
            return Writes(clicks=[click(i)], conversions=[conversion(i)]), True

        results = await asyncio.gather(
            a.commit_group(wanted, decide), b.commit_group(wanted, decide)
        )
        assert sorted(accepted for _, accepted in results) == [False, True], i


async def test_a_late_attempt_cannot_requeue_what_another_delivered(
    pair: tuple[Store, Store],
) -> None:
    a, b = pair
    [d] = await write_rows(a, deliveries=_due_now(1, time.time()))
    await record(b, attempt(d.delivery_id, "delivered"), status="delivered", next_at=None)
    await record(a, attempt(d.delivery_id), status="queued", next_at=time.time())  # a, late
    stored = await a.get_delivery(d.delivery_id)
    assert stored is not None and stored.status == "delivered"
    assert len(await a.list_attempts(d.delivery_id)) == 2  # both tries are in the log


async def test_instances_starting_together_migrate_once() -> None:
    url = fresh_pg_url()
    if url is None:
        pytest.skip(pg_skip_reason())
    stores = [open_store(url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        await write_rows(stores[0], deliveries=[new_delivery()])
        assert await stores[3].queued_count() == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))

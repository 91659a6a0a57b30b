"""Every backend answers ``oldest_queued_at`` (the /metrics queue-age gauge) and
takes a ``dry_run`` final status: the parametrised ``store`` fixture."""

from __future__ import annotations

from store_helpers import NOW, attempt, new_delivery, record, write_rows

from gateway.store.base import QueueAge, Store


async def test_oldest_queued_at(store: Store) -> None:
    assert isinstance(store, QueueAge)
    assert await store.oldest_queued_at() is None
    old, new = await write_rows(
        store, deliveries=[new_delivery("v1", created=NOW - 60), new_delivery("v2", created=NOW)]
    )
    assert await store.oldest_queued_at() == NOW - 60
    await record(store, attempt(old.delivery_id, "dry_run"), status="dry_run", next_at=None)
    assert await store.oldest_queued_at() == NOW  # a finished delivery no longer counts
    shown = await store.get_delivery(old.delivery_id)
    assert shown is not None and shown.status == "dry_run"
    assert new.status == "queued"

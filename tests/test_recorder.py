"""The delivery log's group commit: attempts finished close together share one write."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from gateway.dispatch.recorder import GROUP_WINDOW, AttemptRecorder
from gateway.store.base import Attempt, AttemptRecord
from gateway.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """The real store, noting the size of each delivery-log write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[int] = []

    async def record_attempts(self, items: Sequence[AttemptRecord]) -> None:
        self.writes.append(len(items))
        await super().record_attempts(items)


def record(delivery_id: int) -> AttemptRecord:
    attempt = Attempt(
        delivery_id=delivery_id,
        started_at=1.0,
        url="https://example.test/pb",
        status_code=200,
        error=None,
        latency_ms=1.0,
        body_prefix="ok",
        outcome="delivered",
        reason="200",
    )
    return (attempt, "delivered", None, True)


async def test_attempts_arriving_within_the_window_share_one_write(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "log.db")
    await store.open()
    heard: list[list[int]] = []
    recorder = AttemptRecorder(store, window=0.05)
    recorder.on_group = lambda tags, exc: heard.append(tags)
    try:
        for n in range(5):  # one after another, well inside the window
            recorder.add_tagged(record(n + 1), n)
            await asyncio.sleep(0.001)
        await recorder.drain()
        assert store.writes == [5]
        assert heard == [[0, 1, 2, 3, 4]]
        assert len(await store.list_attempts(3)) == 1  # committed, not only counted
    finally:
        await store.close()


async def test_without_a_window_the_first_attempt_goes_alone(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "log.db")
    await store.open()
    recorder = AttemptRecorder(store, window=0)
    try:
        recorder.add_tagged(record(1), 1)
        await asyncio.sleep(0.02)
        recorder.add_tagged(record(2), 2)
        await recorder.drain()
        assert store.writes == [1, 1]
    finally:
        await store.close()


def test_the_default_window_is_short() -> None:
    # the log's lag behind an answer: what a crash can resend (docs/delivery.md)
    assert 0 < GROUP_WINDOW <= 0.005

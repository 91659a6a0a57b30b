"""Group commit: many inputs, few transactions, answers only after the commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import clickid
from gateway.clock import SystemClock
from gateway.config import Config, load
from gateway.intake.batcher import Batcher, Closed
from gateway.intake.params import ClickInput, parse_conversion
from gateway.metrics import Metrics
from gateway.store.base import Click
from gateway.store.sqlite import SQLiteStore
from tests.intake_helpers import RecordingSink, start_gateway, stop_gateway, write_config


@pytest.fixture
async def parts(
    tmp_path: Path,
) -> AsyncIterator[tuple[Batcher, SQLiteStore, RecordingSink, Config, Metrics]]:
    config = load(write_config(tmp_path))
    store = SQLiteStore(tmp_path / "b.sqlite")
    await store.open()
    sink = RecordingSink()
    metrics = Metrics()
    batcher = Batcher(store, sink, config=lambda: config, metrics=metrics, clock=SystemClock())
    batcher.start()
    yield batcher, store, sink, config, metrics
    await batcher.stop()
    await store.close()


def _click(now: float, campaign: str = "c-hand", source: str = "hand") -> Click:
    cid = clickid.new_click_id(now)
    return Click(
        click_id=cid,
        campaign_id=campaign,
        traffic_source=source,
        created_at=now,
        tokens={"click.id": cid, "externalid": "ext-" + cid},
    )


def _batches(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("gateway_commit_batch_size_count")
    return value or 0.0


async def test_concurrent_inputs_share_transactions(parts: tuple) -> None:  # type: ignore[type-arg]
    batcher, store, sink, config, metrics = parts
    now = SystemClock().now()
    clicks = [_click(now) for _ in range(200)]
    await asyncio.gather(*(batcher.put(ClickInput(c)) for c in clicks))
    assert (await store.counts())["clicks"] == 200
    assert _batches(metrics) < 20  # grouped, not one transaction each
    convs = [parse_conversion({"cid": c.click_id, "txid": "1"}, config) for c in clicks]
    results = await asyncio.gather(*(batcher.put(c) for c in convs))  # type: ignore[arg-type]
    assert all(r.outcome == "accepted" and r.body["status"] == "accepted" for r in results)
    assert len(sink.submitted) == 400  # two approved rules per conversion
    assert len({d.delivery_id for d in sink.submitted}) == 400


async def test_conversion_and_its_click_in_the_same_batch(parts: tuple) -> None:  # type: ignore[type-arg]
    batcher, store, sink, config, _ = parts
    click = _click(SystemClock().now())
    conv = parse_conversion({"cid": click.click_id}, config)
    first = batcher.put(ClickInput(click))
    second = batcher.put(conv)  # type: ignore[arg-type]
    await first
    result = await second
    assert result.body["status"] == "accepted" and result.body["postbacks"] == 2


async def test_answer_only_after_commit(parts: tuple) -> None:  # type: ignore[type-arg]
    batcher, store, sink, config, _ = parts
    click = _click(SystemClock().now())
    future = batcher.put(ClickInput(click))
    assert not future.done()
    await future
    # a separate connection sees it: committed, not just buffered
    with sqlite3.connect(store.path) as db:
        assert (
            db.execute(
                "SELECT COUNT(*) FROM clicks WHERE click_id = ?", (click.click_id,)
            ).fetchone()[0]
            == 1
        )


async def test_stop_drains_and_refuses_new_input(parts: tuple) -> None:  # type: ignore[type-arg]
    batcher, store, *_ = parts
    now = SystemClock().now()
    futures = [batcher.put(ClickInput(_click(now))) for _ in range(50)]
    await batcher.stop()
    assert all(f.done() and f.exception() is None for f in futures)
    assert (await store.counts())["clicks"] == 50
    with pytest.raises(Closed):
        batcher.put(ClickInput(_click(now)))


async def test_failed_commit_answers_503_and_keeps_running(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, write_config(tmp_path))
    try:
        click_id = await gw.click(cid="F")
        with sqlite3.connect(gw.store.path) as db:  # a real failure: the table is gone
            db.execute("ALTER TABLE deliveries RENAME TO deliveries_gone")
        resp = await gw.client.get("/postback", params={"cid": click_id})
        assert resp.status == 503 and set(await resp.json()) == {"error", "field"}
        with sqlite3.connect(gw.store.path) as db:
            db.execute("ALTER TABLE deliveries_gone RENAME TO deliveries")
        resp = await gw.client.get("/postback", params={"cid": click_id})
        assert resp.status == 200  # nothing of the failed batch was written
    finally:
        await stop_gateway(gw)


async def test_a_lone_input_does_not_wait_out_the_window(tmp_path: Path) -> None:
    """The wait for company ends when arrivals stop, not at max_wait_ms."""
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("max_wait_ms = 1.0", "max_wait_ms = 5000.0"))
    config = load(path)
    assert config.batch.max_wait_ms == 5000.0
    store = SQLiteStore(tmp_path / "lone.sqlite")
    await store.open()
    batcher = Batcher(
        store, RecordingSink(), config=lambda: config, metrics=Metrics(), clock=SystemClock()
    )
    batcher.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.put(ClickInput(_click(SystemClock().now())))
        assert loop.time() - started < 1.0
    finally:
        await batcher.stop()
        await store.close()

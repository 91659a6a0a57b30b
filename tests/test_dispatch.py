"""The dispatcher over a real SQLite store, real loopback sinks and a virtual clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sinks import Blackhole, Sink, new_delivery

from gateway.clock import VirtualClock
from gateway.dispatch import refill as refill_module
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.hostqueue import UNPROVEN_PER_HOST
from gateway.dispatch.settings import DeliverySettings
from gateway.metrics import Metrics
from gateway.store.base import Delivery, DeliveryFilter, NewDelivery
from gateway.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.sqlite")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as s:
        yield s


class Harness:
    """A started dispatcher plus the helpers every test needs."""

    def __init__(
        self, store: SQLiteStore, settings: DeliverySettings, clock: VirtualClock | None = None
    ) -> None:
        self.store = store
        self.clock = clock or VirtualClock(T0)
        self.metrics = Metrics()
        self.dispatcher = Dispatcher(settings, store, self.metrics, self.clock)

    async def commit(self, deliveries: Sequence[NewDelivery]) -> list[Delivery]:
        result = await self.store.commit_batch([], [], deliveries)
        self.dispatcher.submit(result.deliveries)
        return result.deliveries

    async def send(self, url: str, **kw: Any) -> Delivery:
        (d,) = await self.commit([new_delivery(url, now=self.clock.now(), **kw)])
        await self.dispatcher.wait_idle()
        return await self.get(d.delivery_id)

    async def get(self, delivery_id: int) -> Delivery:
        d = await self.store.get_delivery(delivery_id)
        assert d is not None
        return d

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.dispatcher.wait_idle()

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


_KIND = {"transport": "aiohttp"}


@pytest.fixture(autouse=True)
def _every_transport(transport_kind: str) -> Iterator[str]:
    """Every dispatcher test runs over every transport (the shared fixture)."""
    _KIND["transport"] = transport_kind
    yield transport_kind
    _KIND["transport"] = "aiohttp"


def _settings(**kw: Any) -> DeliverySettings:
    kw.setdefault("transport", _KIND["transport"])
    kw.setdefault("allow_private_targets", True)
    kw.setdefault("jitter", 0.0)
    kw.setdefault("timeout", 5.0)
    return DeliverySettings(**kw)


@pytest.fixture
async def make(store: SQLiteStore) -> AsyncIterator[Callable[..., Any]]:
    harnesses: list[Harness] = []

    async def factory(clock: VirtualClock | None = None, **kw: Any) -> Harness:
        h = Harness(store, _settings(**kw), clock)
        await h.dispatcher.start()
        harnesses.append(h)
        return h

    yield factory
    for h in harnesses:
        await h.dispatcher.stop(timeout=1.0)


async def test_delivered_and_logged(make: Any, sink: Sink) -> None:
    h = await make()
    url = sink.url("/ok?key=SECRET&cid=abc")
    d = await h.send(url, display_url=sink.url("/ok?key=***&cid=abc"))
    assert (d.status, d.attempts, d.next_at) == ("delivered", 1, None)
    (attempt,) = await h.store.list_attempts(d.delivery_id)
    assert attempt.status_code == 200 and attempt.body_prefix == "OK"
    assert attempt.url == sink.url("/ok?key=***&cid=abc")
    assert attempt.outcome == "delivered" and attempt.latency_ms > 0
    assert sink.hits[0].path_qs == "/ok?key=SECRET&cid=abc"
    assert (
        h.sample(
            "gateway_deliveries_delivered_total", traffic_source="test-source", status_class="2xx"
        )
        == 1
    )
    assert h.sample("gateway_delivery_end_to_end_seconds_count", traffic_source="test-source") == 1
    assert h.sample("gateway_delivery_queue_depth") == 0


async def test_post_body_is_sent(make: Any, sink: Sink) -> None:
    h = await make()
    d = await h.send(sink.url("/ok"), method="POST", body='{"cid":"abc"}')
    assert d.status == "delivered"
    assert sink.hits[0].body == b'{"cid":"abc"}'
    assert sink.hits[0].headers["Content-Type"] == "application/json"


async def test_retry_schedule_then_dead_letter(make: Any, sink: Sink) -> None:
    h = await make(schedule=[10.0, 60.0, 300.0], max_attempts=4)
    d = await h.send(sink.url("/status/500"), max_attempts=0)
    assert (d.status, d.attempts, d.next_at) == ("queued", 1, T0 + 10)
    await h.advance(9.9)
    assert sink.count() == 1
    for step, expected in ((0.1, 2), (60, 3), (300, 4)):
        await h.advance(step)
        assert sink.count() == expected
    d = await h.get(d.delivery_id)
    assert (d.status, d.attempts, d.next_at) == ("failed", 4, None)
    assert "gave up after 4 attempts" in (d.last_reason or "")
    await h.advance(100_000)
    assert sink.count() == 4
    assert (
        h.sample("gateway_delivery_retries_total", traffic_source="test-source", status_class="5xx")
        == 3
    )
    assert (
        h.sample(
            "gateway_deliveries_failed_total", traffic_source="test-source", status_class="5xx"
        )
        == 1
    )


async def test_per_rule_schedule_and_attempts(make: Any, sink: Sink) -> None:
    h = await make()
    d = await h.send(sink.url("/status/503"), max_attempts=2, schedule=[5.0])
    assert d.next_at == T0 + 5
    await h.advance(5)
    assert (await h.get(d.delivery_id)).status == "failed"
    d = await h.send(sink.url("/status/503"), max_attempts=1)
    assert d.status == "failed" and d.attempts == 1


async def test_default_schedule_has_jitter(make: Any, sink: Sink) -> None:
    h = await make(jitter=0.2)
    nexts = {(await h.send(sink.url("/status/500"))).next_at for _ in range(5)}
    assert all(T0 + 8 <= n <= T0 + 12 for n in nexts if n is not None)
    assert len(nexts) > 1


async def test_retry_then_success(make: Any, sink: Sink) -> None:
    h = await make(schedule=[10.0, 10.0, 10.0])
    url = sink.script("flaky", [(500, "no"), (502, "no"), (200, "OK")])
    d = await h.send(url)
    await h.advance(10)
    await h.advance(10)
    d = await h.get(d.delivery_id)
    assert (d.status, d.attempts) == ("delivered", 3)
    log = await h.store.list_attempts(d.delivery_id)
    assert [a.status_code for a in log] == [500, 502, 200]


async def test_retry_after_is_honoured_and_clamped(make: Any, sink: Sink) -> None:
    h = await make(schedule=[10.0], max_retry_after=100.0)
    d = await h.send(sink.url("/status/429?retry_after=30"))
    assert d.next_at == T0 + 30
    d = await h.send(sink.url("/status/503?retry_after=100000"))
    assert d.next_at == T0 + 100


async def test_final_refusal(make: Any, sink: Sink) -> None:
    h = await make()
    d = await h.send(sink.url("/status/404"))
    assert (d.status, d.attempts) == ("failed", 1)
    await h.advance(100_000)
    assert sink.count() == 1
    assert (
        h.sample(
            "gateway_deliveries_failed_total", traffic_source="test-source", status_class="4xx"
        )
        == 1
    )


async def test_connection_errors_are_retried(make: Any, sink: Sink) -> None:
    h = await make(schedule=[10.0])
    d = await h.send(sink.url("/close"))
    assert (d.status, d.attempts) == ("queued", 1)
    (a,) = await h.store.list_attempts(d.delivery_id)
    assert a.status_code is None and a.error and a.outcome == "retry"


async def test_expired_is_not_sent(make: Any, sink: Sink) -> None:
    h = await make()
    d = await h.send(sink.url("/ok"), expires_at=T0 - 1)
    assert (d.status, d.attempts) == ("expired", 0)
    assert sink.count() == 0
    assert h.sample("gateway_deliveries_expired_total", traffic_source="test-source") == 1


async def test_answer_rule_judges_the_body(make: Any, sink: Sink) -> None:
    pytest.importorskip("gateway.sources.answers")
    h = await make()
    d = await h.send(sink.url("/status/200?body=ERROR:%20goal%20invalid"), answer_rule="exoclick")
    assert d.status == "failed" and "goal invalid" in (d.last_reason or "")
    d = await h.send(sink.url("/status/200?body=OK"), answer_rule="exoclick")
    assert d.status == "delivered"


async def test_redirect_to_blocked_address_fails(store: SQLiteStore, sink: Sink) -> None:
    h = Harness(
        store,
        DeliverySettings(
            jitter=0.0,
            resolve={"net.example": f"127.0.0.1:{sink.port}"},
            transport=_KIND["transport"],  # type: ignore[arg-type]
            allowed_networks=["127.0.0.1/32"],
        ),
    )
    await h.dispatcher.start()
    try:
        d = await h.send("http://net.example/redirect?to=http://169.254.169.254/")
        assert d.status == "failed" and "blocked" in (d.last_reason or "")
        d = await h.send("http://net.example/redirect?to=/ok")
        assert d.status == "delivered"
        (a,) = await store.list_attempts(d.delivery_id)
        assert a.url == "http://net.example/redirect?to=/ok -> http://net.example/ok"
    finally:
        await h.dispatcher.stop()


async def test_breaker_pauses_a_failing_host_without_spending_attempts(
    make: Any, sink: Sink
) -> None:
    h = await make(
        breaker_failures=3,
        breaker_pause=30.0,
        max_connections_per_host=1,
        schedule=[10.0, 10.0],
        resolve={"healthy.test": f"127.0.0.1:{sink.port}"},
    )
    url = sink.script("down", [(500, "down")] * 3 + [(200, "OK")])
    ds = await h.commit([new_delivery(url, now=T0) for _ in range(10)])
    healthy = await h.commit([new_delivery("http://healthy.test/ok", now=T0)])
    await h.dispatcher.wait_idle()
    assert sink.count("/script/") == 3  # then the circuit opened
    rows = [await h.get(d.delivery_id) for d in ds]
    assert sorted(r.attempts for r in rows) == [0] * 7 + [1] * 3
    assert (await h.get(healthy[0].delivery_id)).status == "delivered"
    await h.advance(10)  # retries are due, but the host is still paused
    assert sink.count("/script/") == 3
    await h.advance(20)  # probe succeeds, the circuit closes, the rest go
    rows = [await h.get(d.delivery_id) for d in ds]
    assert all(r.status == "delivered" for r in rows)
    assert sink.count("/script/") == 13
    assert sorted(r.attempts for r in rows) == [1] * 7 + [2] * 3


async def test_rate_limit_per_host(make: Any, sink: Sink) -> None:
    h = await make(rate_per_host=5.0)
    await h.commit([new_delivery(sink.url("/ok"), now=T0) for _ in range(12)])
    await h.dispatcher.wait_idle()
    assert sink.count() == 5
    await h.advance(1.0)
    assert sink.count() == 10
    await h.advance(1.0)
    assert sink.count() == 12


async def test_blackholed_host_does_not_delay_a_healthy_one(store: SQLiteStore, sink: Sink) -> None:
    hole = Blackhole()
    settings = _settings(
        timeout=30.0,
        max_connections=64,
        max_connections_per_host=8,
        resolve={"hole.test": f"127.0.0.1:{hole.port}", "ok.test": f"127.0.0.1:{sink.port}"},
    )
    h = Harness(store, settings)
    await h.dispatcher.start()
    try:
        await h.commit([new_delivery("http://hole.test/", now=T0) for _ in range(200)])
        await asyncio.sleep(0.2)
        started = time.monotonic()
        good = await h.commit([new_delivery("http://ok.test/ok", now=T0) for _ in range(50)])
        while sink.count() < 50 and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        assert sink.count() == 50
        assert time.monotonic() - started < 1.0
        while h.dispatcher.in_flight > UNPROVEN_PER_HOST and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)  # the healthy attempts are being recorded
        # the blackhole never answered: it holds only its probation slots
        assert h.dispatcher.in_flight == UNPROVEN_PER_HOST
        # a slot moves on before its attempt's log group is committed (a checkpoint
        # may hold the write lock a few ms): wait for the log, within a bound
        statuses: set[str] = set()
        while time.monotonic() - started < 5:
            statuses = {(await h.get(d.delivery_id)).status for d in good}
            if statuses == {"delivered"}:
                break
            await asyncio.sleep(0.01)
        assert statuses == {"delivered"}
    finally:
        await h.dispatcher.stop(timeout=0.2)
        hole.close()
    queued = await store.list_deliveries(DeliveryFilter(status="queued"), after_id=None, limit=1000)
    assert len(queued) == 200 and all(d.attempts == 0 for d in queued)


async def test_queued_rows_are_loaded_on_start(store: SQLiteStore, sink: Sink) -> None:
    """After a restart the store is the source of truth: nothing needs submit()."""
    clock = VirtualClock(T0)
    await store.commit_batch([], [], [new_delivery(sink.url("/ok"), now=T0) for _ in range(3)])
    later = new_delivery(sink.url("/ok"), now=T0, not_before=T0 + 600)
    await store.commit_batch([], [], [later])
    h = Harness(store, _settings(), clock)
    await h.dispatcher.start()
    try:
        await h.dispatcher.wait_idle()
        assert sink.count() == 3
        await h.advance(600)  # beyond the first refill horizon: the periodic refill finds it
        assert sink.count() == 4
        counts = await store.counts()
        assert counts["deliveries.delivered"] == 4
    finally:
        await h.dispatcher.stop()


async def test_a_long_delay_waits_in_the_store_not_in_memory(make: Any, sink: Sink) -> None:
    """A delivery due after the next refill is left to the store (memory stays
    bounded whatever the delays), counted in the queue depth, and sent on time."""
    h = await make()
    (d,) = await h.commit([new_delivery(sink.url("/ok"), now=T0, not_before=T0 + 600)])
    assert d.delivery_id not in h.dispatcher._known  # not held: the store has it
    assert h.sample("gateway_delivery_queue_depth") == 1
    await h.advance(599)
    assert sink.count() == 0
    await h.advance(1)
    assert sink.count() == 1 and (await h.get(d.delivery_id)).status == "delivered"
    assert h.sample("gateway_delivery_queue_depth") == 0
    assert not h.dispatcher._known


async def test_a_long_retry_wait_leaves_memory_and_comes_back(make: Any, sink: Sink) -> None:
    h = await make()
    url = sink.script("hour", [(503, "busy"), (200, "OK")])
    d = await h.send(url, schedule=[3600.0])
    assert (d.status, d.next_at) == ("queued", T0 + 3600)
    assert d.delivery_id not in h.dispatcher._known
    assert h.sample("gateway_delivery_queue_depth") == 1
    await h.advance(3599)
    assert sink.count() == 1
    await h.advance(1)
    assert sink.count() == 2 and (await h.get(d.delivery_id)).status == "delivered"
    assert h.sample("gateway_delivery_queue_depth") == 0


async def test_queue_depth_counts_the_store_after_a_restart(store: SQLiteStore, sink: Sink) -> None:
    await store.commit_batch(
        [], [], [new_delivery(sink.url("/ok"), now=T0, not_before=T0 + 3600) for _ in range(3)]
    )
    h = Harness(store, _settings())
    await h.dispatcher.start()
    try:
        await h.commit([new_delivery(sink.url("/ok"), now=T0)])
        await h.dispatcher.wait_idle()
        assert sink.count() == 1
        assert h.sample("gateway_delivery_queue_depth") == 3  # the hour-late ones, unloaded
    finally:
        await h.dispatcher.stop()


async def test_refill_pages_past_a_backlog_memory_already_holds(
    store: SQLiteStore, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart, the oldest queued rows belong to a host that never answers;
    the rows behind them (a healthy host's) still load, a page per refill."""
    monkeypatch.setattr(refill_module, "REFILL_LIMIT", 10)
    clock = VirtualClock(T0)
    hole = Blackhole()
    stuck = [new_delivery("http://hole.test/", now=T0, not_before=T0 - 60) for _ in range(10)]
    healthy = [new_delivery("http://ok.test/ok", now=T0) for _ in range(15)]
    await store.commit_batch([], [], stuck + healthy)
    settings = _settings(
        timeout=30.0,
        max_connections_per_host=1,
        resolve={"hole.test": f"127.0.0.1:{hole.port}", "ok.test": f"127.0.0.1:{sink.port}"},
    )
    h = Harness(store, settings, clock)
    await h.dispatcher.start()  # loads the first page: the stuck host's ten
    try:
        await asyncio.sleep(0.1)
        assert sink.count() == 0
        await clock.advance(61)  # the periodic refill goes on past them: ten healthy ones
        await _until(lambda: sink.count() == 10)
        await clock.advance(2)  # that page was full and new: the next comes a second later
        await _until(lambda: sink.count() == 15)
        assert (await store.counts())["deliveries.delivered"] == 15
    finally:
        await h.dispatcher.stop(timeout=0.2)
        hole.close()


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert condition()


async def test_retry_survives_a_restart(store: SQLiteStore, sink: Sink) -> None:
    clock = VirtualClock(T0)
    url = sink.script("later", [(500, "no"), (200, "OK")])
    first = Harness(store, _settings(schedule=[30.0]), clock)
    await first.dispatcher.start()
    d = await first.send(url)
    await first.dispatcher.stop()
    assert d.status == "queued" and d.next_at == T0 + 30
    await clock.advance(31)
    second = Harness(store, _settings(schedule=[30.0]), clock)
    await second.dispatcher.start()
    try:
        await second.dispatcher.wait_idle()
        assert (await second.get(d.delivery_id)).status == "delivered"
    finally:
        await second.dispatcher.stop()


async def test_retention_purges_old_finished_rows(store: SQLiteStore, sink: Sink) -> None:
    clock = VirtualClock(T0)
    h = Harness(store, _settings(retention_days=30.0), clock)
    await h.dispatcher.start()
    done = await h.send(sink.url("/ok"))
    await h.dispatcher.stop()
    await clock.advance(31 * 86400)
    h2 = Harness(store, _settings(retention_days=30.0), clock)
    await h2.dispatcher.start()
    try:
        fresh = await h2.send(sink.url("/ok"))
        for _ in range(20):
            if await store.get_delivery(done.delivery_id) is None:
                break
            await asyncio.sleep(0.01)
        assert await store.get_delivery(done.delivery_id) is None
        assert (await h2.get(fresh.delivery_id)).status == "delivered"
    finally:
        await h2.dispatcher.stop()


async def test_stop_leaves_unsent_deliveries_queued(store: SQLiteStore, sink: Sink) -> None:
    h = Harness(store, _settings(max_connections_per_host=2))
    await h.dispatcher.start()
    await h.commit([new_delivery(sink.url("/slow?delay=30"), now=T0) for _ in range(6)])
    await asyncio.sleep(0.2)
    await h.dispatcher.stop(timeout=0.1)
    rows = await store.list_deliveries(DeliveryFilter(), after_id=None, limit=10)
    assert [(d.status, d.attempts) for d in rows] == [("queued", 0)] * 6
    assert sink.count() == 2


async def test_global_slots_rotate_between_hosts(store: SQLiteStore, sink: Sink) -> None:
    """With the pool full of one host's slow deliveries, another host still gets a turn."""
    settings = _settings(
        max_connections=2,
        max_connections_per_host=2,
        resolve={
            "slow.test": f"127.0.0.1:{sink.port}",
            "quick.test": f"127.0.0.1:{sink.port}",
        },
    )
    h = Harness(store, settings)
    await h.dispatcher.start()
    try:
        await h.commit([new_delivery("http://slow.test/slow?delay=0.3", now=T0) for _ in range(10)])
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await h.commit([new_delivery("http://quick.test/ok", now=T0) for _ in range(2)])
        while sink.count("/ok") < 2 and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        # the quick host waited for one slow round (0.3 s), not for all five
        assert sink.count("/ok") == 2 and time.monotonic() - started < 1.0
        await h.dispatcher.wait_idle()
        assert sink.count("/slow") == 10
    finally:
        await h.dispatcher.stop()


async def test_many_delayed_deliveries_come_back_at_the_refill_pace(
    store: SQLiteStore, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delayed deliveries reach memory only through refills: pages of 10 (here)
    every REFILL_SOON while memory has room, so 35 arrive within a few tenths
    of a second of being due, not one page a second."""
    monkeypatch.setattr(refill_module, "REFILL_LIMIT", 10)
    h = Harness(store, _settings())
    await h.dispatcher.start()
    try:
        await h.commit(
            [new_delivery(sink.url("/ok"), now=T0, not_before=T0 + 600) for _ in range(35)]
        )
        assert not h.dispatcher._known
        await h.advance(600)  # the refill at 600 s loads the first page
        for _ in range(4):  # and the next pages come REFILL_SOON apart
            await h.advance(refill_module.REFILL_SOON)
        assert sink.count() == 35
    finally:
        await h.dispatcher.stop()


async def test_a_url_whose_host_is_not_its_templates_never_leaves(make: Any, sink: Sink) -> None:
    h = await make()
    url = sink.url("/ok?x=1")
    assert (await h.send(url)).status == "delivered"  # the same origin, its host agreeing
    d = await h.send(url, host="elsewhere.example", conversion_id="conv-2")
    assert d.status == "failed" and "the host its template fixed" in (d.last_reason or "")
    assert sink.count("/ok") == 1

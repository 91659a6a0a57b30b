"""What an operator sees of the dispatcher: dry run (everything, a source, a rule),
one log line per dead letter with the network's message redacted, and the
breaker's host states.  Real SQLite store, real loopback sinks, virtual clock."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sinks import Sink, new_delivery

from gateway.clock import VirtualClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.dryrun import DryRunTransport
from gateway.dispatch.transport.factory import make_transport
from gateway.logs import DELIVERY_LOG
from gateway.metrics import Metrics
from gateway.store.base import Delivery
from gateway.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as s:
        yield s


@pytest.fixture
def lines() -> Iterator[list[logging.LogRecord]]:
    """Records of the delivery log (its own handler: ``gateway`` may not propagate)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.INFO)
    old = DELIVERY_LOG.level
    DELIVERY_LOG.addHandler(handler)
    DELIVERY_LOG.setLevel(logging.INFO)
    yield records
    DELIVERY_LOG.removeHandler(handler)
    DELIVERY_LOG.setLevel(old)


class Run:
    def __init__(self, store: SQLiteStore, **settings: Any) -> None:
        settings.setdefault("allow_private_targets", True)
        settings.setdefault("jitter", 0.0)
        self.store = store
        self.metrics = Metrics()
        self.clock = VirtualClock(T0)
        self.dispatcher = Dispatcher(DeliverySettings(**settings), store, self.metrics, self.clock)

    async def send(self, url: str, **kw: Any) -> Delivery:
        result = await self.store.commit_batch([], [], [new_delivery(url, now=T0, **kw)])
        self.dispatcher.submit(result.deliveries)
        await self.dispatcher.wait_idle()
        d = await self.store.get_delivery(result.deliveries[0].delivery_id)
        assert d is not None
        return d

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Any]:
    store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    runs: list[Run] = []

    async def start(**settings: Any) -> Run:
        r = Run(store, **settings)
        await r.dispatcher.start()
        runs.append(r)
        return r

    yield start
    for r in runs:
        await r.dispatcher.stop(timeout=1.0)
    await store.close()


def test_dry_run_settings_build_no_client() -> None:
    assert isinstance(make_transport(DeliverySettings(dry_run=True)), DryRunTransport)


async def test_dry_run_everything_sends_nothing(
    run: Any, sink: Sink, lines: list[logging.LogRecord]
) -> None:
    r = await run(dry_run=True)
    d = await r.send(sink.url("/ok?key=SECRET"), display_url=sink.url("/ok?key=***"))
    assert sink.count() == 0
    assert (d.status, d.attempts, d.last_outcome) == ("dry_run", 0, "dry_run")
    (attempt,) = await r.store.list_attempts(d.delivery_id)
    assert attempt.url == sink.url("/ok?key=***") and attempt.status_code is None
    assert r.sample("gateway_deliveries_dry_run_total", traffic_source="test-source") == 1
    assert r.sample("gateway_delivery_queue_depth") == 0
    (line,) = [x.getMessage() for x in lines]
    assert "dry run" in line and "key=***" in line and "SECRET" not in line


async def test_dry_run_one_rule_and_one_source(run: Any, sink: Sink) -> None:
    r = await run()
    r.dispatcher.dry_run(
        frozenset({"old-tracker-source"}), frozenset({("test-source", "shadowed")})
    )
    shadowed = await r.send(sink.url("/ok?r=1"), rule="shadowed")
    by_source = await r.send(sink.url("/ok?r=2"), traffic_source="old-tracker-source")
    live = await r.send(sink.url("/ok?r=3"))
    assert (shadowed.status, by_source.status, live.status) == ("dry_run", "dry_run", "delivered")
    assert [h.path_qs for h in sink.hits] == ["/ok?r=3"]


async def test_a_dead_letter_is_one_log_line_with_the_networks_message(
    run: Any, sink: Sink, lines: list[logging.LogRecord]
) -> None:
    r = await run()
    url = sink.url("/status/400?key=SECRET&body=ERROR:+bad+goal+SECRET")
    d = await r.send(url, display_url=url.replace("SECRET", "***"))
    assert d.status == "failed"
    (record,) = lines
    text = record.getMessage()
    assert record.levelno == logging.WARNING
    assert text.startswith("dead letter (rejected)")
    assert "HTTP 400" in text and "answer: ERROR: bad goal ***" in text
    assert "SECRET" not in text


async def test_retries_spent_is_a_dead_letter_line_too(
    run: Any, sink: Sink, lines: list[logging.LogRecord]
) -> None:
    r = await run()
    d = await r.send(sink.url("/status/503"), max_attempts=1)
    assert d.status == "failed"
    assert [x.getMessage().split(":")[0] for x in lines] == ["dead letter (retries spent)"]


async def test_breaker_states_are_visible(run: Any, sink: Sink) -> None:
    r = await run(breaker_failures=1, breaker_pause=60.0, schedule=[1.0] * 5)
    await r.send(sink.url("/status/503"))
    (view,) = r.dispatcher.hosts().values()
    assert (view.host, view.circuit, view.failures) == ("127.0.0.1", "open", 1)
    assert view.paused_until == pytest.approx(T0 + 60.0)
    assert view.reason == "HTTP 503"  # the last failure, in words


async def test_dry_run_can_be_switched_off_again(run: Any, sink: Sink) -> None:
    r = await run()
    r.dispatcher.dry_run(frozenset({"test-source"}), frozenset())
    assert (await r.send(sink.url("/ok?r=1"))).status == "dry_run"
    r.dispatcher.dry_run(frozenset(), frozenset())  # a reload that turned it off
    assert (await r.send(sink.url("/ok?r=2"))).status == "delivered"
    assert [h.path_qs for h in sink.hits] == ["/ok?r=2"]

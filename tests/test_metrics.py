"""Metrics helpers: the bulk-fed histogram matches one ``observe`` per value."""

from __future__ import annotations

import pytest

from gateway.metrics import BatchedObserver, Metrics

VALUES = [0.0, 0.0005, 0.001, 0.0011, 0.003, 0.003, 0.05, 0.7, 2.5, 29.0, 61.0, 1e9]


def _samples(metrics: Metrics, endpoint: str) -> dict[str, float]:
    text = metrics.exposition().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_ingest_seconds")
        and f'endpoint="{endpoint}"' in line
        and "_created" not in line
    }


def test_batched_observer_matches_observe() -> None:
    plain, bulk = Metrics(), Metrics()
    observer = bulk.batched(bulk.ingest_latency.labels("postback"))
    for value in VALUES:
        plain.ingest_latency.labels("postback").observe(value)
        observer.observe(value)
    assert _samples(bulk, "postback") == pytest.approx(_samples(plain, "postback"))
    assert _samples(bulk, "postback")['gateway_ingest_seconds_count{endpoint="postback"}'] == len(
        VALUES
    )


def test_batched_observer_flushes_itself_when_full() -> None:
    metrics = Metrics()
    child = metrics.ingest_latency.labels("click")
    observer = BatchedObserver(child, limit=3)
    for _ in range(7):
        observer.observe(0.002)
    count = metrics.registry.get_sample_value("gateway_ingest_seconds_count", {"endpoint": "click"})
    assert count == 6  # two full rounds folded in, one still pending
    observer.flush()
    assert (
        metrics.registry.get_sample_value("gateway_ingest_seconds_count", {"endpoint": "click"})
        == 7
    )


def test_batched_observer_falls_back_to_observe() -> None:
    class Plain:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, value: float) -> None:
            self.seen.append(value)

    plain = Plain()
    observer = BatchedObserver(plain)
    observer.observe(1.0)
    observer.observe(2.0)
    observer.flush()
    assert plain.seen == [1.0, 2.0]

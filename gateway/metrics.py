"""Prometheus metrics, one registry per gateway (tests run several in a process).

Labels carry traffic-source names, status classes and destination host names
only, never URLs, so no account secret can reach a label.
"""

from __future__ import annotations

import os
import platform
from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

import _fastrender
from gateway import __version__

if TYPE_CHECKING:
    from gateway.dispatch.breaker import HostView

__all__ = ("CONTENT_TYPE_LATEST", "BatchedObserver", "Metrics", "status_class")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)


class BatchedObserver:
    """A histogram child fed in bulk: the hot path appends a float, and every
    ``limit`` observations (and before each scrape) they are folded in with one
    lock round per bucket instead of a locked ``observe`` per request.

    Reads the child's ``_upper_bounds``/``_buckets``/``_sum`` (prometheus_client's
    own layout, stable for years); without them it falls back to ``observe``.
    """

    __slots__ = ("_child", "_limit", "_pending")

    def __init__(self, child: Any, limit: int = 256) -> None:
        self._child = child
        self._limit = limit
        self._pending: list[float] = []

    def observe(self, value: float) -> None:
        pending = self._pending
        pending.append(value)
        if len(pending) >= self._limit:
            self.flush()

    def flush(self) -> None:
        values, self._pending = self._pending, []
        if not values:
            return
        child = self._child
        bounds = getattr(child, "_upper_bounds", None)
        buckets = getattr(child, "_buckets", None)
        total = getattr(child, "_sum", None)
        if bounds is None or buckets is None or total is None:
            for value in values:
                child.observe(value)
            return
        counts = [0] * len(bounds)
        for value in values:  # the first bound >= value, as observe() does; the last is +Inf
            counts[bisect_left(bounds, value)] += 1
        total.inc(sum(values))
        for i, n in enumerate(counts):
            if n:
                buckets[i].inc(n)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._batched: list[BatchedObserver] = []
        self.clicks = Counter("gateway_clicks", "Clicks recorded", ["traffic_source"], registry=r)
        self.ingested = Counter(
            "gateway_conversions_ingested", "Conversions accepted", ["traffic_source"], registry=r
        )
        self.duplicates = Counter(
            "gateway_conversions_duplicate", "Duplicate conversions", ["traffic_source"], registry=r
        )
        self.unattributed = Counter(
            "gateway_conversions_unattributed", "Conversions with no click", registry=r
        )
        self.rejected_input = Counter(
            "gateway_requests_rejected", "Requests answered 4xx", ["code"], registry=r
        )
        self.queued = Counter(
            "gateway_deliveries_queued", "Deliveries queued", ["traffic_source"], registry=r
        )
        self.delivered = Counter(
            "gateway_deliveries_delivered",
            "Deliveries delivered",
            ["traffic_source", "status_class"],
            registry=r,
        )
        self.failed = Counter(
            "gateway_deliveries_failed",
            "Deliveries failed (dead letter)",
            ["traffic_source", "status_class"],
            registry=r,
        )
        self.expired = Counter(
            "gateway_deliveries_expired",
            "Deliveries not sent: click too old",
            ["traffic_source"],
            registry=r,
        )
        self.dry_run = Counter(
            "gateway_deliveries_dry_run",
            "Deliveries stored as rendered and not sent (dry run)",
            ["traffic_source"],
            registry=r,
        )
        self.held = Counter(
            "gateway_deliveries_held",
            "Deliveries held, not sent: a network macro left unreplaced or an empty click id",
            ["traffic_source"],
            registry=r,
        )
        self.placeholder_inputs = Counter(
            "gateway_placeholder_values",
            "Clicks and conversions carrying a network macro left unreplaced or no click id",
            ["traffic_source", "endpoint"],
            registry=r,
        )
        self.retries = Counter(
            "gateway_delivery_retries",
            "Attempts scheduled for a retry",
            ["traffic_source", "status_class"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "gateway_delivery_queue_depth",
            "Deliveries queued or in flight",
            registry=r,
            # across workers: the largest live worker's count (each counts the
            # shared store's queue at its start, so a sum would count it twice)
            multiprocess_mode="livemax",
        )
        self.oldest_queued = Gauge(
            "gateway_delivery_oldest_queued_seconds",
            "Age of the oldest queued delivery (0 when none waits), read at scrape time",
            registry=r,
            multiprocess_mode="livemostrecent",  # the store is shared: the latest reading
        )
        self.breaker_hosts = Gauge(
            "gateway_breaker_hosts",
            "Destination hosts by circuit-breaker state (open: paused; half-open: probing)",
            ["circuit"],
            registry=r,
            multiprocess_mode="livemax",  # each worker keeps its own breaker
        )
        for circuit in ("open", "half-open"):
            self.breaker_hosts.labels(circuit).set(0)
        # a gauge, not an Info: Info metrics are not collected across workers
        self.build = Gauge(
            "gateway_build_info",
            "Version and build of this gateway (always 1)",
            ["version", "python", "renderer"],
            registry=r,
            multiprocess_mode="max",
        )
        renderer = "c" if _fastrender.USE_EXTENSIONS else "python"
        self.build.labels(__version__, platform.python_version(), renderer).set(1)
        self.host_paused = Gauge(
            "gateway_host_paused",
            "1 while the circuit breaker holds a destination host's deliveries",
            ["host"],
            registry=r,
            # each worker has its own breaker: paused in any live worker reads 1
            multiprocess_mode="livemax",
        )
        self.host_failures = Gauge(
            "gateway_host_failures",
            "Consecutive failures the circuit breaker counts for a host",
            ["host"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self._hosts_shown: set[str] = set()
        self.ingest_latency = Histogram(
            "gateway_ingest_seconds",
            "Request received to answer (after commit)",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_batch = Histogram(
            "gateway_commit_batch_size",
            "Items per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.delivery_latency = Histogram(
            "gateway_delivery_attempt_seconds",
            "One HTTP attempt",
            ["traffic_source"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "gateway_delivery_end_to_end_seconds",
            "Conversion committed to postback answered 2xx",
            ["traffic_source"],
            buckets=_E2E_BUCKETS,
            registry=r,
        )

    def set_hosts(self, views: Mapping[str, HostView]) -> None:
        """The breaker's snapshot, the one source of every host gauge: hosts by circuit,
        and each host's paused flag and failures (a host that recovered reads 0)."""
        for circuit in ("open", "half-open"):
            count = sum(1 for v in views.values() if v.circuit == circuit)
            self.breaker_hosts.labels(circuit).set(count)
        for host in self._hosts_shown - views.keys():
            self.host_paused.labels(host).set(0)
            self.host_failures.labels(host).set(0)
        for host, v in views.items():
            self.host_paused.labels(host).set(0 if v.paused_until is None else 1)
            self.host_failures.labels(host).set(v.failures)
        self._hosts_shown |= views.keys()

    def batched(self, child: Any) -> BatchedObserver:
        """A BatchedObserver for ``child`` that is flushed before every exposition."""
        observer = BatchedObserver(child)
        self._batched.append(observer)
        return observer

    def flush(self) -> None:
        for observer in self._batched:
            observer.flush()

    def exposition(self) -> bytes:
        """This process's metrics, or, under ``serve --workers`` (a
        ``PROMETHEUS_MULTIPROC_DIR``), every worker's, read from their files."""
        self.flush()
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            fleet = CollectorRegistry()
            MultiProcessCollector(fleet, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(fleet)
        return generate_latest(self.registry)


def status_class(status: int | None) -> str:
    """``2xx``.. ``5xx``, or ``error`` for no HTTP answer at all."""
    return "error" if status is None else f"{status // 100}xx"

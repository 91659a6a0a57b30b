"""What every handler shares, under one application key."""

from __future__ import annotations

from aiohttp import web

from gateway.clock import Clock
from gateway.config import Config
from gateway.dispatch import DeliverySink
from gateway.enrich.base import Enricher
from gateway.intake.batcher import Batcher
from gateway.metrics import BatchedObserver, Metrics
from gateway.store.base import Store

__all__ = ("STATE", "AppState")


class AppState:
    """The live config (swapped whole on SIGHUP), the store, the dispatcher, the batcher."""

    def __init__(
        self,
        config: Config,
        store: Store,
        sink: DeliverySink,
        metrics: Metrics,
        clock: Clock,
        enricher: Enricher | None = None,
    ) -> None:
        self.config = config
        #: visit tokens from the user agent and address (gateway.enrich); None: none
        self.enricher = enricher
        self.store = store
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        #: the last SIGHUP: (when, accepted, problems as ``check`` words them),
        #: for the console's config page; None before the first
        self.last_reload: tuple[float, bool, list[str]] | None = None
        self.batcher = Batcher(
            store, sink, config=lambda: self.config, metrics=metrics, clock=clock
        )
        #: the histogram's children, looked up once and fed in bulk
        self.latency: dict[str, BatchedObserver] = {
            e: metrics.batched(metrics.ingest_latency.labels(e))
            for e in ("click", "postback", "conversions")
        }


STATE: web.AppKey[AppState] = web.AppKey("gateway_state", AppState)

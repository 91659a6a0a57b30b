"""The running gateway: config, store, dispatcher and HTTP wired together; start,
reload (SIGHUP) and drain (SIGTERM/SIGINT).

Drain: stop accepting, let in-flight requests finish, commit what was
accepted, stop the dispatcher (it finishes or leaves queued its in-flight
attempts), close the store.  Reload: an invalid file is refused with a log
line and the old config stays in force.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from pathlib import Path

import msgspec
from aiohttp import web

from gateway import __version__
from gateway.banner import banner
from gateway.clock import SystemClock
from gateway.config import Config, read
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.enrich.factory import make_enrichers
from gateway.http.app import create_app
from gateway.http.front import GatewayRunner
from gateway.http.state import STATE
from gateway.logs import ACCESS_LOG_FORMAT
from gateway.metrics import Metrics
from gateway.store import open_store
from gateway.store.backends import redacted

__all__ = ("GC_THRESHOLDS", "CannotListen", "serve", "share_of")

log = logging.getLogger(__name__)

#: The cyclic GC's generation thresholds while serving (Python's default is
#: (700, 10, 10)).  Every request allocates dozens of objects that live until
#: its group commits, a few milliseconds; with the default a young collection
#: runs every few requests and promotes objects that were about to die.  A
#: young generation of 10,000 lets them die first; cycles are still collected,
#: just less often.
GC_THRESHOLDS = (10_000, 10, 10)


def share_of(settings: DeliverySettings, share: int) -> DeliverySettings:
    """One process's part of the per-host limits when ``share`` processes send
    for one host: the connection cap rounded down (at least one each) and the
    rate divided, so together they stay within the configured limits."""
    if share <= 1:
        return settings
    rate = settings.rate_per_host
    return msgspec.structs.replace(
        settings,
        max_connections_per_host=max(1, settings.max_connections_per_host // share),
        rate_per_host=None if rate is None else rate / share,
    )


class CannotListen(OSError):
    """The address is taken or not ours: reported, exit 1."""


async def serve(
    config: Config,
    path: Path,
    host: str,
    port: int,
    db: str,
    *,
    reuse_port: bool = False,
    share: int = 1,
    access_log: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT; ``reuse_port``: one of several worker
    processes on this port (``gateway.workers``), the kernel spreading
    connections; ``share``: how many processes split the per-host limits;
    ``access_log``: one log line per request."""
    loop = asyncio.get_running_loop()
    store = open_store(db, lease=config.store.lease)
    await store.open()
    metrics = Metrics()
    clock = SystemClock()
    dispatcher = Dispatcher(
        settings=share_of(config.delivery, share), store=store, metrics=metrics, clock=clock
    )
    dispatcher.dry_run(config.dry_run_sources, config.dry_run_rules)
    await dispatcher.start()
    enricher, notes = make_enrichers(config.spec.enrich)
    for note in notes:
        log.info("%s", note)
    app = create_app(config, store, dispatcher, metrics=metrics, clock=clock, enricher=enricher)
    # the parser's line limits follow the config's limits (GatewayRunner)
    runner = GatewayRunner(
        app,
        hot_lane=not access_log,  # the hot lane writes no access log
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        shutdown_timeout=10.0,
    )
    await runner.setup()
    # Startup's objects (modules, config, compiled plans) go to the permanent
    # generation, so full collections stop walking them; then the thresholds.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    site = web.TCPSite(
        runner, host, port, backlog=2048, reuse_address=True, reuse_port=reuse_port or None
    )
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        await runner.cleanup()
        await dispatcher.stop()
        await store.close()
        raise CannotListen(str(exc)) from None
    stop = asyncio.Event()

    def reload() -> None:
        new, problems = read(path)
        app[STATE].last_reload = (clock.now(), new is not None, [str(p) for p in problems])
        if new is None:
            for problem in problems:
                if problem.level == "error":
                    log.error("reload refused, old config stays: %s", problem)
            return
        for problem in problems:  # the new config runs; these deserve a look
            log.warning("reload: %s", problem)
        if new.spec.delivery != app[STATE].config.spec.delivery:
            log.warning("reload: [delivery] changes take effect at the next restart")
        if new.spec.enrich != app[STATE].config.spec.enrich:
            log.warning("reload: [enrich] changes take effect at the next restart")
        app[STATE].config = new
        dispatcher.dry_run(new.dry_run_sources, new.dry_run_rules)
        log.info(
            "reloaded %s: %d traffic source(s), %d campaign(s)",
            path,
            len(new.sources),
            len(new.campaigns),
        )

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "gateway %s listening on http://%s:%d/ (config %s, db %s)",
        __version__,
        shown,
        port,
        path,
        redacted(db),
    )
    if not reuse_port:  # one process: the mode and what to try (workers: the supervisor's)
        for line in banner(app[STATE].config, f"http://{shown}:{port}"):
            log.info("%s", line)
    try:
        await stop.wait()
        log.info("draining: no new connections; committing what was accepted")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()  # stops listening, lets handlers finish, drains the batcher
        await dispatcher.stop()
        await store.close()
        log.info("stopped")

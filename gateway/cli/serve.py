"""``python -m gateway serve``: wire config, store, batcher, dispatcher and HTTP.

Signals (``loop.add_signal_handler``): SIGTERM/SIGINT drain (stop accepting,
let in-flight requests finish, commit what was accepted, stop the dispatcher,
which finishes or leaves queued its in-flight attempts, exit 0); SIGHUP
reloads the config file, and an invalid one is refused with a log line while
the old config stays in force.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import constants
from gateway.clock import SystemClock
from gateway.config import Config, ConfigError, default_config_path, load, read
from gateway.http.app import STATE, create_app
from gateway.http.front import GatewayRunner
from gateway.logs import setup_logging
from gateway.metrics import Metrics
from gateway.store.base import Delivery
from gateway.store.sqlite import SQLiteStore

__all__ = ("NullSink", "is_loopback", "run")

log = logging.getLogger(__name__)

#: The cyclic GC's generation thresholds while serving (Python's default is
#: (700, 10, 10)).  Every request allocates dozens of objects that live until
#: its batch commits, a few milliseconds, so with the default a young
#: collection runs every few requests and promotes objects that were about to
#: die.  A young generation of 10,000 lets them die first: measured with
#: bench/intake_wrk.sh, +10-15 % req/s and about 5 us less CPU per request on
#: the writer thread.  Cycles are still collected, just less often.
GC_THRESHOLDS = (10_000, 10, 10)


class CannotListen(OSError):
    """The address is taken or not ours: reported, exit 1."""


class NullSink:
    """Used only while no dispatcher module exists: deliveries wait in the store."""

    def submit(self, deliveries: Sequence[Delivery]) -> None:
        return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _optional(module: str) -> Any:
    """A sibling helper's module, if it is there yet (dispatcher, delivery API)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None


def run(args: argparse.Namespace) -> int:
    setup_logging()
    path = Path(args.config) if args.config else default_config_path()
    try:
        config = load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    if not is_loopback(args.host) and not config.api_token:
        print(f"refusing to listen on {args.host}: set api_token in the config first "
              "(or listen on 127.0.0.1)", file=sys.stderr)  # fmt: skip
        return 2
    db = args.db or constants.DEFAULT_DB
    try:
        import uvloop  # noqa: PLC0415 - optional on platforms without it
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(_serve(config, path, args.host, args.port, db))
    except CannotListen:
        return 1
    return 0


async def _serve(config: Config, path: Path, host: str, port: int, db: str) -> None:
    loop = asyncio.get_running_loop()
    store = SQLiteStore(db)
    await store.open()
    metrics = Metrics()
    clock = SystemClock()
    dispatch = _optional("gateway.dispatch.dispatcher")
    sink: Any = NullSink()
    if dispatch is not None:
        sink = dispatch.Dispatcher(
            settings=config.delivery, store=store, metrics=metrics, clock=clock
        )
        await sink.start()
    else:
        log.warning("no dispatcher module: deliveries are stored, not sent")
    app = create_app(config, store, sink, metrics=metrics, clock=clock)
    api = _optional("gateway.http.deliveries_api")
    if api is not None:
        api.add_routes(app, store, sink)
    tester = _optional("gateway.http.postbacks_api")
    if tester is not None:
        tester.add_routes(app)  # POST /api/postbacks/test
    limit = max(8190, config.limits.max_query_bytes * 2 + 1024)
    runner = GatewayRunner(app, access_log=None, shutdown_timeout=10.0,
                           max_line_size=limit, max_field_size=limit)  # fmt: skip
    await runner.setup()
    # Startup's objects (modules, config, compiled plans) go to the permanent
    # generation, so full collections stop walking them; then the thresholds.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        await runner.cleanup()
        if dispatch is not None:
            await sink.stop()
        await store.close()
        raise CannotListen(str(exc)) from None
    stop = asyncio.Event()

    def reload() -> None:
        new, problems = read(path)
        if new is None:
            for problem in problems:
                log.error("reload refused, old config stays: %s", problem)
            return
        if new.spec.delivery != app[STATE].config.spec.delivery:
            log.warning("reload: [delivery] changes take effect at the next restart")
        app[STATE].config = new
        log.info("reloaded %s: %d traffic source(s), %d campaign(s)", path,
                 len(new.sources), len(new.campaigns))  # fmt: skip

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload)
    shown = f"[{host}]" if ":" in host else host
    log.info("gateway listening on http://%s:%d/ (config %s, db %s)", shown, port, path, db)
    try:
        await stop.wait()
        log.info("draining: no new connections; committing what was accepted")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()  # stops listening, lets handlers finish, drains the batcher
        if dispatch is not None:
            await sink.stop()
        await store.close()
        log.info("stopped")

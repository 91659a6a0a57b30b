"""Probes and identity: ``/health`` (alive; the version in a header), ``/ready`` (able to do
its job) and ``/metrics`` (optionally behind the API token; ``GET /api/hosts`` is
``lookups_api``'s, from the same breaker snapshot).

``/health`` never touches the store, so a slow disk does not get a healthy
process restarted; ``/ready`` does, so a load balancer stops sending traffic
to a gateway that cannot commit it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.http.errors import error_response, json_response
from gateway.http.lookups_api import host_views
from gateway.http.state import STATE, AppState
from gateway.intake.guard import api_token_ok
from gateway.metrics import CONTENT_TYPE_LATEST
from gateway.store.base import QueueAge

__all__ = ("health", "metrics", "ready")

log = logging.getLogger(__name__)

#: How long ``/ready`` waits for the store before it calls it unreachable.
STORE_PROBE_TIMEOUT = 2.0


#: /health's body is the contract's, exactly (spec/gateway.md); the version rides
#: in a header, and in /ready's body.
_HEALTH = b'{"status":"ok"}'


async def health(request: web.Request) -> web.Response:
    return web.Response(
        body=_HEALTH,
        content_type="application/json",
        headers={"X-Gateway-Version": __version__},
    )


def _dispatcher_running(state: AppState) -> bool:
    running = getattr(state.sink, "running", None)  # a bare DeliverySink has no state
    return True if running is None else bool(running)


async def ready(request: web.Request) -> web.Response:
    """200 when the store answers, a config is loaded and the dispatcher runs; else 503,
    with each check's result so an operator sees which one failed."""
    state = request.app[STATE]
    checks: dict[str, Any] = {"config": state.config is not None}
    try:
        await asyncio.wait_for(state.store.queued_count(), STORE_PROBE_TIMEOUT)
    except Exception as exc:  # any failure means "not ready", named in the answer
        log.warning("ready: store unreachable: %s", exc or type(exc).__name__)
        checks["store"] = False
    else:
        checks["store"] = True
    checks["dispatcher"] = _dispatcher_running(state)
    ok = all(checks.values())
    body = {"status": "ready" if ok else "not ready", "version": __version__, "checks": checks}
    return json_response(body, 200 if ok else 503)


async def _refresh(state: AppState) -> None:
    """The gauges read at scrape time: the breaker's hosts, the oldest queued delivery."""
    m = state.metrics
    m.set_hosts(host_views(state.sink))
    if isinstance(state.store, QueueAge):
        try:
            oldest = await asyncio.wait_for(state.store.oldest_queued_at(), STORE_PROBE_TIMEOUT)
        except Exception as exc:
            log.warning("metrics: cannot read the oldest queued delivery: %s", exc)
        else:
            age = 0.0 if oldest is None else max(0.0, state.clock.now() - oldest)
            m.oldest_queued.set(age)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    config = state.config
    if config.spec.metrics_require_token and not api_token_ok(
        config, request.headers.get("Authorization", "")
    ):
        return error_response(401, "missing or wrong bearer token", "Authorization")
    await _refresh(state)
    return web.Response(
        body=state.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )

"""The one aiohttp application: every route in one table, the middleware, the lifecycle.

``GET /postback`` and ``GET /click/{id}`` are answered by ``http.front``
before the router sees them; they are in the table too, for apps served by a
plain ``AppRunner`` and for paths the front leaves to the router
(percent-encoded ones).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

from aiohttp import web

from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.console import actions as console_actions
from gateway.console import routes as console
from gateway.dispatch import DeliverySink
from gateway.enrich.base import Enricher
from gateway.enrich.factory import make_enrichers
from gateway.http import (
    deliveries_api,
    intake_routes,
    lookups_api,
    openapi,
    postbacks_api,
    probes,
    replay_api,
)
from gateway.http.middleware import guard_middleware
from gateway.http.state import STATE, AppState
from gateway.metrics import Metrics
from gateway.store.base import Store

__all__ = ("ROUTES", "Route", "create_app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Route(NamedTuple):
    method: str
    path: str
    handler: Handler
    #: a GET route also answers HEAD (aiohttp's default)
    head: bool = True


#: Every route the gateway serves.  ``/api/*`` needs the bearer token when the
#: config sets one (``middleware.guard_middleware``).
ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", probes.health),
    Route("GET", "/ready", probes.ready),
    Route("GET", "/metrics", probes.metrics),
    # no HEAD: a HEAD click would record a visit nobody made
    Route("GET", "/click/{campaign_id}", intake_routes.click_route, head=False),
    Route("GET", "/postback", intake_routes.postback_route, head=False),
    Route("POST", "/postback", intake_routes.postback_route),
    Route("POST", "/api/clicks", intake_routes.api_clicks),
    Route("POST", "/api/conversions", intake_routes.api_conversions),
    Route("GET", "/api/deliveries", deliveries_api.list_deliveries),
    Route("POST", "/api/deliveries/replay", deliveries_api.replay),
    Route("POST", "/api/deliveries/rerender", replay_api.rerender),
    Route("POST", "/api/backfill", replay_api.backfill),
    Route("GET", "/api/deliveries/{id}", deliveries_api.show),
    Route("POST", "/api/deliveries/{id}/retry", deliveries_api.retry),
    Route("POST", "/api/postbacks/test", postbacks_api.test_postback),
    Route("GET", "/api/conversions", lookups_api.find_conversions),
    Route("GET", "/api/conversions/{id}", lookups_api.show_conversion),
    Route("GET", "/api/clicks/{id}", lookups_api.show_click),
    Route("GET", "/api/hosts", lookups_api.hosts),
    # the operator console (gateway.console): its own session cookie, not the bearer token
    Route("GET", "/console", console.overview),
    Route("GET", "/console/login", console.login_form),
    Route("POST", "/console/login", console.login),
    Route("POST", "/console/logout", console.logout),
    Route("GET", "/console/live", console.live, head=False),
    Route("GET", "/console/deliveries", console_actions.deliveries_page),
    Route("POST", "/console/deliveries/replay", console_actions.bulk_replay),
    Route("GET", "/console/deliveries/{id}", console_actions.delivery_page),
    Route("POST", "/console/deliveries/{id}/retry", console_actions.retry),
    Route("POST", "/console/deliveries/{id}/rerender", console_actions.rerender),
    Route("GET", "/console/test", console_actions.test_page),
    Route("POST", "/console/test", console_actions.test_page),
    Route("GET", "/console/hosts", console.hosts_page),
    Route("GET", "/console/catalog", console.catalog_page),
    Route("GET", "/console/config", console.config_page),
    Route("GET", "/console/static/{name}", console.static),
    Route("GET", "/api/openapi.json", openapi.serve),
)


def create_app(
    config: Config,
    store: Store,
    sink: DeliverySink,
    *,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    enricher: Enricher | None = None,
) -> web.Application:
    """The app; the batcher starts and drains with the app's lifecycle.  ``enricher``:
    default, the ones ``[enrich]`` asks for."""
    if enricher is None:
        enricher = make_enrichers(config.spec.enrich)[0]
    state = AppState(config, store, sink, metrics or Metrics(), clock or SystemClock(), enricher)
    app = web.Application(
        middlewares=[guard_middleware(state)],
        client_max_size=config.limits.max_body_bytes,
    )
    app[STATE] = state
    for route in ROUTES:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler, allow_head=route.head)
        else:
            app.router.add_route(route.method, route.path, route.handler)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        state.batcher.start()
        yield
        await state.batcher.stop()

    app.cleanup_ctx.append(lifecycle)
    console.install(app)
    return app

"""The aiohttp application: intake routes and the middlewares around them.

Middlewares, outermost first: errors become JSON (no input ever gets a 500
or a traceback), query and body limits answer 413, and ``/api/*`` needs the
bearer token when one is configured.  Handlers parse, hand the input to the
batcher and answer only when its transaction has committed.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from gateway import clickid
from gateway.clock import Clock, SystemClock
from gateway.config import Config
from gateway.dispatch import DeliverySink
from gateway.http.answer import JSONResponse, Redirect
from gateway.intake.batcher import Batcher, Closed
from gateway.intake.decide import (
    ClickInput,
    ConversionInput,
    Reject,
    Result,
    click_tokens,
    parse_conversion,
)
from gateway.metrics import CONTENT_TYPE_LATEST, Metrics
from gateway.store.base import Click
from gateway.store.sqlite import SQLiteStore

__all__ = ("STATE", "AppState", "click", "create_app", "failure", "over_limits", "postback")

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_encode = msgspec.json.encode
_decode = msgspec.json.decode


class AppState:
    """What the handlers share; ``config`` is swapped whole on SIGHUP."""

    def __init__(self, config: Config, store: SQLiteStore, sink: DeliverySink,
                 metrics: Metrics, clock: Clock) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.batcher = Batcher(
            store, sink, config=lambda: self.config, metrics=metrics, clock=clock
        )
        #: the histogram's children, looked up once and fed in bulk (metrics.BatchedObserver)
        self.latency = {e: metrics.batched(metrics.ingest_latency.labels(e))
                        for e in ("click", "postback", "conversions")}  # fmt: skip


STATE: web.AppKey[AppState] = web.AppKey("gateway_state", AppState)


def _json(body: Any, status: int = 200) -> web.Response:
    return JSONResponse(_encode(body), status)


def _error(status: int, error: str, field: str | None = None) -> web.Response:
    return _json({"error": error, "field": field}, status)


def over_limits(state: AppState, request: web.BaseRequest) -> web.Response | None:
    """413 for a query or declared body over the configured limits, else None."""
    limits = state.config.limits
    if len(request.raw_path) > limits.max_query_bytes + 256:
        return _error(413, f"query too large (max {limits.max_query_bytes} bytes)", "query")
    length = request.content_length
    if length is not None and length > limits.max_body_bytes:
        return _error(413, f"body too large (max {limits.max_body_bytes} bytes)", "body")
    return None


def failure(request: web.BaseRequest, exc: Exception) -> web.Response:
    """The JSON answer for an exception out of a handler (never a traceback)."""
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return _error(exc.status, exc.reason, "body" if exc.status == 413 else None)
    if isinstance(exc, Closed):
        return _error(503, "shutting down; retry")
    # a bug or a failed commit: logged, answered
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return _error(503, "internal error; retry")


def _middleware(state: AppState) -> Any:
    """Errors -> JSON, size limits (413), bearer token on /api/* (401): one
    middleware rather than three.  The hot routes skip it (gateway.http.front)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            refused = over_limits(state, request)
            if refused is not None:
                return refused
            token = state.config.api_token
            if token and request.path.startswith("/api/"):
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return _error(401, "missing or wrong bearer token", "Authorization")
            return await handler(request)
        except Exception as exc:
            return failure(request, exc)

    return guard


def _reject(state: AppState, reject: Reject) -> web.Response:
    state.metrics.rejected_input.labels(str(reject.code)).inc()
    return _json(reject.body(), reject.code)


def _guard(config: Config, conv: ConversionInput, request: web.BaseRequest) -> Reject | None:
    """Network allowlist and /postback secrets (constant-time)."""
    network = conv.network
    expected = network.secret if network is not None else config.spec.postback_secret
    if network is not None and not network.allows(request.remote or ""):  # peer looked up only here
        return Reject(403, "source address not allowed for this network", "network")
    if expected:
        given = conv.secret if isinstance(conv.secret, str) else ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Reject(403, "wrong secret", "secret")
    return None


async def _health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[STATE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _click(state: AppState, campaign_id: str, params: Any, *, ip: str, user_agent: str,
           referer: str, language: str) -> tuple[Click, dict[str, str]] | Reject:  # fmt: skip
    config = state.config
    campaign = config.campaigns.get(campaign_id)
    if campaign is None:
        return Reject(404, "unknown campaign", "campaign_id")
    now = state.clock.now()
    click_id = clickid.new_click_id(now)
    tokens = click_tokens(campaign, params, click_id=click_id, now=now, ip=ip,
                          user_agent=user_agent, referer=referer, language=language,
                          limit=config.limits.max_value_length)  # fmt: skip
    if isinstance(tokens, Reject):
        return tokens
    click = Click(click_id=click_id, campaign_id=campaign.id, traffic_source=campaign.source.name,
                  created_at=now, tokens=tokens)  # fmt: skip
    return click, tokens


async def click(state: AppState, request: web.BaseRequest, campaign_id: str) -> web.Response:
    """GET /click/{campaign_id}: record the click, then 302 to the offer."""
    started = time.perf_counter()
    headers = request.headers
    made = _click(state, campaign_id, request.query,
                  ip=request.remote or "", user_agent=headers.get("User-Agent", ""),
                  referer=headers.get("Referer", ""),
                  language=headers.get("Accept-Language", "").split(",")[0].strip())  # fmt: skip
    if isinstance(made, Reject):
        return _reject(state, made)
    click, tokens = made
    await state.batcher.put(ClickInput(click))
    campaign = state.config.campaigns.get(click.campaign_id)
    location = campaign.offer.render(tokens) if campaign is not None else "/"
    state.latency["click"].observe(time.perf_counter() - started)
    return Redirect(location)


async def _click_route(request: web.Request) -> web.Response:
    return await click(request.app[STATE], request, request.match_info["campaign_id"])


async def _postback_route(request: web.Request) -> web.Response:
    return await postback(request.app[STATE], request)


async def _read_array(request: web.Request) -> list[Any] | Reject:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return Reject(413, "body too large", "body")
    try:
        items = _decode(body)
    except msgspec.DecodeError as exc:
        return Reject(400, f"malformed JSON: {exc}", "body")
    if not isinstance(items, list):
        return Reject(400, "expected a JSON array", "body")
    if len(items) > request.app[STATE].config.limits.max_items:
        return Reject(413, "too many items", "body")
    return items


async def _api_clicks(request: web.Request) -> web.Response:
    state = request.app[STATE]
    items = await _read_array(request)
    if isinstance(items, Reject):
        return _reject(state, items)
    results: list[dict[str, Any]] = []
    waits = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("campaign_id"), str):
            results.append({"status": "error", "code": 400, "click_id": None,
                            "error": f"item {i}: campaign_id (string) is required",
                            "field": "campaign_id"})  # fmt: skip
            continue
        params = dict(item.get("params") or {}) if isinstance(item.get("params"), dict) else {}
        for key, value in item.items():
            if key not in ("campaign_id", "params", "ip", "user_agent", "referer", "language"):
                params.setdefault(key, value)
        for key, value in params.items():  # JSON numbers are fine as values
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    params[key] = repr(value) if isinstance(value, float) else str(value)
                except ValueError:  # an int too long to print: left as is, refused below
                    pass
        meta = {k: item.get(k) for k in ("ip", "user_agent", "referer", "language")}
        if not all(v is None or isinstance(v, str) for v in meta.values()):
            results.append({"status": "error", "code": 400, "click_id": None,
                            "error": "ip, user_agent, referer, language must be strings",
                            "field": "ip"})  # fmt: skip
            continue
        made = _click(state, item["campaign_id"], params, **{k: v or "" for k, v in meta.items()})
        if isinstance(made, Reject):
            results.append({"status": "error", "code": made.code, "click_id": None,
                            "error": made.error, "field": made.field})  # fmt: skip
            continue
        click, tokens = made
        waits.append(state.batcher.put(ClickInput(click)))
        campaign = state.config.campaigns[click.campaign_id]
        results.append({"status": "accepted", "code": 200, "click_id": click.click_id,
                        "url": campaign.offer.render(tokens)})  # fmt: skip
    for wait in waits:
        await wait
    return _json(results)


async def postback(state: AppState, request: web.BaseRequest,
                   query: list[tuple[str, str]] | None = None) -> web.Response:  # fmt: skip
    """GET|POST /postback: one conversion, answered after its group commit.

    ``query``: the query's pairs when the caller has them already (gateway.http.front)."""
    started = time.perf_counter()
    params: Any = request.query if query is None else query
    if request.method == "POST":
        merged = dict(request.query)
        if request.content_type == "application/json":
            body = await _read_object(request)
            if isinstance(body, Reject):
                return _reject(state, body)
            merged.update(body)
        else:
            form = await request.post()
            merged.update({k: v for k, v in form.items() if isinstance(v, str)})
        params = merged
    conv = parse_conversion(params, state.config)
    if isinstance(conv, Reject):
        return _reject(state, conv)
    denied = _guard(state.config, conv, request)
    if denied is not None:
        return _reject(state, denied)
    result: Result = await state.batcher.put(conv)
    state.latency["postback"].observe(time.perf_counter() - started)
    return _json(result.body, result.code)


async def _read_object(request: web.BaseRequest) -> dict[str, Any] | Reject:
    try:
        body = _decode(await request.read())
    except msgspec.DecodeError as exc:
        return Reject(400, f"malformed JSON: {exc}", "body")
    if not isinstance(body, dict):
        return Reject(400, "expected a JSON object", "body")
    return body


async def _api_conversions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    started = time.perf_counter()
    items = await _read_array(request)
    if isinstance(items, Reject):
        return _reject(state, items)
    slots: list[Any] = []
    for item in items:
        if not isinstance(item, dict):
            slots.append(Reject(400, "each item must be a JSON object", "body"))
            continue
        conv = parse_conversion(item, state.config)
        if not isinstance(conv, Reject):
            denied = _guard(state.config, conv, request)
            conv = denied or conv
        slots.append(conv if isinstance(conv, Reject) else state.batcher.put(conv))
    results: list[dict[str, Any]] = []
    for slot in slots:
        if isinstance(slot, Reject):
            results.append({"status": "error", "code": slot.code, **slot.body()})
        else:
            result: Result = await slot
            results.append({**result.body, "code": result.code})
    state.latency["conversions"].observe(time.perf_counter() - started)
    return _json(results)


def create_app(config: Config, store: SQLiteStore, sink: DeliverySink, *,
               metrics: Metrics | None = None,
               clock: Clock | None = None) -> web.Application:  # fmt: skip
    """The app; the batcher starts and drains with the app's lifecycle."""
    state = AppState(config, store, sink, metrics or Metrics(), clock or SystemClock())
    app = web.Application(
        middlewares=[_middleware(state)],
        client_max_size=config.limits.max_body_bytes,
    )
    app[STATE] = state
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    # The hot routes are answered by gateway.http.front before the router sees them;
    # registered here too for apps served by a plain AppRunner and for paths the
    # front leaves to the router (percent-encoded ones).
    app.router.add_get("/click/{campaign_id}", _click_route, allow_head=False)  # no HEAD clicks
    app.router.add_post("/api/clicks", _api_clicks)
    app.router.add_route("GET", "/postback", _postback_route)
    app.router.add_route("POST", "/postback", _postback_route)
    app.router.add_post("/api/conversions", _api_conversions)

    async def lifecycle(app: web.Application) -> Any:
        state.batcher.start()
        yield
        await state.batcher.stop()

    app.cleanup_ctx.append(lifecycle)
    return app

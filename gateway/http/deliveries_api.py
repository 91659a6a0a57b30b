"""The delivery log over HTTP: list, inspect, retry and replay deliveries.

Only ``display_url`` (secrets as ``***``) ever leaves this module; the real
URL and the rendered body stay in the store.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from gateway.dispatch import DeliverySink
from gateway.store.base import Attempt, Delivery, DeliveryFilter, Store

__all__ = ("add_routes", "attempt_json", "delivery_json")

log = logging.getLogger(__name__)

_STATUSES = ("queued", "delivered", "failed", "expired")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_STORE: web.AppKey[Store] = web.AppKey("deliveries_store")
_SINK: web.AppKey[DeliverySink] = web.AppKey("deliveries_sink")


class BadParam(Exception):
    def __init__(self, field: str, error: str) -> None:
        super().__init__(error)
        self.field = field
        self.error = error


def _bad(field: str, error: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "field": field}, status=status)


def delivery_json(d: Delivery) -> dict[str, Any]:
    """A delivery as the API shows it: display URL only, no body (it may hold secrets)."""
    return {
        "delivery_id": d.delivery_id,
        "status": d.status,
        "conversion_id": d.conversion_id,
        "traffic_source": d.traffic_source,
        "campaign_id": d.campaign_id,
        "rule": d.rule,
        "method": d.method,
        "url": d.display_url,
        "display_url": d.display_url,
        "host": d.host,
        "attempts": d.attempts,
        "max_attempts": d.max_attempts,
        "next_at": d.next_at,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "expires_at": d.expires_at,
        "answer_rule": d.answer_rule,
        "last_outcome": d.last_outcome,
        "last_reason": d.last_reason,
    }


def attempt_json(a: Attempt) -> dict[str, Any]:
    return {
        "started_at": a.started_at,
        "url": a.url,
        "status_code": a.status_code,
        "error": a.error,
        "latency_ms": round(a.latency_ms, 3),
        "body_prefix": a.body_prefix,
        "outcome": a.outcome,
        "reason": a.reason,
    }


def _time(field: str, raw: Any) -> float:
    """Unix seconds, or an ISO 8601 time with a zone."""
    if isinstance(raw, bool):
        raise BadParam(field, "expected Unix seconds or an ISO 8601 time")
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadParam(field, "expected Unix seconds or an ISO 8601 time") from None
        if when.tzinfo is None:
            raise BadParam(field, "an ISO 8601 time needs a zone (e.g. Z)") from None
        return when.timestamp()
    if value != value or value in (float("inf"), float("-inf")):
        raise BadParam(field, "expected a finite number")
    return value


def _filters(params: dict[str, Any]) -> DeliveryFilter:
    status = params.get("status")
    if status is not None and status not in _STATUSES:
        raise BadParam("status", f"expected one of {', '.join(_STATUSES)}")
    text: dict[str, str | None] = {}
    for name in ("traffic_source", "campaign_id"):
        value = params.get(name)
        if value is not None and not isinstance(value, str):
            raise BadParam(name, "expected a string")
        text[name] = value
    since = params.get("since")
    return DeliveryFilter(
        status=status, traffic_source=text["traffic_source"], campaign_id=text["campaign_id"],
        since=None if since is None else _time("since", since),
    )


def _int(field: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(field, "expected an integer") from None
    if not low <= value <= high:
        raise BadParam(field, f"expected an integer from {low} to {high}")
    return value


def _delivery_id(request: web.Request) -> int:
    return _int("id", request.match_info["id"], 1, 2**63 - 1)


async def _find(store: Store, delivery_id: int) -> Delivery | None:
    rows = await store.list_deliveries(DeliveryFilter(), after_id=delivery_id - 1, limit=1)
    return rows[0] if rows and rows[0].delivery_id == delivery_id else None


async def _list(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    q = request.rel_url.query
    try:
        filters = _filters({k: q[k] for k in ("status", "traffic_source", "campaign_id",
                                              "since") if k in q})
        cursor = _int("cursor", q["cursor"], 0, 2**63 - 1) if q.get("cursor") else None
        limit = _int("limit", q["limit"], 1, MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    except BadParam as exc:
        return _bad(exc.field, exc.error)
    rows = await store.list_deliveries(filters, after_id=cursor, limit=limit)
    next_cursor = rows[-1].delivery_id if len(rows) == limit else None
    return web.json_response(
        {"deliveries": [delivery_json(d) for d in rows], "next_cursor": next_cursor}
    )


async def _show(request: web.Request) -> web.Response:
    store = request.app[_STORE]
    try:
        delivery_id = _delivery_id(request)
    except BadParam as exc:
        return _bad(exc.field, exc.error)
    d = await _find(store, delivery_id)
    if d is None:
        return _bad("id", f"no delivery {delivery_id}", 404)
    # The detail view's ``attempts`` is the log itself; the count moves aside.
    body = delivery_json(d)
    body["attempt_count"] = d.attempts
    body["attempts"] = [attempt_json(a) for a in await store.list_attempts(delivery_id)]
    return web.json_response(body)


async def _retry(request: web.Request) -> web.Response:
    store, sink = request.app[_STORE], request.app[_SINK]
    try:
        delivery_id = _delivery_id(request)
    except BadParam as exc:
        return _bad(exc.field, exc.error)
    d = await _find(store, delivery_id)
    if d is None:
        return _bad("id", f"no delivery {delivery_id}", 404)
    if d.status == "queued":
        return _bad("id", f"delivery {delivery_id} is already queued", 409)
    rows = await store.requeue(DeliveryFilter(), ids=[delivery_id], now=_now(request))
    sink.submit(rows)
    log.info("delivery %d requeued through the API", delivery_id)
    return web.json_response(
        {"requeued": len(rows), "delivery": delivery_json(rows[0]) if rows else None}
    )


async def _replay(request: web.Request) -> web.Response:
    """Bulk requeue by filter (default: the dead letter, ``status=failed``)."""
    store, sink = request.app[_STORE], request.app[_SINK]
    params: dict[str, Any] = dict(request.rel_url.query)
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            try:
                body = msgspec.json.decode(raw)
            except msgspec.DecodeError:
                return _bad("body", "malformed JSON")
            if not isinstance(body, dict):
                return _bad("body", "expected a JSON object of filters")
            params.update(body)
    unknown = set(params) - {"status", "traffic_source", "campaign_id", "since", "ids"}
    if unknown:
        return _bad(sorted(unknown)[0], "unknown filter")
    try:
        filters = _filters(params)
        ids = _ids(params.get("ids"))
    except BadParam as exc:
        return _bad(exc.field, exc.error)
    if filters.status == "queued":
        return _bad("status", "queued deliveries are already waiting to be sent")
    rows = await store.requeue(filters, ids=ids, now=_now(request))
    sink.submit(rows)
    log.info("replayed %d deliveries through the API", len(rows))
    return web.json_response(
        {"requeued": len(rows), "delivery_ids": [d.delivery_id for d in rows]}
    )


def _ids(raw: Any) -> list[int] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [p for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list):
        raise BadParam("ids", "expected a list of delivery ids")
    out = []
    for item in raw:
        if isinstance(item, bool):
            raise BadParam("ids", "expected a list of delivery ids")
        out.append(_int("ids", str(item), 1, 2**63 - 1))
    return out


def _now(request: web.Request) -> float:
    sink = request.app[_SINK]
    clock = getattr(sink, "clock", None)
    return float(clock.now()) if clock is not None else time.time()


def add_routes(app: web.Application, store: Store, dispatcher: DeliverySink) -> None:
    """Mount the delivery API (auth is the app's middleware's job)."""
    app[_STORE] = store
    app[_SINK] = dispatcher
    app.router.add_get("/api/deliveries", _list)
    app.router.add_post("/api/deliveries/replay", _replay)
    app.router.add_get("/api/deliveries/{id}", _show)
    app.router.add_post("/api/deliveries/{id}/retry", _retry)

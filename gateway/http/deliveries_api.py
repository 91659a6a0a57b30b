"""The delivery log over HTTP: list, inspect, retry and replay deliveries.

Only ``display_url`` (secrets as ``***``) ever leaves this module; the real
URL and the rendered body stay in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.clock import iso
from gateway.dispatch.breaker import HostView
from gateway.http.errors import bad_input_response, error_response, json_response
from gateway.http.reading import decode_json
from gateway.http.state import STATE, AppState
from gateway.refusal import BadInput, Reject
from gateway.store.base import (
    DELIVERY_STATUSES,
    Attempt,
    Delivery,
    DeliveryFilter,
    DeliveryLog,
)

__all__ = (
    "FILTERS",
    "attempt_json",
    "delivery_json",
    "filters_from",
    "paused_hosts",
    "ids_from",
    "list_deliveries",
    "replay",
    "retry",
    "show",
    "time_from",
)

log = logging.getLogger(__name__)

_STATUSES = DELIVERY_STATUSES
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


#: Times shown twice: Unix seconds (``X``) and ISO 8601 in UTC (``X_iso``).
_TIMES = ("next_at", "created_at", "updated_at", "expires_at")


def _last_outcome(d: Delivery) -> str | None:
    """A dead letter whose retries are spent says ``failed``, not ``retry`` (no retry
    is coming); a refused one keeps ``rejected``, the network's verdict."""
    if d.status == "failed" and d.last_outcome == "retry":
        return "failed"
    return d.last_outcome


def delivery_json(d: Delivery, paused: Mapping[str, HostView] | None = None) -> dict[str, Any]:
    """A delivery as the API shows it, one shape in the list and in the detail: the
    display URL only, no body (it may hold secrets); ``attempt_count`` is the
    count (``attempts`` is kept for it too); the detail adds ``attempt_log``."""
    view = (paused or {}).get(d.host)
    paused_until = view.paused_until if view is not None and view.circuit != "closed" else None
    body: dict[str, Any] = {
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
        "attempt_count": d.attempts,
        "attempts": d.attempts,
        "max_attempts": d.max_attempts,
        "next_at": d.next_at,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "expires_at": d.expires_at,
        "answer_rule": d.answer_rule,
        "last_outcome": _last_outcome(d),
        "last_reason": d.last_reason,
        "host_paused_until": paused_until if d.status == "queued" else None,
    }
    for key in (*_TIMES, "host_paused_until"):
        body[f"{key}_iso"] = iso(body[key])
    return body


def attempt_json(a: Attempt) -> dict[str, Any]:
    return {
        "started_at": a.started_at,
        "started_at_iso": iso(a.started_at),
        "url": a.url,
        "status_code": a.status_code,
        "error": a.error,
        "latency_ms": round(a.latency_ms, 3),
        "body_prefix": a.body_prefix,
        "outcome": a.outcome,
        "reason": a.reason,
    }


def paused_hosts(state: AppState) -> Mapping[str, HostView]:
    """Hosts whose circuit is open or probing (their queued deliveries wait)."""
    hosts = getattr(state.sink, "hosts", None)
    views: Mapping[str, HostView] = hosts() if hosts is not None else {}
    return {h: v for h, v in views.items() if v.circuit != "closed"}


def time_from(field: str, raw: Any) -> float:
    """Unix seconds, or an ISO 8601 time with a zone."""
    if isinstance(raw, bool):
        raise BadInput("expected Unix seconds or an ISO 8601 time", field)
    if isinstance(raw, int | float):
        try:
            value = float(raw)
        except OverflowError:
            raise BadInput("expected a finite number", field) from None
        if value != value or value in (float("inf"), float("-inf")):
            raise BadInput("expected a finite number", field)
        return value
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput("expected Unix seconds or an ISO 8601 time", field) from None
        if when.tzinfo is None:
            raise BadInput("an ISO 8601 time needs a zone (e.g. Z)", field) from None
        return when.timestamp()
    if value != value or value in (float("inf"), float("-inf")):
        raise BadInput("expected a finite number", field)
    return value


#: The delivery log's text filters (``GET /api/deliveries?NAME=``), each an exact match.
TEXT_FILTERS = (
    "traffic_source",
    "campaign_id",
    "conversion_id",
    "click_id",
    "externalid",
    "transaction_id",
    "rule",
    "host",
)
#: Every filter name, as the list and the replay accept them.
FILTERS = ("status", *TEXT_FILTERS, "since", "until")


def filters_from(params: dict[str, Any]) -> DeliveryFilter:
    """The delivery filters from query or JSON parameters; raises BadInput."""
    status = params.get("status")
    if status is not None and status not in _STATUSES:
        raise BadInput(f"expected one of {', '.join(_STATUSES)}", "status")
    text: dict[str, str] = {}
    for name in TEXT_FILTERS:
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadInput("expected a string", name)
        text[name] = value
    since, until = params.get("since"), params.get("until")
    return DeliveryFilter(
        status=status,
        since=None if since is None else time_from("since", since),
        until=None if until is None else time_from("until", until),
        **text,
    )


def _int(field: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadInput("expected an integer", field) from None
    if not low <= value <= high:
        raise BadInput(f"expected an integer from {low} to {high}", field)
    return value


def _delivery_id(request: web.Request) -> int:
    return _int("id", request.match_info["id"], 1, 2**63 - 1)


async def _find(store: DeliveryLog, delivery_id: int) -> Delivery | None:
    return await store.get_delivery(delivery_id)


async def list_deliveries(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    q = request.rel_url.query
    try:
        filters = filters_from({k: q[k] for k in FILTERS if k in q})
        cursor = _int("cursor", q["cursor"], 0, 2**63 - 1) if q.get("cursor") else None
        limit = _int("limit", q["limit"], 1, MAX_LIMIT) if "limit" in q else DEFAULT_LIMIT
    except BadInput as exc:
        return bad_input_response(exc)
    rows = await store.list_deliveries(filters, after_id=cursor, limit=limit)
    next_cursor = rows[-1].delivery_id if len(rows) == limit else None
    paused = paused_hosts(request.app[STATE])
    return json_response(
        {"deliveries": [delivery_json(d, paused) for d in rows], "next_cursor": next_cursor}
    )


async def show(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    try:
        delivery_id = _delivery_id(request)
    except BadInput as exc:
        return bad_input_response(exc)
    d = await _find(store, delivery_id)
    if d is None:
        return error_response(404, f"no delivery {delivery_id}", "id")
    body = delivery_json(d, paused_hosts(request.app[STATE]))
    body["attempt_log"] = [attempt_json(a) for a in await store.list_attempts(delivery_id)]
    return json_response(body)


async def retry(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store, sink = state.store, state.sink
    try:
        delivery_id = _delivery_id(request)
    except BadInput as exc:
        return bad_input_response(exc)
    d = await _find(store, delivery_id)
    if d is None:
        return error_response(404, f"no delivery {delivery_id}", "id")
    if d.status == "queued":
        return error_response(409, f"delivery {delivery_id} is already queued", "id")
    rows = await store.requeue(DeliveryFilter(), ids=[delivery_id], now=state.clock.now())
    sink.submit(rows)
    log.info("delivery %d requeued through the API", delivery_id)
    return json_response(
        {"requeued": len(rows), "delivery": delivery_json(rows[0]) if rows else None}
    )


async def replay(request: web.Request) -> web.Response:
    """Bulk requeue by filter (default: the dead letter, ``status=failed``)."""
    state = request.app[STATE]
    store, sink = state.store, state.sink
    params: dict[str, Any] = dict(request.rel_url.query)
    if request.can_read_body:
        raw = await request.read()
        if raw.strip():
            body = decode_json(raw)
            if isinstance(body, Reject):
                return error_response(400, "malformed JSON", "body")
            if not isinstance(body, dict):
                return error_response(400, "expected a JSON object of filters", "body")
            params.update(body)
    unknown = set(params) - {*FILTERS, "ids"}
    if unknown:
        return error_response(400, "unknown filter", sorted(unknown)[0])
    try:
        filters = filters_from(params)
        ids = ids_from(params.get("ids"))
    except BadInput as exc:
        return bad_input_response(exc)
    if filters.status == "queued":
        return error_response(400, "queued deliveries are already waiting to be sent", "status")
    rows = await store.requeue(filters, ids=ids, now=state.clock.now())
    sink.submit(rows)
    log.info("replayed %d deliveries through the API", len(rows))
    return json_response({"requeued": len(rows), "delivery_ids": [d.delivery_id for d in rows]})


def ids_from(raw: Any) -> list[int] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = [p for p in raw.split(",") if p.strip()]
    if not isinstance(raw, list):
        raise BadInput("expected a list of delivery ids", "ids")
    out = []
    for item in raw:
        if isinstance(item, bool):
            raise BadInput("expected a list of delivery ids", "ids")
        out.append(_int("ids", str(item), 1, 2**63 - 1))
    return out

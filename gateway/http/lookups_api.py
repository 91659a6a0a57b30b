"""Finding what happened: a conversion or a click with its deliveries, and each
host's circuit breaker.

``GET /api/conversions/{id}`` and ``GET /api/clicks/{id}`` answer with the
record and every delivery it produced; ``GET /api/conversions?externalid=``
(or ``click_id``, ``transaction_id``) finds conversions by the keys networks
and trackers quote; ``GET /api/hosts`` shows which destinations the breaker
has paused, until when and why.  Deliveries have the delivery API's one shape
(display URLs only); the breaker's one snapshot also feeds ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.clock import iso
from gateway.dispatch.breaker import HostView
from gateway.http.deliveries_api import delivery_json, paused_hosts
from gateway.http.errors import error_response, json_response
from gateway.http.state import STATE, AppState
from gateway.store.base import Click, Conversion, ConversionFilter, DeliveryFilter, DeliveryLog

__all__ = (
    "LOOKUP_KEYS",
    "click_json",
    "conversion_json",
    "find_conversions",
    "host_rows",
    "host_views",
    "hosts",
    "show_click",
    "show_conversion",
)

#: Deliveries shown with one record (a conversion fires a few rules).
_DELIVERIES = 1000
#: The keys networks and trackers quote, as ``GET /api/conversions?NAME=`` takes them.
LOOKUP_KEYS = ("click_id", "externalid", "transaction_id")
_MAX_KEY = 1024


def conversion_json(c: Conversion) -> dict[str, Any]:
    return {
        "conversion_id": c.conversion_id,
        "click_id": c.click_id,
        "status": c.status,
        "created_at": c.created_at,
        "created_at_iso": iso(c.created_at),
        "tokens": c.tokens,
    }


def click_json(c: Click) -> dict[str, Any]:
    return {
        "click_id": c.click_id,
        "campaign_id": c.campaign_id,
        "traffic_source": c.traffic_source,
        "created_at": c.created_at,
        "created_at_iso": iso(c.created_at),
        "tokens": c.tokens,
    }


async def _deliveries(state: AppState, filters: DeliveryFilter) -> list[dict[str, Any]]:
    """In the delivery API's one shape (``deliveries_api.delivery_json``)."""
    store: DeliveryLog = state.store
    rows = await store.list_deliveries(filters, after_id=None, limit=_DELIVERIES)
    paused = paused_hosts(state)
    return [delivery_json(d, paused) for d in rows]


async def show_conversion(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store = state.store
    conversion_id = request.match_info["id"]
    conv = await store.get_conversion(conversion_id)
    if conv is None:
        return error_response(404, "no such conversion", "id")
    click = await store.get_click(conv.click_id) if conv.click_id else None
    return json_response(
        {
            **conversion_json(conv),
            "click": click_json(click) if click is not None else None,
            "deliveries": await _deliveries(state, DeliveryFilter(conversion_id=conversion_id)),
        }
    )


async def show_click(request: web.Request) -> web.Response:
    state = request.app[STATE]
    store = state.store
    click_id = request.match_info["id"]
    click = await store.get_click(click_id)
    if click is None:
        return error_response(404, "no such click", "id")
    convs = await store.find_conversions_by(ConversionFilter(click_id=click_id), limit=100)
    return json_response(
        {
            **click_json(click),
            "conversions": [conversion_json(c) for c in convs],
            "deliveries": await _deliveries(state, DeliveryFilter(click_id=click_id)),
        }
    )


async def find_conversions(request: web.Request) -> web.Response:
    """``GET /api/conversions?externalid=|click_id=|transaction_id=``, each with its deliveries."""
    state = request.app[STATE]
    store = state.store
    q = request.rel_url.query
    unknown = sorted(set(q) - {*LOOKUP_KEYS, "limit"})
    if unknown:
        expected = ", ".join(LOOKUP_KEYS)
        return error_response(400, f"unknown filter (expected {expected})", unknown[0])
    keys = {k: q[k] for k in LOOKUP_KEYS if q.get(k)}
    if not keys:
        return error_response(400, f"name one of {', '.join(LOOKUP_KEYS)}", "externalid")
    for name, value in keys.items():
        if len(value) > _MAX_KEY:
            return error_response(400, f"too long (max {_MAX_KEY})", name)
    limit = 100
    if "limit" in q:
        if not q["limit"].isdigit() or not 1 <= int(q["limit"]) <= 1000:
            return error_response(400, "expected an integer from 1 to 1000", "limit")
        limit = int(q["limit"])
    wanted = ConversionFilter(
        click_id=keys.get("click_id"),
        externalid=keys.get("externalid"),
        transaction_id=keys.get("transaction_id"),
    )
    convs = await store.find_conversions_by(wanted, limit=limit)
    out = []
    for conv in convs:
        shown = conversion_json(conv)
        shown["deliveries"] = await _deliveries(
            state, DeliveryFilter(conversion_id=conv.conversion_id)
        )
        out.append(shown)
    return json_response({"conversions": out})


async def hosts(request: web.Request) -> web.Response:
    """``GET /api/hosts``: every destination the breaker has failures on record for."""
    state = request.app[STATE]
    return json_response({"hosts": host_rows(host_views(state.sink), state.clock.now())})


def host_views(sink: object) -> Mapping[str, HostView]:
    """The breaker's snapshot (none without a dispatcher: a bare ``DeliverySink``)."""
    view: Callable[[], Mapping[str, HostView]] | None = getattr(sink, "hosts", None)
    return {} if view is None else view()


def host_rows(views: Mapping[str, HostView], now: float) -> list[dict[str, Any]]:
    """The breaker's hosts as ``GET /api/hosts`` shows them: the circuit, whether it
    holds the host's deliveries, until when (Unix seconds and ISO) and why."""
    rows = []
    for host, v in sorted(views.items()):
        until = v.paused_until
        rows.append(
            {
                "host": host,
                "circuit": v.circuit,
                "paused": until is not None,
                "paused_until": until,
                "paused_until_iso": iso(until),
                "seconds_left": None if until is None else max(0.0, round(until - now, 3)),
                "failures": v.failures,
                "reason": v.reason,
            }
        )
    return rows

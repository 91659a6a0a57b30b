"""Finding what happened: a conversion or a click with its deliveries, and each
host's circuit breaker.

``GET /api/conversions/{id}`` and ``GET /api/clicks/{id}`` answer with the
record and every delivery it produced; ``GET /api/conversions?externalid=``
(or ``click_id``, ``transaction_id``) finds conversions by the keys networks
and trackers quote; ``GET /api/hosts`` shows which destinations the breaker
has paused, until when and why.  Delivery URLs are display URLs only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.http.deliveries_api import delivery_json
from gateway.http.errors import error_response, json_response
from gateway.http.state import STATE
from gateway.store.base import Click, Conversion, ConversionFilter, DeliveryFilter, DeliveryLog

__all__ = (
    "click_json",
    "conversion_json",
    "find_conversions",
    "hosts",
    "show_click",
    "show_conversion",
)

#: Deliveries shown with one record (a conversion fires a few rules).
_DELIVERIES = 1000
_KEYS = ("click_id", "externalid", "transaction_id")
_MAX_KEY = 1024


def conversion_json(c: Conversion) -> dict[str, Any]:
    return {
        "conversion_id": c.conversion_id,
        "click_id": c.click_id,
        "status": c.status,
        "created_at": c.created_at,
        "tokens": c.tokens,
    }


def click_json(c: Click) -> dict[str, Any]:
    return {
        "click_id": c.click_id,
        "campaign_id": c.campaign_id,
        "traffic_source": c.traffic_source,
        "created_at": c.created_at,
        "tokens": c.tokens,
    }


async def _deliveries(store: DeliveryLog, filters: DeliveryFilter) -> list[dict[str, Any]]:
    rows = await store.list_deliveries(filters, after_id=None, limit=_DELIVERIES)
    return [delivery_json(d) for d in rows]


async def show_conversion(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    conversion_id = request.match_info["id"]
    conv = await store.get_conversion(conversion_id)
    if conv is None:
        return error_response(404, "no such conversion", "id")
    click = await store.get_click(conv.click_id) if conv.click_id else None
    return json_response(
        {
            **conversion_json(conv),
            "click": click_json(click) if click is not None else None,
            "deliveries": await _deliveries(store, DeliveryFilter(conversion_id=conversion_id)),
        }
    )


async def show_click(request: web.Request) -> web.Response:
    store = request.app[STATE].store
    click_id = request.match_info["id"]
    click = await store.get_click(click_id)
    if click is None:
        return error_response(404, "no such click", "id")
    convs = await store.find_conversions_by(ConversionFilter(click_id=click_id), limit=100)
    return json_response(
        {
            **click_json(click),
            "conversions": [conversion_json(c) for c in convs],
            "deliveries": await _deliveries(store, DeliveryFilter(click_id=click_id)),
        }
    )


async def find_conversions(request: web.Request) -> web.Response:
    """``GET /api/conversions?externalid=|click_id=|transaction_id=``, each with its deliveries."""
    store = request.app[STATE].store
    q = request.rel_url.query
    unknown = sorted(set(q) - {*_KEYS, "limit"})
    if unknown:
        return error_response(400, f"unknown filter (expected {', '.join(_KEYS)})", unknown[0])
    keys = {k: q[k] for k in _KEYS if q.get(k)}
    if not keys:
        return error_response(400, f"name one of {', '.join(_KEYS)}", "externalid")
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
            store, DeliveryFilter(conversion_id=conv.conversion_id)
        )
        out.append(shown)
    return json_response({"conversions": out})


async def hosts(request: web.Request) -> web.Response:
    """``GET /api/hosts``: every destination the breaker has failures on record for."""
    state = request.app[STATE]
    return json_response({"hosts": host_rows(state.sink, state.clock.now())})


def host_rows(sink: object, now: float) -> list[dict[str, Any]]:
    """The breaker's hosts as the API and /metrics show them (none without a dispatcher)."""
    view = getattr(sink, "host_states", None)
    if view is None:
        return []
    rows = []
    for host, st in sorted(view().items()):
        paused = st.open_until != 0.0
        rows.append(
            {
                "host": host,
                "paused": paused,
                "probing": st.probing,
                "until": st.open_until if paused else None,
                "seconds_left": max(0.0, round(st.open_until - now, 3)) if paused else None,
                "failures": st.failures,
                "why": st.reason,
            }
        )
    return rows

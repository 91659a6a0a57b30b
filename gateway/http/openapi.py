"""The OpenAPI 3.1 document of the HTTP API, served at ``GET /api/openapi.json``.

One operation per entry of ``app.ROUTES`` (``tests/test_openapi.py`` checks
both ways, so a new route without its description fails the suite).  Shapes
are described as far as a client needs them; the prose lives in
docs/delivery.md and docs/bad-inputs.md.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.http.deliveries_api import TEXT_FILTERS
from gateway.http.errors import json_response
from gateway.http.lookups_api import LOOKUP_KEYS
from gateway.store.base import DELIVERY_STATUSES

__all__ = ("OPERATIONS", "document", "serve")

_ERROR = {"$ref": "#/components/schemas/Error"}
_JSON = "application/json"


def _answer(description: str, schema: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {_JSON: {"schema": schema}}
    return out


def _refused(*codes: int) -> dict[str, Any]:
    return {str(c): _answer("refused: the error and the field", _ERROR) for c in codes}


_OBJECT = {"type": "object"}
_ARRAY = {"type": "array", "items": _OBJECT}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_TEXT_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_DELIVERIES = {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}
_CONVERSION_QUERY = [
    {"name": n, "in": "query", "schema": {"type": "string"}}
    for n in ("cid", "payout", "txid", "status", "event", "currency", "network", "secret")
]

#: (method, path) -> the operation, for every route the gateway serves.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/health"): {
        "summary": "Liveness: the process answers (the store is not asked)",
        "responses": {"200": _answer('{"status": "ok"}', _OBJECT)},
    },
    ("GET", "/ready"): {
        "summary": "Readiness: store reachable, config loaded, dispatcher running",
        "responses": {
            "200": _answer("ready, with each check", _OBJECT),
            "503": _answer("not ready, with each check", _OBJECT),
        },
    },
    ("GET", "/metrics"): {
        "summary": "Prometheus metrics (behind the token when metrics_require_token)",
        "responses": {
            "200": {"description": "text exposition", "content": {"text/plain": {}}},
            **_refused(401),
        },
    },
    ("GET", "/click/{campaign_id}"): {
        "summary": "Record a click and redirect to the campaign's offer",
        "parameters": [
            {"name": "campaign_id", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {"302": _answer("to the offer URL"), **_refused(400, 404, 413)},
    },
    ("GET", "/postback"): {
        "summary": "One conversion from an affiliate network (query)",
        "parameters": _CONVERSION_QUERY,
        "responses": {
            "200": _answer("accepted or duplicate", {"$ref": "#/components/schemas/Result"}),
            "202": _answer("unattributed (kept)", {"$ref": "#/components/schemas/Result"}),
            **_refused(400, 403, 409, 413),
        },
    },
    ("POST", "/postback"): {
        "summary": "One conversion from an affiliate network (form or JSON body)",
        "responses": {
            "200": _answer("accepted or duplicate", {"$ref": "#/components/schemas/Result"}),
            "202": _answer("unattributed (kept)", {"$ref": "#/components/schemas/Result"}),
            **_refused(400, 403, 409, 413),
        },
    },
    ("POST", "/api/clicks"): {
        "summary": "Clicks from an upstream tracker: one result per item, in order",
        "requestBody": {"content": {_JSON: {"schema": _ARRAY}}},
        "responses": {"200": _answer("one result per item", _ARRAY), **_refused(400, 401, 413)},
    },
    ("POST", "/api/conversions"): {
        "summary": "Conversions: one result per item, in order",
        "requestBody": {"content": {_JSON: {"schema": _ARRAY}}},
        "responses": {"200": _answer("one result per item", _ARRAY), **_refused(400, 401, 413)},
    },
    ("GET", "/api/deliveries"): {
        "summary": "The delivery log, filtered, paged by cursor",
        "parameters": [
            {"name": "status", "in": "query", "schema": {"enum": list(DELIVERY_STATUSES)}},
            *({"name": n, "in": "query", "schema": {"type": "string"}} for n in TEXT_FILTERS),
            {"name": "since", "in": "query", "schema": {"type": "string"}},
            {"name": "until", "in": "query", "schema": {"type": "string"}},
            {"name": "cursor", "in": "query", "schema": {"type": "integer"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
        ],
        "responses": {
            "200": _answer(
                "deliveries and next_cursor",
                {
                    "type": "object",
                    "properties": {
                        "deliveries": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Delivery"},
                        },
                        "next_cursor": {"type": ["integer", "null"]},
                    },
                },
            ),
            **_refused(400, 401),
        },
    },
    ("POST", "/api/deliveries/replay"): {
        "summary": "Requeue by filter (default: the dead letter, status=failed)",
        "responses": {"200": _answer("requeued ids", _OBJECT), **_refused(400, 401)},
    },
    ("POST", "/api/deliveries/rerender"): {
        "summary": "Render deliveries again from the config in force (dry run unless told)",
        "requestBody": {"content": {_JSON: {"schema": _OBJECT}}},
        "responses": {"200": _answer("old and new URL of each", _OBJECT), **_refused(400, 401)},
    },
    ("POST", "/api/backfill"): {
        "summary": "Fire a rule for past conversions that never had it (dry run unless told)",
        "requestBody": {"content": {_JSON: {"schema": _OBJECT}}},
        "responses": {
            "200": _answer("what was (or would be) created", _OBJECT),
            **_refused(400, 401, 404),
        },
    },
    ("GET", "/api/deliveries/{id}"): {
        "summary": "One delivery, the same shape as in the list, with attempt_log",
        "parameters": [_ID],
        "responses": {
            "200": _answer("the delivery", {"$ref": "#/components/schemas/Delivery"}),
            **_refused(400, 401, 404),
        },
    },
    ("POST", "/api/deliveries/{id}/retry"): {
        "summary": "Send one delivery again",
        "parameters": [_ID],
        "responses": {"200": _answer("requeued", _OBJECT), **_refused(400, 401, 404, 409)},
    },
    ("POST", "/api/postbacks/test"): {
        "summary": "Render a rule, send it once, show the answer (nothing stored)",
        "requestBody": {"content": {_JSON: {"schema": _OBJECT}}},
        "responses": {"200": _answer("the answer and its verdict", _OBJECT), **_refused(400, 401)},
    },
    ("GET", "/api/conversions"): {
        "summary": "Conversions by externalid, click_id or transaction_id, with their deliveries",
        "parameters": [
            *({"name": n, "in": "query", "schema": {"type": "string"}} for n in LOOKUP_KEYS),
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000}},
        ],
        "responses": {
            "200": _answer(
                "conversions",
                {
                    "type": "object",
                    "properties": {
                        "conversions": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Conversion"},
                        }
                    },
                },
            ),
            **_refused(400, 401),
        },
    },
    ("GET", "/api/conversions/{id}"): {
        "summary": "One conversion, its click and every delivery it produced",
        "parameters": [_TEXT_ID],
        "responses": {
            "200": _answer("the conversion", {"$ref": "#/components/schemas/Conversion"}),
            **_refused(401, 404),
        },
    },
    ("GET", "/api/clicks/{id}"): {
        "summary": "One click, its conversions and every delivery they produced",
        "parameters": [_TEXT_ID],
        "responses": {
            "200": _answer("the click", {"$ref": "#/components/schemas/Click"}),
            **_refused(401, 404),
        },
    },
    ("GET", "/api/hosts"): {
        "summary": "Destination hosts with failures on record: circuit, until when, why",
        "responses": {
            "200": _answer(
                "hosts",
                {
                    "type": "object",
                    "properties": {
                        "hosts": {"type": "array", "items": {"$ref": "#/components/schemas/Host"}}
                    },
                },
            ),
            **_refused(401),
        },
    },
    ("GET", "/api/openapi.json"): {
        "summary": "This document",
        "responses": {"200": _answer("OpenAPI 3.1", _OBJECT), **_refused(401)},
    },
}

_TIME = {"type": ["number", "null"], "description": "Unix seconds"}
_ISO = {"type": ["string", "null"], "format": "date-time"}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "field"],
        "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
    },
    "Result": {
        "type": "object",
        "required": ["status", "conversion_id", "postbacks"],
        "properties": {
            "status": {"enum": ["accepted", "duplicate", "unattributed"]},
            "conversion_id": {"type": "string"},
            "postbacks": {"type": "integer"},
        },
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "delivery_id": {"type": "integer"},
            "status": {"enum": list(DELIVERY_STATUSES)},
            "url": {"type": "string", "description": "secrets shown as ***"},
            "attempt_count": {"type": "integer"},
            "attempts": {"type": "integer", "description": "the same count"},
            "last_outcome": {"type": ["string", "null"]},
            "host_paused_until": _TIME,
            **{k: _TIME for k in ("next_at", "created_at", "updated_at", "expires_at")},
            **{f"{k}_iso": _ISO for k in ("next_at", "created_at", "updated_at", "expires_at")},
            "attempt_log": {
                "type": "array",
                "description": "detail only",
                "items": {"type": "object"},
            },
        },
    },
    "Conversion": {
        "type": "object",
        "properties": {
            "conversion_id": {"type": "string"},
            "click_id": {"type": ["string", "null"]},
            "status": {"type": ["string", "null"]},
            "created_at": _TIME,
            "created_at_iso": _ISO,
            "tokens": _OBJECT,
            "click": {"description": "detail only", "type": ["object", "null"]},
            "deliveries": _DELIVERIES,
        },
    },
    "Click": {
        "type": "object",
        "properties": {
            "click_id": {"type": "string"},
            "campaign_id": {"type": "string"},
            "traffic_source": {"type": ["string", "null"]},
            "created_at": _TIME,
            "created_at_iso": _ISO,
            "tokens": _OBJECT,
            "conversions": _ARRAY,
            "deliveries": _DELIVERIES,
        },
    },
    "Host": {
        "type": "object",
        "properties": {
            "host": {"type": "string"},
            "circuit": {"enum": ["closed", "open", "half-open"]},
            "paused": {"type": "boolean"},
            "paused_until": _TIME,
            "paused_until_iso": _ISO,
            "seconds_left": {"type": ["number", "null"]},
            "failures": {"type": "integer", "description": "consecutive, since the last success"},
            "reason": {"type": "string", "description": "the last failure, in words"},
        },
    },
}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), operation in OPERATIONS.items():
        secured: dict[str, Any] = {"security": [{"bearer": []}]} if path.startswith("/api/") else {}
        paths.setdefault(path, {})[method.lower()] = {**operation, **secured}
    return {
        "openapi": "3.1.0",
        "info": {"title": "postback-gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def serve(request: web.Request) -> web.Response:
    return json_response(document())

"""Fix-and-replay and backfill over HTTP (``gateway.replay`` does the work).

``POST /api/deliveries/rerender`` renders chosen deliveries again from the
config now in force; ``POST /api/backfill`` fires a rule for conversions
received before it existed.  Both are dry runs unless the body says
``"dry_run": false``: the dry run shows what would be sent (old and new
display URL side by side) and writes and sends nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from gateway import replay
from gateway.http.deliveries_api import FILTERS, filters_from, ids_from, time_from
from gateway.http.errors import bad_input_response, error_response, json_response
from gateway.http.state import STATE
from gateway.refusal import BadInput

__all__ = ("backfill", "rerender")

log = logging.getLogger(__name__)

_MAX_SELECTED = 1000
_BACKFILL_FIELDS = ("rule", "since", "until", "campaign_id", "traffic_source", "dry_run")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read() if request.can_read_body else b""
    if not raw.strip():
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise BadInput("malformed JSON", "body") from None
    if not isinstance(body, dict):
        raise BadInput("expected a JSON object", "body")
    return body


def _dry_run(body: dict[str, Any]) -> bool:
    value = body.get("dry_run", True)
    if not isinstance(value, bool):
        raise BadInput("expected true or false", "dry_run")
    return value


async def rerender(request: web.Request) -> web.Response:
    """Body: ``ids`` or the delivery filters (default ``status=failed``), ``dry_run``."""
    state = request.app[STATE]
    try:
        body = await _body(request)
        unknown = sorted(set(body) - {*FILTERS, "ids", "dry_run"})
        if unknown:
            raise BadInput("unknown field", unknown[0])
        dry_run = _dry_run(body)
        ids = ids_from(body.get("ids"))
        wanted = {k: v for k, v in body.items() if k in FILTERS}
        if ids is None and "status" not in wanted:
            wanted["status"] = "failed"
        filters = filters_from(wanted)
    except BadInput as exc:
        return bad_input_response(exc)
    if filters.status == "queued":
        return error_response(400, "queued deliveries are about to be sent as they are", "status")
    store = state.store
    if ids is not None:
        found = [await store.get_delivery(i) for i in ids[:_MAX_SELECTED]]
        chosen = [d for d in found if d is not None]
    else:
        chosen = await store.list_deliveries(filters, after_id=None, limit=_MAX_SELECTED)
    answer, queued = await replay.rerender(
        state.config, store, chosen, dry_run=dry_run, now=state.clock.now()
    )
    if queued:
        state.sink.submit(queued)
    if not dry_run:
        log.info("re-rendered %d deliveries through the API", answer["rerendered"])
    return json_response(answer)


async def backfill(request: web.Request) -> web.Response:
    """Body: ``rule`` and ``since`` (required), ``until``, ``campaign_id``,
    ``traffic_source``, ``dry_run``."""
    state = request.app[STATE]
    config = state.config
    now = state.clock.now()
    try:
        body = await _body(request)
        unknown = sorted(set(body) - set(_BACKFILL_FIELDS))
        if unknown:
            raise BadInput("unknown field", unknown[0])
        dry_run = _dry_run(body)
        rule = body.get("rule")
        if not isinstance(rule, str) or not rule:
            raise BadInput("name the rule to fire (its name in the config)", "rule")
        if not any(r.name == rule for _, r in config.judged):
            raise BadInput(f"no rule named {rule[:64]!r} in the config", "rule", 404)
        if body.get("since") is None:
            raise BadInput("a backfill needs a start time (Unix seconds or ISO 8601)", "since")
        since = time_from("since", body["since"])
        until = time_from("until", body["until"]) if body.get("until") is not None else now
        if until <= since:
            raise BadInput("must be after since", "until")
        text: dict[str, str | None] = {}
        for name in ("campaign_id", "traffic_source"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise BadInput("expected a string", name)
            text[name] = value
    except BadInput as exc:
        return bad_input_response(exc)
    answer, queued = await replay.backfill(
        config,
        state.store,
        rule,
        since=since,
        until=until,
        campaign_id=text["campaign_id"],
        traffic_source=text["traffic_source"],
        dry_run=dry_run,
        now=now,
    )
    if queued:
        state.sink.submit(queued)
    if not dry_run:
        log.info("backfill of %s: %d deliveries created", rule, answer["created"])
    return json_response(answer)

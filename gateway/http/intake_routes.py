"""The intake routes: a click's redirect, a conversion's answer, and their bulk APIs.

Each handler parses, checks who may send, hands the input to the batcher and
answers only once its group commit is durable.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway import clickid
from gateway.http.answer import Redirect
from gateway.http.errors import OUTCOME_STATUS, json_response, reject_response
from gateway.http.reading import decode_json, read_form
from gateway.http.request import IntakeRequest
from gateway.http.state import STATE, AppState
from gateway.intake.client_address import TrustedProxies, client_address
from gateway.intake.decide import Result
from gateway.intake.guard import conversion_refusal
from gateway.intake.params import ClickInput, ConversionInput, parse_conversion
from gateway.intake.placeholders import click_flaw, conversion_flaw
from gateway.refusal import Reject
from gateway.store.base import Click
from gateway.tokens import Visit, click_tokens

__all__ = (
    "api_clicks",
    "api_conversions",
    "click",
    "click_route",
    "postback",
    "postback_route",
    "request_visit",
)

#: /api/clicks item keys that are the visit itself (others are click parameters)
_VISIT_FIELDS = frozenset(
    ("campaign_id", "params", "ip", "user_agent", "referer", "language", "domain")
)


def _reject(state: AppState, reject: Reject) -> web.Response:
    state.metrics.rejected_input.labels(str(reject.code)).inc()
    return reject_response(reject)


def _refusal(state: AppState, conv: ConversionInput, request: IntakeRequest) -> Reject | None:
    config = state.config  # the sender's address is looked up here only
    peer = client_address(request.remote or "", request.headers, config.trusted_proxies)
    return conversion_refusal(config, conv, peer)


def request_visit(remote: str, headers: Any, trusted: TrustedProxies) -> Visit:
    """What a visitor's request says: its address (behind trusted proxies), user
    agent, referer and first language.  ``python -m gateway visit`` calls it too."""
    return Visit(
        ip=client_address(remote, headers, trusted),
        user_agent=headers.get("User-Agent", ""),
        referer=headers.get("Referer", ""),
        language=headers.get("Accept-Language", "").split(",")[0].split(";")[0].strip(),
        domain=_host_name(headers.get("Host", "")),
    )


def _host_name(host: str) -> str:
    """``Host`` without its port (``[::1]:8080`` -> ``[::1]``)."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.partition(":")[0]


def _click(
    state: AppState, campaign_id: str, params: Any, visit: Visit
) -> tuple[Click, dict[str, str]] | Reject:
    config = state.config
    campaign = config.campaigns.get(campaign_id)
    if campaign is None:
        return Reject(404, "unknown campaign", "campaign_id")
    now = state.clock.now()
    click_id = clickid.new_click_id(now)
    tokens = click_tokens(
        campaign,
        params,
        click_id=click_id,
        now=now,
        visit=visit,
        limit=config.limits.max_value_length,
        enricher=state.enricher,
        secret=config.server.secret,
    )
    if isinstance(tokens, Reject):
        return tokens
    click = Click(
        click_id=click_id,
        campaign_id=campaign.id,
        traffic_source=campaign.source.name,
        created_at=now,
        tokens=tokens,
    )
    return click, tokens


def _flag_click(state: AppState, click: Click, endpoint: str) -> str | None:
    """Count a click whose postbacks would be held (it is recorded all the same)."""
    campaign = state.config.campaigns.get(click.campaign_id)
    flaw = click_flaw(campaign, click.tokens) if campaign is not None else None
    if flaw is not None:
        state.metrics.placeholder_inputs.labels(click.traffic_source, endpoint).inc()
    return flaw


async def click(state: AppState, request: IntakeRequest, campaign_id: str) -> web.Response:
    """GET /click/{campaign_id}: record the click, then 302 to the offer."""
    started = time.perf_counter()
    visit = request_visit(request.remote or "", request.headers, state.config.trusted_proxies)
    made = _click(state, campaign_id, request.query, visit)
    if isinstance(made, Reject):
        return _reject(state, made)
    click, tokens = made
    _flag_click(state, click, "click")
    await state.batcher.put(ClickInput(click))
    campaign = state.config.campaigns.get(click.campaign_id)
    location = campaign.offer.render(tokens) if campaign is not None else "/"
    state.latency["click"].observe(time.perf_counter() - started)
    return Redirect(location)


async def click_route(request: web.Request) -> web.Response:
    return await click(request.app[STATE], request, request.match_info["campaign_id"])


async def postback_route(request: web.Request) -> web.Response:
    return await postback(request.app[STATE], request)


async def _read_array(request: web.Request) -> list[Any] | Reject:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return Reject(413, "body too large", "body")
    items = decode_json(body)
    if isinstance(items, Reject):
        return items
    if not isinstance(items, list):
        return Reject(400, "expected a JSON array", "body")
    if len(items) > request.app[STATE].config.limits.max_items:
        return Reject(413, "too many items", "body")
    return items


async def api_clicks(request: web.Request) -> web.Response:
    state = request.app[STATE]
    items = await _read_array(request)
    if isinstance(items, Reject):
        return _reject(state, items)
    results: list[dict[str, Any]] = []
    waits = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("campaign_id"), str):
            results.append(
                {
                    "status": "error",
                    "code": 400,
                    "click_id": None,
                    "error": f"item {i}: campaign_id (string) is required",
                    "field": "campaign_id",
                }
            )
            continue
        params = dict(item.get("params") or {}) if isinstance(item.get("params"), dict) else {}
        for key, value in item.items():
            if key not in _VISIT_FIELDS:
                params.setdefault(key, value)
        for key, value in params.items():  # JSON numbers are fine as values
            if isinstance(value, int | float) and not isinstance(value, bool):
                try:
                    params[key] = repr(value) if isinstance(value, float) else str(value)
                except ValueError:  # an int too long to print: left as is, refused below
                    pass
        meta = {k: item.get(k) for k in ("ip", "user_agent", "referer", "language", "domain")}
        if not all(v is None or isinstance(v, str) for v in meta.values()):
            results.append(
                {
                    "status": "error",
                    "code": 400,
                    "click_id": None,
                    "error": "ip, user_agent, referer, language, domain must be strings",
                    "field": "ip",
                }
            )
            continue
        made = _click(
            state, item["campaign_id"], params, Visit(**{k: v or "" for k, v in meta.items()})
        )
        if isinstance(made, Reject):
            results.append(
                {
                    "status": "error",
                    "code": made.code,
                    "click_id": None,
                    "error": made.error,
                    "field": made.field,
                }
            )
            continue
        click, tokens = made
        flaw = _flag_click(state, click, "api_clicks")
        waits.append(state.batcher.put(ClickInput(click)))
        campaign = state.config.campaigns[click.campaign_id]
        result: dict[str, Any] = {
            "status": "accepted",
            "code": 200,
            "click_id": click.click_id,
            "url": campaign.offer.render(tokens),
        }
        if flaw is not None:
            result["warning"] = f"its postbacks will be held: {flaw}"
        results.append(result)
    for wait in waits:
        await wait
    return json_response(results)


async def postback(
    state: AppState, request: IntakeRequest, query: list[tuple[str, str]] | None = None
) -> web.Response:
    """GET|POST /postback: one conversion, answered after its group commit.

    ``query``: the query's pairs when the caller has them already (gateway.http.front).
    Only aiohttp's requests carry a body (the hot lane reads GETs)."""
    started = time.perf_counter()
    params: Any = request.query if query is None else query
    if isinstance(request, web.BaseRequest) and request.method == "POST":
        merged = dict(request.query)
        if request.content_type == "application/json" or await _looks_like_json(request):
            # a JSON object sent as a form (a common misconfiguration) is read as JSON:
            # as a form it would be one meaningless key and "no click id"
            body = await _read_object(request)
            if isinstance(body, Reject):
                return _reject(state, body)
            merged.update(body)
        else:
            form = await read_form(request)
            if isinstance(form, Reject):
                return _reject(state, form)
            merged.update(form)
        params = merged
    conv = parse_conversion(params, state.config)
    if isinstance(conv, Reject):
        return _reject(state, conv)
    denied = _refusal(state, conv, request)
    if denied is not None:
        return _reject(state, denied)
    _flag_conversion(state, conv, "postback")
    result: Result = await state.batcher.put(conv)
    state.latency["postback"].observe(time.perf_counter() - started)
    return json_response(result.body, OUTCOME_STATUS[result.outcome])


def _flag_conversion(state: AppState, conv: ConversionInput, endpoint: str) -> None:
    """Count an upstream tracker's conversion carrying a placeholder of its own."""
    if conv.click_id is None and conv.data:
        flagged = conversion_flaw(state.config, conv)
        if flagged is not None:
            state.metrics.placeholder_inputs.labels(flagged[0], endpoint).inc()


async def _looks_like_json(request: web.BaseRequest) -> bool:
    """A form-typed body that is a JSON object (``{...}``), which no form can be."""
    if request.content_type not in ("application/x-www-form-urlencoded", "text/plain", ""):
        return False
    try:
        raw = await request.read()  # aiohttp keeps it: post() reads the same bytes
    except web.HTTPRequestEntityTooLarge:
        return False  # post() answers it as before
    return raw.lstrip()[:1] == b"{"


async def _read_object(request: web.BaseRequest) -> dict[str, Any] | Reject:
    body = decode_json(await request.read())
    if isinstance(body, Reject):
        return body
    if not isinstance(body, dict):
        return Reject(400, "expected a JSON object", "body")
    return body


async def api_conversions(request: web.Request) -> web.Response:
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
            denied = _refusal(state, conv, request)
            conv = denied or conv
        if not isinstance(conv, Reject):
            _flag_conversion(state, conv, "api_conversions")
        slots.append(conv if isinstance(conv, Reject) else state.batcher.put(conv))
    results: list[dict[str, Any]] = []
    for slot in slots:
        if isinstance(slot, Reject):
            results.append({"status": "error", "code": slot.code, **slot.body()})
        else:
            result: Result = await slot
            results.append({**result.body, "code": OUTCOME_STATUS[result.outcome]})
    state.latency["conversions"].observe(time.perf_counter() - started)
    return json_response(results)

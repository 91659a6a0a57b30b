"""The console's delivery log, a delivery's page with retry and fix-and-replay, the test form.

Each action calls what its ``/api`` twin calls (the store's filters and
``requeue``, ``gateway.replay.rerender``, ``gateway.testpostback``), so the
console and the API cannot disagree.  Only display URLs (secrets as ``***``)
reach a page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from gateway import replay
from gateway.config import Config
from gateway.console.pages import e, form, page_response, see_other, table, when
from gateway.console.routes import console_page
from gateway.console.session import Session
from gateway.http.deliveries_api import FILTERS, filters_from
from gateway.http.state import STATE
from gateway.refusal import BadInput
from gateway.store.base import DELIVERY_STATUSES, DeliveryFilter
from gateway.testpostback import parse_request, plan_and_send

__all__ = (
    "bulk_replay",
    "deliveries_page",
    "delivery_page",
    "rerender",
    "retry",
    "test_page",
)

_PAGE = 50
#: the bulk replay counts at most this many before asking
_COUNT_MAX = 100_000
_LABELS = {
    "conversion_id": "conversion id",
    "click_id": "click id",
    "externalid": "externalid",
    "transaction_id": "transaction id",
    "traffic_source": "source",
    "campaign_id": "campaign",
    "rule": "rule",
    "host": "host",
    "since": "since (ISO or Unix)",
    "until": "until",
}


def _status(value: str) -> str:
    return f'<span class="status-{e(value)}">{e(value)}</span>'


def _search_form(q: dict[str, str]) -> str:
    options = "".join(
        f'<option value="{s}"{" selected" if q.get("status") == s else ""}>{s}</option>'
        for s in ("", *DELIVERY_STATUSES)
    )
    fields = "".join(
        f'<label>{e(label)}<input name="{name}" value="{e(q.get(name, ""))}"></label>'
        for name, label in _LABELS.items()
    )
    return (
        "<form method=get action=/console/deliveries class=search>"
        f"<label>status<select name=status>{options}</select></label>{fields}"
        "<button type=submit>Search</button></form>"
    )


@console_page
async def deliveries_page(request: web.Request, session: Session) -> web.StreamResponse:
    store = request.app[STATE].store
    q = {k: v for k, v in request.rel_url.query.items() if k in (*FILTERS, "cursor") and v}
    body = _search_form(q)
    try:
        filters = filters_from({k: v for k, v in q.items() if k in FILTERS})
        cursor = int(q["cursor"]) if q.get("cursor", "").isdigit() else None
    except BadInput as exc:
        body += f'<p class="error">{e(exc.field)}: {e(exc)}</p>'
        return page_response("Deliveries", body, session, status=400)
    rows = await store.list_deliveries(filters, after_id=cursor, limit=_PAGE)
    cells = [
        (
            f'<a href="/console/deliveries/{d.delivery_id}">{d.delivery_id}</a>',
            _status(d.status),
            e(d.traffic_source),
            e(d.campaign_id),
            e(d.rule),
            f"<code>{e(d.host)}</code>",
            e(d.attempts),
            e(d.last_outcome),
            e(when(d.updated_at)),
            f'<span class="url">{e(d.display_url)}</span>',
        )
        for d in rows
    ]
    headers = ["id", "status", "source", "campaign", "rule", "host", "tries", "last", "updated"]
    body += table([*headers, "URL"], cells) if cells else "<p>No delivery matches.</p>"
    if len(rows) == _PAGE:
        more = urlencode({**q, "cursor": str(rows[-1].delivery_id)})
        body += f'<p><a href="/console/deliveries?{e(more)}">older →</a></p>'
    kept = {k: v for k, v in q.items() if k in FILTERS and k != "status"}
    body += "<h2>bulk replay</h2>" + form(
        "/console/deliveries/replay",
        session,
        _hidden(kept) + '<input type="hidden" name="confirm" value="0">',
        "Replay every failed delivery matching these filters…",
    )
    return page_response("Deliveries", body, session)


def _hidden(values: dict[str, str]) -> str:
    return "".join(f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in values.items())


async def _count(store: Any, filters: DeliveryFilter) -> int:
    """How many match, paging through the log (the store has no count)."""
    total, after = 0, None
    while total < _COUNT_MAX:
        rows = await store.list_deliveries(filters, after_id=after, limit=1000)
        total += len(rows)
        if len(rows) < 1000:
            break
        after = rows[-1].delivery_id
    return total


@console_page
async def bulk_replay(request: web.Request, session: Session) -> web.StreamResponse:
    """Requeue the failed deliveries a filter matches: first the count, then a confirm form."""
    state = request.app[STATE]
    data = await request.post()
    wanted = {
        k: v for k, v in data.items() if k in FILTERS and k != "status" and isinstance(v, str) and v
    }
    try:
        filters = msgspec.structs.replace(filters_from(wanted), status="failed")
    except BadInput as exc:
        body = f'<p class="error">{e(exc.field)}: {e(exc)}</p>'
        return page_response("Bulk replay", body, session, status=400)
    if data.get("confirm") != "1":
        n = await _count(state.store, filters)
        shown = ", ".join(f"{k}={v}" for k, v in wanted.items()) or "no other filter"
        body = f'<p id="count">{n} failed deliveries match ({e(shown)}).</p>'
        if n:
            body += form(
                "/console/deliveries/replay",
                session,
                _hidden(wanted) + '<input type="hidden" name="confirm" value="1">',
                f"Replay these {n}",
            )
        body += '<p><a href="/console/deliveries">back</a></p>'
        return page_response("Bulk replay: confirm", body, session)
    rows = await state.store.requeue(filters, ids=None, now=state.clock.now())
    state.sink.submit(rows)
    back = urlencode({**wanted, "status": "queued"})
    body = (
        f'<p class="notice" id="count">Requeued {len(rows)}.</p>'
        f'<p><a href="/console/deliveries?{e(back)}">see them</a></p>'
    )
    return page_response("Bulk replay: done", body, session)


def _delivery_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or not 0 < int(raw) < 2**63:
        raise web.HTTPNotFound()
    return int(raw)


@console_page
async def delivery_page(request: web.Request, session: Session) -> web.StreamResponse:
    store = request.app[STATE].store
    delivery_id = _delivery_id(request)
    d = await store.get_delivery(delivery_id)
    if d is None:
        body = f'<p class="error">No delivery {delivery_id}.</p>'
        return page_response("Delivery", body, session, status=404)
    notice = request.rel_url.query.get("done", "")
    body = f'<p class="notice">{e(notice)}</p>' if notice else ""
    facts = [
        ("status", _status(d.status)),
        (
            "conversion",
            f'<a href="/console/deliveries?conversion_id={e(d.conversion_id)}">'
            f"{e(d.conversion_id)}</a>",
        ),
        ("traffic source", e(d.traffic_source)),
        ("campaign", e(d.campaign_id)),
        ("rule", e(d.rule)),
        ("URL", f'<span class="url">{e(d.method)} {e(d.display_url)}</span>'),
        ("host", f"<code>{e(d.host)}</code>"),
        ("attempts", f"{e(d.attempts)} of {e(d.max_attempts)}"),
        ("next attempt", e(when(d.next_at)) if d.status == "queued" else ""),
        ("answer rule", e(d.answer_rule)),
        ("last verdict", f"{e(d.last_outcome)}: {e(d.last_reason)}"),
        ("created", e(when(d.created_at))),
        ("expires", e(when(d.expires_at))),
    ]
    body += table(["", ""], facts, cls="facts")
    attempts = [
        (
            e(when(a.started_at)),
            f'<span class="url">{e(a.url)}</span>',
            e(a.status_code if a.status_code is not None else a.error),
            f'<span class="num">{a.latency_ms:.1f}</span>',
            f"<code>{e(a.body_prefix)}</code>",
            _status(a.outcome),
            e(a.reason),
        )
        for a in await store.list_attempts(delivery_id)
    ]
    body += "<h2>attempts</h2>" + (
        table(["when", "URL", "answer", "ms", "body", "verdict", "why"], attempts)
        if attempts
        else "<p>Not sent yet.</p>"
    )
    if d.status != "queued":
        body += "<h2>act</h2>" + form(
            f"/console/deliveries/{delivery_id}/retry", session, "", "Retry as it was sent"
        )
        body += form(
            f"/console/deliveries/{delivery_id}/rerender",
            session,
            '<input type="hidden" name="dry_run" value="1">',
            "Fix and replay: show the new rendering first",
        )
    return page_response(f"Delivery {delivery_id}", body, session)


@console_page
async def retry(request: web.Request, session: Session) -> web.StreamResponse:
    state = request.app[STATE]
    delivery_id = _delivery_id(request)
    d = await state.store.get_delivery(delivery_id)
    if d is None:
        raise web.HTTPNotFound()
    done = "already queued"
    if d.status != "queued":
        rows = await state.store.requeue(DeliveryFilter(), ids=[delivery_id], now=state.clock.now())
        state.sink.submit(rows)
        done = f"requeued {len(rows)}"
    return see_other(f"/console/deliveries/{delivery_id}?{urlencode({'done': done})}")


def _diff(item: dict[str, Any]) -> str:
    if "skipped" in item:
        return f'<p class="error">Not re-rendered: {e(item["skipped"])}</p>'
    same = "" if item.get("changed") else "<p>The new rendering is the same URL.</p>"
    held = '<p class="warn">It would be held: a value is still a placeholder.</p>'
    return (
        table(
            ["", "URL"],
            [
                ("sent", f'<span class="url diff-old">{e(item["old_url"])}</span>'),
                ("now", f'<span class="url diff-new">{e(item.get("new_url"))}</span>'),
            ],
        )
        + same
        + (held if item.get("held") else "")
    )


@console_page
async def rerender(request: web.Request, session: Session) -> web.StreamResponse:
    """Dry run first (the old and new URL side by side), then a form to do it."""
    state = request.app[STATE]
    delivery_id = _delivery_id(request)
    d = await state.store.get_delivery(delivery_id)
    if d is None:
        raise web.HTTPNotFound()
    dry_run = (await request.post()).get("dry_run") != "0"
    answer, queued = await replay.rerender(
        state.config, state.store, [d], dry_run=dry_run, now=state.clock.now()
    )
    if not dry_run:
        if queued:
            state.sink.submit(queued)
        done = f"re-rendered {answer['rerendered']}, queued {answer['queued']}"
        return see_other(f"/console/deliveries/{delivery_id}?{urlencode({'done': done})}")
    item = answer["deliveries"][0]
    body = _diff(item)
    if "skipped" not in item:
        body += form(
            f"/console/deliveries/{delivery_id}/rerender",
            session,
            '<input type="hidden" name="dry_run" value="0">',
            "Replay with the new rendering",
        )
    body += f'<p><a href="/console/deliveries/{delivery_id}">back</a></p>'
    return page_response(f"Fix and replay {delivery_id}: dry run", body, session)


def _test_form(session: Session, q: dict[str, str], config: Config) -> str:
    sources = "".join(f'<option value="{e(n)}">' for n in config.sources)
    campaigns = "".join(f'<option value="{e(n)}">' for n in config.campaigns)
    inner = (
        f'<datalist id="sources">{sources}</datalist>'
        f'<datalist id="campaigns">{campaigns}</datalist>'
        '<label>traffic source<input name="source" list="sources" '
        f'value="{e(q.get("source", ""))}"></label>'
        '<label>or campaign<input name="campaign" list="campaigns" '
        f'value="{e(q.get("campaign", ""))}"></label>'
        f'<label>rule (index or name)<input name="rule" value="{e(q.get("rule", ""))}"></label>'
        "<label>values, one <code>name=value</code> a line"
        f'<textarea name="values" rows="5">{e(q.get("values", ""))}</textarea></label>'
    )
    return form("/console/test", session, inner, "Send once", cls="stack")


@console_page
async def test_page(request: web.Request, session: Session) -> web.StreamResponse:
    """The console form of ``POST /api/postbacks/test``: the same parsing, rendering, judging."""
    if request.method == "GET":
        form_html = _test_form(session, {}, request.app[STATE].config)
        return page_response("Test a postback", form_html, session)
    data = await request.post()
    q = {k: v for k, v in data.items() if isinstance(v, str) and k != "csrf"}
    raw: dict[str, Any] = {"values": {}}
    for key in ("source", "campaign"):
        if q.get(key):
            raw[key] = q[key]
    if q.get("rule"):
        raw["rule"] = int(q["rule"]) if q["rule"].isdigit() else q["rule"]
    for line in q.get("values", "").splitlines():
        name, eq, value = line.strip().partition("=")
        if eq and name:
            raw["values"][name.strip()] = value.strip()
    body = _test_form(session, q, request.app[STATE].config)
    try:
        result = await plan_and_send(request.app[STATE].config, parse_request(raw))
    except BadInput as exc:
        body += f'<p class="error" id="result">{e(exc.field)}: {e(exc)}</p>'
        return page_response("Test a postback", body, session, status=exc.status)
    shown = [
        ("URL", f'<span class="url">{e(result["method"])} {e(result["url"])}</span>'),
        ("rule", e(result["rule"])),
        ("answer", e(result["status_code"] if result["status_code"] else result["error"])),
        ("latency ms", e(result["latency_ms"])),
        ("body", f"<code>{e(result['body_excerpt'])}</code>"),
        ("verdict", f"{_status(result['outcome'])}: {e(result['reason'])}"),
        ("answer rule", f"{e(result['answer_rule'])} ({e(result['answer_rule_why'])})"),
        ("stored", "no: a test is never stored"),
    ]
    body += f'<h2>result</h2><div id="result">{table(["", ""], shown)}</div>'
    return page_response("Test a postback", body, session)

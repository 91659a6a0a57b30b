"""The console's handlers for logging in, the live overview, hosts, catalog and config.

Every page goes through ``console_page``: no session, no page (a login
form, or ``403`` for a non-loopback peer when no ``api_token`` is set), and
no POST without the session's CSRF token.  The delivery pages and the test
form are in ``console.actions``; ``http.app.ROUTES`` lists them all.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web

from gateway.config import Config, read
from gateway.console import session as sess
from gateway.console.health import MAX_ATTEMPTS, WINDOW_S, host_health
from gateway.console.pages import e, page_response, see_other, table, when
from gateway.console.session import Session, Sessions
from gateway.console.stats import OUTCOMES, WINDOWS, Stats
from gateway.http.lookups_api import host_rows, host_views
from gateway.http.state import STATE
from gateway.sources import catalog

__all__ = (
    "CONSOLE",
    "Console",
    "PageHandler",
    "catalog_page",
    "config_page",
    "console_page",
    "hosts_page",
    "install",
    "live",
    "login",
    "login_form",
    "logout",
    "overview",
    "static",
)

PageHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]


class Console:
    """The console's state in one app: sessions, the rolling stats, when the config changed."""

    def __init__(self, stats: Stats, config: Config, now: float) -> None:
        self.sessions = Sessions()
        self.stats = stats
        self.config = config
        self.loaded_at = now
        self.closing = False
        self._fragment: tuple[int, str] = (-1, "")

    def fragment(self) -> str:
        """The live overview's HTML, rendered once per tick for every browser."""
        tick = self.stats.tick
        if self._fragment[0] != tick:
            self._fragment = (tick, overview_fragment(self.stats))
        return self._fragment[1]


CONSOLE: web.AppKey[Console] = web.AppKey("gateway_console", Console)


def install(app: web.Application) -> None:
    """Give ``app`` a console: its state, the sampler while the app runs."""
    state = app[STATE]
    stats = Stats(state.metrics)
    console = Console(stats, state.config, state.clock.now())

    def seen() -> None:  # a SIGHUP swaps the config whole; note when it arrived
        if state.config is not console.config:
            console.config = state.config
            console.loaded_at = state.clock.now()

    stats.on_tick.append(seen)
    app[CONSOLE] = console

    async def sampler(app: web.Application) -> AsyncIterator[None]:
        stats.start()
        yield
        await stats.stop()

    async def closing(app: web.Application) -> None:  # ends the live streams
        console.closing = True
        await stats.wake()

    app.cleanup_ctx.append(sampler)
    app.on_shutdown.append(closing)


def _refused(request: web.Request) -> web.Response:
    body = (
        '<p class="error">No <code>api_token</code> is set in the config, so the console '
        "answers only on loopback (127.0.0.1 / ::1). Set one to use it from elsewhere.</p>"
    )
    return page_response("Console unavailable", body, None, status=403)


def console_page(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A page that needs a session (and, for a POST, its CSRF token)."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        config = request.app[STATE].config
        sessions = request.app[CONSOLE].sessions
        session, new_sid = sessions.open_session(config, request)
        if session is None:
            if not config.api_token:
                return _refused(request)
            if request.method != "GET":
                return page_response("Log in", _login_body(""), None, status=401)
            return see_other("/console/login")
        if request.method == "POST":
            data = await request.post()
            if not Sessions.csrf_ok(session, data.get("csrf")):
                body = '<p class="error">The form is stale or forged (CSRF token). Reload.</p>'
                return page_response("Refused", body, session, status=403)
        response = await handler(request, session)
        if new_sid:
            sess.set_cookie(response, request, new_sid)
        return response

    return wrapped


def _login_body(message: str) -> str:
    note = f'<p class="error">{e(message)}</p>' if message else ""
    return (
        f"{note}<form method=post action=/console/login class=stack>"
        "<label>API token<input type=password name=token autocomplete=current-password "
        "required autofocus></label><button type=submit>Log in</button></form>"
    )


async def login_form(request: web.Request) -> web.StreamResponse:
    config = request.app[STATE].config
    if not config.api_token:
        if request.app[CONSOLE].sessions.open_session(config, request)[0] is None:
            return _refused(request)
        return see_other("/console")
    return page_response("Log in", _login_body(""), None)


def _same_origin(request: web.Request) -> bool:
    """A login posted from another site (login CSRF) carries its Origin; refuse it."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.scheme}://{request.host}"


async def login(request: web.Request) -> web.StreamResponse:
    config = request.app[STATE].config
    if not config.api_token:
        return await login_form(request)
    if not _same_origin(request):
        return page_response("Log in", _login_body("cross-site login refused"), None, status=403)
    data = await request.post()
    token = data.get("token")
    sid = request.app[CONSOLE].sessions.login(config, token if isinstance(token, str) else "")
    if sid is None:
        return page_response("Log in", _login_body("wrong API token"), None, status=401)
    response = see_other("/console")
    sess.set_cookie(response, request, sid)
    return response


@console_page
async def logout(request: web.Request, session: Session) -> web.StreamResponse:
    request.app[CONSOLE].sessions.logout(request)
    target = "/console/login" if request.app[STATE].config.api_token else "/console"
    response = see_other(target)
    sess.clear_cookie(response)
    return response


def _n(value: float) -> str:
    return f'<td class="num">{int(value)}</td>'


#: the overview chart's lines (console.js draws them with uPlot)
CHART = ("received", "delivered", "failed")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value == float("inf"):
        return "&gt; 2 h"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:g} s"


def overview_fragment(stats: Stats) -> str:
    """Cards for the last minute, then one table per window, by traffic source."""
    snap = stats.latest()
    minute = stats.window(60)
    sums = {c: sum(row.get(c, 0.0) for row in minute.values()) for c, _ in OUTCOMES}
    cards = "".join(
        f'<div class="card" id="card-{c}">{e(c)}<b>{int(sums[c])}</b></div>'
        for c in ("received", "delivered", "retried", "failed", "held")
    )
    cards += f'<div class="card" id="card-queue">queue depth<b>{int(snap.queue_depth)}</b></div>'
    parts = [
        f'<h2>last minute</h2><div class="cards">{cards}</div>',
        f"<p>updated {e(when(snap.at))}</p>",
    ]
    headers = "".join(f'<th class="num">{e(c)}</th>' for c, _ in OUTCOMES)
    headers += '<th class="num">p50 ≤</th><th class="num">p99 ≤</th>'
    for label, seconds in WINDOWS:
        rows = stats.window(seconds)
        latency = stats.latency(seconds)
        body = "".join(
            f'<tr data-source="{e(src or "-")}"><td>{e(src or "(none)")}</td>'
            + "".join(
                f'<td class="num" data-col="{c}">{int(row.get(c, 0.0))}</td>' for c, _ in OUTCOMES
            )
            + "".join(
                f'<td class="num" data-col="{name}">{_seconds(v)}</td>'
                for name, v in zip(("p50", "p99"), latency.get(src, (None, None)), strict=True)
            )
            + "</tr>"
            for src, row in sorted(rows.items())
        )
        parts.append(
            f"<h2>last {e(label)}</h2><table><thead><tr><th>traffic source</th>{headers}"
            f"</tr></thead><tbody>{body}</tbody></table>"
        )
    parts.append(f"<p>unattributed conversions since start: {int(snap.unattributed)}</p>")
    series = msgspec.json.encode(stats.series(300, CHART)).decode()
    parts.append(f'<div hidden id="series" data-series="{e(series)}"></div>')
    return "".join(parts).replace("\n", " ")


@console_page
async def overview(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE]
    body = (
        "<p>Counts of this process, live (one update a second); p50/p99: conversion "
        "committed to postback answered 2xx, as the bucket bound holding it.</p>"
        "<h2>per second, last 5 minutes</h2>"
        '<div id="chart" class="chart"></div>'
        '<div hx-ext="sse" sse-connect="/console/live">'
        f'<div id="live" sse-swap="overview">{console.fragment()}</div></div>'
    )
    return page_response("Overview", body, session, live=True)


@console_page
async def live(request: web.Request, session: Session) -> web.StreamResponse:
    """Server-sent events: the overview fragment after each tick, until the app shuts down."""
    console = request.app[CONSOLE]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    seen = console.stats.tick
    while not console.closing:
        await response.write(f"event: overview\ndata: {console.fragment()}\n\n".encode())
        seen = await console.stats.wait_tick(seen)
    return response


@console_page
async def hosts_page(request: web.Request, session: Session) -> web.StreamResponse:
    """Every destination seen in the last hour or held by the breaker: its success
    rate and p99 from the delivery log, beside where its circuit stands."""
    state = request.app[STATE]
    now = state.clock.now()
    breaker = {r["host"]: r for r in host_rows(host_views(state.sink), now)}
    recent = await state.store.recent_host_attempts(since=now - WINDOW_S, limit=MAX_ATTEMPTS)
    health = host_health(recent)
    cells = []
    for host in sorted(breaker.keys() | health.keys()):
        r = breaker.get(host)
        h = health.get(host)
        paused = r is not None and r["paused"]
        cells.append(
            (
                f"<code>{e(host)}</code>",
                e(f"{h.success_rate:.1%}") if h else "",
                e(h.attempts) if h else "0",
                e(f"{h.p99_ms:.1f}") if h else "",
                '<span class="bad">paused</span>' if paused else '<span class="ok">open</span>',
                e(r["circuit"]) if r else "closed",
                e(when(r["paused_until"])) if r else "",
                e(r["seconds_left"]) if r else "",
                e(r["failures"]) if r else "0",
                e(r["reason"]) if r else "",
            )
        )
    head = ["host", "success (1 h)", "attempts", "p99 ms", "breaker", "circuit"]
    head += ["paused until", "seconds left", "failures", "why"]
    body = (
        table(head, cells)
        if cells
        else "<p>No attempt in the last hour and no failure on record.</p>"
    )
    return page_response("Hosts", body, session)


def _config_body(console: Console, config: Config) -> str:
    sources = [(e(name), e(src.preset), e(len(src.rules))) for name, src in config.sources.items()]
    campaigns = [(e(cid), e(c.source.name), e(len(c.rules))) for cid, c in config.campaigns.items()]
    judged = [
        (e(path), e(rule.name), f"<code>{e(rule.host)}</code>", e(rule.answer_why))
        for path, rule in config.judged
    ]
    problems: list[Any] = []
    if config.path:
        _, problems = read(config.path)
    checked = [(e(p.level), e(p.path), e(p.message)) for p in problems]
    return (
        f"<p>File <code>{e(config.path or '(built in)')}</code>, in force since "
        f"{e(when(console.loaded_at))} (a SIGHUP reload that is refused leaves the old "
        "config in force and logs why).</p>"
        f"<h2>traffic sources</h2>{table(['name', 'preset', 'rules'], sources)}"
        f"<h2>campaigns</h2>{table(['id', 'traffic source', 'rules'], campaigns)}"
        f"<h2>who judges each postback</h2>"
        f"{table(['rule', 'name', 'host', 'answer rule'], judged)}"
        "<h2>check of the file on disk now</h2>"
        + (table(["level", "where", "problem"], checked) if checked else "<p>No problems.</p>")
    )


def _reload_body(last: tuple[float, bool, list[str]] | None) -> str:
    if last is None:
        return "<p>No SIGHUP reload since the gateway started.</p>"
    at, accepted, problems = last
    if accepted:
        return f'<p class="ok" id="reload">Last reload at {e(when(at))}: accepted.</p>'
    listed = "".join(f"<li><code>{e(p)}</code></li>" for p in problems)
    return (
        f'<div class="error" id="reload">Last reload at {e(when(at))}: refused; the config '
        f"above stays in force.<ul>{listed}</ul></div>"
    )


@console_page
async def config_page(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE]
    state = request.app[STATE]
    body = _reload_body(state.last_reload) + _config_body(console, state.config)
    return page_response("Config", body, session)


@console_page
async def catalog_page(request: web.Request, session: Session) -> web.StreamResponse:
    q = request.rel_url.query
    name = q.get("preset", "")
    if not name:
        rows = [
            (f'<a href="/console/catalog?preset={e(n)}">{e(n)}</a>', e(catalog.get(n).title))
            for n in catalog.names()
        ]
        return page_response("Catalog", table(["preset", "network"], rows), session)
    try:
        preset = catalog.get(name)
    except catalog.UnknownPreset as exc:
        return page_response("Catalog", f'<p class="error">{e(exc)}</p>', session, status=404)
    campaign, base = q.get("campaign", ""), q.get("base_url", "")
    generated = ""
    if campaign and base:
        generated = (
            f"<p>Campaign URL: <code>{e(catalog.campaign_url(preset, base, campaign))}</code></p>"
        )
    facts = [
        ("postback", f"<code>{e(preset.postback)}</code>"),
        ("method", e(preset.method)),
        ("success", e(preset.success)),
        ("max click age", e(preset.max_click_age)),
        ("notes", e(preset.notes)),
        ("sources of facts", "<br>".join(f"<code>{e(d)}</code>" for d in preset.docs)),
    ]
    params = [(e(p.name), e("yes" if p.secret else ""), e(p.description)) for p in preset.params]
    macros = [(e(k), f"<code>{e(v)}</code>") for k, v in preset.click_macros.items()]
    body = (
        table(["", ""], facts)
        + f"<h2>account parameters</h2>{table(['name', 'secret', 'meaning'], params)}"
        + f"<h2>click macros</h2>{table(['gateway parameter', 'network macro'], macros)}"
        + "<h2>campaign URL</h2><form method=get action=/console/catalog class=search>"
        f'<input type=hidden name=preset value="{e(preset.name)}">'
        f'<label>campaign id<input name=campaign value="{e(campaign)}"></label>'
        f'<label>gateway base URL<input name=base_url value="{e(base)}" '
        'placeholder="https://gw.example.com"></label><button type=submit>Generate</button></form>'
        + generated
    )
    return page_response(f"Catalog: {preset.title}", body, session)


_STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".LICENSE": "text/plain",
}


async def static(request: web.Request) -> web.StreamResponse:
    """The vendored assets, by exact name from the package (no paths, no listing)."""
    name = request.match_info["name"]
    kind = next((t for s, t in _STATIC_TYPES.items() if name.endswith(s)), None)
    folder = resources.files("gateway.console") / "static"
    item = folder / name
    if kind is None or "/" in name or name.startswith(".") or not item.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=item.read_bytes(),
        content_type=kind,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )

"""The console's HTML: one layout, small builders, every value escaped here.

Server-rendered so the console needs no build step and works without
JavaScript except for the live view (htmx's SSE extension swaps in the
fragment the server renders).  Nothing here sees a secret: callers pass
display URLs and names only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from html import escape

from aiohttp import web

from gateway.console.session import Session

__all__ = (
    "CSP",
    "e",
    "form",
    "page",
    "page_response",
    "see_other",
    "table",
    "when",
)

#: Nothing outside the gateway: scripts, styles, images, fetches and forms stay on it.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_NAV = (
    ("/console", "Overview"),
    ("/console/deliveries", "Deliveries"),
    ("/console/hosts", "Hosts"),
    ("/console/test", "Test a postback"),
    ("/console/catalog", "Catalog"),
    ("/console/config", "Config"),
)


def e(value: object) -> str:
    """Escaped text; None reads as an empty cell."""
    return "" if value is None else escape(str(value), quote=True)


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """``rows`` are already-escaped cell HTML."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def form(action: str, session: Session, inner: str, button: str, *, cls: str = "") -> str:
    """A POST form with the session's CSRF token."""
    return (
        f'<form method="post" action="{e(action)}" class="{e(cls)}">'
        f'<input type="hidden" name="csrf" value="{e(session.csrf)}">'
        f'{inner}<button type="submit">{e(button)}</button></form>'
    )


def page(title: str, body: str, session: Session | None, *, live: bool = False) -> str:
    nav = ""
    if session is not None:
        links = "".join(f'<a href="{href}">{e(name)}</a>' for href, name in _NAV)
        logout = form("/console/logout", session, "", "Log out", cls="logout")
        nav = f"<nav>{links}{logout}</nav>"
    scripts = ""
    if live:
        scripts = (
            '<link rel="stylesheet" href="/console/static/uPlot.min.css">'
            '<script src="/console/static/htmx.min.js"></script>'
            '<script src="/console/static/htmx-ext-sse.min.js"></script>'
            '<script src="/console/static/uPlot.iife.min.js"></script>'
            '<script src="/console/static/console.js" defer></script>'
        )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · postback gateway</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # htmx would otherwise inject an inline <style>, which the CSP refuses
        '<meta name="htmx-config" content=\'{"includeIndicatorStyles":false}\'>'
        '<link rel="stylesheet" href="/console/static/console.css">'
        f"{scripts}</head><body>{nav}<main><h1>{e(title)}</h1>{body}</main></body></html>"
    )


def page_response(
    title: str, body: str, session: Session | None, *, status: int = 200, live: bool = False
) -> web.Response:
    return web.Response(
        text=page(title, body, session, live=live),
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            # same-origin, not no-referrer: with no-referrer a form POST says Origin: null
            "Referrer-Policy": "same-origin",
        },
    )


def see_other(location: str) -> web.Response:
    """``303`` to ``location``: after a form, the browser GETs the result (no resubmit)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})

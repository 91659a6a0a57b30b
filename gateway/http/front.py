"""The hot routes, answered before aiohttp's router and middleware.

Nearly every request a gateway sees is ``GET /postback`` or ``GET /click/{id}``.
For those two the route is known from a string compare, yet aiohttp's
Application layer (router resolve, match info, the cached middleware chain and
the context manager that sets the current app around it) costs more than the
handler itself (docs/performance.md has the figures).

:class:`GatewayRunner` is an ``AppRunner`` whose server calls :func:`front`
first.  It answers ``/postback`` (GET, POST) and ``/click/{id}`` (GET) with the
same limits and error answers as the middleware (``middleware.over_limits``,
``middleware.failure``) and hands every other request (other paths and
methods, percent-encoded or absolute-form targets) to the Application
unchanged.  The hot routes stay in the routes table too, so an app served by
a plain ``AppRunner`` behaves the same, only slower.  Requests with an
``Expect`` header also take the Application's path (its expect handler
answers them).

What the hot routes skip, by design: the Application's middlewares (the one
there is, ``middleware.guard_middleware``, is mirrored here) and
``on_response_prepare`` signals (none are used).  Adding either means adding
it here too; ``tests/test_front_parity.py`` compares the two paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from gateway.http.intake_routes import click, postback
from gateway.http.middleware import failure, over_limits
from gateway.http.state import STATE, AppState

__all__ = ("GatewayRunner", "front", "plain_query_pairs")

RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_CLICK = "/click/"
_EXPECT = hdrs.EXPECT
#: A click path with any of these is left to the router: "%" needs decoding,
#: and "/", "{", "}" are outside what ``{campaign_id}`` matches there.
_PLAIN_SEGMENT = frozenset("%/{}")


def plain_query_pairs(query: str) -> list[tuple[str, str]] | None:
    """A query's (name, value) pairs when nothing in it is percent-encoded,
    read as yarl reads it ('+' is a space, blank values kept, empty pairs
    skipped); None when it needs decoding (or has a fragment): then the
    request's own ``query`` is used.  Saves building a multidict per postback.
    """
    if "%" in query or "#" in query:
        return None
    pairs = []
    for pair in query.replace("+", " ").split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((name, value))
    return pairs


def front(state: AppState, fallback: RequestHandler) -> RequestHandler:
    """The server's request handler: the hot routes, else ``fallback`` (the app)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        target = request.raw_path  # origin-form: "/path?query", still percent-encoded
        end = target.find("?")
        path = target if end < 0 else target[:end]
        method = request.method
        if path == "/postback":
            if method != "GET" and method != "POST":
                return await fallback(request)  # the router's 405, with Allow
            campaign_id = None
        elif path.startswith(_CLICK) and method == "GET":
            campaign_id = path[len(_CLICK) :]
            if not campaign_id or not _PLAIN_SEGMENT.isdisjoint(campaign_id):
                return await fallback(request)  # the router decodes and matches these
        else:
            return await fallback(request)
        if _EXPECT in request.headers:  # 100-continue (curl, for bodies over 1 KiB) or 417:
            return await fallback(request)  # the Application's expect handler answers it
        try:
            refused = over_limits(state, request)
            if refused is not None:
                return refused
            if campaign_id is None:
                query = None  # POST reads its query and body the usual way
                if method == "GET":
                    query = plain_query_pairs(target[end + 1 :]) if end >= 0 else []
                return await postback(state, request, query)
            return await click(state, request, campaign_id)
        except Exception as exc:
            return failure(request, exc)

    return handle


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` with :func:`front` ahead of the Application.

    ``_make_server`` is aiohttp's hook for building the low-level server; the
    Application's own handler becomes the fallback.
    """

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.request_handler = front(self.app[STATE], server.request_handler)
        return server

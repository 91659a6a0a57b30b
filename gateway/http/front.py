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

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import hdrs, web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from gateway.http.errors import error_response
from gateway.http.intake_routes import click, postback
from gateway.http.middleware import failure, over_limits
from gateway.http.state import STATE, AppState

__all__ = ("HEAD_TIMEOUT", "MAX_HEADER_FIELD", "GatewayRunner", "front", "plain_query_pairs")

log = logging.getLogger(__name__)

#: Seconds a new connection has to send a complete request head (slowloris).
HEAD_TIMEOUT: Final = 15.0
#: The longest header line the parser reads (aiohttp's default); the request line's
#: limit comes from the config and is always longer, so the two errors are told apart.
MAX_HEADER_FIELD: Final = 8190

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


def parse_error_answer(exc: HttpProcessingError, line_limit: int) -> web.Response:
    """The JSON answer to a request the parser refused: 414 for a request line over
    the limit, 431 for a header over it (or too many), else 400; never the
    request's bytes echoed (aiohttp's own answer quotes them)."""
    if isinstance(exc, LineTooLong):
        if str(exc.args[1]) == str(line_limit):
            return error_response(414, f"request line too long (max {line_limit} bytes)", "query")
        return error_response(431, f"header too long (max {MAX_HEADER_FIELD} bytes)", "headers")
    if "too many headers" in str(exc.message).lower():
        return error_response(431, "too many headers", "headers")
    return error_response(400, "malformed HTTP request", None)


class _Handler(web_protocol.RequestHandler):
    """aiohttp's connection handler with the gateway's answers to what its parser
    refuses (``parse_error_answer``, one log line, no traceback) and a deadline
    for each request head, counted from its first byte (from the connection's
    start for the first one): a slowloris client is closed, not waited for."""

    __slots__ = ("_head_timer", "line_limit")

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, **kw: Any) -> None:
        super().__init__(manager, loop=loop, **kw)
        self.line_limit = int(kw.get("max_line_size", 8190))
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:  # a head is complete: its deadline is met
            self._stop_head_timer()
        elif (
            self._head_timer is None and not self._request_in_progress and not self._messages
        ):  # the first bytes of a head between requests (keep-alive): its clock starts
            self._arm_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(HEAD_TIMEOUT, self._head_too_slow, self._request_count)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self, count: int) -> None:
        self._head_timer = None
        waiting = self._request_count == count and not self._request_in_progress
        if waiting and not self._messages and self.transport is not None:
            log.info("closed a connection whose request head took over %g s", HEAD_TIMEOUT)
            self.transport.close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.info("malformed request from %s: %s", request.remote, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("answer already started; cannot send an error")
        resp = parse_error_answer(exc, self.line_limit)
        resp.force_close()
        return resp


class _Server(web.Server):
    """``web.Server`` whose connections are :class:`_Handler`s."""

    __slots__ = ()

    def __call__(self) -> web_protocol.RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` with :func:`front` ahead of the Application.

    ``_make_server`` is aiohttp's hook for building the low-level server; the
    Application's own handler becomes the fallback, and each connection gets
    :class:`_Handler`.  The request line's limit follows the config's
    ``max_query_bytes``; a header line's is ``MAX_HEADER_FIELD``.
    """

    __slots__ = ()

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        limits = app[STATE].config.limits
        kwargs["max_line_size"] = max(16384, limits.max_query_bytes * 2 + 1024)
        kwargs["max_field_size"] = MAX_HEADER_FIELD
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.request_handler = front(self.app[STATE], server.request_handler)
        server.__class__ = _Server  # each connection gets a _Handler
        return server

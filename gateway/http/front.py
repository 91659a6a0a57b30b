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
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web, web_protocol
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from gateway.http import wire
from gateway.http.errors import error_response
from gateway.http.head import hot_route
from gateway.http.hotconn import HotAnswer, HotConnection
from gateway.http.intake_routes import click, postback
from gateway.http.middleware import failure, over_limits
from gateway.http.request import IntakeRequest, plain_query_pairs
from gateway.http.state import STATE, AppState

__all__ = ("GatewayRunner", "answer_hot", "front", "plain_query_pairs")

log = logging.getLogger(__name__)

RequestHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

_EXPECT = hdrs.EXPECT


async def answer_hot(
    state: AppState,
    request: IntakeRequest,
    campaign_id: str | None,
    query: list[tuple[str, str]] | None,
) -> web.Response:
    """A hot route's answer, whichever server read the request: the limits, then
    the click (``campaign_id``) or the postback (None), every failure as JSON.
    ``query``: a GET's pairs when they needed no decoding."""
    try:
        refused = over_limits(state, request)
        if refused is not None:
            return refused
        if campaign_id is None:
            return await postback(state, request, query)
        return await click(state, request, campaign_id)
    except Exception as exc:
        return failure(request, exc)


def front(state: AppState, fallback: RequestHandler) -> RequestHandler:
    """The server's request handler: the hot routes, else ``fallback`` (the app)."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        target = request.raw_path  # origin-form: "/path?query", still percent-encoded
        method = request.method
        route = hot_route(method, target)
        if route is None:
            return await fallback(request)
        if _EXPECT in request.headers:  # 100-continue (curl, for bodies over 1 KiB) or 417:
            return await fallback(request)  # the Application's expect handler answers it
        _, campaign_id, end = route
        query = None  # POST reads its query and body the usual way
        if method == "GET":
            query = plain_query_pairs(target[end + 1 :]) if end >= 0 else []
        return await answer_hot(state, request, campaign_id, query)

    return handle


def parse_error_answer(exc: HttpProcessingError, line_limit: int) -> web.Response:
    """The JSON answer to a request the parser refused: 414 for a request line over
    the limit, 431 for a header over it (or too many), else 400; never the
    request's bytes echoed (aiohttp's own answer quotes them)."""
    if isinstance(exc, LineTooLong):
        if str(exc.args[1]) == str(line_limit):
            return error_response(414, f"request line too long (max {line_limit} bytes)", "query")
        limit = wire.MAX_HEADER_FIELD
        return error_response(431, f"header too long (max {limit} bytes)", "headers")
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
        self._head_timer = loop.call_later(
            wire.HEAD_TIMEOUT, self._head_too_slow, self._request_count
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self, count: int) -> None:
        self._head_timer = None
        waiting = self._request_count == count and not self._request_in_progress
        if waiting and not self._messages and self.transport is not None:
            log.info("closed a connection whose request head took over %g s", wire.HEAD_TIMEOUT)
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
    """``web.Server`` whose connections start in the hot lane (a
    ``hotconn.HotConnection``, which becomes a :class:`_Handler` at its first
    other request), or are :class:`_Handler`s from the start when
    ``hot_answer`` is None."""

    hot_answer: HotAnswer | None = None
    line_limit: int = 16384

    def __call__(self) -> asyncio.Protocol:  # type: ignore[override]
        if self.hot_answer is None:
            return self.handler()
        return HotConnection(self, self.hot_answer, self.handler, self.line_limit)

    def handler(self) -> web_protocol.RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` with the hot lane and :func:`front` ahead of the Application.

    ``_make_server`` is aiohttp's hook for building the low-level server; the
    Application's own handler becomes the fallback, and each connection starts
    in the hot lane (``hot_lane=False``: as a :class:`_Handler`; ``serve``
    turns it off when access logs are on, which only aiohttp writes).  The
    request line's limit follows the config's ``max_query_bytes``; a header
    line's is ``wire.MAX_HEADER_FIELD``.
    """

    __slots__ = ("_hot_lane",)

    def __init__(self, app: web.Application, *, hot_lane: bool = True, **kwargs: Any) -> None:
        limits = app[STATE].config.limits
        kwargs["max_line_size"] = max(16384, limits.max_query_bytes * 2 + 1024)
        kwargs["max_field_size"] = wire.MAX_HEADER_FIELD
        super().__init__(app, **kwargs)
        self._hot_lane = hot_lane

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        state = self.app[STATE]
        server.request_handler = front(state, server.request_handler)
        server.__class__ = _Server
        assert isinstance(server, _Server)
        server.line_limit = self._kwargs["max_line_size"]
        if self._hot_lane:
            server.hot_answer = functools.partial(answer_hot, state)
        return server

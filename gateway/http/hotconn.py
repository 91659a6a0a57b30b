"""The hot lane: a connection that answers plain ``GET /postback`` and ``GET /click/{id}``
itself, and hands itself to aiohttp at the first request that is anything else.

aiohttp's server costs about 30 us of CPU per request on this path against
about 11 us for a bare ``asyncio.Protocol`` (docs/performance.md), and a
conversion's whole answer is a few headers and a small JSON body.  So each
connection starts as a :class:`HotConnection`: it reads heads with
``gateway.http.head``, answers the plain hot ones through the same function as
``gateway.http.front`` (the same limits, handlers and error answers) and
writes the bytes aiohttp would write.  The first head that is not plain, or
not a hot route, ends the lane: the connection becomes aiohttp's
(``front._Handler``) from that request's first byte, and stays aiohttp's.

What the lane keeps from aiohttp: one request at a time per connection,
pipelined requests answered in order, keep-alive as HTTP/1.0 and 1.1 mean it,
the head deadline (``wire.HEAD_TIMEOUT``), the idle deadline
(``wire.KEEPALIVE_TIMEOUT``), handlers not cancelled when the client leaves,
and the drain on SIGTERM (the server's ``pre_shutdown`` and ``shutdown`` call
:meth:`HotConnection.close` and :meth:`HotConnection.shutdown`).  What it
does not do: access logs (the runner turns the lane off when they are on).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

from aiohttp import web, web_protocol
from aiohttp.http_writer import _serialize_headers
from aiohttp.tcp_helpers import tcp_nodelay

from gateway.http import wire
from gateway.http.answer import finish_headers
from gateway.http.errors import error_response
from gateway.http.head import PlainHead, hot_route, read_plain_head
from gateway.http.request import HotRequest, plain_query_pairs

__all__ = ("HotAnswer", "HotConnection", "answer_bytes")

log = logging.getLogger(__name__)

#: The hot routes' answer: (request, campaign id or None for /postback, the
#: query's pairs or None when it needs decoding) -> the response.
HotAnswer = Callable[[HotRequest, "str | None", "list[tuple[str, str]] | None"], Awaitable[Any]]

#: Pipelined bytes held while a request is answered before reading pauses.
_BACKLOG: Final = 256 * 1024
_CRLF2: Final = b"\r\n\r\n"
_EMPTY_BODY: Final = frozenset((204, 304))


def answer_bytes(response: web.Response, minor: int, keep_alive: bool) -> bytes:
    """The bytes aiohttp writes for ``response``: its own headers, then the ones
    ``answer.finish_headers`` adds, serialized by aiohttp's own writer.

    Raises ValueError for a CR or LF in the status line or a header, as
    aiohttp does: such a response is never written.
    """
    status = response.status
    body = response.body
    if body is not None and body.__class__ is not bytes:
        raise TypeError("the hot lane writes bytes bodies only")
    if status in _EMPTY_BODY or status < 200:
        body = None
        size = None
    else:
        size = len(body) if body is not None else 0
    headers = response.headers
    finish_headers(headers, size, minor, keep_alive)
    head = _serialize_headers(f"HTTP/1.{minor} {status} {response.reason}", headers)
    return head + body if body else head


class HotConnection(asyncio.Protocol):
    """One client connection while its requests are plain hot GETs."""

    __slots__ = (
        "_answer",
        "_buffer",
        "_closing",
        "_line_limit",
        "_loop",
        "_make_handler",
        "_max_head",
        "_reading_paused",
        "_remote",
        "_server",
        "_task",
        "_head_timer",
        "_idle_timer",
        "_idle_until",
        "_transport",
        "_writing_paused",
    )

    def __init__(
        self,
        server: web.Server,
        answer: HotAnswer,
        make_handler: Callable[[], web_protocol.RequestHandler],
        line_limit: int,
    ) -> None:
        self._server = server
        self._answer = answer
        self._make_handler = make_handler
        self._line_limit = line_limit
        #: a head still without its blank line past this is aiohttp's to refuse
        self._max_head = line_limit + 2 * wire.MAX_HEADER_FIELD
        #: one lookup per connection: on Python 3.11 each get_running_loop() is a getpid()
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._remote: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_until = 0.0  # loop time past which an idle connection closes
        self._closing = False
        self._reading_paused = False
        self._writing_paused = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport = cast(asyncio.Transport, transport)
        tcp_nodelay(transport, True)
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if isinstance(peer, tuple | list) and peer else None
        # the server's drain (pre_shutdown, shutdown) walks this table
        self._server._connections[self] = transport  # type: ignore[index]
        self._expect_head()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        idle = not buffer and self._task is None
        buffer += data
        if self._task is not None:
            if len(buffer) > _BACKLOG and not self._reading_paused and self._transport:
                self._transport.pause_reading()
                self._reading_paused = True
            return
        if idle:  # the first bytes of a head between requests: its clock starts
            self._expect_head()
        self._next()

    def eof_received(self) -> None:
        return None  # the transport closes, as aiohttp's handler lets it

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_timers()
        self._server._connections.pop(self, None)  # type: ignore[call-overload]
        self._transport = None
        self._buffer.clear()
        # a request in progress runs on: its conversion is committed, its answer unsent

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._task is None and self._buffer and self._transport is not None:
            self._next()

    # the server's drain (web.Server.pre_shutdown and shutdown)

    def close(self) -> None:
        """Answer the request in progress, then close; close now if there is none."""
        self._closing = True
        if self._task is None and self._transport is not None:
            self._transport.close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:
        """Wait up to ``timeout`` for the request in progress, then close."""
        self._closing = True
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait((task,), timeout=timeout)
            if not done:
                task.cancel()
        if self._transport is not None:
            self._transport.close()

    # reading and answering

    def _next(self) -> None:
        """Answer the next head in the buffer, wait for more of it, or hand over."""
        if self._writing_paused or self._transport is None:
            return
        buffer = self._buffer
        end = buffer.find(_CRLF2)
        if end < 0:
            line_end = buffer.find(b"\r\n")
            if len(buffer) > self._max_head or (line_end >= 0 and not buffer.startswith(b"GET /")):
                self._hand_over()
            return  # the rest of the head is on its way (its deadline is running)
        head = read_plain_head(bytes(buffer[:end]), self._line_limit, wire.MAX_HEADER_FIELD)
        route = hot_route("GET", head.target) if head is not None else None
        if head is None or route is None:
            self._hand_over()
            return
        del buffer[: end + 4]
        self._head_met()
        self._task = self._loop.create_task(self._serve(head, route))

    async def _serve(self, head: PlainHead, route: tuple[str, str | None, int]) -> None:
        path, campaign_id, query_start = route
        target = head.target
        query = target[query_start + 1 :] if query_start >= 0 else ""
        pairs = plain_query_pairs(query) if query else []
        remote, transport = self._remote, self._transport
        request = HotRequest(target, path, query, pairs, head.headers, remote, transport)
        try:
            response = await self._answer(request, campaign_id, pairs)
        except asyncio.CancelledError:  # the drain ran out of time
            self._task = None
            if self._transport is not None:
                self._transport.close()
            raise
        except Exception:  # answer_hot answers every failure; this is a bug there
            log.exception("GET %s failed", path)
            response = error_response(503, "internal error; retry")
        finally:
            self._task = None
        keep_alive = head.keep_alive and not self._closing
        try:
            data = answer_bytes(response, head.minor, keep_alive)
        except ValueError:
            log.error("GET %s: an answer with CR or LF in a header was not sent", path)
            keep_alive = False
            data = answer_bytes(error_response(503, "internal error; retry"), head.minor, False)
        transport = self._transport
        if transport is None or transport.is_closing():
            return  # the client left (or the server closed it) while it was answered
        transport.write(data)
        if not keep_alive:
            transport.close()
            return
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        if self._buffer:
            self._expect_head()
            self._next()
        else:
            self._wait_idle()

    def _hand_over(self) -> None:
        """From the buffer's first byte on, this connection is aiohttp's."""
        transport = self._transport
        assert transport is not None
        self._stop_timers()
        if self._closing:
            transport.close()
            return
        self._server._connections.pop(self, None)  # type: ignore[call-overload]
        self._transport = None
        handler = self._make_handler()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if self._reading_paused:
            transport.resume_reading()
        data = bytes(self._buffer)
        self._buffer.clear()
        if data:
            handler.data_received(data)

    # deadlines

    def _keepalive_timeout(self) -> float:
        return float(self._server._kwargs.get("keepalive_timeout", wire.KEEPALIVE_TIMEOUT))

    def _expect_head(self) -> None:
        """A head is due: its deadline runs unless the whole head is already
        here (the common case, which then costs no timer)."""
        if self._head_timer is None and self._buffer.find(_CRLF2) < 0:
            self._head_timer = self._loop.call_later(wire.HEAD_TIMEOUT, self._head_too_slow)

    def _head_met(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _stop_timers(self) -> None:
        self._head_met()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _wait_idle(self) -> None:
        """The idle deadline moves on after each answer; its one timer, when it
        fires early, sleeps again until the deadline (no timer per request)."""
        self._idle_until = self._loop.time() + self._keepalive_timeout()
        if self._idle_timer is None:
            self._idle_timer = self._loop.call_at(self._idle_until, self._idle_check)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._task is None and self._transport is not None:
            log.info("closed a connection whose request head took over %g s", wire.HEAD_TIMEOUT)
            self._transport.close()

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._task is not None or self._buffer or self._transport is None:
            return  # busy: the answer's end waits for idleness again
        if self._loop.time() < self._idle_until:
            self._idle_timer = self._loop.call_at(self._idle_until, self._idle_check)
        else:
            self._transport.close()

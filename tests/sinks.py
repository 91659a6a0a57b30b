"""Loopback postback sinks for tests: real HTTP servers that answer the way
networks do (200, 500, 429 + Retry-After, 404, slowly, by hanging up, by
redirecting), plus a blackhole that accepts connections and never answers.

Test helpers only; nothing in ``gateway`` imports this.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiohttp import web

from gateway.store.base import NewDelivery

__all__ = ("Blackhole", "Hit", "Sink", "new_delivery")


@dataclass
class Hit:
    method: str
    path_qs: str
    body: bytes
    headers: dict[str, str]
    peer_port: int
    at: float


@dataclass
class Sink:
    """An aiohttp server on 127.0.0.1:0.

    Paths: ``/ok``, ``/status/{code}`` (``?retry_after=``, ``?body=``),
    ``/slow?delay=``, ``/close`` (hang up without an answer),
    ``/redirect?to=URL&code=302``, ``/big?size=``, ``/gate`` (waits for
    :attr:`gate`), and ``/script/{name}``,
    which plays the answers set with :meth:`script` in order (the last repeats).
    """

    hits: list[Hit] = field(default_factory=list)
    scripts: dict[str, list[tuple[int, str, dict[str, str]]]] = field(default_factory=dict)
    port: int = 0
    #: ``/gate`` answers 200 only once this is set (requests wait until then).
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    async def start(self) -> Sink:
        app = web.Application()
        app.router.add_route("*", "/ok", self._ok)
        app.router.add_route("*", "/status/{code}", self._status)
        app.router.add_route("*", "/slow", self._slow)
        app.router.add_route("*", "/close", self._close)
        app.router.add_route("*", "/redirect", self._redirect)
        app.router.add_route("*", "/big", self._big)
        app.router.add_route("*", "/script/{name}", self._script)
        app.router.add_route("*", "/gate", self._gate)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Sink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def script(
        self, name: str, answers: Sequence[tuple[int, str] | tuple[int, str, dict[str, str]]]
    ) -> str:
        """Answers for ``/script/{name}``, in order; returns its URL."""
        self.scripts[name] = [
            (a[0], a[1], a[2] if len(a) > 2 else {})
            for a in answers  # type: ignore[misc]
        ]
        return self.url(f"/script/{name}")

    def count(self, prefix: str = "/") -> int:
        return sum(1 for h in self.hits if h.path_qs.startswith(prefix))

    async def _record(self, request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.hits.append(
            Hit(
                request.method,
                request.path_qs,
                await request.read(),
                dict(request.headers),
                peer[1] if peer else 0,
                time.monotonic(),
            )
        )

    async def _ok(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(text="OK")

    async def _status(self, request: web.Request) -> web.Response:
        await self._record(request)
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(
            status=int(request.match_info["code"]),
            text=request.query.get("body", "answer"),
            headers=headers,
        )

    async def _slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        await asyncio.sleep(float(request.query.get("delay", "5")))
        return web.Response(text="slow OK")

    async def _close(self, request: web.Request) -> web.Response:
        await self._record(request)
        assert request.transport is not None
        request.transport.abort()
        return web.Response(text="never seen")

    async def _redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        code = int(request.query.get("code", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def _big(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=b"x" * int(request.query.get("size", "1000000")))

    async def _gate(self, request: web.Request) -> web.Response:
        await self._record(request)
        await self.gate.wait()
        return web.Response(text="OK")

    async def _script(self, request: web.Request) -> web.Response:
        await self._record(request)
        answers = self.scripts[request.match_info["name"]]
        status, body, headers = answers.pop(0) if len(answers) > 1 else answers[0]
        return web.Response(status=status, text=body, headers=headers)


class Blackhole:
    """A listening socket that never accepts: connects succeed, answers never come."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.sock.close()


def new_delivery(url: str, *, now: float, **overrides: object) -> NewDelivery:
    """A rendered postback to ``url``, due at ``now``."""
    from yarl import URL  # noqa: PLC0415  (keeps the helper's import list short)

    fields: dict[str, object] = dict(
        conversion_id="conv-1",
        traffic_source="test-source",
        campaign_id="camp-1",
        rule="r1",
        method="GET",
        url=url,
        display_url=url,
        body=None,
        host=overrides["host"] if "host" in overrides else URL(url).host or "",
        click_time=now,
        not_before=now,
        max_attempts=9,
        created_at=now,
    )
    fields.update(overrides)
    return NewDelivery(**fields)  # type: ignore[arg-type]

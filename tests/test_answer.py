"""gateway.http.answer: aiohttp's own bytes, written in fewer steps.

A real aiohttp server on loopback answers each raw request twice, once through
``web.Response`` (a JSON body, or a click's 302) and once through
``JSONResponse`` or ``Redirect``; the two answers must be the same bytes (the
Date header and the path aside), and the connection must stay open or close
alike.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.http import answer
from gateway.http.answer import JSONResponse, Redirect
from gateway.http.hotconn import answer_bytes

BODY = b'{"status":"accepted","conversion_id":"AaJ","postbacks":1}'
OFFER = "https://offer.example/lp?sub1=AaJNKHnJQBTf17petA3-nEZP&zone=1"


def _app() -> web.Application:
    async def plain(request: web.Request) -> web.StreamResponse:
        status = int(request.query.get("status", "200"))
        return web.Response(body=BODY, status=status, content_type="application/json")

    async def lean(request: web.Request) -> web.StreamResponse:
        return JSONResponse(BODY, int(request.query.get("status", "200")))

    async def lean_with_cookie(request: web.Request) -> web.StreamResponse:
        response = JSONResponse(BODY)
        response.set_cookie("seen", "1")
        return response

    async def plain_with_cookie(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=BODY, content_type="application/json")
        response.set_cookie("seen", "1")
        return response

    async def plain_redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": OFFER, "Cache-Control": "no-store"})

    async def lean_redirect(request: web.Request) -> web.StreamResponse:
        return Redirect(OFFER)

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Prepared"] = request.path  # on_response_prepare still runs

    app = web.Application()
    app.on_response_prepare.append(hook)
    app.router.add_get("/plain", plain)
    app.router.add_get("/lean", lean)
    app.router.add_post("/plain", plain)
    app.router.add_post("/lean", lean)
    app.router.add_get("/plain-redirect", plain_redirect)
    app.router.add_get("/lean-redirect", lean_redirect)
    app.router.add_get("/plain-cookie", plain_with_cookie)
    app.router.add_get("/lean-cookie", lean_with_cookie)
    return app


@pytest.fixture
async def port() -> AsyncIterator[int]:
    runner = web.AppRunner(_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    yield server.sockets[0].getsockname()[1]
    await runner.cleanup()


async def _exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """The answer's bytes, and whether the server then closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length: (\d+)\r\n", head)
        head_only = request.startswith(b"HEAD ")
        body = await reader.readexactly(int(match.group(1))) if match and not head_only else b""
        try:
            closed = await asyncio.wait_for(reader.read(1), 0.2) == b""
        except TimeoutError:
            closed = False
        return head + body, closed
    finally:
        writer.close()


def _undated(raw: bytes) -> bytes:
    return re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", raw)


REQUESTS = [
    b"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET {path} HTTP/1.0\r\n\r\n",
    b"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD {path} HTTP/1.0\r\n\r\n",
    b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
]


@pytest.mark.parametrize("template", REQUESTS, ids=lambda t: t.split(b"\r\n")[0].decode())
@pytest.mark.parametrize("status", [200, 202, 409])
async def test_the_same_bytes_and_connection_fate_as_web_response(
    port: int, template: bytes, status: int
) -> None:
    def request(path: str) -> bytes:
        return template.replace(b"{path}", f"{path}?status={status}".encode())

    plain, plain_closed = await _exchange(port, request("/plain"))
    lean, lean_closed = await _exchange(port, request("/lean"))
    assert plain.startswith(b"HTTP/1.")
    assert b"\r\nX-Prepared: /plain\r\n" in plain
    assert _undated(lean) == _undated(plain).replace(b"X-Prepared: /plain", b"X-Prepared: /lean")
    assert lean_closed == plain_closed


@pytest.mark.parametrize(
    "template",
    [t for t in REQUESTS if not t.startswith(b"POST")],
    ids=lambda t: t.split(b"\r\n")[0].decode(),
)
async def test_a_redirect_is_the_same_bytes_as_web_responses(port: int, template: bytes) -> None:
    plain, plain_closed = await _exchange(port, template.replace(b"{path}", b"/plain-redirect"))
    lean, lean_closed = await _exchange(port, template.replace(b"{path}", b"/lean-redirect"))
    assert plain.startswith(b"HTTP/1.") and b" 302 Found\r\n" in plain
    assert f"\r\nLocation: {OFFER}\r\n".encode() in plain
    assert _undated(lean) == _undated(plain).replace(b"/plain-redirect", b"/lean-redirect")
    assert lean_closed == plain_closed


async def test_a_response_given_a_cookie_takes_aiohttps_path(port: int) -> None:
    request = b"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"
    plain, _ = await _exchange(port, request.replace(b"{path}", b"/plain-cookie"))
    lean, _ = await _exchange(port, request.replace(b"{path}", b"/lean-cookie"))
    assert b"Set-Cookie: seen=1" in lean
    assert _undated(lean) == _undated(plain).replace(b"/plain-cookie", b"/lean-cookie")


async def test_the_shortcut_is_taken(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the benchmark's premise: a plain JSON answer skips _prepare_headers."""
    calls = []
    original = web.StreamResponse._prepare_headers

    async def counted(self: web.StreamResponse) -> None:
        calls.append(type(self).__name__)
        await original(self)

    monkeypatch.setattr(web.StreamResponse, "_prepare_headers", counted)
    request = b"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    await _exchange(port, request.replace(b"{path}", b"/lean"))
    await _exchange(port, request.replace(b"{path}", b"/lean-redirect"))
    await _exchange(port, request.replace(b"{path}", b"/plain"))
    assert calls == ["Response"]
    assert answer._FAST_PATH


LANE_HEADS = [  # (request head, its HTTP minor, whether the connection stays open)
    (b"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n", 1, True),
    (b"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1, False),
    (b"GET {path} HTTP/1.0\r\n\r\n", 0, False),
    (b"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0, True),
]


def _unprepared(raw: bytes) -> bytes:
    """Without the hook's header: the hot lane's routes are not routed."""
    return re.sub(rb"\r\nX-Prepared: [^\r]*", b"", _undated(raw))


@pytest.mark.parametrize(("template", "minor", "keep_alive"), LANE_HEADS)
@pytest.mark.parametrize("status", [200, 202, 409])
async def test_the_hot_lanes_bytes_are_aiohttps(
    port: int, template: bytes, minor: int, keep_alive: bool, status: int
) -> None:
    plain, plain_closed = await _exchange(
        port, template.replace(b"{path}", f"/plain?status={status}".encode())
    )
    lane = answer_bytes(JSONResponse(BODY, status), minor, keep_alive)
    assert _undated(lane) == _unprepared(plain)
    assert plain_closed is not keep_alive


@pytest.mark.parametrize(("template", "minor", "keep_alive"), LANE_HEADS)
async def test_the_hot_lanes_redirect_is_aiohttps(
    port: int, template: bytes, minor: int, keep_alive: bool
) -> None:
    plain, _ = await _exchange(port, template.replace(b"{path}", b"/plain-redirect"))
    assert _undated(answer_bytes(Redirect(OFFER), minor, keep_alive)) == _unprepared(plain)


def test_the_hot_lane_never_writes_a_header_with_a_line_break() -> None:
    response = JSONResponse(BODY)
    response.headers["X-Id"] = "a\r\nSet-Cookie: x=1"
    with pytest.raises(ValueError):
        answer_bytes(response, 1, True)

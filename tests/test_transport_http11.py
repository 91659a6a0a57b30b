"""HTTP/1.1 as every transport must speak it (``transport_kind``): bodies without
a length, HEAD/204/304, ``Connection: close``, 1xx, IPv6; and the lean
client's pool (idle expiry, the cap, a peer's close) and TLS session
resumption, against real loopback servers."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from raw_server import RawServer, read_head
from transport_fixtures import MakeTransport

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import Transport
from gateway.dispatch.transport.lean import LeanTransport
from gateway.dispatch.transport.redirects import send


def settings(**kw: object) -> DeliverySettings:
    fields: dict[str, object] = dict(allow_private_targets=True, body_prefix_bytes=64)
    fields.update(kw)
    return DeliverySettings(**fields)  # type: ignore[arg-type]


async def get(transport: Transport, url: str, method: str = "GET") -> tuple[int, bytes]:
    answer = await asyncio.wait_for(send(transport, method, url, None, {}, 3.0), 5.0)
    return answer.status, answer.body_prefix


def serve(answers: dict[bytes, bytes]) -> RawServer:
    """Answers by request line prefix (``b"GET /x"``), on one connection until closed."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await read_head(reader):
            line = head.split(b"\r\n", 1)[0]
            for prefix, data in answers.items():
                if line.startswith(prefix):
                    writer.write(data)
                    break
            await writer.drain()
            if b"Connection: close" in data:
                writer.close()
                return

    return RawServer(script)


async def test_no_body_statuses_and_head_keep_the_connection(make_client: MakeTransport) -> None:
    # a length on a HEAD, 204 or 304 announces a body that never comes
    async with serve(
        {
            b"HEAD": b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
            b"GET /204": b"HTTP/1.1 204 No Content\r\n\r\n",
            b"GET /304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
            b"GET /ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
        }
    ) as server:
        transport = make_client(settings())
        assert await get(transport, server.url("/h"), "HEAD") == (200, b"")
        assert await get(transport, server.url("/204")) == (204, b"")
        assert await get(transport, server.url("/304")) == (304, b"")
        assert await get(transport, server.url("/ok")) == (200, b"OK")
        assert server.accepted == 1


async def test_interim_answers_are_skipped(make_client: MakeTransport) -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    async with serve({b"GET": data + b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nk"}) as s:
        assert await get(make_client(settings()), s.url()) == (201, b"k")


async def test_connection_close_and_http10(make_client: MakeTransport) -> None:
    async with serve(
        {
            b"GET /close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nc",
            b"GET /old": b"HTTP/1.0 200 OK\r\n\r\nto the end",
        }
    ) as server:
        transport = make_client(settings())
        for _ in range(2):
            assert await get(transport, server.url("/close")) == (200, b"c")
        assert server.accepted == 2 and await server.all_closed()
    async with serve({b"GET /old": b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nto the end"}) as s:
        assert await get(make_client(settings()), s.url("/old")) == (200, b"to the end")


async def test_chunked_from_aiohttp(make_client: MakeTransport) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"one ", b"two ", b"three"):
            await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/c", chunked)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        transport = make_client(settings())
        for _ in range(3):
            assert await get(transport, f"http://127.0.0.1:{port}/c") == (200, b"one two three")
    finally:
        await runner.cleanup()


needs_ipv6 = pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")


@needs_ipv6
async def test_ipv6_literal(make_client: MakeTransport) -> None:
    seen: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        seen.append(request.host)
        return web.Response(text="v6")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "::1", 0)
        await site.start()
    except OSError:
        await runner.cleanup()
        pytest.skip("no IPv6 loopback")
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        assert await get(make_client(settings()), f"http://[::1]:{port}/") == (200, b"v6")
        assert seen == [f"[::1]:{port}"]
    finally:
        await runner.cleanup()


# -- the lean client's pool -------------------------------------------------------


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"


async def test_idle_connections_expire() -> None:
    transport = LeanTransport(settings(idle_timeout=0.1))
    try:
        async with serve({b"GET": OK}) as server:
            assert await get(transport, server.url()) == (200, b"OK")
            assert transport.pool.idle_count() == 1
            assert await server.all_closed(timeout=1.0)  # we closed it, the server saw it
            assert transport.pool.idle_count() == 0 and not transport.pool.conns
            assert await get(transport, server.url()) == (200, b"OK")
            assert server.accepted == 2
    finally:
        await transport.close()


async def test_a_pooled_connection_the_peer_closes_leaves_the_pool() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()  # keep-alive said nothing; the server goes anyway

    transport = LeanTransport(settings())
    try:
        async with RawServer(once) as server:
            assert await get(transport, server.url()) == (200, b"OK")
            for _ in range(100):
                if not transport.pool.conns:
                    break
                await asyncio.sleep(0.01)
            assert not transport.pool.conns and transport.pool.idle_count() == 0
            assert await get(transport, server.url()) == (200, b"OK")
    finally:
        await transport.close()


async def test_the_per_host_cap_holds() -> None:
    gate = asyncio.Event()
    open_now = 0
    most = 0

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        while await read_head(reader):
            await gate.wait()
            writer.write(OK)
            await writer.drain()
        open_now -= 1

    transport = LeanTransport(settings(max_connections_per_host=3))
    try:
        async with RawServer(slow) as server:
            calls = [asyncio.create_task(get(transport, server.url(f"/{i}"))) for i in range(10)]
            await asyncio.sleep(0.2)
            gate.set()
            assert [await c for c in calls] == [(200, b"OK")] * 10
            assert most == 3 and server.accepted == 3
    finally:
        await transport.close()


# -- TLS session resumption (lean) ----------------------------------------------


async def test_tls_sessions_are_resumed(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("pb.example").configure_cert(context)
    data = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nOK"

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        sslobj = writer.get_extra_info("ssl_object")
        resumed.append(bool(sslobj.session_reused))
        writer.write(data)
        await writer.drain()
        writer.close()

    resumed: list[bool] = []
    async with RawServer(script, ssl_context=context) as server:
        transport = LeanTransport(
            settings(resolve={"pb.example": f"127.0.0.1:{server.port}"}, ca_file=str(ca_file))
        )
        try:
            for _ in range(3):
                assert await get(transport, "https://pb.example/x") == (200, b"OK")
        finally:
            await transport.close()
    assert resumed == [False, True, True]

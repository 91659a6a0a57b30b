"""gateway.http.hotconn: plain hot GETs answered by the lane, the rest handed to aiohttp."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.http.head import read_plain_head
from gateway.http.hotconn import HotConnection
from tests.intake_helpers import start_gateway, stop_gateway, write_config


def _lane_connections(gw: object) -> int:
    server = gw.client.server.runner.server  # type: ignore[attr-defined]
    return sum(isinstance(c, HotConnection) for c in server._connections)


async def test_a_kept_alive_connection_stays_in_the_lane_until_another_route(
    tmp_path: Path,
) -> None:
    gw = await start_gateway(tmp_path, write_config(tmp_path))
    try:
        port = gw.client.server.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            pb = b"GET /postback?cid=nope&txid=t1 HTTP/1.1\r\nHost: x\r\n\r\n"
            writer.write(pb + pb)  # pipelined: both answered, in order, by the lane
            await writer.drain()
            for _ in range(2):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
                assert head.startswith(b"HTTP/1.1 20"), head
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            assert _lane_connections(gw) == 1
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + pb)
            await writer.drain()
            first = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5.0)
            assert first.startswith(b"HTTP/1.1 200")
            second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            assert second.startswith(b"HTTP/1.1 20"), second  # aiohttp answers it now
            assert _lane_connections(gw) == 0
        finally:
            writer.close()
    finally:
        await stop_gateway(gw)


def test_heads_that_are_not_plain_are_left_to_aiohttp() -> None:
    ok = b"GET /postback?a=1 HTTP/1.1\r\nHost: x"
    assert read_plain_head(ok, 16384, 8190) is not None
    for head in (
        b"POST /postback HTTP/1.1\r\nHost: x",
        b"GET /postback HTTP/1.1\r\nContent-Length: 3",
        b"GET /postback HTTP/1.1\r\nTransfer-Encoding: chunked",
        b"GET /postback HTTP/1.1\r\nHost : x",
        b"GET /postback HTTP/1.1\r\nHost: x\r\n folded",
        b"GET /postback HTTP/1.1\nHost: x",
        b"GET /postback#f HTTP/1.1\r\nHost: x",
        b"GET /postback HTTP/2.0\r\nHost: x",
        b"GET /postback HTTP/1.1\r\nConnection: upgrade",
        b"GET /postback HTTP/1.1\r\nHost: \xc3\xa9",
    ):
        assert read_plain_head(head, 16384, 8190) is None, head


async def _answer(reader: asyncio.StreamReader) -> bytes:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


async def test_the_lanes_idle_deadline_moves_on_with_each_answer(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path, write_config(tmp_path))
    server = gw.client.server.runner.server
    server._kwargs["keepalive_timeout"] = 0.4  # what web.Server(keepalive_timeout=...) sets
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.client.server.port)
        try:
            pb = b"GET /postback?cid=nope&txid=t1 HTTP/1.1\r\nHost: x\r\n\r\n"
            for _ in range(5):  # 1 s in all, each gap well inside the deadline
                writer.write(pb)
                assert (await _answer(reader)).startswith(b"HTTP/1.1 20")
                await asyncio.sleep(0.2)
            assert _lane_connections(gw) == 1  # still open, still the lane's
            # then idle: closed once the deadline passes
            assert await asyncio.wait_for(reader.read(1), 5.0) == b""
            assert _lane_connections(gw) == 0
        finally:
            writer.close()
    finally:
        await stop_gateway(gw)

"""bench.fanout end to end, small: the sink process, the bare loop and both
dispatcher transports run, every delivery is delivered, the JSON has its keys."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from bench.fanout import _ANSWER, _Sink

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tls", [[], ["--tls"]], ids=["http", "https"])
def test_fanout_runs_small_and_reports_every_figure(tls: list[str]) -> None:
    out = subprocess.run(
        [
            sys.executable,
            *("-m", "bench.fanout", "-n", "60", "-c", "4", "--rounds", "1", "--json"),
            *tls,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["n"] == 60 and result["rounds"] == 1
    assert result["scheme"] == ("https" if tls else "http")
    for key in ("bare_rps", "dispatcher_rps", "dispatcher_lean_rps"):
        assert result[key] > 0
    for key in ("ratio", "ratio_lean", "ratio_round_median"):
        assert 0 < result[key] < 100


async def test_the_sink_answers_each_request_once_pipelined_or_split() -> None:
    """The minimal sink counts requests right: pipelined heads, a body split
    across reads (not taken for a head), a head split across reads."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = b"GET / HTTP/1.1\r\n\r\n"  # a body that looks like a head
        writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        writer.write(b"POST /c HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(body[5:] + b"GET /d HTTP/1.1\r\nHo")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"st: x\r\n\r\n")
        got = await asyncio.wait_for(reader.readexactly(4 * len(_ANSWER)), 5)
        assert got == 4 * _ANSWER
        writer.write(b"GET /e HTTP/1.1\r\n\r\n")
        assert await asyncio.wait_for(reader.readexactly(len(_ANSWER)), 5) == _ANSWER
        with pytest.raises(asyncio.TimeoutError):  # nothing more than was asked
            await asyncio.wait_for(reader.readexactly(1), 0.2)
    finally:
        writer.close()
        server.close()

"""Hostile requests get a 4xx with the JSON error body, never a 5xx or an echo.

Raw sockets against the gateway as ``serve`` runs it (hot routes first, the
gateway's connection handler), a real SQLite file.  The named cases of the
issue, then a bounded fuzz run (malformed request lines, headers and bodies,
naughty strings as values) that requires no 5xx for any of them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.intake_helpers import Gateway, start_gateway, stop_gateway, write_config

TOKEN = b"Authorization: Bearer tok\r\n"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    path = write_config(tmp_path)
    path.write_text('api_token = "tok"\n' + path.read_text())
    g = await start_gateway(tmp_path, path)
    yield g
    await stop_gateway(g)


async def _raw(gw: Gateway, data: bytes) -> tuple[int, bytes]:
    port = gw.client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        out = await asyncio.wait_for(reader.read(65536), 10.0)
    finally:
        writer.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _post(
    path: str, body: bytes, ctype: str | None = "application/json", extra: bytes = b""
) -> bytes:
    lines = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
    if ctype is not None:
        lines += f"Content-Type: {ctype}\r\n".encode()
    return lines + extra + b"\r\n" + body


DEEP_ARRAY = b"[" * 1500 + b"]" * 1500
DEEP_OBJECT = b'{"a":' * 1500 + b"1" + b"}" * 1500

CASES = [
    ("deep JSON /postback", _post("/postback", DEEP_OBJECT), 400, "body"),
    ("deep JSON /api/conversions", _post("/api/conversions", DEEP_ARRAY, extra=TOKEN), 400, "body"),
    ("deep JSON /api/clicks", _post("/api/clicks", DEEP_ARRAY, extra=TOKEN), 400, "body"),
    ("deep JSON tester", _post("/api/postbacks/test", DEEP_OBJECT, extra=TOKEN), 400, "body"),
    (
        "multipart, empty boundary",
        _post("/postback", b"hello", "multipart/form-data; boundary="),
        400,
        "Content-Type",
    ),
    (
        "bogus charset",
        _post("/postback", b"cid=1", "application/x-www-form-urlencoded; charset=bogus"),
        415,
        "Content-Type",
    ),
    (
        "form not UTF-8",
        _post("/postback", b"cid=\xff\xfe1", "application/x-www-form-urlencoded"),
        400,
        "body",
    ),
    (
        "400-digit since",
        _post("/api/deliveries/replay", b'{"since": ' + b"1" * 400 + b"}", extra=TOKEN),
        400,
        "since",
    ),
    (
        "non-UTF-8 Authorization",
        b"GET /api/deliveries HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
        401,
        "Authorization",
    ),
    (
        "request line over the limit",
        b"GET /postback?cid=x&pad=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        414,
        "query",
    ),
    (
        "header over the limit",
        b"GET /postback?cid=x HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n",
        431,
        "headers",
    ),
    (
        "too many headers",
        b"GET /postback?cid=x HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(300))
        + b"\r\n",
        431,
        "headers",
    ),
    ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, None),
    (
        "bad chunk size",
        b"POST /postback HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
        None,
    ),
    (
        "payout 1e-999999",
        b"GET /postback?externalid=x&traffic_source=hand&payout=1e-999999&txid=a1 HTTP/1.1\r\n"
        b"Host: x\r\n\r\n",
        400,
        "payout",
    ),
]


@pytest.mark.parametrize(
    ("name", "request_bytes", "status", "field"), CASES, ids=[c[0] for c in CASES]
)
async def test_hostile_request_gets_a_4xx_naming_the_field(
    gw: Gateway, name: str, request_bytes: bytes, status: int, field: str | None
) -> None:
    code, body = await _raw(gw, request_bytes)
    assert code == status, (name, body[:200])
    answer = json.loads(body)
    assert answer["field"] == field, answer
    assert b"aaaa" not in body and b"\\x" not in body  # never the request echoed


@pytest.mark.parametrize("payout", [" 1.5 ", "1_000", "١٢٣", "１２３", "1e-13", "0x10", "1.5.2"])
async def test_one_payout_syntax(gw: Gateway, payout: str) -> None:
    status, body = await gw.postback(cid="abc", payout=payout)
    assert (status, body["field"]) == (400, "payout"), body


# A negative payout is a correction only a network marked `corrections = true` may
# send (issue 19; tests/test_no_silent_loss.py), so "-0" stands for the sign here.
@pytest.mark.parametrize("payout", ["1.5", "-0", "0.000001", "1e-05", "1E+2", ".5", "+3"])
async def test_plain_payouts_are_accepted(gw: Gateway, payout: str) -> None:
    status, body = await gw.postback(cid="abc", payout=payout, txid=payout)
    assert status in (200, 202), body


async def test_malformed_referer_keeps_the_click_and_redirects(gw: Gateway) -> None:
    resp = await gw.client.get(
        "/click/c-hand",
        params={"cid": "v1"},
        headers={"Referer": "http://[::1/x"},
        allow_redirects=False,
    )
    assert resp.status == 302
    click_id = resp.headers["Location"].split("sub=")[1].split("&")[0]
    status, body = await gw.postback(cid=click_id)  # the click was kept: attributed
    assert (status, body["status"]) == (200, "accepted"), body


NAUGHTY = [
    "",
    "\x00",
    "%00",
    "%",
    "%zz",
    "\u202e",
    "\ud800",
    "😀" * 50,
    "' OR 1=1 --",
    "<script>",
    "{externalid}",
    "${jndi:ldap://x}",
    "a" * 300,
    "1e999999",
    "NaN",
    "-0",
    "\r\nX-Injected: 1",
    "..%2f..%2f",
    "\\",
    "[]",
]
HEADERS = [
    b"Content-Type: ;;;=",
    b'Content-Type: application/json; charset="',
    b"Content-Type: multipart/form-data",
    b"Content-Length: -1",
    b"Content-Length: 99999999999999999999",
    b"Transfer-Encoding: gzip, chunked",
    b"Authorization: \xc3\x28",
    b"Referer: \xff://[",
    b"User-Agent: " + bytes(range(0x80, 0x100)),
    b"Expect: 100-continue",
    b"Host: \x00",
    b"Cookie: " + b"a=" * 3000,
]
PATHS = [
    "/postback",
    "/click/c-hand",
    "/click/%00",
    "/api/conversions",
    "/api/clicks",
    "/api/postbacks/test",
    "/api/deliveries",
    "/api/deliveries/replay",
    "/api/deliveries/99999999999999999999999",
    "/api/deliveries/1/retry",
    "/health",
    "/metrics",
]


def _fuzz_case(rng: random.Random) -> bytes:
    from urllib.parse import quote  # noqa: PLC0415

    path = rng.choice(PATHS)
    method = rng.choice(["GET", "POST", "POST", "PUT", "G\x01T"])
    names = [
        "cid",
        "payout",
        "status",
        "txid",
        "network",
        "secret",
        "externalid",
        "var1",
        "since",
        "cursor",
        "limit",
        "ids",
        "source",
        "values",
        "campaign_id",
    ]
    pairs = "&".join(
        f"{rng.choice(names)}="
        f"{quote(rng.choice(NAUGHTY), safe=rng.choice(['', '%&=']), errors='surrogatepass')}"
        for _ in range(rng.randint(0, 5))
    )
    target = f"{path}?{pairs}" if pairs else path
    body_choices = [
        b"",
        json.dumps({rng.choice(names): rng.choice(NAUGHTY)}).encode(),
        json.dumps([{rng.choice(names): rng.choice(NAUGHTY)}]).encode(),
        b"[" * rng.randint(1, 3000),
        pairs.encode(),
        bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))),
    ]
    body = rng.choice(body_choices)
    head = [f"{method} {target} HTTP/1.1".encode("utf-8", "surrogateescape"), b"Host: x"]
    head += rng.sample(HEADERS, rng.randint(0, 3))
    if rng.random() < 0.5:
        head.append(TOKEN.strip())
    if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in head):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def test_fuzzed_intake_never_answers_5xx(gw: Gateway) -> None:
    rng = random.Random(22)
    for _ in range(600):
        data = _fuzz_case(rng)
        port = gw.client.server.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            await writer.drain()
            out = await asyncio.wait_for(reader.read(65536), 10.0)
        except (ConnectionError, TimeoutError):
            out = b""
        finally:
            writer.close()
        if not out:
            continue  # the server closed without answering (an unreadable head): fine
        status = int(out.split(b" ", 2)[1])
        assert status < 500, data[:300]
        if status >= 400:
            body = out.partition(b"\r\n\r\n")[2]
            answer = json.loads(body)
            assert set(answer) >= {"error", "field"}, body[:200]


async def test_a_postback_rendered_over_the_limit_is_never_stored(tmp_path: Path) -> None:
    wide = "&".join(f"a{i}={{var1}}" for i in range(40))
    extra = f'\n[[traffic_sources]]\nname = "wide"\npostback = "https://pb.example/w?{wide}"\n'
    path = write_config(tmp_path, extra=extra)
    g = await start_gateway(tmp_path, path)
    try:
        resp = await g.client.post(
            "/api/conversions",
            json=[
                {"externalid": "x", "traffic_source": "wide", "var1": "é" * 256, "txid": "t1"},
                {"externalid": "y", "traffic_source": "wide", "var1": "short", "txid": "t2"},
            ],
        )
        assert resp.status == 200
        assert [r["status"] for r in await resp.json()] == ["accepted", "accepted"]
        urls = [d.url for d in g.sink.submitted]
        assert len(urls) == 1 and "short" in urls[0]  # the 60 KB one was refused
    finally:
        await stop_gateway(g)


async def test_a_slowloris_connection_is_closed(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.http import wire  # noqa: PLC0415

    monkeypatch.setattr(wire, "HEAD_TIMEOUT", 0.3)
    port = gw.client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /postback?cid=x HTTP/1.1\r\nHost: x\r\nX-A: ")  # and never the rest
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed, no answer
    finally:
        writer.close()
    status, _ = await gw.postback(cid="abc")  # the server is fine
    assert status in (200, 202)


async def test_a_slow_second_head_on_a_kept_alive_connection_is_closed(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.http import wire  # noqa: PLC0415

    monkeypatch.setattr(wire, "HEAD_TIMEOUT", 0.5)
    port = gw.client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5.0)
        assert first.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.8)  # an idle keep-alive connection is not a slow head
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5.0) == b""
    finally:
        writer.close()


async def test_a_slow_body_is_not_a_slow_head(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.http import wire  # noqa: PLC0415

    monkeypatch.setattr(wire, "HEAD_TIMEOUT", 0.3)
    port = gw.client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = b"cid=abc&txid=slow"
        writer.write(
            b"POST /postback HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:5]
        )
        await writer.drain()
        await asyncio.sleep(0.6)
        writer.write(body[5:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.readuntil(b"}"), 5.0)
        assert answer.split(b" ", 2)[1] in (b"200", b"202"), answer
    finally:
        writer.close()

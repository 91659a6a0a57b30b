"""Every transport against hostile servers (raw asyncio servers on loopback):
broken status lines, lying lengths, endless heads and bodies, hang-ups,
stalls, early answers and wrong TLS.  Whatever the server does, the client
answers within its timeout, closes the connection it cannot trust, and files
the attempt under a reason; the lean client's reasons are checked word for
word, since they are what the delivery log shows."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from raw_server import RawServer, Script, read_head
from sinks import new_delivery
from transport_fixtures import MakeTransport

from gateway.clock import VirtualClock
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import Answer, Transport, TransportError
from gateway.dispatch.transport.redirects import send
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"


def settings(**kw: object) -> DeliverySettings:
    fields: dict[str, object] = dict(allow_private_targets=True, body_prefix_bytes=64)
    fields.update(kw)
    return DeliverySettings(**fields)  # type: ignore[arg-type]


def reply(data: bytes, *, then_close: bool = False, stall: bool = False) -> Script:
    """Answer every request on the connection with ``data`` (``stall``: answer one,
    then say nothing more; the connection stays open)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_head(reader):
            writer.write(data)
            await writer.drain()
            if stall:
                return
            if then_close:
                writer.close()
                return

    return script


async def fails(transport: Transport, url: str, timeout: float = 3.0) -> TransportError:
    """The attempt fails (never hangs: well within ``timeout``), retryably."""
    started = time.perf_counter()
    with pytest.raises(TransportError) as info:
        await asyncio.wait_for(send(transport, "GET", url, None, {}, timeout), timeout + 2)
    assert time.perf_counter() - started < timeout + 1
    assert not info.value.final, info.value.reason
    return info.value


async def answers(transport: Transport, url: str, timeout: float = 3.0) -> Answer:
    return await asyncio.wait_for(send(transport, "GET", url, None, {}, timeout), timeout + 2)


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed status line"),
        (b"garbage\r\n\r\n", "malformed status line"),
        (b"HTTP/2 200\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "malformed Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", "conflicting"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101"),
    ],
)
async def test_protocol_breaks(
    make_client: MakeTransport, transport_kind: str, head: bytes, why: str
) -> None:
    async with RawServer(reply(head)) as server:
        transport = make_client(settings())
        if why == "101" and transport_kind == "aiohttp":  # aiohttp hands the 101 back
            assert (await answers(transport, server.url("/x"))).status == 101
            return
        error = await fails(transport, server.url("/x"))
        if transport_kind == "lean":
            assert error.reason.startswith("bad answer: ") and why in error.reason
        await transport.close()
        assert await server.all_closed()


async def test_lying_content_length_closed_early(
    make_client: MakeTransport, transport_kind: str
) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly a few"
    async with RawServer(reply(data, then_close=True)) as server:
        error = await fails(make_client(settings()), server.url())
        if transport_kind == "lean":
            assert error.reason == "bad answer: connection closed after 10 of 50 body bytes"


async def test_body_longer_than_its_length_is_not_reused(make_client: MakeTransport) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOKHTTP/1.1 500 Smuggled\r\n\r\n"
    async with RawServer(reply(data)) as server:
        transport = make_client(settings())
        for _ in range(2):
            answer = await answers(transport, server.url())
            assert (answer.status, answer.body_prefix) == (200, b"OK")
        assert server.accepted == 2  # the dirty connection was never asked again


async def test_endless_headers(make_client: MakeTransport, transport_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(200_000):  # ~4 MB unless the client hangs up first
            writer.write(b"X-Header-%d: %s\r\n" % (i, b"v" * 8))
            if i % 256 == 0:
                await writer.drain()

    async with RawServer(script) as server:
        transport = make_client(settings())
        error = await fails(transport, server.url(), timeout=5.0)
        if transport_kind == "lean":
            assert error.reason == "bad answer: more than 100 header lines" or (
                "response head over" in error.reason
            )
            assert "timeout" not in error.reason
        await transport.close()
        assert await server.all_closed()


async def test_one_endless_header_line(make_client: MakeTransport, transport_kind: str) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
        for _ in range(1000):
            writer.write(b"a" * 4096)
            await writer.drain()

    async with RawServer(script) as server:
        error = await fails(make_client(settings()), server.url(), timeout=5.0)
        if transport_kind == "lean":
            assert error.reason == "bad answer: response head over 65536 bytes"


async def test_endless_chunked_body_is_cut_at_the_cap(make_client: MakeTransport) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(2000):  # 8 MB unless the client hangs up first
            writer.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
            await writer.drain()

    async with RawServer(script) as server:
        transport = make_client(settings())
        answer = await answers(transport, server.url(), timeout=5.0)
        assert (answer.status, answer.body_prefix) == (200, b"y" * 64)
        assert await server.all_closed()  # dropped, not drained


async def test_chunked_with_extensions_and_trailers(make_client: MakeTransport) -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with RawServer(reply(data)) as server:
        transport = make_client(settings())
        for _ in range(2):
            answer = await answers(transport, server.url())
            assert (answer.status, answer.body_prefix) == (200, b"abcde")
        assert server.accepted == 1  # kept alive: the body ended where it said


@pytest.mark.parametrize(
    ("partial", "why"),
    [
        (b"", "connection closed before an answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "bad answer: connection closed mid-head"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "bad answer: connection closed mid-body",
        ),
    ],
    ids=["nothing", "mid-head", "mid-chunk"],
)
async def test_close_mid_response(
    make_client: MakeTransport, transport_kind: str, partial: bytes, why: str
) -> None:
    async with RawServer(reply(partial, then_close=True)) as server:
        error = await fails(make_client(settings()), server.url())
        if transport_kind == "lean":
            assert error.reason.startswith(why), error.reason
            assert server.accepted == 1  # a fresh connection's request is never resent


async def test_stall_after_headers_times_out(
    make_client: MakeTransport, transport_kind: str
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    async with RawServer(reply(head, stall=True)) as server:
        transport = make_client(settings())
        error = await fails(transport, server.url(), timeout=0.4)
        assert error.timed_out and error.reason == "timeout after 0.4 s"
        await transport.close()
        assert await server.all_closed()


async def test_first_byte_timeout_is_its_own(
    make_client: MakeTransport, transport_kind: str
) -> None:
    if transport_kind != "lean":
        pytest.skip("first_byte_timeout is the lean client's")

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)  # and then nothing

    async with RawServer(mute) as server:
        transport = make_client(settings(first_byte_timeout=0.2))
        error = await fails(transport, server.url(), timeout=5.0)
        assert error.reason == "no answer within 0.2 s (first byte)"


@pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")
async def test_an_answer_before_the_body_is_written(make_client: MakeTransport) -> None:
    """A server may refuse a request before reading its body (413): that is the answer,
    and the connection, half written, is closed."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\n\r\nbig")
        await writer.drain()  # then read (and drop) what still comes, until the client leaves

    async with RawServer(script) as server:
        transport = make_client(settings())
        body = b"z" * (8 << 20)
        answer = await asyncio.wait_for(send(transport, "POST", server.url(), body, {}, 5.0), 7.0)
        assert (answer.status, answer.body_prefix) == (413, b"big")
        assert await server.all_closed()


async def test_bytes_on_an_idle_connection_are_not_an_answer(
    make_client: MakeTransport, transport_kind: str
) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(OK)
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 500 Unasked\r\nContent-Length: 0\r\n\r\n")  # nobody asked
        await writer.drain()
        while await read_head(reader):
            writer.write(OK)

    async with RawServer(script) as server:
        transport = make_client(settings())
        assert (await answers(transport, server.url())).status == 200
        await asyncio.sleep(0.2)
        status = (await answers(transport, server.url())).status
        if transport_kind == "aiohttp" and status == 500:
            pytest.xfail("aiohttp reads bytes sent on an idle connection as the next answer")
        assert status == 200 and server.accepted == 2


async def test_too_many_interim_answers(make_client: MakeTransport, transport_kind: str) -> None:
    async with RawServer(reply(b"HTTP/1.1 100 Continue\r\n\r\n" * 50 + OK)) as server:
        transport = make_client(settings())
        if transport_kind == "lean":
            error = await fails(transport, server.url())
            assert error.reason == "bad answer: more than 8 interim (1xx) answers"
        else:
            with pytest.raises((TransportError, AssertionError)):
                answer = await answers(transport, server.url())
                assert answer.status != 200


# -- TLS done wrong -------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield str(path)


def tls_settings(server: RawServer, ca_file: str, **kw: object) -> DeliverySettings:
    return settings(resolve={"pb.example": f"127.0.0.1:{server.port}"}, ca_file=ca_file, **kw)


async def test_https_to_a_plain_server(
    make_client: MakeTransport, transport_kind: str, ca_file: str
) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)  # a ClientHello: not HTTP
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
        writer.close()

    async with RawServer(plain) as server:
        error = await fails(make_client(tls_settings(server, ca_file)), "https://pb.example/x")
        if transport_kind == "lean":
            assert error.reason.startswith("TLS handshake failed: "), error.reason


async def test_a_tls_handshake_that_never_ends(
    make_client: MakeTransport, transport_kind: str, ca_file: str
) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # takes the ClientHello, never answers

    async with RawServer(mute) as server:
        transport = make_client(tls_settings(server, ca_file, connect_timeout=0.3))
        error = await fails(
            transport, "https://pb.example/x", timeout=0.6 if transport_kind != "lean" else 5.0
        )
        if transport_kind == "lean":
            assert error.reason == "TLS handshake timeout after 0.3 s"


async def test_garbage_instead_of_a_server_hello(
    make_client: MakeTransport, transport_kind: str, ca_file: str
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x16\x03\x01\x00\x05hello, not TLS at all" * 10)
        await writer.drain()

    async with RawServer(garbage) as server:
        error = await fails(make_client(tls_settings(server, ca_file)), "https://pb.example/x")
        if transport_kind == "lean":
            assert error.reason.startswith("TLS handshake failed: ")


@pytest.mark.parametrize("problem", ["other name", "expired", "self-signed"])
async def test_certificates_refused(
    make_client: MakeTransport, transport_kind: str, ca: trustme.CA, ca_file: str, problem: str
) -> None:
    if problem == "self-signed":
        cert = trustme.CA().issue_cert("pb.example")  # a CA we do not trust
    elif problem == "expired":
        cert = ca.issue_cert("pb.example", not_after=_past())
    else:
        cert = ca.issue_cert("elsewhere.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    async with RawServer(reply(OK), ssl_context=context) as server:
        error = await fails(make_client(tls_settings(server, ca_file)), "https://pb.example/x")
        assert server.requests == []
        if transport_kind == "lean":
            assert error.reason.startswith("TLS certificate refused: "), error.reason


def _past() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)


# -- the dispatcher over hostile servers ------------------------------------------


async def test_the_dispatcher_files_each_under_its_reason(
    transport_kind: str, tmp_path: Path
) -> None:
    """Hostile answers are attempts like any other: logged with a reason, retried,
    and the dispatcher goes on delivering to the host that answers well."""
    scripts = {
        "status": reply(b"HTTP/1.1 abc\r\n\r\n"),
        "length": reply(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", then_close=True),
        "chunk": reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n"),
        "stall": reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", stall=True),
        "good": reply(OK),
    }
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    clock = VirtualClock(1_800_000_000.0)
    servers = {name: RawServer(script) for name, script in scripts.items()}
    dispatcher = Dispatcher(
        settings(transport=transport_kind, timeout=0.5, jitter=0.0), store, Metrics(), clock
    )
    try:
        for server in servers.values():
            await server.__aenter__()
        await dispatcher.start()
        batch = [
            new_delivery(s.url(f"/{name}"), now=clock.now(), conversion_id=name)
            for name, s in servers.items()
        ]
        committed = (await store.commit_batch([], [], batch)).deliveries
        dispatcher.submit(committed)
        await asyncio.wait_for(dispatcher.wait_idle(), 10)
        found = {d.conversion_id: await store.get_delivery(d.delivery_id) for d in committed}
        assert found["good"] is not None and found["good"].status == "delivered"
        for name in ("status", "length", "chunk", "stall"):
            d = found[name]
            assert d is not None and d.status == "queued" and d.attempts == 1, name
            assert d.last_outcome == "retry" and d.last_reason, name
        if transport_kind == "lean":
            reasons = {n: found[n].last_reason for n in found}  # type: ignore[union-attr]
            assert reasons["status"].startswith("bad answer: malformed status line")
            assert reasons["length"] == "bad answer: connection closed after 2 of 9 body bytes"
            assert reasons["chunk"].startswith("bad answer: malformed chunk size")
            assert reasons["stall"] == "timeout after 0.5 s"
    finally:
        await dispatcher.stop(timeout=1.0)
        for server in servers.values():
            await server.__aexit__(None, None, None)
        await store.close()

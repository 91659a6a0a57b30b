"""Every transport (``transport_kind``: aiohttp, lean) against real loopback sinks:
one hop per ``exchange``, redirects followed by the shared loop, HTTPS with
``ca_file`` and ``resolve``, the same answers and errors from each client."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from network_sink import make_tls
from sinks import Blackhole, Sink
from transport_fixtures import MakeTransport

from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.base import USER_AGENT, Transport, TransportError
from gateway.dispatch.transport.redirects import MAX_REDIRECTS, send


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as s:
        yield s


@pytest.fixture
def transport(make_client: MakeTransport) -> Transport:
    return make_client(DeliverySettings(allow_private_targets=True, body_prefix_bytes=64))


async def test_ok_answer(sink: Sink, transport: Transport) -> None:
    answer = await send(transport, "GET", sink.url("/ok?x=1"), None, {}, 5.0)
    assert (answer.status, answer.body_prefix, answer.redirects) == (200, b"OK", 0)
    assert answer.final_url == sink.url("/ok?x=1")
    assert answer.elapsed > 0
    assert sink.hits[0].path_qs == "/ok?x=1"
    assert sink.hits[0].headers["User-Agent"] == USER_AGENT


async def test_post_body_and_headers(sink: Sink, transport: Transport) -> None:
    answer = await send(
        transport, "POST", sink.url("/ok"), b'{"a":1}', {"Content-Type": "application/json"}, 5.0
    )
    assert answer.status == 200
    assert sink.hits[0].body == b'{"a":1}'
    assert sink.hits[0].headers["Content-Type"] == "application/json"


async def test_status_and_headers(sink: Sink, transport: Transport) -> None:
    answer = await send(transport, "GET", sink.url("/status/429?retry_after=30"), None, {}, 5.0)
    assert answer.status == 429 and answer.headers["retry-after"] == "30"
    assert (await send(transport, "GET", sink.url("/status/500"), None, {}, 5.0)).status == 500
    assert (await send(transport, "GET", sink.url("/status/404"), None, {}, 5.0)).status == 404


async def test_keep_alive_reuses_one_connection(sink: Sink, transport: Transport) -> None:
    for _ in range(5):
        await send(transport, "GET", sink.url("/ok"), None, {}, 5.0)
    assert len({h.peer_port for h in sink.hits}) == 1


async def test_body_read_stops_at_the_cap(sink: Sink, transport: Transport) -> None:
    answer = await send(transport, "GET", sink.url("/big?size=5000000"), None, {}, 5.0)
    assert answer.status == 200 and answer.body_prefix == b"x" * 64
    # the connection is dropped, not drained; the next request still works
    assert (await send(transport, "GET", sink.url("/ok"), None, {}, 5.0)).status == 200


async def test_timeout(sink: Sink, transport: Transport) -> None:
    with pytest.raises(TransportError) as info:
        await send(transport, "GET", sink.url("/slow?delay=5"), None, {}, 0.3)
    assert not info.value.final and info.value.reason == "timeout after 0.3 s"


async def test_hang_up_is_a_retryable_error(sink: Sink, transport: Transport) -> None:
    with pytest.raises(TransportError) as info:
        await send(transport, "GET", sink.url("/close"), None, {}, 5.0)
    assert not info.value.final


async def test_connection_refused(transport: Transport) -> None:
    hole = Blackhole()
    port = hole.port
    hole.close()  # nothing listens there now
    with pytest.raises(TransportError) as info:
        await send(transport, "GET", f"http://127.0.0.1:{port}/", None, {}, 5.0)
    assert not info.value.final and "connect" in info.value.reason


async def test_blackhole_times_out(transport: Transport) -> None:
    hole = Blackhole()
    try:
        with pytest.raises(TransportError) as info:
            await send(transport, "GET", hole.url(), None, {}, 0.3)
        assert "timeout" in info.value.reason
    finally:
        hole.close()


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///nohost", "http://[bad/"])
async def test_unusable_urls_are_final(transport: Transport, url: str) -> None:
    with pytest.raises(TransportError) as info:
        await transport.exchange("GET", url, None, {}, 5.0)
    assert info.value.final and info.value.final_url == url


# -- redirects: one loop for every client ---------------------------------------


async def test_exchange_is_one_hop(sink: Sink, transport: Transport) -> None:
    url = sink.url(f"/redirect?to={_quote(sink.url('/ok'))}")
    answer = await transport.exchange("GET", url, None, {}, 5.0)
    assert (answer.status, answer.redirects, answer.final_url) == (302, 0, url)
    assert sink.count("/ok") == 0


async def test_redirects_up_to_the_limit(sink: Sink, transport: Transport) -> None:
    assert MAX_REDIRECTS == 3
    url = sink.url("/ok?done=1")
    for _ in range(3):
        url = sink.url(f"/redirect?to={_quote(url)}")
    answer = await send(transport, "GET", url, None, {}, 5.0)
    assert (answer.status, answer.redirects) == (200, 3)
    assert answer.final_url == sink.url("/ok?done=1")
    # a fourth hop is not followed: the 302 itself is the answer
    answer = await send(transport, "GET", sink.url(f"/redirect?to={_quote(url)}"), None, {}, 5.0)
    assert (answer.status, answer.redirects) == (302, 3) and sink.count("/ok") == 1


async def test_relative_redirect_and_303_turns_post_into_get(
    sink: Sink, transport: Transport
) -> None:
    answer = await send(transport, "POST", sink.url("/redirect?to=/ok&code=303"), b"a=1", {}, 5.0)
    assert answer.status == 200
    assert [h.method for h in sink.hits] == ["POST", "GET"]


async def test_307_keeps_the_method(sink: Sink, transport: Transport) -> None:
    await send(transport, "POST", sink.url("/redirect?to=/ok&code=307"), b"a=1", {}, 5.0)
    assert [(h.method, h.body) for h in sink.hits] == [("POST", b"a=1"), ("POST", b"a=1")]


async def test_redirect_to_a_blocked_literal_is_refused_before_dialling(
    sink: Sink, make_client: MakeTransport
) -> None:
    transport = make_client(
        DeliverySettings(
            resolve={"net.example": f"127.0.0.1:{sink.port}"}, allowed_networks=["127.0.0.1/32"]
        )
    )
    for target in ("http://169.254.169.254/", "http://0x0a.1:9/", "gopher://net.example/"):
        url = f"http://net.example/redirect?to={_quote(target)}"
        with pytest.raises(TransportError) as info:
            await send(transport, "GET", url, None, {}, 5.0)
        assert info.value.final and info.value.final_url.startswith(target.rstrip("/"))
    assert sink.count("/redirect") == 3


async def test_a_redirect_to_an_unusable_location_is_final(
    sink: Sink, transport: Transport
) -> None:
    url = sink.script("bad", [(302, "", {"Location": "http://[bad"})])
    with pytest.raises(TransportError) as info:
        await send(transport, "GET", url, None, {}, 5.0)
    assert info.value.final and "invalid URL" in info.value.reason


async def test_the_timeout_covers_every_hop(sink: Sink, transport: Transport) -> None:
    url = sink.url(f"/redirect?to={_quote(sink.url('/slow?delay=5'))}")
    with pytest.raises(TransportError) as info:
        await send(transport, "GET", url, None, {}, 0.4)
    assert info.value.reason == "timeout after 0.4 s" and info.value.elapsed == 0.4
    assert info.value.final_url == sink.url("/slow?delay=5") and not info.value.final


def _quote(url: str) -> str:
    return quote(url, safe="")


# -- HTTPS: ca_file, the real host name as SNI and Host through resolve --------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


class TlsSink:
    def __init__(self) -> None:
        self.peers: list[int] = []
        self.hosts: list[str] = []
        self.port = 0
        self.ca = Path()


@pytest.fixture
async def tls_sink(tmp_path: Path) -> AsyncIterator[TlsSink]:
    ca, cert, key = make_tls(tmp_path / "tls", ["postback.example"])
    sink = TlsSink()
    sink.ca = ca

    async def ok(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        sink.peers.append(peer[1] if peer else 0)
        sink.hosts.append(request.host)
        return web.Response(text="OK tls")

    app = web.Application()
    app.router.add_get("/ok", ok)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    sink.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield sink
    await runner.cleanup()


def _tls_settings(sink: TlsSink, **kw: object) -> DeliverySettings:
    fields: dict[str, object] = dict(
        resolve={
            "postback.example:443": f"127.0.0.1:{sink.port}",
            "other.example:443": f"127.0.0.1:{sink.port}",
        },
        allowed_networks=["127.0.0.1/32"],
        ca_file=str(sink.ca),
    )
    fields.update(kw)
    return DeliverySettings(**fields)  # type: ignore[arg-type]


@needs_openssl
async def test_https_with_resolve_and_keep_alive(
    tls_sink: TlsSink, make_client: MakeTransport
) -> None:
    transport = make_client(_tls_settings(tls_sink))
    for _ in range(3):
        answer = await send(transport, "GET", "https://postback.example/ok?x=1", None, {}, 5.0)
        assert (answer.status, answer.body_prefix) == (200, b"OK tls")
    assert tls_sink.hosts == ["postback.example"] * 3
    assert len(set(tls_sink.peers)) == 1


@needs_openssl
async def test_untrusted_or_mismatched_certificate_fails(
    tls_sink: TlsSink, make_client: MakeTransport
) -> None:
    for settings, url in (
        (_tls_settings(tls_sink, ca_file=None), "https://postback.example/ok"),
        (_tls_settings(tls_sink), "https://other.example/ok"),  # the name is not in the cert
    ):
        transport = make_client(settings)
        with pytest.raises(TransportError) as info:
            await send(transport, "GET", url, None, {}, 5.0)
        assert not info.value.final  # retried: a certificate can be fixed
    assert tls_sink.hosts == []

"""Both transports over HTTPS: certificate checked against ``ca_file``, the real
host name as SNI and Host through ``resolve``, keep-alive over TLS."""

from __future__ import annotations

import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from network_sink import make_tls

from gateway.dispatch.dispatcher import make_transport
from gateway.dispatch.settings import DeliverySettings
from gateway.dispatch.transport.aiohttp_client import TransportError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


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


def _settings(sink: TlsSink, kind: str, **kw: object) -> DeliverySettings:
    fields: dict[str, object] = dict(
        resolve={"postback.example:443": f"127.0.0.1:{sink.port}",
                 "other.example:443": f"127.0.0.1:{sink.port}"},
        allowed_networks=["127.0.0.1/32"], ca_file=str(sink.ca), transport=kind,
    )
    fields.update(kw)
    return DeliverySettings(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["aiohttp", "lean"])
async def test_https_with_resolve_and_keep_alive(tls_sink: TlsSink, kind: str) -> None:
    transport = make_transport(_settings(tls_sink, kind))
    try:
        for _ in range(3):
            answer = await transport.send("GET", "https://postback.example/ok?x=1", None, {}, 5.0)
            assert (answer.status, answer.body_prefix) == (200, b"OK tls")
    finally:
        await transport.close()
    assert tls_sink.hosts == ["postback.example"] * 3
    assert len(set(tls_sink.peers)) == 1


@pytest.mark.parametrize("kind", ["aiohttp", "lean"])
async def test_untrusted_or_mismatched_certificate_fails(tls_sink: TlsSink, kind: str) -> None:
    for settings, url in (
        (_settings(tls_sink, kind, ca_file=None), "https://postback.example/ok"),
        (_settings(tls_sink, kind), "https://other.example/ok"),  # the name is not in the cert
    ):
        transport = make_transport(settings)
        try:
            with pytest.raises(TransportError) as info:
                await transport.send("GET", url, None, {}, 5.0)
            assert not info.value.final  # retried: a certificate can be fixed
        finally:
            await transport.close()
    assert tls_sink.hosts == []

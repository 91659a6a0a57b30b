"""A loopback stand-in for real traffic sources, over HTTP and HTTPS.

The gateway reaches it through ``[delivery] resolve`` (the preset's real host
name mapped to 127.0.0.1) and trusts its certificate through
``[delivery] ca_file``: the URL, ``Host`` header and TLS SNI stay the real
network's, only the connection goes here. The sink answers per click id (the
network's own id, ``externalid``): the answers set with :meth:`NetworkSink.expect`
are played in order (the last repeats), anything else gets ``200 OK``.

It runs its own event loop in a thread, so a test may block (starting a
gateway subprocess) without stalling it. Test helpers only.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from aiohttp import web

__all__ = ("NetHit", "NetworkSink", "make_tls")


def make_tls(directory: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``hosts``, made with the
    ``openssl`` CLI: returns (ca.pem, server.pem, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        "subjectAltName=" + ",".join(f"DNS:{h}" for h in hosts) + "\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = [
        [
            "openssl",
            "req",
            "-x509",
            *ec,
            "-keyout",
            ca_key,
            "-out",
            ca_pem,
            "-days",
            "2",
            "-subj",
            "/CN=postback-gateway test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=network-sink"],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_pem,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            pem,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    ]
    for argv in run:
        subprocess.run([str(a) for a in argv], check=True, capture_output=True, timeout=30)
    return ca_pem, pem, key


@dataclass
class NetHit:
    scheme: str
    host: str  # the Host header: the real network's name
    method: str
    path: str
    query: dict[str, str]
    raw: str  # path and query as sent
    at: float
    body: str = ""
    content_type: str = ""


class NetworkSink:
    """One aiohttp app on two loopback sites: plain HTTP and HTTPS."""

    def __init__(self, certfile: Path, keyfile: Path) -> None:
        self._certfile = certfile
        self._keyfile = keyfile
        self.hits: list[NetHit] = []
        self.answers: dict[str, list[tuple[int, str, dict[str, str]]]] = {}
        self.http_port = 0
        self.https_port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="network-sink", daemon=True
        )
        self._runner: web.AppRunner | None = None

    # -- test side -------------------------------------------------------------

    def start(self) -> NetworkSink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(15)
        return self

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(15)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._loop.close()

    def expect(
        self, click: str, answers: list[tuple[int, str] | tuple[int, str, dict[str, str]]]
    ) -> None:
        """Answer requests carrying ``click`` (in the query or path) with ``answers``;
        ``{request}`` in a body is replaced by the request's path and query."""
        self.answers[click] = [
            (a[0], a[1], a[2] if len(a) > 2 else {})
            for a in answers  # type: ignore[misc]
        ]

    def hits_for(self, click: str) -> list[NetHit]:
        return [h for h in list(self.hits) if click in h.query.values() or click in h.path]

    def resolve_map(self, hosts: dict[str, str]) -> dict[str, str]:
        """``{host: scheme}`` -> the ``[delivery] resolve`` table reaching this sink:
        ``host:80`` to the plain site, ``host:443`` to the TLS one, whatever the scheme."""
        table: dict[str, str] = {}
        for host in hosts:
            # both ports, so a redirect from http to https (or back) stays here too
            table[f"{host}:80"] = f"127.0.0.1:{self.http_port}"
            table[f"{host}:443"] = f"127.0.0.1:{self.https_port}"
        return table

    def wait_hits(self, click: str, count: int, timeout: float = 10.0) -> list[NetHit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = self.hits_for(click)
            if len(hits) >= count:
                return hits
            time.sleep(0.02)
        return self.hits_for(click)

    # -- server side -----------------------------------------------------------

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        plain = web.TCPSite(self._runner, "127.0.0.1", 0)
        await plain.start()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self._certfile, self._keyfile)
        secure = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await secure.start()
        self.http_port = plain._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.https_port = secure._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _answer(self, request: web.Request) -> web.Response:
        raw = request.raw_path
        split = urlsplit(raw)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        hit = NetHit(
            scheme=request.scheme,
            host=request.headers.get("Host", ""),
            method=request.method,
            path=unquote(split.path),
            query=query,
            raw=raw,
            at=time.time(),
            body=(await request.read()).decode("utf-8", "replace"),
            content_type=request.headers.get("Content-Type", ""),
        )
        self.hits.append(hit)
        for value in [*query.values(), *hit.path.split("/")]:
            answers = self.answers.get(value)
            if answers:
                status, body, headers = answers.pop(0) if len(answers) > 1 else answers[0]
                # "{request}" in a body echoes the request line, as some error pages do
                return web.Response(
                    status=status, text=body.replace("{request}", raw), headers=headers
                )
        return web.Response(text="OK")

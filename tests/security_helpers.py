"""Pieces for the security tests: listeners that count every connection on the
internal addresses, and a gateway running in process with its real dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.config import load
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.store.base import Delivery, DeliveryFilter
from gateway.store.sqlite import SQLiteStore
from tests.intake_helpers import GatewayTestServer

__all__ = ("INTERNAL", "Counting", "LiveGateway", "free_port", "live_gateway")

#: Loopback aliases (no root needed on Linux) and ::1: where an SSRF would land.
INTERNAL = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")


def free_port() -> int:
    """A port free on every internal address."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for host in INTERNAL:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port


class Counting:
    """TCP listeners on one port of every internal address that count connections.

    ``answer`` is what each connection gets (None: nothing, ever: a blackhole).
    """

    def __init__(self, port: int | None = None, answer: bytes | None = None) -> None:
        self.port = port or free_port()
        self.answer = answer
        self.connections = 0
        self.seen: list[str] = []  # the local address each connection arrived on
        self._servers: list[asyncio.Server] = []
        self._held: list[asyncio.StreamWriter] = []

    async def _on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.seen.append(str(writer.get_extra_info("sockname")[0]))
        if self.answer is None:
            self._held.append(writer)  # never answered, never closed by us
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            writer.write(self.answer)
            await writer.drain()
        writer.close()

    async def __aenter__(self) -> Counting:
        for host in INTERNAL:
            self._servers.append(await asyncio.start_server(self._on, host, self.port))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._held:
            writer.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class LiveGateway:
    def __init__(
        self, http: TestClient[Any, Any], store: SQLiteStore, dispatcher: Dispatcher
    ) -> None:
        self.http = http
        self.store = store
        self.dispatcher = dispatcher

    async def settled(self, timeout: float = 20.0) -> list[Delivery]:
        """Every delivery, once none is queued (bounded in time)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.store.list_deliveries(DeliveryFilter(), after_id=None, limit=1000)
            if all(d.status != "queued" for d in rows) or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def live_gateway(tmp_path: Path, config_text: str) -> AsyncIterator[LiveGateway]:
    """The gateway as ``serve`` runs it (hot routes first), with its dispatcher."""
    path = tmp_path / "gateway.toml"
    path.write_text(config_text)
    config = load(path)
    store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    metrics = Metrics()
    dispatcher = Dispatcher(settings=config.delivery, store=store, metrics=metrics)
    await dispatcher.start()
    app = create_app(config, store, dispatcher, metrics=metrics)
    http: TestClient[Any, Any] = TestClient(GatewayTestServer(app, host="127.0.0.1"))
    await http.start_server()
    try:
        yield LiveGateway(http, store, dispatcher)
    finally:
        await http.close()
        await dispatcher.stop(timeout=1.0)
        await store.close()

"""Probes and identity: /health with the version, /ready that goes 503 when the store
is gone, /metrics (build info, breaker states, oldest queued delivery, optionally
behind the token), /api/hosts; --version on every command line.

A real app on a loopback port, a real SQLite file, a real dispatcher.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from intake_helpers import GatewayTestServer
from sinks import new_delivery

from gateway import __version__
from gateway.clock import VirtualClock
from gateway.config import validate
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore
from tests.gateway_proc import ROOT

T0 = 1_800_000_000.0


class Gateway:
    def __init__(self, client: TestClient[Any, Any], store: SQLiteStore, d: Dispatcher) -> None:
        self.client = client
        self.store = store
        self.dispatcher = d

    async def get(self, path: str, **headers: str) -> tuple[int, Any]:
        resp = await self.client.get(path, headers=headers)
        kind = resp.headers.get("Content-Type", "")
        body = await (resp.json() if kind.startswith("application/json") else resp.text())
        return resp.status, body


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[TestClient[Any, Any], SQLiteStore, Dispatcher]] = []

    async def make(raw: dict[str, Any] | None = None) -> Gateway:
        config, problems = validate(raw or {})
        assert config is not None, problems
        store = SQLiteStore(tmp_path / f"g{len(made)}.sqlite")
        await store.open()
        metrics = Metrics()
        clock = VirtualClock(T0)
        dispatcher = Dispatcher(config.delivery, store, metrics, clock)
        await dispatcher.start()
        app = create_app(config, store, dispatcher, metrics=metrics, clock=clock)
        client: TestClient[Any, Any] = TestClient(GatewayTestServer(app))
        await client.start_server()
        made.append((client, store, dispatcher))
        return Gateway(client, store, dispatcher)

    yield make
    for client, store, dispatcher in made:
        await client.close()
        await dispatcher.stop(timeout=1.0)
        await store.close()


async def test_health_says_ok_and_the_version(gateway: Any) -> None:
    gw = await gateway()
    assert await gw.get("/health") == (200, {"status": "ok"})  # the contract's body, exactly
    resp = await gw.client.get("/health")
    assert resp.headers["X-Gateway-Version"] == __version__
    assert (await gw.get("/ready"))[1]["version"] == __version__


async def test_ready_then_503_when_the_store_is_gone(gateway: Any) -> None:
    gw = await gateway()
    status, body = await gw.get("/ready")
    assert status == 200 and body["checks"] == {"config": True, "store": True, "dispatcher": True}
    await gw.store.close()  # the store is unreachable from now on
    status, body = await gw.get("/ready")
    assert status == 503
    assert body["status"] == "not ready" and body["checks"]["store"] is False
    assert (await gw.get("/health"))[0] == 200  # liveness does not depend on the store


async def test_ready_is_503_when_the_dispatcher_stopped(gateway: Any) -> None:
    gw = await gateway()
    await gw.dispatcher.stop(timeout=1.0)
    status, body = await gw.get("/ready")
    assert status == 503 and body["checks"]["dispatcher"] is False


async def test_metrics_carry_build_info_breaker_and_queue_age(gateway: Any) -> None:
    gw = await gateway({"delivery": {"dry_run": True}})
    # a delivery due in an hour: queued, its age grows with the clock
    later = new_delivery("https://pb.example/x", now=T0 - 30.0, not_before=T0 + 3600)
    await gw.store.commit_batch([], [], [later])
    status, text = await gw.get("/metrics")
    assert status == 200
    assert f'gateway_build_info{{python="{sys.version.split()[0]}"' in text
    assert f'version="{__version__}"' in text
    assert 'gateway_breaker_hosts{circuit="open"} 0.0' in text
    assert "gateway_delivery_oldest_queued_seconds 30.0" in text


async def test_metrics_behind_the_token_when_asked(gateway: Any) -> None:
    gw = await gateway({"api_token": "tok", "metrics_require_token": True})
    status, body = await gw.get("/metrics")
    assert status == 401 and body["field"] == "Authorization"
    status, _ = await gw.get("/metrics", Authorization="Bearer tok")
    assert status == 200
    open_gw = await gateway({"api_token": "tok"})
    assert (await open_gw.get("/metrics"))[0] == 200  # the default: scrapers need no token


async def test_api_hosts_lists_paused_hosts(gateway: Any) -> None:
    gw = await gateway()
    assert await gw.get("/api/hosts") == (200, {"hosts": []})


@pytest.mark.parametrize(
    "argv",
    [
        ["gateway", "--version"],
        ["gateway", "serve", "--version"],
        ["gateway", "check", "--version"],
        ["gateway", "sources", "--version"],
        ["bench", "--version"],
    ],
)
def test_version_on_every_command_line(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(__version__)

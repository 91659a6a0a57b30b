"""The OpenAPI document matches the router: every route described, nothing extra,
served at /api/openapi.json behind the API token like the rest of /api/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from intake_helpers import GatewayTestServer

from gateway.clock import VirtualClock
from gateway.config import validate
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import ROUTES, create_app
from gateway.http.openapi import document
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore


def test_every_route_is_described_and_nothing_else() -> None:
    described = {
        (method.upper(), path) for path, item in document()["paths"].items() for method in item
    }
    # the console's HTML pages (docs/console.md) are not part of the JSON API
    api = {(r.method, r.path) for r in ROUTES if not r.path.startswith("/console")}
    assert described == api


def test_every_operation_names_its_answers_and_path_parameters() -> None:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            assert operation["summary"] and operation["responses"], (method, path)
            wanted = {p.strip("{}") for p in path.split("/") if p.startswith("{")}
            named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == wanted, (method, path)
            assert ("security" in operation) == path.startswith("/api/"), (method, path)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    config, _ = validate({"api_token": "tok"})
    assert config is not None
    store = SQLiteStore(tmp_path / "g.sqlite")
    await store.open()
    dispatcher = Dispatcher(config.delivery, store, Metrics(), VirtualClock(0.0))
    await dispatcher.start()
    app = create_app(config, store, dispatcher)
    async with TestClient(GatewayTestServer(app)) as c:
        yield c
    await dispatcher.stop(timeout=1.0)
    await store.close()


async def test_served_behind_the_token(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/openapi.json")).status == 401
    resp = await client.get("/api/openapi.json", headers={"Authorization": "Bearer tok"})
    assert resp.status == 200
    assert await resp.json() == document()

"""Shared pieces for the intake tests: a config, a recording sink, a live server."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp.test_utils import BaseRunner, TestClient, TestServer

from gateway.clock import Clock
from gateway.config import Config, load
from gateway.http.app import create_app
from gateway.http.front import GatewayRunner
from gateway.metrics import Metrics
from gateway.store.base import Delivery, Store
from gateway.store.sqlite import SQLiteStore


class GatewayTestServer(TestServer):
    """aiohttp's TestServer with the gateway's own runner (hot routes first), as
    ``serve`` runs it; ``front=False`` serves through the plain AppRunner."""

    def __init__(self, app: Any, *, front: bool = True, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.front = front

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        if not self.front:
            return await super()._make_runner(**kwargs)
        return GatewayRunner(self.app, **kwargs)


CONFIG = """
postback_secret = "{global_secret}"

[batch]
max_wait_ms = 1.0

[limits]
max_query_bytes = 2048
max_body_bytes = 65536
max_value_length = 256

[delivery]
allow_private_targets = true

[[traffic_sources]]
name = "exo"
preset = "exoclick"
params = {{ goal = "GOALSECRET123" }}
variables = ["zoneid"]

[[traffic_sources]]
name = "hand"
click_id_param = "cid"
variables = ["zoneid", "site"]

[[traffic_sources.postbacks]]
name = "hand:approved"
url = "https://pb.example/hand?c={{externalid}}&p={{payout}}&s={{status}}&z={{var:zoneid}}&v2={{var2}}&tx={{txid}}&cur={{currency}}&ev={{conversion.type}}"

[[traffic_sources.postbacks]]
name = "hand:every-status"
url = "https://pb.example/all?c={{externalid}}&s={{status}}"
statuses = ["pending", "approved", "rejected"]
delay = 30
max_attempts = 2

[[traffic_sources]]
name = "guarded"
secret = "ts-secret"
postback = "https://pb.example/guarded?c={{externalid}}"

[[campaigns]]
id = "c-exo"
traffic_source = "exo"
offer_url = "https://offer.example/lp?sub={{click.id}}&z={{var:zoneid}}"

[[campaigns]]
id = "c-hand"
name = "Hand made"
traffic_source = "hand"
offer_url = "https://offer.example/lp?sub={{click.id}}&ext={{externalid}}"

[[campaigns.postbacks]]
name = "c-hand:leads"
url = "https://pb2.example/lead?c={{externalid}}&e={{event1}}"
statuses = ["pending"]
events = ["lead"]

[[campaigns]]
id = "c-guarded"
traffic_source = "guarded"
offer_url = "https://offer.example/g?sub={{click.id}}"

[[networks]]
name = "far"
allowed_cidrs = ["10.0.0.0/8"]

[[networks]]
name = "near"
secret = "near-secret"
allowed_cidrs = ["127.0.0.0/8", "::1/128"]
statuses = {{ "5" = "approved", "7" = "rejected", "hold-ish" = "pending" }}
"""


def write_config(tmp_path: Path, *, global_secret: str = "", extra: str = "") -> Path:
    text = CONFIG.format(global_secret=global_secret) + extra
    if not global_secret:
        text = text.replace('postback_secret = ""\n', "")
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


class RecordingSink:
    """The tiny DeliverySink the intake tests use: remembers what was submitted."""

    def __init__(self) -> None:
        self.submitted: list[Delivery] = []

    def submit(self, deliveries: Sequence[Delivery]) -> None:
        self.submitted.extend(deliveries)


class Gateway:
    def __init__(
        self,
        client: TestClient[Any, Any],
        store: Store,
        sink: RecordingSink,
        config: Config,
        metrics: Metrics,
    ) -> None:
        self.client = client
        self.store = store
        self.sink = sink
        self.config = config
        self.metrics = metrics

    async def click(self, campaign: str = "c-hand", **params: str) -> str:
        resp = await self.client.get(f"/click/{campaign}", params=params, allow_redirects=False)
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
        return location.split("sub=")[1].split("&")[0]

    async def postback(self, **params: str) -> tuple[int, dict[str, Any]]:
        resp = await self.client.get("/postback", params=params)
        return resp.status, await resp.json()


async def start_gateway(
    tmp_path: Path,
    config_path: Path,
    clock: Clock | None = None,
    *,
    front: bool = True,
    store: Store | None = None,
) -> Gateway:
    """The gateway on loopback over ``store`` (opened here; default: a SQLite file)."""
    config = load(config_path)
    if store is None:
        store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    sink = RecordingSink()
    metrics = Metrics()
    app = create_app(config, store, sink, metrics=metrics, clock=clock)
    client: TestClient[Any, Any] = TestClient(GatewayTestServer(app, host="127.0.0.1", front=front))
    await client.start_server()
    return Gateway(client, store, sink, config, metrics)


async def stop_gateway(gw: Gateway) -> None:
    await gw.client.close()
    await gw.store.close()

"""The stand-in networks and an in-process gateway wired to them, for tests.

The whole stack runs in process (app, batcher, dispatcher, SQLite) against a
loopback stand-in for the real networks (``tests/network_sink.py``): the
networks' real host names reach it through ``[delivery] resolve`` and it
answers as the catalog records them.  Test modules import the fixtures
(``net``, ``stack``) by their function names.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import load
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore
from tests.intake_helpers import GatewayTestServer
from tests.network_sink import NetHit, NetworkSink, make_tls

HOSTS = ["s.magsrv.com", "tsyndicate.com", "pb.tracker.example", "ad.propellerads.com"]
GOAL = "G0AL" + secrets.token_hex(14)
TS_KEY = "TSKEY" + secrets.token_hex(8)


@dataclass
class Net:
    sink: NetworkSink
    ca: Path


@pytest.fixture(scope="module", name="net")
def net_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("no-silent-loss")
    ca, pem, key = make_tls(root / "tls", HOSTS)
    sink = NetworkSink(pem, key).start()
    try:
        yield Net(sink, ca)
    finally:
        sink.close()


def config_text(net: Net, extra: str = "") -> str:
    resolve = net.sink.resolve_map(dict.fromkeys(HOSTS, "https"))
    table = ", ".join(f'"{k}" = "{v}"' for k, v in resolve.items())
    return f"""
[batch]
max_wait_ms = 1.0

[delivery]
allow_private_targets = true
ca_file = "{net.ca}"
timeout = 5.0
max_attempts = 2
schedule = [0.2]
jitter = 0.0
breaker_failures = 1000
resolve = {{ {table} }}

[[traffic_sources]]
name = "exo"
preset = "exoclick"
params = {{ goal = "{GOAL}" }}

[[campaigns]]
id = "exo-goal2"
traffic_source = "exo"
offer_url = "https://offer.example/lp?sub={{click.id}}"
postback_mode = "replace"

[[campaigns.postbacks]]
name = "exo-goal2:goal2"
url = "https://s.magsrv.com/tag.php?goal={GOAL}2&tag={{externalid}}"

[[traffic_sources]]
name = "hand"

[[traffic_sources.postbacks]]
name = "hand:exo"
url = "https://s.magsrv.com/tag.php?goal={GOAL}&tag={{externalid}}"
secret_params = ["goal"]

[[traffic_sources.postbacks]]
name = "hand:tune"
url = "https://pb.tracker.example/pb?c={{externalid}}"
answer = {{ body_error_contains = "success=false" }}

[[traffic_sources.postbacks]]
name = "hand:ts"
url = "https://tsyndicate.com/api/v1/cpa/action?clickid={{externalid}}&value={{payout}}&key={TS_KEY}"

[[campaigns]]
id = "hand-c"
traffic_source = "hand"
offer_url = "https://offer.example/lp?sub={{click.id}}"

[[traffic_sources]]
name = "loose"
on_placeholder = "send"
postback = "https://pb.tracker.example/loose?c={{externalid}}"

[[campaigns]]
id = "loose-c"
traffic_source = "loose"
offer_url = "https://offer.example/lp?sub={{click.id}}"

[[networks]]
name = "everflow"
preset = "everflow"

[[networks]]
name = "tune"
preset = "tune"

[[networks]]
name = "cake"
preset = "cake"

[[networks]]
name = "impact"
preset = "impact"

[[networks]]
name = "binom"
preset = "binom"

[[networks]]
name = "keitaro"
preset = "keitaro"

[[networks]]
name = "own"
params = {{ clk = "cid", rev = "payout", zone = "var:zoneid" }}
corrections = true
{extra}
"""


async def hits(net: Net, click: str, count: int) -> list[NetHit]:
    """The sink's hits for ``click`` once there are ``count`` (the loop keeps running)."""
    for _ in range(400):
        found = net.sink.hits_for(click)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.025)
    return net.sink.hits_for(click)


class Stack:
    def __init__(
        self, http: TestClient[Any, Any], store: SQLiteStore, dispatcher: Dispatcher
    ) -> None:
        self.http = http
        self.store = store
        self.dispatcher = dispatcher

    async def click(self, campaign: str, **params: str) -> str:
        resp = await self.http.get(f"/click/{campaign}", params=params, allow_redirects=False)
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"].split("sub=")[1].split("&")[0]

    async def convert(self, **params: str) -> dict[str, Any]:
        resp = await self.http.get("/postback", params=params)
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        return body

    async def deliveries(self, conversion_id: str, final: bool = True) -> list[dict[str, Any]]:
        """The conversion's deliveries, once none is queued (``final``)."""
        for _ in range(400):
            resp = await self.http.get("/api/deliveries", params={"limit": "1000"})
            page = await resp.json()
            mine = [d for d in page["deliveries"] if d["conversion_id"] == conversion_id]
            if mine and (not final or all(d["status"] != "queued" for d in mine)):
                return mine
            await asyncio.sleep(0.025)
        raise AssertionError(f"{conversion_id}: still queued")

    async def metrics(self) -> str:
        return await (await self.http.get("/metrics")).text()


@pytest.fixture(name="stack")
async def stack_fixture(net: Net, tmp_path: Path) -> AsyncIterator[Stack]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(net))
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
        yield Stack(http, store, dispatcher)
    finally:
        await http.close()
        await dispatcher.stop()
        await store.close()

"""The console without a browser: login, the cookie's flags, CSRF, the loopback rule, pages.

A real gateway app on loopback (the gateway's own runner), a real SQLite
file, a real sink for the test postback.  The browser tests are
``tests/test_console.py``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient

from gateway.config import load
from gateway.console.session import COOKIE, Sessions
from gateway.console.stats import Stats
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.store.base import DeliveryFilter
from gateway.store.sqlite import SQLiteStore
from tests.intake_helpers import GatewayTestServer, RecordingSink
from tests.sinks import Sink
from tests.store_helpers import attempt, new_delivery, record, write_rows

TOKEN = "console-api-token-0123456789"
KEY = "KEYsecret-abcdef0123456789"


def config_text(port: int, *, token: bool = True) -> str:
    api_token = f'api_token = "{TOKEN}"' if token else ""
    return f"""
{api_token}
[batch]
max_wait_ms = 1.0

[delivery]
allow_private_targets = true
timeout = 2.0

[[traffic_sources]]
name = "hand"
[[traffic_sources.postbacks]]
name = "hand:sale"
url = "http://127.0.0.1:{port}/ok?c={{externalid}}&p={{payout}}&key={KEY}"
secret_params = ["key"]
"""


class Console:
    def __init__(self, client: TestClient[Any, Any], store: SQLiteStore) -> None:
        self.client = client
        self.store = store

    async def login(self, token: str = TOKEN) -> int:
        resp = await self.client.post(
            "/console/login", data={"token": token}, allow_redirects=False
        )
        return resp.status

    async def page(self, path: str) -> tuple[int, str]:
        resp = await self.client.get(path, allow_redirects=False)
        return resp.status, await resp.text()

    async def csrf(self, path: str = "/console") -> str:
        _, text = await self.page(path)
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        assert found, text
        return found.group(1)


async def _start(tmp_path: Path, text: str) -> Console:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    app = create_app(load(path), store, RecordingSink(), metrics=Metrics())
    jar = CookieJar(unsafe=True)  # keep cookies for 127.0.0.1
    client: TestClient[Any, Any] = TestClient(
        GatewayTestServer(app, host="127.0.0.1"), cookie_jar=jar
    )
    await client.start_server()
    return Console(client, store)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    async with Sink() as s:
        yield s


@pytest.fixture
async def console(tmp_path: Path, sink: Sink) -> AsyncIterator[Console]:
    c = await _start(tmp_path, config_text(sink.port))
    try:
        yield c
    finally:
        await c.client.close()
        await c.store.close()


async def test_pages_need_a_login(console: Console) -> None:
    for path in ("/console", "/console/deliveries", "/console/hosts", "/console/config"):
        status, _ = await console.page(path)
        assert status == 303, path
    resp = await console.client.get("/console/live", allow_redirects=False)
    assert resp.status == 303


async def test_login_sets_a_strict_httponly_cookie(console: Console) -> None:
    assert await console.login("wrong") == 401
    assert not console.client.session.cookie_jar.filter_cookies(console.client.make_url("/console"))
    resp = await console.client.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console"
    header = resp.headers["Set-Cookie"]
    assert header.startswith(f"{COOKIE}=")
    assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/console" in header
    assert TOKEN not in header
    status, text = await console.page("/console")
    assert status == 200 and "Overview" in text and TOKEN not in text


async def test_a_cross_site_login_is_refused(console: Console) -> None:
    resp = await console.client.post(
        "/console/login",
        data={"token": TOKEN},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403 and "Set-Cookie" not in resp.headers


async def test_every_post_needs_the_csrf_token(console: Console) -> None:
    assert await console.login() == 303
    token = await console.csrf()
    for data in ({}, {"csrf": "forged"}, {"csrf": token[:-1]}):
        resp = await console.client.post("/console/logout", data=data, allow_redirects=False)
        assert resp.status == 403, data
        resp = await console.client.post("/console/test", data={**data, "source": "hand"})
        assert resp.status == 403, data
    # still logged in, then out with the real token
    assert (await console.page("/console"))[0] == 200
    resp = await console.client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    assert resp.status == 303
    assert (await console.page("/console"))[0] == 303


async def test_logout_ends_the_session_server_side(console: Console) -> None:
    assert await console.login() == 303
    url = console.client.make_url("/console")
    sid = console.client.session.cookie_jar.filter_cookies(url)[COOKIE].value
    token = await console.csrf()
    await console.client.post("/console/logout", data={"csrf": token}, allow_redirects=False)
    # the old cookie, replayed, opens nothing
    async with ClientSession(cookies={COOKIE: sid}) as other:
        async with other.get(url, allow_redirects=False) as resp:
            assert resp.status == 303


async def test_the_bearer_token_is_not_a_console_session(console: Console) -> None:
    resp = await console.client.get(
        "/console", headers={"Authorization": f"Bearer {TOKEN}"}, allow_redirects=False
    )
    assert resp.status == 303


async def test_without_a_token_only_loopback(tmp_path: Path, sink: Sink) -> None:
    c = await _start(tmp_path, config_text(sink.port, token=False))
    try:
        status, text = await c.page("/console")
        assert status == 200 and "Overview" in text  # 127.0.0.1: in, no login
        status, _ = await c.page("/console/login")
        assert status == 303
    finally:
        await c.client.close()
        await c.store.close()
    sessions = Sessions()
    cfg = load_cfg(tmp_path, sink.port)

    class Peer:  # the one field open_session reads besides cookies
        remote = "203.0.113.9"
        cookies: dict[str, str] = {}

    assert sessions.open_session(cfg, Peer())[0] is None  # type: ignore[arg-type]
    Peer.remote = "127.0.0.1"
    assert sessions.open_session(cfg, Peer())[0] is not None  # type: ignore[arg-type]


def load_cfg(tmp_path: Path, port: int) -> Any:
    path = tmp_path / "t.toml"
    path.write_text(config_text(port, token=False))
    return load(path)


async def test_every_page_renders_and_hides_the_secrets(console: Console, sink: Sink) -> None:
    assert await console.login() == 303
    resp = await console.client.post(
        "/api/conversions",
        json=[{"externalid": "ext-1", "traffic_source": "hand", "txid": "tx-1", "payout": "2"}],
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status == 200, await resp.text()
    [d] = await console.store.list_deliveries(DeliveryFilter(), after_id=None, limit=10)
    pages = [
        "/console",
        "/console/deliveries",
        "/console/deliveries?externalid=ext-1",
        f"/console/deliveries/{d.delivery_id}",
        "/console/hosts",
        "/console/test",
        "/console/catalog",
        "/console/catalog?preset=exoclick&campaign=c1&base_url=https://gw.example",
        "/console/config",
    ]
    for path in pages:
        resp = await console.client.get(path, allow_redirects=False)
        text = await resp.text()
        assert resp.status == 200, (path, text)
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        assert KEY not in text and TOKEN not in text, path
    _, text = await console.page("/console/deliveries?externalid=ext-1")
    assert f"/console/deliveries/{d.delivery_id}" in text and "key=***" in text
    _, text = await console.page("/console/deliveries?externalid=nope")
    assert "No delivery matches" in text
    status, text = await console.page("/console/deliveries?status=bogus")
    assert status == 400 and "status" in text
    _, text = await console.page(
        "/console/catalog?preset=exoclick&campaign=c1&base_url=https://gw.example"
    )
    assert "https://gw.example/click/c1?" in text


async def test_test_postback_form_sends_once(console: Console, sink: Sink) -> None:
    assert await console.login() == 303
    token = await console.csrf("/console/test")
    assert '<option value="hand">' in (await console.page("/console/test"))[1]
    resp = await console.client.post(
        "/console/test",
        data={"csrf": token, "source": "hand", "values": "externalid=form-1\npayout=3"},
    )
    text = await resp.text()
    assert resp.status == 200, text
    assert "delivered" in text and "key=***" in text and KEY not in text
    [hit] = [h for h in sink.hits if "form-1" in h.path_qs]
    assert KEY in hit.path_qs  # the real request carried it; the page did not
    resp = await console.client.post("/console/test", data={"csrf": token, "source": "nope"})
    assert resp.status == 404 and "source" in await resp.text()


async def test_static_assets_are_served_and_nothing_else(console: Console) -> None:
    for name, kind in (
        ("htmx.min.js", "text/javascript"),
        ("htmx-ext-sse.min.js", "text/javascript"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
        ("htmx.LICENSE", "text/plain"),
    ):
        resp = await console.client.get(f"/console/static/{name}")
        assert resp.status == 200 and resp.content_type == kind, name
    text = await (await console.client.get("/console/static/htmx.min.js")).text()
    assert 'version:"2.' in text  # htmx 2, not 4 (the SSE extension needs 2)
    for name in ("..%2Fstats.py", "__init__.py", ".hidden.js", "nope.js"):
        resp = await console.client.get(f"/console/static/{name}")
        assert resp.status == 404, name


def test_stats_windows_are_differences_of_snapshots() -> None:
    metrics = Metrics()
    clock = [1000.0]
    stats = Stats(metrics, now=lambda: clock[0], keep=10)
    stats.sample()
    metrics.ingested.labels("a").inc(3)
    metrics.delivered.labels("a", "2xx").inc(2)
    metrics.queue_depth.set(7)
    for _ in range(3):
        clock[0] += 1
        stats.sample()
    metrics.ingested.labels("a").inc(1)
    clock[0] += 1
    stats.sample()
    assert stats.window(1)["a"]["received"] == 1
    assert stats.window(60)["a"]["received"] == 4  # capped at what the ring holds
    assert stats.window(60)["a"]["delivered"] == 2
    assert stats.latest().queue_depth == 7
    # nothing delivered end to end yet
    assert stats.latency(60).get("a", (None, None)) == (None, None)
    for seconds in (0.02, 0.02, 0.02, 3.0):
        metrics.end_to_end.labels("a").observe(seconds)
    clock[0] += 1
    stats.sample()
    assert stats.latency(1)["a"] == (0.025, 5.0)  # bucket bounds: p50 <= 25 ms, p99 <= 5 s
    times, received = stats.series(300, ("received",))
    assert received == [3.0, 0.0, 0.0, 1.0, 0.0] and times[-1] == clock[0]


async def test_bulk_replay_counts_before_it_acts(console: Console) -> None:
    assert await console.login() == 303
    token = await console.csrf("/console/deliveries")
    resp = await console.client.post(
        "/console/deliveries/replay", data={"traffic_source": "hand", "confirm": "0"}
    )
    assert resp.status == 403  # no CSRF token
    resp = await console.client.post(
        "/console/deliveries/replay",
        data={"csrf": token, "traffic_source": "hand", "confirm": "0"},
    )
    text = await resp.text()
    assert resp.status == 200 and "0 failed deliveries match" in text
    assert "Replay these" not in text  # nothing to confirm
    resp = await console.client.post(
        "/console/deliveries/replay", data={"csrf": token, "since": "yesterday"}
    )
    assert resp.status == 400 and "since" in await resp.text()


async def test_hosts_page_shows_each_hosts_success_rate_and_p99(console: Console) -> None:
    """Read from the delivery log: 3 of 4 recent attempts delivered, the slowest at
    p99; an attempt older than the page's hour is left out."""
    now = time.time()
    fresh = msgspec.structs.replace(new_delivery(), host="pb.example", created_at=now)
    [d] = await write_rows(console.store, deliveries=[fresh])
    for i, (outcome, ms) in enumerate(
        [("delivered", 10.0), ("retry", 250.0), ("delivered", 20.0), ("delivered", 30.0)]
    ):
        a = msgspec.structs.replace(
            attempt(d.delivery_id, outcome, started=now - 60 + i), latency_ms=ms
        )
        await record(console.store, a, status="queued", next_at=now + 60)
    stale = attempt(d.delivery_id, "retry", started=now - 2 * 3600)
    await record(console.store, stale, status="queued", next_at=now + 60)
    assert await console.login() == 303
    status, text = await console.page("/console/hosts")
    assert status == 200
    row = text[text.index("<code>pb.example</code>") :].split("</tr>")[0]
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[:3] == ["75.0%", "4", "250.0"], cells  # success, attempts, p99 ms

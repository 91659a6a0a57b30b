"""The delivery log API over a real aiohttp server, SQLite store and dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sinks import Sink, new_delivery

from gateway.clock import VirtualClock
from gateway.config import load
from gateway.dispatch.dispatcher import Dispatcher
from gateway.dispatch.settings import DeliverySettings
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore

T0 = 1_800_000_000.0


class Api:
    def __init__(
        self,
        base: str,
        session: aiohttp.ClientSession,
        store: SQLiteStore,
        dispatcher: Dispatcher,
        clock: VirtualClock,
        sink: Sink,
    ) -> None:
        self.base, self.session, self.store = base, session, store
        self.dispatcher, self.clock, self.sink = dispatcher, clock, sink

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kw) as resp:
            return resp.status, await resp.json()

    async def commit(self, path: str, n: int = 1, **kw: Any) -> list[int]:
        url = self.sink.url(path)
        result = await self.store.commit_batch(
            [],
            [],
            [
                new_delivery(
                    url, now=self.clock.now(), display_url=url.replace("SECRET", "***"), **kw
                )
                for _ in range(n)
            ],
        )
        self.dispatcher.submit(result.deliveries)
        await self.dispatcher.wait_idle()
        return [d.delivery_id for d in result.deliveries]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = SQLiteStore(tmp_path / "api.sqlite")
    await store.open()
    clock = VirtualClock(T0)
    settings = DeliverySettings(
        allow_private_targets=True, jitter=0.0, schedule=[10.0], max_attempts=2
    )
    dispatcher = Dispatcher(settings, store, Metrics(), clock)
    await dispatcher.start()
    (tmp_path / "empty.toml").write_text("")
    app = create_app(load(tmp_path / "empty.toml"), store, dispatcher, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with Sink() as sink, aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{port}", session, store, dispatcher, clock, sink)
    await dispatcher.stop()
    await runner.cleanup()
    await store.close()


async def test_list_filter_and_paginate(api: Api) -> None:
    ok = await api.commit("/ok?key=SECRET", 5)
    bad = await api.commit("/status/404?key=SECRET", 2, traffic_source="other", campaign_id="c9")
    status, body = await api.call("GET", "/api/deliveries")
    assert status == 200 and [d["delivery_id"] for d in body["deliveries"]] == ok + bad
    assert body["next_cursor"] is None
    _, body = await api.call("GET", "/api/deliveries?status=failed")
    assert [d["delivery_id"] for d in body["deliveries"]] == bad
    _, body = await api.call("GET", "/api/deliveries?traffic_source=other&campaign_id=c9")
    assert [d["delivery_id"] for d in body["deliveries"]] == bad
    _, body = await api.call("GET", f"/api/deliveries?since={T0 + 1}")
    assert body["deliveries"] == []
    _, body = await api.call("GET", "/api/deliveries?since=2027-01-15T08:00:00Z")
    assert len(body["deliveries"]) == 7  # T0 is 2027-01-15T08:00:00Z
    seen: list[int] = []
    cursor = ""
    while True:
        _, body = await api.call("GET", f"/api/deliveries?limit=3&cursor={cursor}")
        seen += [d["delivery_id"] for d in body["deliveries"]]
        if body["next_cursor"] is None:
            break
        cursor = str(body["next_cursor"])
    assert seen == ok + bad


async def test_never_shows_the_real_url(api: Api) -> None:
    await api.commit("/ok?key=SECRET", 1)
    await api.commit("/status/404?key=SECRET", 1)
    for path in ("/api/deliveries", "/api/deliveries/1", "/api/deliveries/2"):
        async with api.session.get(api.base + path) as resp:
            text = await resp.text()
        assert "SECRET" not in text and "key=***" in text


async def test_detail_has_the_attempt_log(api: Api) -> None:
    (did,) = await api.commit("/status/503?body=busy", 1)
    await api.clock.advance(10)
    await api.dispatcher.wait_idle()
    status, body = await api.call("GET", f"/api/deliveries/{did}")
    assert status == 200
    assert body["status"] == "failed" and body["attempt_count"] == 2
    assert [a["status_code"] for a in body["attempt_log"]] == [503, 503]
    assert body["attempt_log"][0]["body_prefix"] == "busy"
    assert body["attempt_log"][0]["outcome"] == "retry"
    assert {"started_at", "url", "error", "latency_ms", "reason"} <= set(body["attempt_log"][0])


async def test_retry_one(api: Api) -> None:
    (did,) = await api.commit("/status/404", 1)
    assert api.sink.count() == 1
    status, body = await api.call("POST", f"/api/deliveries/{did}/retry")
    assert status == 200 and body["requeued"] == 1
    await api.dispatcher.wait_idle()
    assert api.sink.count() == 2


async def test_replay_the_dead_letter(api: Api) -> None:
    url = api.sink.script("rescue", [(404, "nope")] * 3 + [(200, "OK")])
    result = await api.store.commit_batch([], [], [new_delivery(url, now=T0) for _ in range(3)])
    api.dispatcher.submit(result.deliveries)
    await api.dispatcher.wait_idle()
    await api.commit("/ok", 1)
    status, body = await api.call(
        "POST", "/api/deliveries/replay", json={"traffic_source": "test-source"}
    )
    assert status == 200 and body["requeued"] == 3
    await api.dispatcher.wait_idle()
    _, body = await api.call("GET", "/api/deliveries?status=delivered")
    assert len(body["deliveries"]) == 4
    status, body = await api.call("POST", "/api/deliveries/replay")
    assert status == 200 and body["requeued"] == 0


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/api/deliveries?status=bogus", "status"),
        ("GET", "/api/deliveries?limit=0", "limit"),
        ("GET", "/api/deliveries?limit=abc", "limit"),
        ("GET", "/api/deliveries?limit=100000", "limit"),
        ("GET", "/api/deliveries?cursor=-1", "cursor"),
        ("GET", "/api/deliveries?cursor=x", "cursor"),
        ("GET", "/api/deliveries?since=yesterday", "since"),
        ("GET", "/api/deliveries?since=nan", "since"),
        ("GET", "/api/deliveries/abc", "id"),
        ("GET", "/api/deliveries/0", "id"),
        ("POST", "/api/deliveries/abc/retry", "id"),
        ("POST", "/api/deliveries/replay?status=nope", "status"),
        ("POST", "/api/deliveries/replay?status=queued", "status"),
        ("POST", "/api/deliveries/replay?colour=red", "colour"),
    ],
)
async def test_bad_params_are_400(api: Api, method: str, path: str, field: str) -> None:
    status, body = await api.call(method, path)
    assert status == 400 and body["field"] == field and body["error"]


async def test_bad_replay_bodies(api: Api) -> None:
    for data, field in (
        (b"{nope", "body"),
        (b"[1]", "body"),
        (b'{"ids": "x"}', "ids"),
        (b'{"ids": [true]}', "ids"),
        (b'{"since": []}', "since"),
        (b'{"traffic_source": 5}', "traffic_source"),
    ):
        status, body = await api.call("POST", "/api/deliveries/replay", data=data)
        assert (status, body["field"]) == (400, field), data


async def test_unknown_ids_are_404(api: Api) -> None:
    for method, path in (("GET", "/api/deliveries/999"), ("POST", "/api/deliveries/999/retry")):
        status, body = await api.call(method, path)
        assert status == 404 and body["field"] == "id"


async def test_retry_of_a_queued_delivery_is_409(api: Api) -> None:
    (did,) = await api.commit("/status/500", 1)
    status, body = await api.call("POST", f"/api/deliveries/{did}/retry")
    assert status == 409 and body["field"] == "id"


async def test_one_shape_in_list_and_detail_with_iso_times(api: Api) -> None:
    (delivery_id,) = await api.commit("/status/503", 1)
    await api.clock.advance(10)
    await api.dispatcher.wait_idle()
    _, listed = await api.call("GET", "/api/deliveries")
    (item,) = listed["deliveries"]
    _, detail = await api.call("GET", f"/api/deliveries/{delivery_id}")
    log = detail.pop("attempt_log")
    assert detail == item  # the same object; the detail only adds its log
    assert item["attempts"] == item["attempt_count"] == 2 and len(log) == 2
    # a dead letter whose retries are spent says so
    assert (item["status"], item["last_outcome"]) == ("failed", "failed")
    assert [a["outcome"] for a in log] == ["retry", "retry"]
    for key in ("created_at", "updated_at"):
        when = datetime.fromisoformat(item[f"{key}_iso"].replace("Z", "+00:00"))
        assert when.tzinfo is not None and when.timestamp() == pytest.approx(item[key], abs=0.001)
    assert item["next_at"] is None and item["next_at_iso"] is None
    assert datetime.fromisoformat(log[0]["started_at_iso"].replace("Z", "+00:00")).timestamp() == (
        pytest.approx(log[0]["started_at"], abs=0.001)
    )


async def test_a_paused_host_is_visible(api: Api) -> None:
    for _ in range(5):  # breaker_failures: five failures open the circuit
        await api.commit("/status/503", 1)
    _, hosts = await api.call("GET", "/api/hosts")
    (host,) = hosts["hosts"]
    assert host["host"] == "127.0.0.1" and host["circuit"] == "open"
    _, listed = await api.call("GET", "/api/deliveries?status=queued")
    assert listed["deliveries"]
    for item in listed["deliveries"]:
        assert item["host_paused_until"] == host["paused_until"]
        assert item["host_paused_until_iso"].endswith("Z")

"""Fix-and-replay and backfill through the running gateway, against the stand-in networks.

A template is fixed after its deliveries failed: the re-render's dry run shows the
old and new URL and sends nothing; the real run sends the corrected URL once.  A
rule added later is backfilled for older conversions: the dry run sends nothing,
the run sends each once, and a second run sends none.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import load
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import create_app
from gateway.http.state import STATE
from gateway.metrics import Metrics
from gateway.store.sqlite import SQLiteStore
from tests.intake_helpers import GatewayTestServer
from tests.network_world import Net, Stack, config_text, net_fixture  # noqa: F401 - fixture

BROKEN = """
[[traffic_sources]]
name = "fixme"
postback = "https://pb.tracker.example/fix?wrong={externalid}"

[[campaigns]]
id = "fixme-c"
traffic_source = "fixme"
offer_url = "https://offer.example/lp?sub={click.id}"
"""
FIXED = BROKEN.replace("fix?wrong={externalid}", "fix?c={externalid}&fixed=1")
LATE_RULE = """
[[traffic_sources.postbacks]]
name = "fixme:late"
url = "https://pb.tracker.example/late?c={externalid}&p={payout}"
"""


class Live(Stack):
    def __init__(self, http: TestClient[Any, Any], store: SQLiteStore, d: Dispatcher, dir: Path):
        super().__init__(http, store, d)
        self.dir = dir

    def reload(self, net: Net, extra: str) -> None:
        """A new config in force, as SIGHUP puts it."""
        path = self.dir / "reloaded.toml"
        path.write_text(config_text(net, extra))
        self.http.app[STATE].config = load(path)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await self.http.post(path, json=body)
        answer: dict[str, Any] = await resp.json()
        assert resp.status == 200, answer
        return answer


@pytest.fixture
async def live(net: Net, tmp_path: Path) -> AsyncIterator[Live]:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(net, BROKEN))
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
        yield Live(http, store, dispatcher, tmp_path)
    finally:
        await http.close()
        await dispatcher.stop()
        await store.close()


def sent(net: Net, path: str, externalid: str) -> list[str]:
    return [h.raw for h in net.sink.hits_for(externalid) if h.path == path]


async def test_fix_and_replay_sends_the_corrected_url_once(live: Live, net: Net) -> None:
    externalid = f"fix-{secrets.token_hex(5)}"
    net.sink.expect(externalid, [(400, "missing c"), (200, "OK")])
    click_id = await live.click("fixme-c", externalid=externalid)
    conv = await live.convert(cid=click_id, txid="t-fix")
    [failed] = await live.deliveries(conv["conversion_id"])
    assert failed["status"] == "failed", failed
    assert len(sent(net, "/fix", externalid)) == 1

    live.reload(net, FIXED)
    dry = await live.post("/api/deliveries/rerender", {"ids": [failed["delivery_id"]]})
    assert dry["dry_run"] is True and dry["rerendered"] == 1 and dry["queued"] == 0
    [item] = dry["deliveries"]
    assert item["old_url"] == f"https://pb.tracker.example/fix?wrong={externalid}"
    assert item["new_url"] == f"https://pb.tracker.example/fix?c={externalid}&fixed=1"
    assert item["changed"] is True
    await asyncio.sleep(0.3)
    assert len(sent(net, "/fix", externalid)) == 1  # the dry run sent nothing
    [still] = await live.deliveries(conv["conversion_id"])
    assert still["status"] == "failed" and still["url"] == item["old_url"]

    done = await live.post(
        "/api/deliveries/rerender", {"ids": [failed["delivery_id"]], "dry_run": False}
    )
    assert done["queued"] == 1
    [delivered] = await live.deliveries(conv["conversion_id"])
    assert delivered["status"] == "delivered" and delivered["url"] == item["new_url"]
    raws = sent(net, "/fix", externalid)
    assert raws == [f"/fix?wrong={externalid}", f"/fix?c={externalid}&fixed=1"]


async def test_rerender_by_filter_and_refusals(live: Live, net: Net) -> None:
    externalid = f"fixf-{secrets.token_hex(5)}"
    net.sink.expect(externalid, [(400, "missing c"), (200, "OK")])
    conv = await live.convert(cid=await live.click("fixme-c", externalid=externalid), txid="t")
    await live.deliveries(conv["conversion_id"])
    live.reload(net, FIXED)
    dry = await live.post("/api/deliveries/rerender", {"traffic_source": "fixme"})
    assert [d["status"] for d in dry["deliveries"]] == ["failed"]  # default: failed ones
    resp = await live.http.post("/api/deliveries/rerender", json={"status": "queued"})
    assert resp.status == 400 and (await resp.json())["field"] == "status"
    resp = await live.http.post("/api/deliveries/rerender", json={"dry_run": "no"})
    assert resp.status == 400 and (await resp.json())["field"] == "dry_run"
    live.reload(net, "")  # the rule is gone: said, not guessed
    dry = await live.post("/api/deliveries/rerender", {"traffic_source": "fixme"})
    assert "no rule named" in dry["deliveries"][0]["skipped"]


async def test_backfill_fires_a_new_rule_once(live: Live, net: Net) -> None:
    t0 = live.http.app[STATE].clock.now()
    ids = [f"bf{i}-{secrets.token_hex(4)}" for i in range(3)]
    for i, externalid in enumerate(ids):
        click_id = await live.click("fixme-c", externalid=externalid)
        status = "pending" if i == 2 else "approved"
        await live.convert(cid=click_id, txid=f"t{i}", payout="7", status=status)
    live.reload(net, FIXED + LATE_RULE)
    body = {"rule": "fixme:late", "since": t0 - 1}

    dry = await live.post("/api/backfill", body)
    assert (dry["dry_run"], dry["would_send"], dry["already_sent"]) == (True, 2, 0), dry
    assert dry["not_matching"] >= 1  # the pending one: the rule fires on approved
    assert {d["url"] for d in dry["deliveries"]} == {
        f"https://pb.tracker.example/late?c={x}&p=7" for x in ids[:2]
    }
    await asyncio.sleep(0.3)
    assert not any(sent(net, "/late", x) for x in ids)

    run = await live.post("/api/backfill", {**body, "dry_run": False})
    assert (run["created"], run["already_sent"]) == (2, 0), run
    for x in ids[:2]:
        for _ in range(200):
            if sent(net, "/late", x):
                break
            await asyncio.sleep(0.025)
    again = await live.post("/api/backfill", {**body, "dry_run": False})
    assert (again["created"], again["already_sent"]) == (0, 2), again
    await asyncio.sleep(0.3)
    assert [len(sent(net, "/late", x)) for x in ids] == [1, 1, 0]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"since": 0}, "rule", 400),
        ({"rule": "nosuch", "since": 0}, "rule", 404),
        ({"rule": "fixme:postback"}, "since", 400),
        ({"rule": "fixme:postback", "since": 10, "until": 5}, "until", 400),
        ({"rule": "fixme:postback", "since": 0, "limit": 5}, "limit", 400),
    ],
)
async def test_backfill_refusals_name_the_field(
    live: Live, body: dict[str, Any], field: str, code: int
) -> None:
    resp = await live.http.post("/api/backfill", json=body)
    answer = await resp.json()
    assert (resp.status, answer["field"]) == (code, field), answer

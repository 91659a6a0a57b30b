"""No silent loss: every rule judged like its network, no placeholder sent, secrets hidden.

The whole stack runs in process (app, batcher, dispatcher, SQLite) against a
loopback stand-in for the real networks (``tests/network_sink.py``): the
networks' real host names reach it through ``[delivery] resolve`` and it
answers as the catalog records them (ExoClick's ``200 ERROR: tag invalid``).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import load, read
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.sources.macros import placeholder_value
from gateway.store.sqlite import SQLiteStore
from tests.gateway_proc import ROOT
from tests.intake_helpers import GatewayTestServer
from tests.network_sink import NetworkSink, make_tls

HOSTS = ["s.magsrv.com", "tsyndicate.com", "pb.tracker.example", "ad.propellerads.com"]
GOAL = "G0AL" + secrets.token_hex(14)
TS_KEY = "TSKEY" + secrets.token_hex(8)

#: Placeholders networks pass through literally (shared/reference/traffic-sources.md).
PLACEHOLDERS = [
    "{conversions_tracking}",
    "${SUBID}",
    "{click_id}",
    "{{ctoken}}",
    "{:click_id}",
    "[CLICK_ID]",
    "[clickid]",
    "%guid%",
    "##SUB_ID_SHORT(action)##",
    "#s2#",
    "@@CLICK-ID@@",
    "MFOXCLICKID",
    "startapp_click_id_placeholder",
    "impressionId",
    "CLICK_ID",
    "REPLACE",
]


@dataclass
class Net:
    sink: NetworkSink
    ca: Path


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
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
{extra}
"""


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


@pytest.fixture
async def stack(net: Net, tmp_path: Path) -> AsyncIterator[Stack]:
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


# -- 1. every rule judged by its network's answer rule ------------------------


@pytest.mark.parametrize(
    ("campaign", "rule"),
    [("exo-goal2", "exo-goal2:goal2"), ("hand-c", "hand:exo")],
    ids=["campaign-rule-on-preset-source", "hand-written-rule-to-preset-host"],
)
async def test_refusal_in_a_200_body_is_not_delivered(
    stack: Stack, net: Net, campaign: str, rule: str
) -> None:
    externalid = f"exo-{secrets.token_hex(5)}"
    net.sink.expect(externalid, [(200, "ERROR: tag invalid")])
    click_id = await stack.click(campaign, externalid=externalid)
    conv = await stack.convert(cid=click_id, payout="1.5", txid="t1")
    [d] = [d for d in await stack.deliveries(conv["conversion_id"]) if d["rule"] == rule]
    assert d["answer_rule"] == "exoclick"
    assert d["status"] == "failed" and "ERROR: tag invalid" in d["last_reason"], d
    assert len(net.sink.hits_for(externalid)) >= 1  # it was sent, and refused


async def test_an_inline_answer_rule_judges_its_rule(stack: Stack, net: Net) -> None:
    externalid = f"tune-{secrets.token_hex(5)}"
    net.sink.expect(externalid, [(200, "success=false; error=invalid click")])
    click_id = await stack.click("hand-c", externalid=externalid)
    conv = await stack.convert(cid=click_id, txid="t1")
    [d] = [d for d in await stack.deliveries(conv["conversion_id"]) if d["rule"] == "hand:tune"]
    assert d["status"] == "failed" and "success=false" in d["last_reason"], d
    assert d["answer_rule"].startswith("inline:")


def test_check_says_which_rule_judges_each_postback(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(net))
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    wanted = {
        "campaigns[0].postbacks[0] (exo-goal2:goal2) -> s.magsrv.com: exoclick (the traffic"
        " source's preset)",
        "traffic_sources[1].postbacks[0] (hand:exo) -> s.magsrv.com: exoclick (destination"
        " host s.magsrv.com)",
        "traffic_sources[1].postbacks[1] (hand:tune) -> pb.tracker.example: inline rule",
        "traffic_sources[2].postbacks[0] (loose:postback) -> pb.tracker.example: status only",
    }
    for want in wanted:
        assert any(line.startswith("judged: " + want) for line in lines), (want, lines)


async def test_test_postback_names_the_answer_rule(stack: Stack, net: Net) -> None:
    resp = await stack.http.post(
        "/api/postbacks/test", json={"campaign": "exo-goal2", "values": {"externalid": "tp-1"}}
    )
    result = await resp.json()
    assert resp.status == 200, result
    assert result["answer_rule"] == "exoclick", result
    assert "preset" in result["answer_rule_why"]


def test_an_unknown_answer_rule_is_a_check_error(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        config_text(net).replace(
            'answer = { body_error_contains = "success=false" }', 'answer = "exoclik"'
        )
    )
    config, problems = read(path)
    assert config is None
    [problem] = [p for p in problems if p.path.endswith(".answer")]
    assert problem.path == "traffic_sources[1].postbacks[1].answer"
    assert "exoclick" in problem.message  # the suggestion


# -- 2. secrets on any rule ---------------------------------------------------


async def test_secret_params_of_hand_written_rules_are_hidden(stack: Stack, net: Net) -> None:
    externalid = f"sec-{secrets.token_hex(5)}"
    click_id = await stack.click("hand-c", externalid=externalid)
    conv = await stack.convert(cid=click_id, payout="2", txid="t1")
    shown = await stack.deliveries(conv["conversion_id"])
    by_rule = {d["rule"]: d for d in shown}
    assert by_rule["hand:exo"]["url"].startswith("https://s.magsrv.com/tag.php?goal=***&tag=")
    # the catalog knows tsyndicate.com's key= is a credential: hidden without being told
    assert by_rule["hand:ts"]["url"].endswith("&key=***"), by_rule["hand:ts"]
    for d in shown:
        detail = await (await stack.http.get(f"/api/deliveries/{d['delivery_id']}")).text()
        assert GOAL not in detail and TS_KEY not in detail
    hits = net.sink.wait_hits(externalid, 3)
    assert any(GOAL in h.raw for h in hits) and any(TS_KEY in h.raw for h in hits)
    resp = await stack.http.post("/api/postbacks/test", json={"source": "hand", "rule": "hand:ts"})
    text = await resp.text()
    assert resp.status == 200 and TS_KEY not in text and "key=***" in text


def test_check_warns_on_a_key_that_is_not_marked_secret(net: Net, tmp_path: Path) -> None:
    extra = """
[[traffic_sources]]
name = "leaky"
postback = "https://pb.tracker.example/x?c={externalid}&api_key=abc&sig=Zk29dke83kdLs0q1"
"""
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(net, extra))
    config, problems = read(path)
    assert config is not None
    warned = [str(p) for p in problems if p.path == "traffic_sources[3].postbacks[0].url"]
    assert any("api_key=abc" in w and "secret_params" in w for w in warned), warned
    assert any("sig=Zk29" in w for w in warned), warned


def test_the_shipped_example_hides_its_keys() -> None:
    config = load(ROOT / "examples" / "gateway.toml")
    for _, rule in config.judged:
        url = rule.render([{"externalid": "x", "payout": "1"}])[0][1]
        assert "TS-ACCOUNT-KEY" not in url and "aid=12345" not in url, url


# -- 3. placeholders are held, never sent --------------------------------------


@pytest.mark.parametrize("macro", PLACEHOLDERS)
async def test_an_unreplaced_macro_is_held_not_sent(stack: Stack, net: Net, macro: str) -> None:
    marker = f"m{secrets.token_hex(4)}"  # finds the click's hits whatever the macro
    click_id = await stack.click("hand-c", externalid=macro, zoneid=marker)
    conv = await stack.convert(cid=click_id, payout="1", txid=marker)
    assert conv["status"] == "accepted" and conv["held"] == 3, conv
    assert macro in conv["held_reason"]
    shown = await stack.deliveries(conv["conversion_id"])
    assert {d["status"] for d in shown} == {"held"}, shown
    assert all("network macro" in d["last_reason"] for d in shown)
    await asyncio.sleep(0.2)
    assert not [h for h in net.sink.hits if macro in h.raw or macro in h.query.values()]
    assert 'gateway_deliveries_held_total{traffic_source="hand"} 3.0' in await stack.metrics()


async def test_an_empty_click_id_is_held(stack: Stack, net: Net) -> None:
    click_id = await stack.click("hand-c")
    conv = await stack.convert(cid=click_id, payout="1", txid="t-empty")
    assert conv["held"] == 3 and "externalid is empty" in conv["held_reason"], conv
    shown = await stack.deliveries(conv["conversion_id"])
    assert {d["status"] for d in shown} == {"held"}
    text = await stack.metrics()
    assert 'gateway_placeholder_values_total{endpoint="click",traffic_source="hand"} 1.0' in text


async def test_api_clicks_are_recorded_with_a_warning(stack: Stack) -> None:
    resp = await stack.http.post(
        "/api/clicks",
        json=[
            {"campaign_id": "hand-c", "externalid": "${SUBID}"},
            {"campaign_id": "hand-c", "externalid": "real-123"},
        ],
    )
    results = await resp.json()
    assert resp.status == 200
    assert results[0]["status"] == "accepted" and "${SUBID}" in results[0]["warning"]
    assert "warning" not in results[1]
    assert await stack.store.find_click(results[0]["click_id"]) is not None


async def test_an_upstream_conversion_with_a_placeholder_is_held(stack: Stack, net: Net) -> None:
    conv = await stack.convert(externalid="[CLICK_ID]", traffic_source="hand", txid="u1")
    assert conv["status"] == "accepted" and conv["held"] == 3, conv
    text = await stack.metrics()
    assert 'gateway_placeholder_values_total{endpoint="postback",traffic_source="hand"} 1.0' in text


async def test_on_placeholder_send_sends_it_anyway(stack: Stack, net: Net) -> None:
    click_id = await stack.click("loose-c", externalid="{conversions_tracking}")
    conv = await stack.convert(cid=click_id, txid="t-loose")
    assert "held" not in conv
    [d] = await stack.deliveries(conv["conversion_id"])
    assert d["status"] == "delivered"
    assert net.sink.wait_hits("{conversions_tracking}", 1)


def test_real_click_ids_are_not_placeholders() -> None:
    for value in ("abc123", "e3b0c44298fc1c149afbf4c8996fb924", "a-b_c.d", "%20x", "1:0"):
        assert placeholder_value(value) is None, value
    for value in PLACEHOLDERS:
        assert placeholder_value(value) == value
    assert placeholder_value("%7Bconversions_tracking%7D") is not None

"""No silent loss: every rule judged like its network, no placeholder sent, secrets hidden.

Through an in-process gateway wired to loopback stand-ins of the real networks
(``tests/network_world.py``), answering as the catalog records them (ExoClick's
``200 ERROR: tag invalid``).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
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
from tests.network_world import (
    GOAL,
    TS_KEY,
    Net,
    Stack,
    config_text,
    hits,
    net_fixture,  # noqa: F401 - the ``net`` fixture
    stack_fixture,  # noqa: F401 - the ``stack`` fixture
)

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
    sent = await hits(net, externalid, 3)
    assert any(GOAL in h.raw for h in sent) and any(TS_KEY in h.raw for h in sent)
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
    assert await hits(net, "{conversions_tracking}", 1)


def test_real_click_ids_are_not_placeholders() -> None:
    for value in ("abc123", "e3b0c44298fc1c149afbf4c8996fb924", "a-b_c.d", "%20x", "1:0"):
        assert placeholder_value(value) is None, value
    for value in PLACEHOLDERS:
        assert placeholder_value(value) == value
    assert placeholder_value("%7Bconversions_tracking%7D") is not None


# -- 5. what happened to conversion X -----------------------------------------


async def _get(stack: Stack, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    resp = await stack.http.get(path, params=params)
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def test_lookups_by_every_key(stack: Stack, net: Net) -> None:
    externalid = f"look-{secrets.token_hex(5)}"
    click_id = await stack.click("hand-c", externalid=externalid)
    conv = await stack.convert(cid=click_id, payout="3", txid=f"TX-{externalid}")
    other = await stack.convert(
        cid=await stack.click("hand-c", externalid="someone-else"), txid="TX-other"
    )
    await stack.deliveries(conv["conversion_id"])
    cid = conv["conversion_id"]

    status, shown = await _get(stack, f"/api/conversions/{cid}")
    assert status == 200 and shown["conversion_id"] == cid and shown["status"] == "approved"
    assert shown["click"]["click_id"] == click_id
    assert shown["click"]["tokens"]["externalid"] == externalid
    assert sorted(d["rule"] for d in shown["deliveries"]) == ["hand:exo", "hand:ts", "hand:tune"]
    assert all(GOAL not in d["url"] and TS_KEY not in d["url"] for d in shown["deliveries"])
    assert shown["created_at_iso"].endswith("Z") and shown["click"]["created_at_iso"]
    # the delivery API's one shape: the same object as the list shows, less attempt_log
    for d in shown["deliveries"]:
        status, detail = await _get(stack, f"/api/deliveries/{d['delivery_id']}")
        assert set(detail) - set(d) == {"attempt_log"}
        assert {k: detail[k] for k in ("attempt_count", "created_at_iso", "url")} == {
            k: d[k] for k in ("attempt_count", "created_at_iso", "url")
        }

    status, shown = await _get(stack, f"/api/clicks/{click_id}")
    assert status == 200 and [c["conversion_id"] for c in shown["conversions"]] == [cid]
    assert len(shown["deliveries"]) == 3

    for key, value in (
        ("externalid", externalid),
        ("transaction_id", f"TX-{externalid}"),
        ("click_id", click_id),
    ):
        status, found = await _get(stack, "/api/conversions", **{key: value})
        assert status == 200 and [c["conversion_id"] for c in found["conversions"]] == [cid]
        assert len(found["conversions"][0]["deliveries"]) == 3
        status, page = await _get(stack, "/api/deliveries", **{key: value})
        assert {d["conversion_id"] for d in page["deliveries"]} == {cid}, key
    status, page = await _get(stack, "/api/deliveries", conversion_id=cid, rule="hand:ts")
    assert [d["rule"] for d in page["deliveries"]] == ["hand:ts"]
    status, page = await _get(stack, "/api/deliveries", conversion_id=cid, host="s.magsrv.com")
    assert [d["rule"] for d in page["deliveries"]] == ["hand:exo"]
    status, page = await _get(stack, "/api/deliveries", externalid="nobody")
    assert page["deliveries"] == []
    assert other["conversion_id"] != cid

    assert (await _get(stack, "/api/conversions/nope"))[0] == 404
    assert (await _get(stack, "/api/clicks/nope"))[0] == 404
    status, body = await _get(stack, "/api/conversions")
    assert status == 400 and body["field"] == "externalid"
    status, body = await _get(stack, "/api/conversions", payout="1")
    assert status == 400 and body["field"] == "payout"


async def test_a_paused_host_shows_in_the_api_and_metrics(net: Net, tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        config_text(net).replace(
            "breaker_failures = 1000", "breaker_failures = 2\nbreaker_pause = 60"
        )
    )
    config = load(path)
    store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    metrics = Metrics()
    dispatcher = Dispatcher(settings=config.delivery, store=store, metrics=metrics)
    await dispatcher.start()
    app = create_app(config, store, dispatcher, metrics=metrics)
    http: TestClient[Any, Any] = TestClient(GatewayTestServer(app, host="127.0.0.1"))
    await http.start_server()
    stack = Stack(http, store, dispatcher)
    try:
        status, body = await _get(stack, "/api/hosts")
        assert status == 200 and body["hosts"] == []
        for i in range(2):
            externalid = f"down-{i}-{secrets.token_hex(4)}"
            net.sink.expect(externalid, [(503, "maintenance")])
            await stack.convert(cid=await stack.click("loose-c", externalid=externalid))
            await hits(net, externalid, 1)
        for _ in range(200):
            status, body = await _get(stack, "/api/hosts")
            if body["hosts"] and body["hosts"][0]["paused"]:
                break
            await asyncio.sleep(0.025)
        [host] = body["hosts"]
        assert host["host"] == "pb.tracker.example" and host["paused"] is True
        assert host["circuit"] == "open"
        assert host["reason"] == "HTTP 503" and host["failures"] >= 2
        assert 50 < host["seconds_left"] <= 60 and host["paused_until"] > 0
        assert host["paused_until_iso"].endswith("Z")
        text = await stack.metrics()
        assert 'gateway_host_paused{host="pb.tracker.example"} 1.0' in text
        assert f'gateway_host_failures{{host="pb.tracker.example"}} {host["failures"]}.0' in text
        assert 'gateway_breaker_hosts{circuit="open"} 1.0' in text
    finally:
        await http.close()
        await dispatcher.stop()
        await store.close()


# -- 6. conversion data is read, or the answer says what was not ---------------

NETWORK_PARAMS = {
    "everflow": ("sub1", "payout_amount"),
    "tune": ("aff_sub", "payout"),
    "cake": ("s1", "payout"),
    "impact": ("SubId1", "Payout"),
    "binom": ("cnv_id", "payout"),
    "keitaro": ("subid", "payout"),
    "own": ("clk", "rev"),
}


@pytest.mark.parametrize("network", sorted(NETWORK_PARAMS))
async def test_a_networks_own_names_are_read(stack: Stack, network: str) -> None:
    click_param, payout_param = NETWORK_PARAMS[network]
    click_id = await stack.click("hand-c", externalid=f"n-{secrets.token_hex(4)}")
    conv = await stack.convert(
        network=network, **{click_param: click_id, payout_param: "2.5", "txid": "t-" + network}
    )
    assert conv["status"] == "accepted" and conv["postbacks"] == 3, conv
    assert "ignored" not in conv
    shown = await stack.deliveries(conv["conversion_id"], final=False)
    [ts] = [d for d in shown if d["rule"] == "hand:ts"]
    assert "&value=2.5&" in ts["url"], ts  # the payout reached the postback


async def test_names_the_gateway_ignores_are_in_the_answer(stack: Stack) -> None:
    click_id = await stack.click("hand-c", externalid="ign-1")
    resp = await stack.http.get(
        "/postback", params={"sub1": click_id, "payout_amount": "2", "offer": "7"}
    )
    body = await resp.json()
    assert resp.status == 400 and body["field"] == "cid", body
    assert "ignored sub1, payout_amount, offer" in body["error"]
    conv = await stack.convert(cid=click_id, payout_amount="2", txid="t-ign")
    assert conv["status"] == "accepted" and conv["ignored"] == ["payout_amount"], conv


async def test_a_json_body_sent_as_a_form_is_read(stack: Stack) -> None:
    click_id = await stack.click("hand-c", externalid="json-form")
    resp = await stack.http.post(
        "/postback",
        data=f'{{"cid": "{click_id}", "payout": "4", "txid": "t-json"}}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "accepted" and body["postbacks"] == 3, body


async def test_an_upstream_conversion_keeps_its_campaign(stack: Stack) -> None:
    conv = await stack.convert(externalid="up-camp-1", campaign="hand-c", txid="t-up")
    assert conv["status"] == "accepted" and conv["postbacks"] == 3, conv
    shown = await stack.deliveries(conv["conversion_id"], final=False)
    assert {d["campaign_id"] for d in shown} == {"hand-c"}, shown


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"externalid": "x", "campaign": "nosuch"}, "campaign"),
        ({"externalid": "x", "traffic_source": "nosuch"}, "traffic_source"),
        ({"externalid": "x", "traffic_source": "hand", "payout": "-5"}, "payout"),
        (
            {"externalid": "x", "traffic_source": "hand", "network": "tune", "payout": "-5"},
            "payout",
        ),
    ],
)
async def test_refused_with_the_field_named(
    stack: Stack, params: dict[str, str], field: str
) -> None:
    resp = await stack.http.get("/postback", params=params)
    body = await resp.json()
    assert resp.status == 400 and body["field"] == field, body


async def test_negative_payouts_from_a_network_that_marks_corrections(stack: Stack) -> None:
    conv = await stack.convert(
        network="own", externalid="corr-1", traffic_source="hand", rev="-5", txid="t-corr"
    )
    assert conv["status"] == "accepted", conv

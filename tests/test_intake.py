"""Intake over a real loopback server and a real SQLite file: the contract's table."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import clickid
from gateway.clock import VirtualClock
from gateway.store.base import DeliveryFilter
from tests.intake_helpers import Gateway, start_gateway, stop_gateway, write_config


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(tmp_path, write_config(tmp_path))
    yield gateway
    await stop_gateway(gateway)


async def _deliveries(gw: Gateway) -> list[object]:
    return list(await gw.store.list_deliveries(DeliveryFilter(), after_id=None, limit=1000))


async def test_health_and_metrics(gw: Gateway) -> None:
    resp = await gw.client.get("/health")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    await gw.click()
    resp = await gw.client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    assert 'gateway_clicks_total{traffic_source="hand"} 1.0' in await resp.text()


async def test_click_records_and_redirects_with_click_id(gw: Gateway) -> None:
    resp = await gw.client.get(
        "/click/c-hand",
        params={"cid": "EXT 1", "zoneid": "42", "site": "s1", "var3": "x"},
        headers={
            "User-Agent": "UA/1",
            "Referer": "https://ref.example/page",
            "Accept-Language": "de-DE,de;q=0.9",
        },
        allow_redirects=False,
    )
    assert resp.status == 302
    location = resp.headers["Location"]
    click_id = location.split("sub=")[1].split("&")[0]
    assert location.endswith("&ext=EXT%201")
    assert len(click_id) >= 16 and clickid.created_at(click_id) is not None
    click = await gw.store.find_click(click_id)
    assert click is not None and click.campaign_id == "c-hand" and click.traffic_source == "hand"
    t = click.tokens
    assert t["externalid"] == "EXT 1" and t["var1"] == "42" and t["var:zoneid"] == "42"
    assert t["var2"] == "s1" and t["var:site"] == "s1" and t["var3"] == "x"
    assert t["user_agent"] == "UA/1" and t["referrerdomain"] == "ref.example"
    assert t["language"] == "de-DE" and t["ip"] == "127.0.0.1"
    assert t["campaign.name"] == "Hand made"


async def test_unknown_campaign_is_404_json(gw: Gateway) -> None:
    resp = await gw.client.get("/click/nope", allow_redirects=False)
    assert resp.status == 404
    assert await resp.json() == {"error": "unknown campaign", "field": "campaign_id"}


async def test_api_clicks_answers_in_order(gw: Gateway) -> None:
    items = [
        {"campaign_id": "c-hand", "cid": "a"},
        {"campaign_id": "nope"},
        {"campaign_id": "c-exo", "params": {"externalid": "b", "zoneid": "9"}},
        5,
    ]
    resp = await gw.client.post("/api/clicks", json=items)
    assert resp.status == 200
    results = await resp.json()
    assert [r["status"] for r in results] == ["accepted", "error", "accepted", "error"]
    assert results[1]["click_id"] is None and results[1]["field"] == "campaign_id"
    for r in (results[0], results[2]):
        assert await gw.store.find_click(r["click_id"]) is not None
    assert "z=9" in results[2]["url"]


@pytest.mark.parametrize("cid_name", ["cid", "clickid", "click_id", "subid"])
@pytest.mark.parametrize("payout_name", ["payout", "sum", "amount"])
async def test_click_id_and_payout_aliases(gw: Gateway, cid_name: str, payout_name: str) -> None:
    click_id = await gw.click(cid="E1", zoneid="7")
    status, body = await gw.postback(**{cid_name: click_id, payout_name: "2.50"})
    assert (status, body["status"], body["postbacks"]) == (200, "accepted", 2)
    (delivery,) = [d for d in gw.sink.submitted if d.rule == "hand:approved"]
    assert "c=E1&p=2.50&s=approved&z=7" in delivery.url


@pytest.mark.parametrize("tx_name", ["txid", "transaction_id", "tid"])
@pytest.mark.parametrize("event_name", ["event", "et"])
async def test_txid_event_currency_aliases(gw: Gateway, tx_name: str, event_name: str) -> None:
    click_id = await gw.click(cid="E2")
    status, _ = await gw.postback(
        cid=click_id, **{tx_name: "T-9", event_name: "sale"}, currency="EUR"
    )
    assert status == 200
    (delivery,) = [d for d in gw.sink.submitted if d.rule == "hand:approved"]
    assert "tx=T-9&cur=EUR&ev=sale" in delivery.url
    # the same transaction id is the same conversion, whatever the event says
    status, body = await gw.postback(cid=click_id, **{tx_name: "T-9", event_name: "other"})
    assert (status, body["status"]) == (200, "duplicate")


async def test_accepted_duplicate_and_unattributed(gw: Gateway) -> None:
    click_id = await gw.click(cid="E3")
    status, first = await gw.postback(cid=click_id, txid="1")
    assert status == 200 and first["status"] == "accepted" and first["postbacks"] == 2
    status, again = await gw.postback(cid=click_id, txid="1")
    assert status == 200 and again == {
        "status": "duplicate",
        "conversion_id": first["conversion_id"],
        "postbacks": 0,
    }
    assert len(gw.sink.submitted) == 2 and len(await _deliveries(gw)) == 2
    status, other = await gw.postback(cid=click_id, txid="2")
    assert status == 200 and other["status"] == "accepted"
    status, lost = await gw.postback(cid="no-such-click", payout="1")
    assert status == 202 and lost["status"] == "unattributed" and lost["postbacks"] == 0
    counts = await gw.store.counts()
    assert counts["conversions"] == 3  # the unattributed one is kept


async def test_conversion_with_its_own_data_renders(gw: Gateway) -> None:
    status, body = await gw.postback(
        cid="upstream-1", externalid="X9", campaign="c-hand", var2="v", payout="3"
    )
    assert (status, body["status"], body["postbacks"]) == (200, "accepted", 2)
    assert "c=X9&p=3&s=approved&z=&v2=v" in gw.sink.submitted[0].url


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("approved", "approved"),
        ("approve", "approved"),
        ("confirmed", "approved"),
        ("sale", "approved"),
        ("success", "approved"),
        ("OK", "approved"),
        ("pending", "pending"),
        ("lead", "pending"),
        ("hold", "pending"),
        ("rejected", "rejected"),
        ("declined", "rejected"),
        ("decline", "rejected"),
        ("cancelled", "rejected"),
        ("trash", "rejected"),
        ("fail", "rejected"),
        ("chargeback", "rejected"),
    ],
)
async def test_status_words(gw: Gateway, word: str, expected: str) -> None:
    click_id = await gw.click(cid="E4")
    status, body = await gw.postback(cid=click_id, status=word)
    assert status == 200
    (delivery,) = [d for d in gw.sink.submitted if d.rule == "hand:every-status"]
    assert delivery.url.endswith(f"s={expected}")


async def test_unknown_status_is_400(gw: Gateway) -> None:
    status, body = await gw.postback(cid="x", status="maybe")
    assert status == 400 and body["field"] == "status"
    assert (await gw.store.counts())["conversions"] == 0


async def test_status_update_fires_matching_rules_once(gw: Gateway) -> None:
    click_id = await gw.click(cid="E5")
    status, first = await gw.postback(cid=click_id, txid="A", status="pending")
    assert status == 200 and first["postbacks"] == 1  # every-status rule only
    status, upd = await gw.postback(cid=click_id, txid="A", status="approved")
    assert status == 200 and upd["status"] == "accepted" and upd["postbacks"] == 2
    assert upd["conversion_id"] == first["conversion_id"]
    status, dup = await gw.postback(cid=click_id, txid="A", status="sale")
    assert (status, dup["status"], dup["postbacks"]) == (200, "duplicate", 0)
    rules = sorted(d.rule for d in gw.sink.submitted)
    assert rules == ["hand:approved", "hand:every-status", "hand:every-status"]
    assert (await gw.store.find_conversions([])) == {}
    counts = await gw.store.counts()
    assert counts["conversions"] == 1 and counts["deliveries"] == 3


@pytest.mark.parametrize(
    ("old", "new"), [("approved", "pending"), ("rejected", "approved"), ("rejected", "pending")]
)
async def test_forbidden_transitions_409_change_nothing(gw: Gateway, old: str, new: str) -> None:
    click_id = await gw.click(cid="E6")
    status, _ = await gw.postback(cid=click_id, event="x", status=old)
    assert status == 200
    before = await gw.store.counts()
    status, body = await gw.postback(cid=click_id, event="x", status=new)
    assert status == 409 and body["field"] == "status"
    assert await gw.store.counts() == before
    stored = list((await gw.store.find_conversions([f"{click_id}\x1fe\x1fx"])).values())
    assert stored[0].status == old


async def test_allowed_transitions(gw: Gateway) -> None:
    for path in (("pending", "approved"), ("pending", "rejected"), ("approved", "rejected")):
        click_id = await gw.click(cid="E7")
        for word in path:
            status, body = await gw.postback(cid=click_id, status=word)
            assert status == 200 and body["status"] == "accepted"


async def test_network_allowlist_secret_and_own_words(gw: Gateway) -> None:
    click_id = await gw.click(cid="E8")
    status, body = await gw.postback(cid=click_id, network="far")
    assert status == 403 and body["field"] == "network"
    status, body = await gw.postback(cid=click_id, network="near", secret="wrong")
    assert status == 403 and body["field"] == "secret"
    status, body = await gw.postback(
        cid=click_id, network="near", secret="near-secret", status="hold-ish"
    )
    assert status == 200 and body["status"] == "accepted"
    status, body = await gw.postback(cid=click_id, network="near", secret="near-secret", status="5")
    assert status == 200 and body["postbacks"] == 2
    status, body = await gw.postback(cid=click_id, network="nobody")
    assert status == 400 and body["field"] == "network"
    assert (await gw.store.counts())["conversions"] == 1


async def test_traffic_source_secret(gw: Gateway) -> None:
    click_id = await gw.click("c-guarded", externalid="G1")
    status, body = await gw.postback(cid=click_id)
    assert status == 403 and body["field"] == "secret"
    status, body = await gw.postback(cid=click_id, secret="ts-secret")
    assert status == 200 and body["postbacks"] == 1


async def test_post_form_json_and_batch(gw: Gateway) -> None:
    click_id = await gw.click(cid="E9")
    resp = await gw.client.post("/postback", data={"clickid": click_id, "txid": "f"})
    assert resp.status == 200 and (await resp.json())["status"] == "accepted"
    resp = await gw.client.post("/postback", json={"subid": click_id, "txid": "j", "sum": 1.5})
    assert resp.status == 200 and (await resp.json())["status"] == "accepted"
    items = [
        {"cid": click_id, "txid": "b1"},
        {"cid": click_id, "txid": "b1"},
        {"cid": click_id, "status": "nonsense"},
        {"cid": "none"},
        "x",
        {"cid": click_id, "txid": "b2", "network": "far"},
    ]
    resp = await gw.client.post("/api/conversions", json=items)
    assert resp.status == 200
    results = await resp.json()
    assert [r["status"] for r in results] == [
        "accepted",
        "duplicate",
        "error",
        "unattributed",
        "error",
        "error",
    ]
    assert [r["code"] for r in results] == [200, 200, 400, 202, 400, 403]
    assert results[0]["conversion_id"] == results[1]["conversion_id"]


async def test_delivery_rows_carry_redaction_delay_and_expiry(gw: Gateway) -> None:
    click_id = await gw.click("c-exo", externalid="EX", zoneid="1")
    status, _ = await gw.postback(cid=click_id, payout="1")
    assert status == 200
    (d,) = gw.sink.submitted
    assert "GOALSECRET123" in d.url and "GOALSECRET123" not in d.display_url
    assert "goal=***" in d.display_url and d.answer_rule == "exoclick" and d.host == "s.magsrv.com"
    assert d.delivery_id >= 1 and d.status == "queued"
    assert d.click_time is not None and d.conversion_id
    hand = await gw.click(cid="H")
    await gw.postback(cid=hand, status="pending")
    delayed = [x for x in gw.sink.submitted if x.rule == "hand:every-status"][0]
    assert delayed.not_before == pytest.approx(delayed.created_at + 30)
    assert delayed.max_attempts == 2


async def test_campaign_rule_with_event_filter(gw: Gateway) -> None:
    click_id = await gw.click(cid="L")
    status, body = await gw.postback(cid=click_id, status="pending", event="lead")
    assert status == 200 and body["postbacks"] == 2
    status, body = await gw.postback(cid=click_id, status="pending", event="signup")
    assert status == 200 and body["postbacks"] == 1


async def test_attribution_window_uses_the_id(tmp_path: Path) -> None:
    clock = VirtualClock(start=1_900_000_000.0)
    gateway = await start_gateway(tmp_path, write_config(tmp_path, extra=""), clock=clock)
    try:
        click_id = await gateway.click(cid="W")
        assert clickid.created_at(click_id) == pytest.approx(1_900_000_000.0)
        await clock.advance(31 * 86400)
        status, body = await gateway.postback(cid=click_id)
        assert status == 202 and body["status"] == "unattributed"
    finally:
        await stop_gateway(gateway)


async def test_global_postback_secret(tmp_path: Path) -> None:
    gateway = await start_gateway(tmp_path, write_config(tmp_path, global_secret="g-secret"))
    try:
        click_id = await gateway.click(cid="S")
        status, body = await gateway.postback(cid=click_id)
        assert status == 403 and body["field"] == "secret"
        status, body = await gateway.postback(cid=click_id, secret="g-secret")
        assert status == 200
    finally:
        await stop_gateway(gateway)

"""Visit data end to end: a click and a conversion through the running gateway
(real aiohttp server on loopback, SQLite or PostgreSQL, the gateway's runner)
render every ClickFlare and Binom seed token, and the client address honours
trusted proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import msgspec
import pytest

from gateway.enrich.factory import make_enrichers
from gateway.htime import open_htime
from gateway.store.base import ConversionFilter
from tests.geo_data import write_geo
from tests.intake_helpers import Gateway, start_gateway, stop_gateway
from tests.store_fixtures import StoreBackend
from tests.test_enrich import SAMSUNG

#: Every token of the two seed documents' tables (ClickFlare's, then Binom's).
CLICKFLARE = (
    "country countryname region city os osversion browser browserversion device brand model "
    "language transaction.id click.id payout conversion.cost campaign.cpa externalid var1 var2 "
    "var3 var:zoneid referrerdomain ip isp carrier connection.type campaign.id lander.id "
    "trafficsource.id offer.id"
).split()
BINOM = (
    "clickid user_id campaign campaign_name path_name rule_name campaign_key trafficsource "
    "trafficsource_name external_id externalid clickcost domain lander referer time htime "
    "device_name device_brand device_model browser_name browser_version resolution os_name "
    "os_version country country_code language city user_agent offer "
    + " ".join(f"t{i}" for i in range(1, 11))
    + " "
    + " ".join(f"event{i}" for i in range(1, 11))
    + " tName:zoneid"
).split()


def _rule(name: str, tokens: list[str], dialect: str) -> str:
    query = "&".join(f"{i}={{{t}}}" for i, t in enumerate(tokens))
    return f"""
[[traffic_sources.postbacks]]
name = "{name}"
dialect = "{dialect}"
url = "https://pb.example/{name}?{query}"
"""


CONFIG = (
    """
[server]
trusted_proxies = ["127.0.0.0/8"]
secret = "gateway-secret"

[batch]
max_wait_ms = 1.0

[delivery]
allow_private_targets = true

[[networks]]
name = "far"
allowed_cidrs = ["203.0.113.0/24"]

[[networks]]
name = "spender"
corrections = true
params = { spend = "cost", goal_value = "event1", sub = "cid" }

[[traffic_sources]]
name = "up"
click_id_param = "ext"
variables = ["zoneid"]
visit_params = { carrier = "operator" }
"""
    + _rule("cf", CLICKFLARE, "clickflare")
    + _rule("binom", BINOM, "binom")
    + _rule("extra", ["conversion.time", "asn", "click.time"], "clickflare")
    + """
[[campaigns]]
id = "c-up"
name = "Upstream"
key = "k-up"
traffic_source = "up"
lander_id = "lp-7"
offer_url = "https://offer.example/lp?sub={click.id}&o={offer.id}"
"""
)


@pytest.fixture
async def gw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("GATEWAY_GEO_DIR", str(write_geo(tmp_path / "geo")))
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    gateway = await start_gateway(tmp_path, path)
    yield gateway
    await stop_gateway(gateway)


@pytest.fixture
async def gw_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_backend: StoreBackend
) -> AsyncIterator[Gateway]:
    """The same gateway on each store backend in turn (PostgreSQL where a server is set)."""
    monkeypatch.setenv("GATEWAY_GEO_DIR", str(write_geo(tmp_path / "geo")))
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    gateway = await start_gateway(tmp_path, path, store=store_backend.make(tmp_path))
    yield gateway
    await stop_gateway(gateway)


CLICK_PARAMS = {
    "ext": "ts-click-1",
    "zoneid": "z42",
    **{f"var{i}": f"v{i}" for i in range(1, 11)},
    "user_id": "u-9",
    "path_name": "path-a",
    "rule_name": "rule-b",
    "resolution": "1080x2400",
    "operator": "Example Mobile",
    "connection_type": "cellular",
    "offer": "of-3",
    "cost": "0.05",
}
HEADERS = {
    "User-Agent": SAMSUNG,
    "X-Forwarded-For": "198.51.100.77, 203.0.113.9",  # peer 127.0.0.1 is a trusted proxy
    "Referer": "https://news.example/article?id=1",
    "Accept-Language": "de-DE,de;q=0.9",
}


async def _click(gw: Gateway, headers: dict[str, str]) -> tuple[str, str]:
    resp = await gw.client.get(
        "/click/c-up", params=CLICK_PARAMS, headers=headers, allow_redirects=False
    )
    assert resp.status == 302, await resp.text()
    location = resp.headers["Location"]
    return location.split("sub=")[1].split("&")[0], location


async def _rendered(gw: Gateway, click_id: str) -> dict[str, str]:
    """The ClickFlare rule's values for a new conversion of ``click_id``, by token."""
    before = len(gw.sink.submitted)
    resp = await gw.client.get("/postback", params={"cid": click_id, "txid": f"t{before}"})
    assert resp.status == 200, await resp.text()
    [url] = [d.url for d in gw.sink.submitted[before:] if "/cf?" in d.url]
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    return {t: query[str(i)] for i, t in enumerate(CLICKFLARE)}


async def test_every_seed_token_renders(gw_on: Gateway) -> None:
    """On either store: the click's visit tokens and the conversion's new fields are
    stored, and read back for the postbacks."""
    gw = gw_on
    click_id, location = await _click(gw, HEADERS)
    assert location.endswith("&o=of-3")
    conversion = {
        "cid": click_id,
        "payout": "2.50",
        "txid": "tx-1",
        "cost": "1.25",
        **{f"event{i}": f"e{i}" for i in range(1, 11)},
    }
    resp = await gw.client.get("/postback", params=conversion)
    assert resp.status == 200, await resp.text()
    sent = {urlsplit(d.url).path.rsplit("/", 1)[1]: d.url for d in gw.sink.submitted}
    assert set(sent) == {"cf", "binom", "extra"}
    extra = dict(parse_qsl(urlsplit(sent["extra"]).query))
    assert int(extra["0"]) >= int(extra["2"]) > 0 and extra["1"] == "64500"
    for name, tokens in (("cf", CLICKFLARE), ("binom", BINOM)):
        values = dict(parse_qsl(urlsplit(sent[name]).query, keep_blank_values=True))
        empty = [tokens[int(i)] for i, v in values.items() if not v]
        assert not empty, f"{name}: empty {empty}"
    cf = dict(parse_qsl(urlsplit(sent["cf"]).query))
    by = dict(zip(CLICKFLARE, (cf[str(i)] for i in range(len(CLICKFLARE))), strict=True))
    assert by["ip"] == "203.0.113.9"  # the rightmost untrusted hop, not the proxy
    assert (by["country"], by["city"], by["isp"]) == ("DE", "Munich", "Example Mobile GmbH")
    assert (by["os"], by["brand"], by["device"]) == ("Android", "Samsung", "mobile")
    assert by["carrier"] == "Example Mobile" and by["connection.type"] == "cellular"
    assert by["conversion.cost"] == by["campaign.cpa"] == "1.25"
    assert (by["lander.id"], by["offer.id"], by["language"]) == ("lp-7", "of-3", "de-DE")
    binom = dict(parse_qsl(urlsplit(sent["binom"]).query))
    bb = dict(zip(BINOM, (binom[str(i)] for i in range(len(BINOM))), strict=True))
    assert bb["country"] == "Germany" and bb["country_code"] == "DE"  # Binom's {country}
    assert open_htime("gateway-secret", click_id, bb["htime"]) == int(bb["time"])
    assert bb["domain"] == "127.0.0.1"
    stored = await gw.store.get_click(click_id)
    assert stored is not None and stored.tokens["city"] == "Munich"
    assert stored.tokens["user_agent"] == SAMSUNG and stored.tokens["click.cost"] == "0.05"
    [found] = await gw.store.find_conversions_by(
        msgspec.convert({"click_id": click_id}, ConversionFilter), limit=5
    )
    assert found.tokens["conversion.cost"] == "1.25" and found.tokens["event10"] == "e10"
    assert found.tokens["conversion.time"] == extra["0"]


async def test_passed_value_wins_over_detected(gw: Gateway) -> None:
    params = {**CLICK_PARAMS, "country": "FR", "os_name": "KaiOS"}
    resp = await gw.client.get("/click/c-up", params=params, headers=HEADERS, allow_redirects=False)
    click_id = resp.headers["Location"].split("sub=")[1].split("&")[0]
    got = await _rendered(gw, click_id)
    assert got["country"] == "FR" and got["countryname"] == "France"
    assert got["os"] == "KaiOS" and got["city"] == "Munich"


async def test_api_clicks_carry_the_upstream_visit(gw: Gateway) -> None:
    items = [
        {
            "campaign_id": "c-up",
            "ip": "2001:db8::5",
            "user_agent": SAMSUNG,
            "ext": "e-1",
            "carrier": "Docomo",
            "params": {"connection.type": "wifi"},
        }
    ]
    resp = await gw.client.post("/api/clicks", json=items, headers=HEADERS)
    [result] = await resp.json()
    got = await _rendered(gw, result["click_id"])
    assert got["ip"] == "2001:db8::5"  # the item's, not the caller's
    assert got["country"] == "JP" and got["isp"] == "Example Fibre KK"
    assert got["carrier"] == "Docomo" and got["connection.type"] == "wifi"


async def test_untrusted_peer_cannot_spoof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer (127.0.0.1) is not trusted here: its X-Forwarded-For proves nothing."""
    monkeypatch.setenv("GATEWAY_GEO_DIR", str(write_geo(tmp_path / "geo")))
    path = tmp_path / "gateway.toml"
    path.write_text(
        CONFIG.replace('trusted_proxies = ["127.0.0.0/8"]', 'trusted_proxies = ["10.0.0.0/8"]')
    )
    gw = await start_gateway(tmp_path, path)
    try:
        click_id, _ = await _click(gw, HEADERS)
        got = await _rendered(gw, click_id)
        assert got["ip"] == "127.0.0.1" and got["country"] == ""
        spoofed = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
        resp = await gw.client.get(
            "/postback", params={"cid": click_id, "network": "far"}, headers=spoofed
        )
        assert resp.status == 403 and (await resp.json())["field"] == "network"
    finally:
        await stop_gateway(gw)


async def test_trusted_proxy_forwards_the_network(gw: Gateway) -> None:
    click_id, _ = await _click(gw, HEADERS)
    params = {"cid": click_id, "network": "far"}
    ok = await gw.client.get("/postback", params=params, headers={"Forwarded": "for=203.0.113.5"})
    assert ok.status == 200, await ok.text()
    bad = await gw.client.get("/postback", params=params, headers={"X-Forwarded-For": "8.8.8.8"})
    assert bad.status == 403
    # a client-written hop left of the real one changes nothing
    spoof = {"X-Forwarded-For": "203.0.113.5, 8.8.8.8"}
    assert (await gw.client.get("/postback", params=params, headers=spoof)).status == 403


def test_enrichers_follow_the_config(tmp_path: Path) -> None:
    from gateway.config.schema import EnrichSettings  # noqa: PLC0415 - this test only

    geo = write_geo(tmp_path / "geo")
    on, notes = make_enrichers(EnrichSettings(geo_dir=str(geo)))
    assert len(on.parts) == 2 and "DB-IP" in notes[-1]
    off, notes = make_enrichers(EnrichSettings(user_agent=False, geo=False))
    assert off.parts == () and all("off" in n for n in notes)


async def test_conversion_side_inputs(gw: Gateway) -> None:
    click_id, _ = await _click(gw, HEADERS)
    bad = await gw.client.get("/postback", params={"cid": click_id, "cost": "lots"})
    assert bad.status == 400 and (await bad.json())["field"] == "cost"
    huge = await gw.client.get("/postback", params={"cid": click_id, "cost": "1e13"})
    assert huge.status == 400 and (await huge.json())["field"] == "cost"
    # payout's one number rule (issue 22) and its sign rule (issue 19) read cost too
    for odd in ("1_000", " 1.5", "١٢٣", "1e-999999", "1.0000000000001", "-0.5"):
        resp = await gw.client.get("/postback", params={"cid": click_id, "cost": odd})
        assert resp.status == 400 and (await resp.json())["field"] == "cost", odd
    got = await _rendered(gw, click_id)
    assert got["conversion.cost"] == ""  # none given: not invented


async def test_a_network_names_cost_and_events_its_own_way(gw: Gateway) -> None:
    """``[[networks]] params`` map onto cost and event1..10 like any conversion name;
    a network marked ``corrections`` may send a negative cost."""
    click_id, _ = await _click(gw, HEADERS)
    query = {"network": "spender", "sub": click_id, "spend": "-0.75", "goal_value": "7"}
    resp = await gw.client.get("/postback", params={**query, "txid": "n-1"})
    assert resp.status == 200, await resp.text()
    assert not (await resp.json()).get("ignored")  # every name read
    [url] = [d.url for d in gw.sink.submitted if "/cf?" in d.url]
    sent = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    assert sent[str(CLICKFLARE.index("conversion.cost"))] == "-0.75"
    [binom] = [d.url for d in gw.sink.submitted if "/binom?" in d.url]
    values = dict(parse_qsl(urlsplit(binom).query, keep_blank_values=True))
    assert values[str(BINOM.index("event1"))] == "7"
    bad = await gw.client.get("/postback", params={**query, "spend": "1_0", "txid": "n-2"})
    assert bad.status == 400 and (await bad.json())["field"] == "cost"


def test_conversion_time_and_asn_tokens_compile() -> None:
    from _fastrender import compile_template  # noqa: PLC0415 - this test only

    plan = compile_template("https://x.example/?t={conversion.time}&a={asn}&u={conversion_time}")
    assert plan.tokens == ("conversion.time", "asn", "conversion.time")

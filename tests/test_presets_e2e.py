"""Presets end to end: a real gateway, real SQLite, real HTTP(S), real presets.

``python -m gateway serve`` runs in a subprocess with one traffic source per
preset, once per HTTP client (``[delivery] transport``: aiohttp and lean).
Each preset's real host name is mapped to a loopback stand-in network
with ``[delivery] resolve`` (``allow_private_targets = true``); https presets
stay https, verified against a throwaway CA (``[delivery] ca_file``), so the
URL, ``Host`` header and SNI are the network's own. The stand-in answers as
the network does: success, each refusal quoted in the catalog, a retryable
5xx. For each, a click arrives with the network's click macro filled in (the
campaign URL from ``sources show --campaign``), a conversion is posted, and
the delivery must end as the preset's answer rule says, with the network's
message in the delivery log (``GET /api/deliveries/{id}``).

Then: expiry (a click older than the preset's ``max_click_age`` gives an
``expired`` delivery, never sent, counted in /metrics), in the subprocess
with a short override and in process with a virtual clock for PopAds' 48 h;
and redaction (no account secret in the log, the delivery API, the
test-postback output or /metrics).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient

from _fastrender import compile_template
from gateway.clock import VirtualClock
from gateway.config import load
from gateway.dispatch.dispatcher import Dispatcher
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.sources import catalog
from gateway.sources.answers import classify
from gateway.store.sqlite import SQLiteStore
from tests.gateway_proc import GatewayProcess
from tests.intake_helpers import GatewayTestServer
from tests.network_sink import NetHit, NetworkSink, make_tls

# One gateway subprocess and one stand-in network serve the whole module and its
# counters are asserted exactly, so the tests run on one client loop only (the
# gateway under test runs uvloop in its own process either way).
pytestmark = pytest.mark.slow
ONE_LOOP = True  # read by tests/conftest.py

TOKEN = "e2e-api-token-" + secrets.token_hex(4)
PAYOUT = "1.25"
#: The presets exercised here: https and http, status-only and body rules, secrets or none.
PRESETS = (
    "exoclick",
    "exads",
    "propellerads",
    "trafficstars",
    "zeropark",
    "mgid",
    "taboola",
    "outbrain",
    "richads",
    "evadav",
    "popads",
    "clickadu",
    "adsterra",
    "popcash",
)
#: Refusals a network documents in words only (no quoted answer in the catalog's examples).
DOCUMENTED = {
    "exads": [(200, "ERROR: Goal value is invalid")],  # notes: same engine as ExoClick
    "exoclick": [(200, "ERROR: goal invalid")],  # notes: "goal invalid"
}


@dataclass
class Net:
    """One preset as the test sees it: its source, params and where it posts."""

    preset: catalog.Preset
    params: dict[str, str]
    secrets: list[str]
    template: str
    host: str
    scheme: str

    @property
    def source(self) -> str:
        return self.preset.name

    @property
    def campaign(self) -> str:
        return f"c-{self.preset.name}"


def make_net(name: str) -> Net:
    preset = catalog.get(name)
    params: dict[str, str] = {}
    hidden: list[str] = []
    for param in preset.params:
        if param.secret:  # distinctive, so a grep finds any leak
            params[param.name] = value = f"S3CRET{param.name}{secrets.token_hex(8)}"
            hidden.append(value)
        else:
            params[param.name] = f"{param.name}{secrets.token_hex(2)}"
    template = catalog.expand(preset, params)
    split = urlsplit(template)
    assert split.hostname and split.scheme in ("http", "https")
    return Net(preset, params, hidden, template, split.hostname, split.scheme)


NETS = {name: make_net(name) for name in PRESETS}


def config_text(nets: dict[str, Net], sink: NetworkSink, ca: Path, transport: str) -> str:
    resolve = sink.resolve_map({n.host: n.scheme for n in nets.values()})
    table = ", ".join(f'"{k}" = "{v}"' for k, v in resolve.items())
    parts = [
        f"""
api_token = "{TOKEN}"

[batch]
max_wait_ms = 1.0

[delivery]
transport = "{transport}"
allow_private_targets = true
ca_file = "{ca}"
timeout = 5.0
max_attempts = 3
schedule = [0.3, 0.3]
jitter = 0.0
breaker_failures = 1000
resolve = {{ {table} }}
"""
    ]
    for net in nets.values():
        params = ", ".join(f'{k} = "{v}"' for k, v in net.params.items())
        variables = [k.removeprefix("var:") for k in net.preset.click_macros if k != "externalid"]
        parts.append(f"""
[[traffic_sources]]
name = "{net.source}"
preset = "{net.preset.name}"
params = {{ {params} }}
variables = {json.dumps(variables)}

[[campaigns]]
id = "{net.campaign}"
traffic_source = "{net.source}"
offer_url = "https://offer.example/lp?sub={{click.id}}"
""")
    popads = nets["popads"]  # the same network, with a 1 s memory: expiry without waiting 48 h
    parts.append(f"""
[[traffic_sources]]
name = "popads-short"
preset = "popads"
params = {{ aid = "{popads.params["aid"]}" }}
max_click_age = 1

[[campaigns]]
id = "c-popads-short"
traffic_source = "popads-short"
offer_url = "https://offer.example/lp?sub={{click.id}}"
""")
    return "".join(parts)


@dataclass
class World:
    gateway: GatewayProcess
    sink: NetworkSink
    ca: Path
    log: Path
    transport: str
    shown: list[str] = field(default_factory=list)  # every API answer seen, for the grep

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="module", params=["aiohttp", "lean"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The gateway subprocess and the stand-in networks, once per HTTP client."""
    transport: str = request.param
    root = tmp_path_factory.mktemp(f"presets-e2e-{transport}")
    ca, pem, key = make_tls(root / "tls", sorted({n.host for n in NETS.values()}))
    sink = NetworkSink(pem, key).start()
    config = root / "gateway.toml"
    config.write_text(config_text(NETS, sink, ca, transport))
    log = root / "gateway.log"
    gateway = GatewayProcess(config, root / "gateway.sqlite", log)
    try:
        gateway.start()
        yield World(gateway, sink, ca, log, transport)
    finally:
        gateway.stop()
        sink.close()


class Client:
    """The test's side of the gateway: a visitor, the affiliate network, the operator."""

    def __init__(self, world: World, session: aiohttp.ClientSession) -> None:
        self.world = world
        self.session = session
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    async def click(self, net: Net, externalid: str, campaign: str | None = None) -> str:
        """A visitor arriving from the network: its campaign URL with the macros filled."""
        url = catalog.campaign_url(net.preset, self.world.url, campaign or net.campaign)
        base, _, query = url.partition("?")
        params: dict[str, str] = {}
        for part in query.split("&"):
            name, _, macro = part.partition("=")
            assert macro in net.preset.click_macros.values(), (net.source, part)
            is_click_id = macro == net.preset.click_macros["externalid"]
            params[name] = externalid if is_click_id else f"{name}-v"
        async with self.session.get(base, params=params, allow_redirects=False) as resp:
            assert resp.status == 302, await resp.text()
            location = resp.headers["Location"]
        return location.split("sub=", 1)[1].split("&", 1)[0]

    async def convert(self, click_id: str, txid: str) -> dict[str, Any]:
        params = {
            "cid": click_id,
            "payout": PAYOUT,
            "txid": txid,
            "currency": "USD",
            "status": "approved",
        }
        async with self.session.get(self.world.url + "/postback", params=params) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        assert body["status"] == "accepted" and body["postbacks"] == 1, body
        return body

    async def api(self, method: str, path: str, **kw: Any) -> Any:
        async with self.session.request(
            method, self.world.url + path, headers=self.auth, **kw
        ) as resp:
            text = await resp.text()
            assert resp.status == 200, (path, resp.status, text)
        self.world.shown.append(text)
        return json.loads(text)

    async def delivery_for(
        self, source: str, conversion_id: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The conversion's delivery once it is final, with its attempts."""
        deadline = time.monotonic() + timeout
        while True:
            page = await self.api(
                "GET", "/api/deliveries", params={"traffic_source": source, "limit": "1000"}
            )
            mine = [d for d in page["deliveries"] if d["conversion_id"] == conversion_id]
            if mine and mine[0]["status"] != "queued":
                return await self.api("GET", f"/api/deliveries/{mine[0]['delivery_id']}")
            assert time.monotonic() < deadline, f"{source}: still queued: {mine}"
            await asyncio.sleep(0.05)

    async def metrics(self, expect: str = "", timeout: float = 5.0) -> str:
        """/metrics; with ``expect``, once it holds that line (counters move just
        after the delivery's log write commits)."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.session.get(self.world.url + "/metrics") as resp:
                text = await resp.text()
            self.world.shown.append(text)
            if expect in text or time.monotonic() > deadline:
                return text
            await asyncio.sleep(0.05)


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(world, session)


def expected_url(net: Net, externalid: str, txid: str) -> str:
    """What the network must receive, rendered independently from the preset."""
    values = {
        "externalid": externalid,
        "payout": PAYOUT,
        "transaction.id": txid,
        "currency": "USD",
        "conversion.status": "approved",
    }
    return compile_template(net.template).render(values)


def scenarios(net: Net) -> list[tuple[str, list[tuple[int, str]], str, str, int]]:
    """(name, the network's answers in order, final status, last outcome, attempts)."""
    examples = net.preset.examples
    ok = next(((e.status, e.body) for e in examples if e.outcome == "delivered"), (200, "OK"))
    out = [("ok", [ok], "delivered", "delivered", 1)]
    refusals = [(e.status, e.body) for e in examples if e.outcome == "rejected"]
    for i, answer in enumerate([*refusals, *DOCUMENTED.get(net.source, []), (403, "Forbidden")]):
        out.append((f"refused{i}", [answer], "failed", "rejected", 1))
    out.append(("retried", [(503, "Service Unavailable"), ok], "delivered", "delivered", 2))
    # an error page quoting the request (credentials included): shown redacted
    out.append(("echoed", [(400, "invalid request: {request}")], "failed", "rejected", 1))
    out.append(("spent", [(502, "Bad Gateway")], "failed", "failed", 3))
    return out


def check_hit(net: Net, hit: NetHit, externalid: str, txid: str) -> None:
    assert (hit.scheme, hit.host, hit.method) == (net.scheme, net.host, net.preset.method)
    assert f"{hit.scheme}://{hit.host}{hit.raw}" == expected_url(net, externalid, txid)
    for value in net.secrets:  # the real request carries the credentials
        assert value in hit.raw


def redacted(net: Net, url: str) -> str:
    for value in net.secrets:
        url = url.replace(value, "***")
    return url


@pytest.mark.parametrize("name", PRESETS)
async def test_preset_end_to_end(name: str, world: World, client: Client) -> None:
    net = NETS[name]
    plays = scenarios(net)

    async def play(
        scenario: str, answers: list[tuple[int, str]], status: str, outcome: str, attempts: int
    ) -> None:
        externalid = f"{name}-{scenario}-{secrets.token_hex(4)}"
        txid = f"tx-{secrets.token_hex(3)}"
        world.sink.expect(externalid, list(answers))
        click_id = await client.click(net, externalid)
        conversion = await client.convert(click_id, txid)
        d = await client.delivery_for(net.source, conversion["conversion_id"])
        where = (name, scenario, d)
        got = (d["status"], d["last_outcome"], d["attempt_count"])
        assert got == (status, outcome, attempts), where
        assert d["answer_rule"] == name and d["host"] == net.host
        shown = redacted(net, expected_url(net, externalid, txid))
        assert d["url"] == d["display_url"] == shown, where
        assert not net.secrets or "***" in shown
        hits = world.sink.hits_for(externalid)
        assert len(hits) == attempts, where
        for hit in hits:
            check_hit(net, hit, externalid, txid)
        echo = redacted(net, hits[0].raw)
        for attempt, (code, body) in zip(
            d["attempt_log"], answers + answers[-1:] * 3, strict=False
        ):
            body = body.replace("{request}", echo)
            assert (attempt["status_code"], attempt["body_prefix"]) == (code, body), where
            assert attempt["url"] == shown
        last = d["attempt_log"][-1]
        if scenario == "echoed":
            assert last["reason"] == f"HTTP 400: invalid request: {echo}", where
        elif outcome == "rejected":  # the network's own words are the reason
            code, body = answers[-1]
            assert last["reason"] == classify(name, code, body).reason, where
            if code == 200:
                assert last["reason"] in body, where
            else:
                assert last["reason"] == (f"HTTP {code}: {body}" if body else f"HTTP {code}")
        if scenario == "spent":
            assert last["reason"].endswith("gave up after 3 attempts")
        if scenario == "retried":
            assert d["attempt_log"][0]["outcome"] == "retry"

    await asyncio.gather(*(play(*s) for s in plays))
    delivered = sum(1 for s in plays if s[2] == "delivered")
    line = (
        f'gateway_deliveries_delivered_total{{status_class="2xx",traffic_source="{name}"}} '
        f"{float(delivered)}"
    )
    assert line in await client.metrics(line)


@pytest.mark.parametrize("name", ["zeropark", "clickadu", "exoclick"])
async def test_redirect_to_https_keeps_secrets_hidden(
    name: str, world: World, client: Client
) -> None:
    """A network moving its endpoint (301 to https, under /moved/): followed, and the log's
    "-> where it ended" shows the path with its credentials (Zeropark's uuid, Clickadu's
    hash sit in the path) as ``***``."""
    net = NETS[name]
    externalid = f"{name}-moved-{secrets.token_hex(4)}"
    rest = expected_url(net, externalid, "tx-moved").split("://", 1)[1]
    host, _, path = rest.partition("/")
    target = f"https://{host}/moved/{path}"
    world.sink.expect(externalid, [(301, "", {"Location": target}), (200, "OK")])
    click_id = await client.click(net, externalid)
    conversion = await client.convert(click_id, "tx-moved")
    d = await client.delivery_for(net.source, conversion["conversion_id"])
    assert d["status"] == "delivered" and d["attempt_count"] == 1, d
    hops = world.sink.hits_for(externalid)
    assert [h.scheme for h in hops] == [net.scheme, "https"]
    shown = redacted(net, expected_url(net, externalid, "tx-moved"))
    ended = redacted(net, target.split("?", 1)[0])
    assert d["attempt_log"][0]["url"] == f"{shown} -> {ended}"
    assert "***" in ended or name == "exoclick"  # exoclick's secret is in the query
    for value in net.secrets:
        assert value not in json.dumps(d)


def test_preset_hosts_are_the_real_ones() -> None:
    """The mapping covers every network host, so nothing here can leave the machine."""
    assert {n.scheme for n in NETS.values()} == {"http", "https"}
    assert all(not n.host.endswith((".test", ".example", "localhost")) for n in NETS.values())


async def test_expired_click_is_not_sent(world: World, client: Client) -> None:
    """PopAds keeps impression ids 48 h; here a source overrides that to 1 s."""
    net = NETS["popads"]
    externalid = f"popads-late-{secrets.token_hex(4)}"
    click_id = await client.click(net, externalid, campaign="c-popads-short")
    await asyncio.sleep(1.3)
    conversion = await client.convert(click_id, "tx-late")
    d = await client.delivery_for("popads-short", conversion["conversion_id"])
    assert (d["status"], d["last_outcome"]) == ("expired", "expired")
    assert d["expires_at"] is not None and d["expires_at"] < time.time()
    assert [a["outcome"] for a in d["attempt_log"]] == ["expired"]
    assert d["attempt_log"][0]["status_code"] is None
    assert not world.sink.hits_for(externalid)
    line = 'gateway_deliveries_expired_total{traffic_source="popads-short"} 1.0'
    assert line in await client.metrics(line)


async def test_popads_48_hours_with_a_virtual_clock(tmp_path: Path, world: World) -> None:
    """The preset's own max_click_age: 47 h after the click it is sent, 49 h after it expires.

    The same stack in process (app, batcher, dispatcher, SQLite, real HTTPS to the
    stand-in network), on a virtual clock that the test moves forward.
    """
    net = NETS["popads"]
    path = tmp_path / "gateway.toml"
    path.write_text(
        config_text({"popads": net}, world.sink, world.ca, world.transport).replace(
            f'api_token = "{TOKEN}"', ""
        )
    )
    config = load(path)
    clock = VirtualClock(start=time.time())
    store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    metrics = Metrics()
    dispatcher = Dispatcher(settings=config.delivery, store=store, metrics=metrics, clock=clock)
    await dispatcher.start()
    app = create_app(config, store, dispatcher, metrics=metrics, clock=clock)
    http: TestClient[Any, Any] = TestClient(GatewayTestServer(app, host="127.0.0.1"))
    await http.start_server()
    try:
        early, late = f"popads-47h-{secrets.token_hex(3)}", f"popads-49h-{secrets.token_hex(3)}"
        clicks = {}
        for externalid in (early, late):
            resp = await http.get(
                "/click/c-popads", params={"externalid": externalid}, allow_redirects=False
            )
            assert resp.status == 302
            clicks[externalid] = resp.headers["Location"].split("sub=")[1]

        async def convert_and_wait(externalid: str) -> dict[str, Any]:
            resp = await http.get("/postback", params={"cid": clicks[externalid], "payout": "2"})
            body = await resp.json()
            assert (resp.status, body["postbacks"]) == (200, 1), body
            for _ in range(800):  # 20 s at most
                listed = await http.get("/api/deliveries", params={"traffic_source": "popads"})
                page = await listed.json()
                mine = [
                    d for d in page["deliveries"] if d["conversion_id"] == body["conversion_id"]
                ]
                if mine and mine[0]["status"] != "queued":
                    return mine[0]
                await asyncio.sleep(0.025)
            raise AssertionError(f"{externalid}: still queued")

        await clock.advance(47 * 3600)
        sent = await convert_and_wait(early)
        assert sent["status"] == "delivered", sent
        assert len(world.sink.hits_for(early)) == 1

        await clock.advance(2 * 3600)
        expired = await convert_and_wait(late)
        assert expired["status"] == "expired" and expired["last_outcome"] == "expired"
        assert expired["expires_at"] == pytest.approx(
            expired["created_at"] - 49 * 3600 + 48 * 3600, abs=1.0
        )
        assert not world.sink.hits_for(late)
        text = await (await http.get("/metrics")).text()
        assert 'gateway_deliveries_expired_total{traffic_source="popads"} 1.0' in text
        sent_line = 'gateway_deliveries_delivered_total{status_class="2xx",traffic_source="popads"}'
        assert f"{sent_line} 1.0" in text
    finally:
        await http.close()
        await dispatcher.stop()
        await store.close()


async def test_secrets_never_shown(world: World, client: Client) -> None:
    """After real deliveries (and a test postback) of every preset with secrets, no
    secret appears in the gateway's log, the delivery API, test-postback's answer
    or /metrics; the network itself did receive them."""
    with_secrets = [n for n in NETS.values() if n.secrets]
    assert {"exoclick", "propellerads", "popads", "clickadu"} <= {n.source for n in with_secrets}
    for net in with_secrets:
        externalid = f"{net.source}-redact-{secrets.token_hex(4)}"
        click_id = await client.click(net, externalid)
        conversion = await client.convert(click_id, "tx-redact")
        d = await client.delivery_for(net.source, conversion["conversion_id"])
        assert d["status"] == "delivered"
        assert all(value in world.sink.hits_for(externalid)[0].raw for value in net.secrets)
        result = await client.api("POST", "/api/postbacks/test", json={"source": net.source})
        assert result["outcome"] == "delivered" and "***" in result["url"], result
        assert all(
            value in world.sink.hits_for(result["values"]["externalid"])[0].raw
            for value in net.secrets
        )

    # every page of the delivery API, every delivery's log
    cursor: Any = None
    while True:
        params = {"limit": "1000", **({"cursor": str(cursor)} if cursor is not None else {})}
        page = await client.api("GET", "/api/deliveries", params=params)
        for d in page["deliveries"]:
            await client.api("GET", f"/api/deliveries/{d['delivery_id']}")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    await client.metrics()

    # a replay sends again (and logs again); still nothing shown
    replay = await client.api(
        "POST", "/api/deliveries/replay", json={"status": "failed", "traffic_source": "exoclick"}
    )
    assert isinstance(replay["requeued"], int)

    log_text = world.log.read_text(errors="replace")
    assert "test postback GET https://s.magsrv.com/tag.php?goal=***&tag=" in log_text
    seen = "\n".join(world.shown)
    assert len(world.shown) > len(with_secrets) * 3
    for net in with_secrets:
        for value in net.secrets:
            assert value not in log_text, (net.source, "log")
            assert value not in seen, (net.source, "API or metrics")


@pytest.mark.parametrize(
    ("url", "display", "hidden"),
    [
        ("https://h/p?goal=G1&tag=x", "https://h/p?goal=***&tag=x", ["G1"]),
        ("http://h/zp/U1?cid=x&k=K22", "http://h/zp/***?cid=x&k=***", ["K22", "U1"]),
        ("http://h/c/AB/?a=AB", "http://h/c/***/?a=***", ["AB", "AB"]),
        ("https://h/p?x=1", "https://h/p?x=1", []),
        ("https://h/p?goal=G1", "https://other/p?goal=***", None),  # does not align
    ],
)
def test_hidden_values(url: str, display: str, hidden: list[str] | None) -> None:
    """The delivery log recovers a delivery's secrets by aligning its URL with the
    display copy, to hide them in bodies and redirect targets too."""
    from gateway.dispatch.attempt import _hide, hidden_values  # noqa: PLC0415
    from tests.sinks import new_delivery  # noqa: PLC0415

    d = msgspec.structs.replace(new_delivery(url, now=0.0), display_url=display)
    assert hidden_values(d) == hidden
    if hidden:
        assert _hide(d, f"echo {url}") == f"echo {redacted_with(url, hidden)}"
    if hidden is None:
        assert _hide(d, "echo G1") == "(withheld: may quote a secret)"


def redacted_with(text: str, hidden: list[str]) -> str:
    for value in hidden:
        text = text.replace(value, "***")
    return text

"""Testing a postback: ``POST /api/postbacks/test`` and ``python -m gateway test-postback``.

Real servers on loopback: the gateway's app (in process for the API, a
subprocess for the CLI) and a stand-in network reached through
``[delivery] resolve`` over real HTTPS (a test CA trusted with ``ca_file``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.config import load
from gateway.http.app import create_app
from gateway.metrics import Metrics
from gateway.store.base import DeliveryFilter
from gateway.store.sqlite import SQLiteStore
from tests.intake_helpers import GatewayTestServer, RecordingSink
from tests.network_sink import NetworkSink, make_tls

# The stand-in network is shared by the module and its hits are counted, so
# one client loop; serve's own uvloop path is covered by the subprocess tests.
ONE_LOOP = True  # read by tests/conftest.py

ROOT = Path(__file__).resolve().parent.parent
GOAL = "GOALsecret0123456789abcdef012345"
UUID = "UUIDsecret-5f0c-4d7e-9a31-000000000000"
TOKEN = "api-token-for-tests"
HOSTS = {
    "s.magsrv.com": "https",
    "postback.zeroredirect1.com": "http",
    "evadav.com": "https",
    "pb.example": "http",
}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NetworkSink, Path]]:
    ca, pem, key = make_tls(tmp_path_factory.mktemp("tls"), list(HOSTS))
    sink = NetworkSink(pem, key).start()
    try:
        yield sink, ca
    finally:
        sink.close()


def config_text(
    sink: NetworkSink,
    ca: Path,
    *,
    token: bool = False,
    private: bool = True,
    extra_resolve: dict[str, str] | None = None,
) -> str:
    resolve = {**sink.resolve_map(HOSTS), **(extra_resolve or {})}
    table = ", ".join(f'"{k}" = "{v}"' for k, v in resolve.items())
    api_token = f'api_token = "{TOKEN}"' if token else ""
    return f"""
{api_token}
[batch]
max_wait_ms = 1.0

[delivery]
allow_private_targets = {"true" if private else "false"}
ca_file = "{ca}"
timeout = 3.0
resolve = {{ {table} }}

[[traffic_sources]]
name = "exo"
preset = "exoclick"
params = {{ goal = "{GOAL}" }}
variables = ["zoneid"]

[[traffic_sources]]
name = "zp"
preset = "zeropark"
params = {{ uuid = "{UUID}" }}

[[traffic_sources]]
name = "eva"
preset = "evadav"

[[traffic_sources]]
name = "hand"
[[traffic_sources.postbacks]]
name = "hand:sale"
url = "http://pb.example/sale?c={{externalid}}&p={{payout}}&tx={{txid}}&z={{var:zoneid}}\
&s={{status}}"
[[traffic_sources.postbacks]]
name = "hand:lead"
url = "http://pb.example/lead?c={{externalid}}&s={{status}}"
statuses = ["pending"]

[[traffic_sources.postbacks]]
name = "hand:post"
url = "http://pb.example/form"
method = "POST"
body = "click={{externalid}}&amount={{payout}}"

[[campaigns]]
id = "c-exo"
name = "Exo campaign"
traffic_source = "exo"
offer_url = "https://offer.example/lp?sub={{click.id}}"

[[campaigns.postbacks]]
name = "c-exo:own"
url = "http://pb.example/own?c={{externalid}}&camp={{campaign.id}}&n={{campaign.name}}"
"""


class App:
    def __init__(self, client: TestClient[Any, Any], store: SQLiteStore) -> None:
        self.client = client
        self.store = store

    async def test(self, body: Any, **headers: str) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        resp = await self.client.post(
            "/api/postbacks/test",
            data=data,
            headers={"Content-Type": "application/json", **headers},
        )
        return resp.status, await resp.json()


async def start_app(tmp_path: Path, text: str) -> App:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    store = SQLiteStore(tmp_path / "gateway.sqlite")
    await store.open()
    app = create_app(load(path), store, RecordingSink(), metrics=Metrics())
    client: TestClient[Any, Any] = TestClient(GatewayTestServer(app, host="127.0.0.1"))
    await client.start_server()
    return App(client, store)


@pytest.fixture
async def app(tmp_path: Path, network: tuple[NetworkSink, Path]) -> AsyncIterator[App]:
    sink, ca = network
    started = await start_app(tmp_path, config_text(sink, ca))
    try:
        yield started
    finally:
        await started.client.close()
        await started.store.close()


async def test_delivered_over_https_through_resolve(
    app: App, network: tuple[NetworkSink, Path]
) -> None:
    sink, _ = network
    status, result = await app.test({"source": "exo"})
    assert status == 200, result
    assert result["outcome"] == "delivered" and result["status_code"] == 200
    assert result["body_excerpt"] == "OK" and result["reason"] == "HTTP 200"
    assert result["rule"] == "exo:preset" and result["answer_rule"] == "exoclick"
    assert result["stored"] is False and result["latency_ms"] > 0
    externalid = result["values"]["externalid"]
    assert externalid.startswith("test-")
    assert result["url"] == f"https://s.magsrv.com/tag.php?goal=***&tag={externalid}"
    assert result["values"]["payout"] == "1.00"
    assert result["values"]["conversion.status"] == "approved"
    [hit] = sink.hits_for(externalid)
    # the real request: real host name, TLS, the secret in the URL (only there)
    assert hit.scheme == "https" and hit.host == "s.magsrv.com" and hit.path == "/tag.php"
    assert hit.query == {"goal": GOAL, "tag": externalid}
    assert GOAL not in json.dumps(result)


async def test_network_refusal_in_a_200_is_rejected(
    app: App, network: tuple[NetworkSink, Path]
) -> None:
    sink, _ = network
    sink.expect("tp-refused", [(200, "ERROR: tag invalid")])
    status, result = await app.test({"source": "exo", "values": {"externalid": "tp-refused"}})
    assert status == 200
    assert (result["outcome"], result["reason"]) == ("rejected", "ERROR: tag invalid")
    assert result["body_excerpt"] == "ERROR: tag invalid"

    sink.expect("tp-eva", [(200, '{"status":"error","message":"Incorrect click_id value"}')])
    status, result = await app.test({"source": "eva", "values": {"externalid": "tp-eva"}})
    assert (result["outcome"], result["reason"]) == ("rejected", "Incorrect click_id value")


async def test_retry_answers_and_connection_errors(
    app: App, network: tuple[NetworkSink, Path]
) -> None:
    sink, _ = network
    sink.expect("tp-busy", [(503, "busy")])
    _, result = await app.test({"source": "zp", "values": {"externalid": "tp-busy"}})
    assert (result["outcome"], result["status_code"]) == ("retry", 503)
    assert result["reason"] == "HTTP 503: busy"
    assert result["url"].startswith("http://postback.zeroredirect1.com/zppostback/***?cid=tp-busy")

    sink.expect("tp-gone", [(404, "unknown click")])
    _, result = await app.test({"source": "zp", "values": {"externalid": "tp-gone"}})
    assert (result["outcome"], result["reason"]) == ("rejected", "HTTP 404: unknown click")


async def test_no_answer_is_a_retry(tmp_path: Path, network: tuple[NetworkSink, Path]) -> None:
    sink, ca = network
    from tests.gateway_proc import free_port  # noqa: PLC0415

    closed = free_port()  # nothing listens there
    dead = {"postback.zeroredirect1.com:80": f"127.0.0.1:{closed}"}
    started = await start_app(tmp_path, config_text(sink, ca, extra_resolve=dead))
    try:
        status, result = await started.test({"source": "zp"})
    finally:
        await started.client.close()
        await started.store.close()
    assert status == 200
    assert result["outcome"] == "retry" and result["status_code"] is None
    assert result["error"].startswith("connect error") and result["reason"] == result["error"]
    assert UUID not in json.dumps(result)


async def test_ssrf_guard_applies(tmp_path: Path, network: tuple[NetworkSink, Path]) -> None:
    sink, ca = network
    started = await start_app(tmp_path, config_text(sink, ca, private=False))
    try:
        status, result = await started.test({"source": "exo"})
    finally:
        await started.client.close()
        await started.store.close()
    assert status == 200
    assert result["outcome"] == "rejected"
    assert result["reason"].startswith("blocked destination: 127.0.0.1")
    assert not sink.hits_for(result["values"]["externalid"])


async def test_values_rules_and_campaigns(app: App, network: tuple[NetworkSink, Path]) -> None:
    sink, _ = network
    values = {"external_id": "tp-vals", "payout": 2.5, "txid": "T-1", "tName:zoneid": "77"}
    status, result = await app.test({"source": "hand", "values": values})
    assert status == 200, result
    assert result["rules"] == ["hand:sale", "hand:lead", "hand:post"]
    assert result["rule"] == "hand:sale"
    assert result["url"] == "http://pb.example/sale?c=tp-vals&p=2.5&tx=T-1&z=77&s=approved"
    assert sink.hits_for("tp-vals")[0].host == "pb.example"

    # a pending status picks the rule it fires; a rule can be named or indexed
    _, result = await app.test({"source": "hand", "values": {"status": "pending"}})
    assert result["rule"] == "hand:lead" and result["would_fire"] is True
    _, result = await app.test({"source": "hand", "rule": "hand:lead"})
    assert result["rule"] == "hand:lead" and result["would_fire"] is False  # approved
    _, result = await app.test({"source": "hand", "rule": 1})
    assert result["rule"] == "hand:lead"

    # a campaign: the source's rules and its own, with campaign tokens filled
    _, result = await app.test({"campaign": "c-exo", "rule": "c-exo:own"})
    assert result["url"].startswith("http://pb.example/own?c=test-")
    assert result["url"].endswith("&camp=c-exo&n=Exo%20campaign")
    assert result["rules"] == ["exo:preset", "c-exo:own"] and result["campaign"] == "c-exo"
    _, result = await app.test({"campaign": "c-exo", "source": "exo"})
    assert result["rule"] == "exo:preset" and result["outcome"] == "delivered"


async def test_post_rule_sends_its_body(app: App, network: tuple[NetworkSink, Path]) -> None:
    sink, _ = network
    values = {"externalid": "tp-post", "payout": "4.20"}
    status, result = await app.test({"source": "hand", "rule": "hand:post", "values": values})
    assert status == 200 and result["method"] == "POST" and result["outcome"] == "delivered"
    [hit] = [h for h in sink.hits if h.path == "/form" and h.body.startswith("click=tp-post")]
    assert (hit.method, hit.host) == ("POST", "pb.example")
    assert hit.body == "click=tp-post&amount=4.20"
    assert hit.content_type == "application/x-www-form-urlencoded"


async def test_redirect_target_is_redacted(app: App, network: tuple[NetworkSink, Path]) -> None:
    """Zeropark's credential is a path segment: where a redirect ended shows it as ***."""
    sink, _ = network
    moved = f"https://postback.zeroredirect1.com/moved/zppostback/{UUID}?cid=tp-moved"
    sink.expect("tp-moved", [(301, "", {"Location": moved}), (200, "OK")])
    _, result = await app.test({"source": "zp", "values": {"externalid": "tp-moved"}})
    assert result["outcome"] == "delivered"
    assert result["final_url"] == "https://postback.zeroredirect1.com/moved/zppostback/***"
    assert [h.scheme for h in sink.hits_for("tp-moved")] == ["http", "https"]
    assert UUID not in json.dumps(result)


async def test_nothing_is_stored(app: App) -> None:
    status, _ = await app.test({"source": "exo"})
    assert status == 200
    assert await app.store.list_deliveries(DeliveryFilter(), after_id=None, limit=10) == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, "body"),
        ([1, 2], 400, "body"),
        ({}, 400, "source"),
        ({"source": 5}, 400, "source"),
        ({"source": "exo", "colour": "red"}, 400, "colour"),
        ({"source": "exo", "rule": True}, 400, "rule"),
        ({"source": "exo", "rule": 7}, 400, "rule"),
        ({"source": "exo", "values": []}, 400, "values"),
        ({"source": "exo", "values": {"payout": [1]}}, 400, "values.payout"),
        ({"source": "exo", "values": {"payout": True}}, 400, "values.payout"),
        ({"source": "exo", "values": {"extrnalid": "x"}}, 400, "values.extrnalid"),
        ({"source": "exo", "campaign": "c-exo-nope"}, 404, "campaign"),
        ({"source": "zp", "campaign": "c-exo"}, 400, "source"),
        ({"source": "nope"}, 404, "source"),
        ({"campaign": "nope"}, 404, "campaign"),
        ({"source": "exo", "rule": "no-such-rule"}, 404, "rule"),
    ],
)
async def test_bad_input(app: App, body: Any, status: int, field: str) -> None:
    got, answer = await app.test(body)
    assert (got, answer["field"]) == (status, field), answer
    assert answer["error"]


async def test_bearer_token_is_required(tmp_path: Path, network: tuple[NetworkSink, Path]) -> None:
    sink, ca = network
    started = await start_app(tmp_path, config_text(sink, ca, token=True))
    try:
        status, answer = await started.test({"source": "exo"})
        assert (status, answer["field"]) == (401, "Authorization")
        status, answer = await started.test({"source": "exo"}, Authorization="Bearer wrong")
        assert status == 401
        status, answer = await started.test({"source": "exo"}, Authorization=f"Bearer {TOKEN}")
        assert status == 200 and answer["outcome"] == "delivered"
    finally:
        await started.client.close()
        await started.store.close()


async def test_network_echoing_the_secret_is_redacted(
    app: App, network: tuple[NetworkSink, Path]
) -> None:
    sink, _ = network
    sink.expect("tp-echo", [(400, f"bad request /tag.php?goal={GOAL}&tag=tp-echo")])
    _, result = await app.test({"source": "exo", "values": {"externalid": "tp-echo"}})
    assert result["outcome"] == "rejected"
    assert result["body_excerpt"] == "bad request /tag.php?goal=***&tag=tp-echo"
    assert GOAL not in json.dumps(result)


# -- the command line ---------------------------------------------------------------


def cli(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "test-postback", "--config", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_cli(tmp_path: Path, network: tuple[NetworkSink, Path]) -> None:
    sink, ca = network
    config = tmp_path / "gateway.toml"
    config.write_text(config_text(sink, ca))

    done = cli(config, "--source", "exo", "--set", "externalid=tp-cli-ok", "--set", "payout=3")
    assert done.returncode == 0, done.stderr
    assert "request  GET https://s.magsrv.com/tag.php?goal=***&tag=tp-cli-ok" in done.stdout
    assert "answer   HTTP 200 in " in done.stdout and "outcome  delivered: HTTP 200" in done.stdout
    assert sink.hits_for("tp-cli-ok")[0].query["goal"] == GOAL

    sink.expect("tp-cli-bad", [(200, "ERROR: tag invalid")])
    done = cli(config, "--source", "exo", "--set", "externalid=tp-cli-bad", "--json")
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["reason"]) == ("rejected", "ERROR: tag invalid")
    assert result["url"] == "https://s.magsrv.com/tag.php?goal=***&tag=tp-cli-bad"

    done = cli(config, "--campaign", "c-exo", "--rule", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rule"] == "c-exo:own"

    for argv, message in (
        (["--source", "nope"], "source: unknown traffic source"),
        (["--source", "exo", "--set", "oops"], "expected NAME=VALUE"),
        (["--source", "exo", "--set", "extrnalid=1"], "unknown token"),
        (["--source", "exo", "--rule", "9"], "rule: rule index out of range"),
        ([], "name a traffic source or a campaign"),
    ):
        done = cli(config, *argv)
        assert done.returncode == 2 and message in done.stderr, (argv, done.stderr)
    for output in (done.stdout, done.stderr):
        assert GOAL not in output


def test_cli_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[traffic_sources]]\nname = "exo"\npreset = "exoclick"\n')
    done = cli(config, "--source", "exo")
    assert done.returncode == 2
    assert "traffic_sources[0].params.goal: missing" in done.stderr

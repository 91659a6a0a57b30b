"""``serve`` as a process: SIGHUP reloads (a bad config is refused), SIGTERM drains,
a non-loopback address needs a token, and the shipped example config runs."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.gateway_proc import ROOT, GatewayProcess, wait_for

BASE = """
[[traffic_sources]]
name = "ts"
postback = "https://pb.example/pb?c={externalid}"

[[campaigns]]
id = "one"
traffic_source = "ts"
offer_url = "https://offer.example/?sub={click.id}"
"""
SECOND = """
[[campaigns]]
id = "two"
traffic_source = "ts"
offer_url = "https://offer.example/two?sub={click.id}"
"""


def _status(url: str) -> int:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.slow
def test_sighup_reload_good_then_bad(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BASE)
    gw = GatewayProcess(config, tmp_path / "g.sqlite", tmp_path / "g.log")
    gw.start()
    try:
        assert _status(gw.url + "/click/one") == 302
        assert _status(gw.url + "/click/two") == 404
        config.write_text(BASE + SECOND)
        gw.signal(signal.SIGHUP)
        assert wait_for(lambda: _status(gw.url + "/click/two") == 302)
        config.write_text(BASE + SECOND.replace("{click.id}", "{clik.id}"))
        gw.signal(signal.SIGHUP)
        assert wait_for(lambda: "reload refused" in gw.log())
        assert "campaigns[1].offer_url" in gw.log()
        assert _status(gw.url + "/click/two") == 302  # the old config stays
    finally:
        gw.stop()
    assert gw.wait() == 0


@pytest.mark.slow
def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BASE)
    db = tmp_path / "g.sqlite"
    gw = GatewayProcess(config, db, tmp_path / "g.log")
    gw.start()
    request = urllib.request.Request(
        gw.url + "/api/clicks",
        method="POST",
        data=json.dumps([{"campaign_id": "one"}] * 50).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        ids = [r["click_id"] for r in json.load(resp)]
    gw.signal(signal.SIGTERM)
    assert gw.wait() == 0
    assert "stopped" in gw.log()
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT click_id FROM clicks")}
    assert set(ids) <= stored


def test_refuses_public_address_without_token(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BASE)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            "--host",
            "0.0.0.0",
            "--db",
            str(tmp_path / "g.sqlite"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "api_token" in done.stderr


def test_invalid_config_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BASE.replace("{externalid}", "{extrnalid}"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(config),
            "--db",
            str(tmp_path / "g.sqlite"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "did you mean {externalid}" in done.stderr


@pytest.mark.slow
def test_default_config_is_the_shipped_example(tmp_path: Path) -> None:
    gw = GatewayProcess(None, None, tmp_path / "g.log", cwd=tmp_path)
    gw.start()
    try:
        assert _status(gw.url + "/click/exo-push-us?externalid=abc") == 302
        assert "listening on http://127.0.0.1:" in gw.log()
        assert str(ROOT / "examples" / "gateway.toml") in gw.log()
    finally:
        gw.stop()
    assert gw.wait() == 0
    assert (tmp_path / "gateway.sqlite").exists()  # the default db: ./gateway.sqlite


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BASE)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--db",
                str(tmp_path / "g.sqlite"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1 and "cannot listen" in done.stderr
    assert "Traceback" not in done.stderr

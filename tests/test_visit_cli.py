"""``python -m gateway visit``, ``geo show`` and ``check``'s enrich lines."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway_proc import GatewayProcess
from tests.geo_data import write_geo
from tests.test_enrich import IPHONE_SAFARI

ROOT = Path(__file__).resolve().parent.parent


def gateway(*args: str, geo: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_GEO_DIR": str(geo)}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_visit_json(tmp_path: Path) -> None:
    geo = write_geo(tmp_path / "geo")
    done = gateway(
        "visit",
        "--ip",
        "203.0.113.4",
        "--ua",
        IPHONE_SAFARI,
        "--header",
        "Accept-Language: de;q=0.8",
        "--json",
        geo=geo,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["tokens"]["country"] == "DE" and out["tokens"]["os"] == "iOS"
    assert out["tokens"]["language"] == "de" and out["tokens"]["ip"] == "203.0.113.4"
    assert [f["built"] for f in out["files"]][0] == "2026-01-01"
    assert "DB-IP" in out["attribution"]


def test_visit_text_behind_a_trusted_proxy(tmp_path: Path) -> None:
    geo = write_geo(tmp_path / "geo")
    config = tmp_path / "g.toml"
    config.write_text('[server]\ntrusted_proxies = ["10.0.0.0/8"]\n')
    done = gateway(
        "visit",
        "--ip",
        "10.0.0.1",
        "--header",
        "X-Forwarded-For: 198.51.100.9",
        "--config",
        str(config),
        geo=geo,
    )
    assert done.returncode == 0, done.stderr
    assert "{ip}" in done.stdout and "198.51.100.9" in done.stdout and "Austin" in done.stdout
    assert "built 2026-01-01" in done.stdout and "DB-IP" in done.stdout
    bad = gateway("visit", "--ip", "1.2.3.4", "--header", "nocolon", geo=geo)
    assert bad.returncode == 2 and "Name: value" in bad.stderr


def test_geo_show_and_check_say_what_is_installed(tmp_path: Path) -> None:
    missing = gateway("geo", "show", "--dir", str(tmp_path / "none"), geo=tmp_path / "none")
    assert missing.returncode == 1 and "not installed" in missing.stdout
    geo = write_geo(tmp_path / "geo")
    shown = gateway("geo", "show", geo=geo)
    assert shown.returncode == 0 and "test-city@1" in shown.stdout and "DB-IP" in shown.stdout
    config = tmp_path / "g.toml"
    config.write_text("")
    checked = gateway("check", str(config), geo=tmp_path / "none")
    assert checked.returncode == 0
    assert "enrich: geo data not installed" in checked.stdout
    assert "enrich: geo data: test-city@1" in gateway("check", str(config), geo=geo).stdout


@pytest.mark.slow
def test_serve_says_what_visit_data_it_runs_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve`` logs the geo data at start-up, or that it is missing, and still runs;
    a click through it carries the enriched tokens into the offer URL."""
    config = tmp_path / "g.toml"
    config.write_text(
        '[server]\ntrusted_proxies = ["127.0.0.0/8"]\n'
        '[[traffic_sources]]\nname = "t"\n'
        '[[campaigns]]\nid = "c"\ntraffic_source = "t"\n'
        'offer_url = "https://offer.example/?c={country}&os={os}"\n'
    )
    for geo, line in ((tmp_path / "none", "geo data not installed"), (None, "geo data: test")):
        folder = geo or write_geo(tmp_path / "geo")
        monkeypatch.setenv("GATEWAY_GEO_DIR", str(folder))
        proc = GatewayProcess(config, tmp_path / f"{folder.name}.sqlite", tmp_path / "log")
        proc.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=10)
            headers = {"User-Agent": IPHONE_SAFARI, "X-Forwarded-For": "203.0.113.8"}
            conn.request("GET", "/click/c", headers=headers)
            answer = conn.getresponse()
            answer.read()
            conn.close()
            assert answer.status == 302
            want = "c=&os=iOS" if geo else "c=DE&os=iOS"
            assert answer.headers["Location"].endswith(want)
        finally:
            proc.stop()
        assert line in proc.log()

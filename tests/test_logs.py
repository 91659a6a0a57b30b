"""Logs an operator can use: ISO times with a zone, JSON lines, the access log only
when asked, reload warnings as warnings; and the serve options' clear refusals."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gateway.logs import IsoFormatter, JsonFormatter
from tests.gateway_proc import ROOT, GatewayProcess, wait_for

CONFIG = """
[[traffic_sources]]
name = "ts"
postback = "https://pb.example/pb?c={externalid}"

[[campaigns]]
id = "one"
traffic_source = "ts"
offer_url = "https://offer.example/?sub={click.id}"
"""
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("gateway.x", level, __file__, 1, message, (), None)


def test_text_lines_start_with_an_iso_time_and_zone() -> None:
    formatter = IsoFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    line = formatter.format(_record("hello"))
    assert ISO.match(line) and line.endswith("INFO gateway.x: hello")


def test_json_lines() -> None:
    entry = json.loads(JsonFormatter().format(_record('a "quoted" word', logging.WARNING)))
    assert entry["level"] == "warning" and entry["message"] == 'a "quoted" word'
    assert entry["logger"] == "gateway.x" and ISO.match(entry["time"] + " ")


@pytest.mark.slow
def test_json_access_log_and_reload_warnings(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    gw = GatewayProcess(
        config,
        tmp_path / "g.sqlite",
        tmp_path / "g.log",
        extra=["--log-format", "json", "--access-log", "--log-level", "debug"],
    )
    gw.start()
    try:
        urllib.request.urlopen(gw.url + "/health?probe=1", timeout=5).read()
        # a config that runs but deserves a look: a postback without {externalid}
        config.write_text(CONFIG.replace("?c={externalid}", "?c=fixed"))
        gw.signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded" in gw.log(), timeout=8.0)
    finally:
        gw.stop()
    entries = [json.loads(line) for line in gw.log_path.read_text().splitlines() if line]
    access = [e for e in entries if e["logger"] == "aiohttp.access"]
    assert any("/health?probe=1" in e["message"] and " 200 " in e["message"] for e in access)
    warned = [e for e in entries if e["message"].startswith("reload: warning:")]
    assert warned and all(e["level"] == "warning" for e in warned)
    assert not any(e["level"] == "error" for e in entries)


@pytest.mark.slow
def test_no_access_log_by_default(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG)
    gw = GatewayProcess(config, tmp_path / "g.sqlite", tmp_path / "g.log")
    gw.start()
    try:
        urllib.request.urlopen(gw.url + "/health?probe=1", timeout=5).read()
    finally:
        gw.stop()
    assert "probe=1" not in gw.log()
    assert ISO.match(gw.log().splitlines()[0])


def _serve(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_port_above_65535_is_refused_by_the_parser() -> None:
    done = _serve("--port", "65536")
    assert done.returncode == 2 and "out of range (1-65535)" in done.stderr


def test_db_in_a_missing_directory_is_one_clear_line(tmp_path: Path) -> None:
    done = _serve("--db", str(tmp_path / "nope" / "g.sqlite"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr

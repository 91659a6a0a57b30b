"""A traffic source in dry run beside an old tracker, then switched live with SIGHUP:
a real gateway process and a real sink (``http.server``) on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_proc import GatewayProcess, free_port

CONFIG = """
[delivery]
allow_private_targets = true

[[traffic_sources]]
name = "ts"
dry_run = {dry_run}
postback = "http://127.0.0.1:{port}/?c={{externalid}}"

[[campaigns]]
id = "one"
traffic_source = "ts"
offer_url = "https://offer.example/?sub={{click.id}}"
"""


def _convert(gw: GatewayProcess, externalid: str) -> int:
    """A click and its conversion; the delivery's id once it is no longer queued."""
    request = urllib.request.Request(
        gw.url + "/api/clicks",
        method="POST",
        data=json.dumps([{"campaign_id": "one", "externalid": externalid}]).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        (click,) = json.load(resp)
    with urllib.request.urlopen(f"{gw.url}/postback?cid={click['click_id']}", timeout=5) as resp:
        conversion_id = json.load(resp)["conversion_id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = _deliveries(gw)
        mine = [d for d in rows if d["conversion_id"] == conversion_id]
        if mine and mine[0]["status"] != "queued":
            return int(mine[0]["delivery_id"])
        time.sleep(0.05)
    raise AssertionError(f"no finished delivery for {conversion_id}: {rows}")


def _deliveries(gw: GatewayProcess) -> list[dict[str, Any]]:
    with urllib.request.urlopen(gw.url + "/api/deliveries", timeout=5) as resp:
        rows: list[dict[str, Any]] = json.load(resp)["deliveries"]
    return rows


@pytest.mark.slow
def test_a_source_in_dry_run_then_live_after_sighup(tmp_path: Path) -> None:
    port = free_port()
    sink_log = tmp_path / "sink.log"
    with open(sink_log, "wb") as log:
        sink = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=tmp_path,
            stderr=log,
        )
    config = tmp_path / "gateway.toml"
    config.write_text(CONFIG.format(dry_run="true", port=port))
    gw = GatewayProcess(config, tmp_path / "g.sqlite", tmp_path / "g.log")
    gw.start()
    try:
        assert "1 traffic source(s) and 0 rule(s) in dry run" in gw.log()
        first = _convert(gw, "shadowed-1")
        config.write_text(CONFIG.format(dry_run="false", port=port))
        gw.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while "reloaded" not in gw.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = _convert(gw, "live-2")
        status = {d["delivery_id"]: d["status"] for d in _deliveries(gw)}
        assert (status[first], status[second]) == ("dry_run", "delivered")
        hits = sink_log.read_text()
        assert "c=live-2" in hits and "c=shadowed-1" not in hits
    finally:
        gw.stop()
        sink.terminate()
        sink.wait(10)

"""docs/quickstart.md's five commands, run as written (ports moved to free ones):
the click, the conversion, the delivery to the local sink, the log."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.gateway_proc import ROOT, free_port


def _commands() -> list[str]:
    text = (ROOT / "docs" / "quickstart.md").read_text()
    (block,) = re.findall(r"```sh\n(.*?)```", text, re.S)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


@pytest.mark.slow
def test_the_quickstart_works_as_written(tmp_path: Path) -> None:
    commands = _commands()
    assert len(commands) == 5
    sink_port, gw_port = free_port(), free_port()
    config = tmp_path / "quickstart.toml"
    config.write_text(
        (ROOT / "examples" / "quickstart.toml").read_text().replace(":9100", f":{sink_port}")
    )

    def adapt(command: str) -> str:
        return (
            command.replace("9100", str(sink_port))
            .replace("8080", str(gw_port))
            .replace(".venv/bin/python", sys.executable)
            .replace("examples/quickstart.toml", str(config))
            .replace("/tmp/quickstart.sqlite", str(tmp_path / "q.sqlite"))
            .removesuffix(" &")
        )

    sink_cmd, serve_cmd, click_cmd, conversion_cmd, log_cmd = map(adapt, commands)
    serve_cmd += f" --port {gw_port}"  # the docs use the default, 8080
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    sink_log, gw_log = tmp_path / "sink.log", tmp_path / "gw.log"
    with open(sink_log, "wb") as a, open(gw_log, "wb") as b:
        sink = subprocess.Popen(["bash", "-c", f"exec {sink_cmd}"], cwd=tmp_path, stderr=a)
        gateway = subprocess.Popen(
            ["bash", "-c", f"exec {serve_cmd}"], cwd=ROOT, env=env, stdout=b, stderr=b
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{gw_port}/health", timeout=1)
                urllib.request.urlopen(f"http://127.0.0.1:{sink_port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        both = subprocess.run(
            ["bash", "-c", f"{click_cmd}\n{conversion_cmd}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        result = json.loads(both.stdout)
        assert result["status"] == "accepted" and result["postbacks"] == 1, both
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            shown = subprocess.run(
                ["bash", "-c", log_cmd], capture_output=True, text=True, timeout=30
            )
            delivery = json.loads(shown.stdout)
            if delivery["status"] != "queued":
                break
            time.sleep(0.1)
        assert delivery["status"] == "delivered", delivery
        assert delivery["attempt_count"] == 1 and delivery["attempt_log"][0]["status_code"] == 200
        assert 'GET /?click=ext-1&payout=2.50&zone=42 HTTP/1.1" 200' in sink_log.read_text()
    finally:
        gateway.send_signal(signal.SIGTERM)
        sink.send_signal(signal.SIGTERM)
        assert gateway.wait(20) == 0, gw_log.read_text()
        sink.wait(10)

"""A first run is safe to poke: ``serve`` with no arguments sends nothing anywhere.

The shipped example runs in dry-run mode: the banner's click and conversion
work, the delivery is stored as ``dry_run`` with its rendered URL, and no
name lookup or connection to anything but loopback is attempted
(``tests/first_run.py`` records them with an audit hook).  The same run with
``dry_run = false`` shows the recording catches a real attempt.  Both run in
a fresh network namespace where the machine allows it (root, ``unshare``), so
a regression cannot reach a real network from here either.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.gateway_proc import ROOT

DRIVER = ROOT / "tests" / "first_run.py"
EXAMPLE = ROOT / "examples" / "gateway.toml"


def _isolated() -> list[str]:
    """A command prefix that runs in a new network namespace with only loopback up."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return []
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=10
    )
    if probe.returncode != 0:
        return []
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def _first_run(workdir: Path, config: Path | None = None) -> dict[str, Any]:
    argv = [*_isolated(), sys.executable, str(DRIVER), str(workdir)]
    if config is not None:
        argv += ["--config", str(config)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, cwd=workdir)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _outside(events: list[dict[str, str]]) -> list[dict[str, str]]:
    def loopback(host: str) -> bool:
        if host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    return [e for e in events if not loopback(e["host"])]


@pytest.mark.slow
def test_serve_without_arguments_sends_nothing(tmp_path: Path) -> None:
    run = _first_run(tmp_path)
    assert run["exit"] == 0, run["log"]
    assert "mode: DRY RUN" in run["log"]
    assert run["conversion"] is not None, run["log"]
    assert run["conversion"]["status"] == 200
    assert run["conversion"]["body"]["postbacks"] >= 1
    deliveries = run["deliveries"]
    assert deliveries and {d["status"] for d in deliveries} == {"dry_run"}
    assert all(d["url"].startswith("https://s.magsrv.com/") for d in deliveries)
    assert "dry run: delivery" in run["log"]
    assert (tmp_path / "gateway.sqlite").exists()  # the embedded default: SQLite in cwd
    assert _outside(run["net"]) == []


@pytest.mark.slow
def test_the_recording_sees_a_live_attempt(tmp_path: Path) -> None:
    """The control: the same first run with dry_run off does try the network."""
    if not _isolated():
        pytest.skip("needs a network namespace, so the live attempt cannot leave")
    live = tmp_path / "live.toml"
    live.write_text(EXAMPLE.read_text().replace("\ndry_run = true", "\ndry_run = false"))
    run = _first_run(tmp_path, live)
    assert "mode: LIVE" in run["log"]
    assert any(e["host"] == "s.magsrv.com" for e in _outside(run["net"])), run["net"]
